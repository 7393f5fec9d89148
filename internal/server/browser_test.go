package server_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write screenshots of the login, consent and account pages to docs/screenshots")

// screenshotDir is where -update-screenshots (or
// AGENTID_UPDATE_SCREENSHOTS=1) writes; CI leaves the tree untouched.
const screenshotDir = "../../docs/screenshots"

// tab is one headless Chromium tab driven over the DevTools protocol.
type tab struct {
	ctx context.Context
}

// newTab starts Debian's Chromium from AGENTID_TEST_CHROMIUM (set by
// scripts/test.sh). Without it the test is skipped locally and fails in CI.
func newTab(t *testing.T) *tab {
	t.Helper()
	path := os.Getenv("AGENTID_TEST_CHROMIUM")
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AGENTID_TEST_CHROMIUM is empty in CI: install Chromium with scripts/chromium.sh and export its path")
		}
		t.Skip("AGENTID_TEST_CHROMIUM not set; run: export AGENTID_TEST_CHROMIUM=$(scripts/chromium.sh)")
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 800),
	)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first run starts the browser and must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tb := &tab{ctx: ctx}
	tb.do(t, chromedp.EmulateViewport(1280, 800))
	return tb
}

func (b *tab) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		t.Fatalf("browser at %s: %v", loc, err)
	}
}

// settle runs steps that only wait or read (never click or type) until
// they succeed, for a page that goes through redirects after an action:
// a step that queries the page while the browser swaps documents can fail
// with the old document's execution context gone, and running it again on
// the next document is what a person's eyes do.
func (b *tab) settle(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	for {
		err := chromedp.Do(ctx, steps...)
		if err == nil {
			return
		}
		if ctx.Err() == nil && navigationRace(err) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		t.Fatalf("browser at %s: %v", loc, err)
	}
}

// navigationRace reports whether err is the browser's answer to a query
// made in a document that a navigation has just replaced.
func navigationRace(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context with specified id") ||
		strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Inspected target navigated or closed")
}

func evalIn[T any](t *testing.T, b *tab, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %q: %v", js, err)
	}
	return v
}

func (b *tab) text(t *testing.T) string { return evalIn[string](t, b, `document.body.innerText`) }

// contrastJS lists text whose colour contrast with its background is below
// WCAG 2.2 AA (4.5:1, or 3:1 for large text), computed from the rendered
// styles.
const contrastJS = `(() => {
  const parts = c => c.match(/[\d.]+/g).map(Number);
  const lum = c => { const [r, g, b] = parts(c).slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const opaque = c => { const p = parts(c); return p.length < 4 || p[3] > 0; };
  const bgOf = el => { for (let e = el; e; e = e.parentElement) { const b = getComputedStyle(e).backgroundColor; if (opaque(b)) return b; } return 'rgb(255, 255, 255)'; };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    if (el.closest('.vh') || el.getClientRects().length === 0) continue;
    const s = getComputedStyle(el);
    const fg = lum(s.color), bg = lum(bgOf(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) bad.push(el.tagName + ' "' + el.textContent.trim().slice(0, 40) + '" ' + ratio.toFixed(2));
  }
  return bad;
})()`

// unlabelledJS lists form controls a screen reader could not name.
const unlabelledJS = `(() => {
  const bad = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), button')) {
    const name = el.tagName === 'BUTTON' ? el.textContent.trim() : [...el.labels].map(l => l.textContent.trim()).join(' ');
    if (!name) bad.push(el.outerHTML.slice(0, 80));
  }
  return bad;
})()`

// checkPage runs the checks every page must pass at desktop and phone
// width (readable contrast, named controls, no sideways scrolling on a
// phone), and writes the screenshots when asked to.
func (b *tab) checkPage(t *testing.T, name string) {
	t.Helper()
	update := *updateScreenshots || os.Getenv("AGENTID_UPDATE_SCREENSHOTS") == "1"
	for _, vp := range []struct {
		suffix        string
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{
		{"desktop", 1280, 800, nil},
		{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}},
	} {
		b.do(t, chromedp.EmulateViewport(vp.width, vp.height, vp.opts...))
		if bad := evalIn[[]string](t, b, contrastJS); len(bad) > 0 {
			t.Errorf("%s (%s): text below WCAG AA contrast: %v", name, vp.suffix, bad)
		}
		if bad := evalIn[[]string](t, b, unlabelledJS); len(bad) > 0 {
			t.Errorf("%s: controls without an accessible name: %v", name, bad)
		}
		if n := evalIn[int](t, b, `document.scripts.length`); n != 0 {
			t.Errorf("%s carries %d scripts; pages must work without JavaScript", name, n)
		}
		if wide := evalIn[bool](t, b, `document.documentElement.scrollWidth > document.documentElement.clientWidth`); wide {
			t.Errorf("%s (%s): the page scrolls sideways", name, vp.suffix)
		}
		if update {
			png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(screenshotDir, name+"-"+vp.suffix+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.do(t, chromedp.EmulateViewport(1280, 800))
}

// callback is the agent's loopback redirect URI; it catches the browser
// coming back with a code or an error.
type callback struct {
	url string
	got chan url.Values
}

func newCallback(t *testing.T) *callback {
	c := &callback{got: make(chan url.Values, 4)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case c.got <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>Agent</title><p id="back">Back at the agent.</p>`)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL + "/callback"
	return c
}

func (c *callback) wait(t *testing.T, state string) url.Values {
	t.Helper()
	select {
	case q := <-c.got:
		if q.Get("state") != state {
			t.Fatalf("callback state = %q, want %q", q.Get("state"), state)
		}
		return q
	case <-time.After(30 * time.Second):
		t.Fatal("the browser never came back to the agent")
		return nil
	}
}

type scopeBox struct {
	Value   string `json:"value"`
	Checked bool   `json:"checked"`
}

const scopeBoxesJS = `[...document.querySelectorAll('input[name=scope]')].map(e => ({value: e.value, checked: e.checked}))`

// loaded waits until the page the browser is on has finished loading. A
// step that submits a form waits first for an element only the next page
// has, then for this: the element can be there while the rest of the page
// is still arriving (slowPages makes sure it is).
var loaded = chromedp.Poll[chromedp.Void](`document.readyState === "complete"`, chromedp.WithPollingInterval(20*time.Millisecond))

// slowPages sends every HTML page in two parts, the second a moment later,
// as a busy machine or a slow network can: the first part ends inside the
// page's first form, so a test that acted on a page before it had loaded
// would see half a form.
func slowPages(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		cut := bytes.Index(body, []byte("<legend"))
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || cut < 0 {
			_, _ = w.Write(body)
			return
		}
		_, _ = w.Write(body[:cut])
		w.(http.Flusher).Flush()
		time.Sleep(200 * time.Millisecond)
		_, _ = w.Write(body[cut:])
	})
}

// TestBrowserConsent walks a person through consent in a real browser: log
// in, approve two of three scopes for an hour, come back for the third and
// see only it prompted, revoke from the account page and see the agent's
// tokens die, and deny entirely.
func TestBrowserConsent(t *testing.T) {
	b := newTab(t)
	h := newHub(t)
	h.Wrap(slowPages)
	cb := newCallback(t)
	secret := h.AddClient(&store.Client{ID: "research-assistant", Name: "Research Assistant", RedirectURIs: []string{cb.url}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	rsSecret := h.AddClient(&store.Client{ID: "notes-mcp", Name: "Notes MCP server", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("notes-mcp")
	conf := &oauth2.Config{
		ClientID: "research-assistant", ClientSecret: secret, RedirectURL: cb.url,
		Scopes:   []string{"notes.read", "notes.write", "notes.delete"},
		Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"},
	}
	ctx := context.Background()
	authorize := func(state string) (authURL, verifier string) {
		verifier = oauth2.GenerateVerifier()
		return conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)), verifier
	}
	exchange := func(q url.Values, verifier string) *oauth2.Token {
		t.Helper()
		if q.Get("error") != "" || q.Get("iss") != h.URL {
			t.Fatalf("callback = %v", q)
		}
		tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	consentForm := chromedp.CSS(`form[action="/authorize/decision"]`)

	var first *oauth2.Token
	t.Run("log in and approve two of three scopes for one hour", func(t *testing.T) {
		u, verifier := authorize("first")
		b.do(t, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("#username")))
		b.checkPage(t, "login")
		b.do(t,
			chromedp.SendKeys(chromedp.CSS("#username"), servertest.TestUser),
			chromedp.SendKeys(chromedp.CSS("#password"), servertest.TestPassword),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(consentForm), loaded,
		)
		boxes := evalIn[[]scopeBox](t, b, scopeBoxesJS)
		want := []scopeBox{{"notes.read", true}, {"notes.write", true}, {"notes.delete", false}}
		if !slices.Equal(boxes, want) {
			t.Fatalf("scope boxes = %v, want %v (sensitive unchecked)", boxes, want)
		}
		if d := evalIn[string](t, b, `document.querySelector('input[name=duration]:checked').value`); d != "30d" {
			t.Fatalf("preselected duration %q", d)
		}
		b.checkPage(t, "consent")
		b.do(t, chromedp.Click(chromedp.CSS("#duration-1h")), chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#back")), loaded)
		tok := exchange(cb.wait(t, "first"), verifier)
		first = tok
		if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read notes.write" {
			t.Fatalf("token scope = %v", got)
		}
		gs := h.grants("u-alice", "research-assistant")
		if len(gs) != 2 {
			t.Fatalf("ledger = %v", gs)
		}
		for _, g := range gs {
			if g.ExpiresAt.Sub(g.GrantedAt) != time.Hour {
				t.Errorf("%s granted for %v, want 1h", g.Scope, g.ExpiresAt.Sub(g.GrantedAt))
			}
		}
	})

	t.Run("the consent screen works from the keyboard", func(t *testing.T) {
		u, _ := authorize("keys")
		b.do(t, chromedp.Navigate(u), chromedp.WaitVisible(consentForm))
		var order []string
		for range 4 {
			b.do(t, chromedp.KeyEvent("\t"))
			order = append(order, evalIn[string](t, b, `document.activeElement.id || document.activeElement.tagName`))
		}
		// Step-up: the only box is the new scope, then the duration group
		// (a step-up to a sensitive scope preselects one hour), the account
		// link, Deny, Allow.
		if want := []string{"scope-notes.delete", "duration-1h", "A", "deny"}; !slices.Equal(order, want) {
			t.Fatalf("tab order = %v, want %v", order, want)
		}
		b.do(t, chromedp.Focus(chromedp.CSS(`[id="scope-notes.delete"]`)), chromedp.KeyEvent(" "))
		if !evalIn[bool](t, b, `document.getElementById('scope-notes.delete').checked`) {
			t.Fatal("space did not tick the box")
		}
	})

	var stepUp *oauth2.Token
	t.Run("come back for the third scope and see only it prompted", func(t *testing.T) {
		u, verifier := authorize("second")
		b.do(t, chromedp.Navigate(u), chromedp.WaitVisible(consentForm))
		boxes := evalIn[[]scopeBox](t, b, scopeBoxesJS)
		if want := []scopeBox{{"notes.delete", false}}; !slices.Equal(boxes, want) {
			t.Fatalf("step-up prompted %v, want %v", boxes, want)
		}
		granted := evalIn[string](t, b, `document.querySelector('.granted').innerText`)
		if !strings.Contains(granted, "Read your notes") || !strings.Contains(granted, "Write your notes") {
			t.Fatalf("already granted section = %q", granted)
		}
		b.checkPage(t, "consent-step-up")
		b.do(t, chromedp.Click(chromedp.CSS(`[id="scope-notes.delete"]`)), chromedp.Click(chromedp.CSS("#duration-1d")), chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#back")), loaded)
		stepUp = exchange(cb.wait(t, "second"), verifier)
		if got := h.claims(stepUp.AccessToken)["scope"]; got != "notes.read notes.write notes.delete" {
			t.Fatalf("step-up token scope = %v, want the union", got)
		}
	})
	if first == nil || stepUp == nil {
		t.FailNow()
	}

	active := func(tok string) bool {
		t.Helper()
		return h.introspect(tok, "notes-mcp", rsSecret)["active"] == true
	}
	refreshFails := func(tok *oauth2.Token) bool {
		t.Helper()
		_, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		var re *oauth2.RetrieveError
		return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
	}

	t.Run("revoke from the account page", func(t *testing.T) {
		b.do(t, chromedp.Navigate(h.URL+"/account"), chromedp.WaitVisible(chromedp.CSS("h1")))
		page := b.text(t)
		for _, want := range []string{"Research Assistant", "Read your notes", "Delete your notes", "Recent activity", "You allowed access"} {
			if !strings.Contains(page, want) {
				t.Errorf("account page lacks %q", want)
			}
		}
		// Rows follow the resource's scope order, as on the consent screen.
		if rows := evalIn[[]string](t, b, `[...document.querySelectorAll('tbody th code')].map(e => e.textContent)`); !slices.Equal(rows, []string{"notes.read", "notes.write", "notes.delete"}) {
			t.Errorf("account rows = %v", rows)
		}
		b.checkPage(t, "account")
		if !active(stepUp.AccessToken) {
			t.Fatal("the step-up token is inactive before any revocation")
		}
		b.do(t, chromedp.Click(chromedp.CSS(`form:has(input[name=scope][value="notes.delete"]) button`)), chromedp.WaitVisible(chromedp.CSS(".notice")), loaded)
		if strings.Contains(b.text(t), "Delete your notes") {
			t.Fatal("the revoked scope is still listed")
		}
		if active(stepUp.AccessToken) {
			t.Error("the access token carrying the revoked scope still introspects active")
		}
		if !refreshFails(stepUp) {
			t.Error("the refresh token carrying the revoked scope still works")
		}

		b.do(t, chromedp.Click(chromedp.CSS(`button.danger`)), chromedp.WaitVisible(chromedp.CSS("#no-agents")), loaded)
		if !strings.Contains(b.text(t), "No agent has access") {
			t.Fatalf("after revoking the agent:\n%s", b.text(t))
		}
		if active(first.AccessToken) || !refreshFails(first) {
			t.Error("the agent's first tokens survived revoking the agent")
		}
		if len(h.grants("u-alice", "research-assistant")) != 2+1 {
			t.Fatal("the ledger lost rows instead of marking them revoked")
		}
		for sc, g := range h.grants("u-alice", "research-assistant") {
			if g.RevokedAt.IsZero() {
				t.Errorf("%s still live after revoking the agent", sc)
			}
		}
	})

	t.Run("the home page leads to the agents", func(t *testing.T) {
		b.do(t, chromedp.Navigate(h.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#agents-link")))
		b.checkPage(t, "home")
		b.do(t, chromedp.Focus(chromedp.CSS("#agents-link")), chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("#no-agents")), loaded)
		if got := evalIn[string](t, b, `location.pathname`); got != "/account" {
			t.Fatalf("the home page's link led to %s", got)
		}
	})

	t.Run("deny entirely, with JavaScript off", func(t *testing.T) {
		// The pages carry no script; this proves nothing needs one.
		b.do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
		u, _ := authorize("third")
		b.do(t, chromedp.Navigate(u), chromedp.WaitVisible(consentForm))
		// From the keyboard: focus Deny and press Enter.
		b.do(t, chromedp.Focus(chromedp.CSS("#deny")), chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("#back")))
		q := cb.wait(t, "third")
		if q.Get("error") != "access_denied" || q.Get("code") != "" || q.Get("iss") != h.URL {
			t.Fatalf("callback after deny = %v", q)
		}
	})
}

// TestBrowserContinue: a public loopback client coming back with nothing
// new to approve gets the one-click "Continue" page, whose button has the
// focus: Enter is all it takes, with JavaScript off. Asking for a scope
// policy refuses shows it as not available, and with nothing new the
// refusal page's way back is one Enter away too.
func TestBrowserContinue(t *testing.T) {
	b := newTab(t)
	h := newHub(t)
	h.Wrap(slowPages)
	cb := newCallback(t)
	h.AddClient(&store.Client{ID: "notes-cli", Name: "Notes CLI", TokenEndpointAuthMethod: "none", RegistrationMethod: store.RegistrationDCR,
		RedirectURIs: []string{cb.url}, GrantTypes: []string{"authorization_code"}})
	conf := &oauth2.Config{ClientID: "notes-cli", RedirectURL: cb.url, Scopes: []string{"notes.read"},
		Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"}}
	authorize := func(state string) string {
		return conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource))
	}
	b.do(t, chromedp.Navigate(authorize("first")), chromedp.WaitVisible(chromedp.CSS("#username")), loaded,
		chromedp.SendKeys(chromedp.CSS("#username"), servertest.TestUser),
		chromedp.SendKeys(chromedp.CSS("#password"), servertest.TestPassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#allow")), loaded, chromedp.Click(chromedp.CSS("#allow")))
	if q := cb.wait(t, "first"); q.Get("code") == "" {
		t.Fatalf("first authorization: %v", q)
	}
	b.do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	b.do(t, chromedp.Navigate(authorize("again")), chromedp.WaitVisible(chromedp.CSS("#continue")), loaded)
	if id := evalIn[string](t, b, `document.activeElement.id`); id != "continue" {
		t.Fatalf("focus is on %q, want the Continue button", id)
	}
	b.checkPage(t, "continue")
	b.do(t, chromedp.Focus(chromedp.CSS("#continue")), chromedp.KeyEvent("\r"))
	if q := cb.wait(t, "again"); q.Get("code") == "" || q.Get("iss") != h.URL {
		t.Fatalf("continue answered %v", q)
	}
	// The callback has answered, but the browser may still be loading its
	// page; navigating away before it has would abort the next navigation.
	b.do(t, chromedp.WaitVisible(chromedp.CSS("#back")), loaded)

	// A scope policy refuses, with something new to approve: listed on the
	// consent screen as not available.
	conf.Scopes = []string{"notes.read", "notes.write", "notes.delete"}
	b.do(t, chromedp.Navigate(authorize("refused-consent")), chromedp.WaitVisible(chromedp.CSS(".refused")), loaded)
	b.checkPage(t, "consent-refused")
	// With nothing new: the refusal page, whose way back has the focus.
	conf.Scopes = []string{"notes.read", "notes.delete"}
	b.do(t, chromedp.Navigate(authorize("refused")), chromedp.WaitVisible(chromedp.CSS(".refused")), loaded)
	if id := evalIn[string](t, b, `document.activeElement.id`); id != "back" {
		t.Fatalf("focus is on %q, want the way back", id)
	}
	b.checkPage(t, "refused")
	b.do(t, chromedp.Focus(chromedp.CSS("#back")), chromedp.KeyEvent("\r"))
	if q := cb.wait(t, "refused"); q.Get("error") != "invalid_scope" || !strings.Contains(q.Get("error_description"), "notes.delete") {
		t.Fatalf("the way back answered %v", q)
	}
}
