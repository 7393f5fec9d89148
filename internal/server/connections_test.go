package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
	"github.com/agentid/agentid/internal/vault/vaulttest"
)

// connEnv is a hub with a moving clock, an OAuth 2 provider "calendar"
// (vaulttest, registered with the hub's one callback and requiring PKCE),
// an API-key provider "search", a second person (bob) and a record of
// every response the hub sent and everything it logged.
type connEnv struct {
	*hub
	clk  *fakeClock
	prov *vaulttest.Provider

	mu    sync.Mutex
	sent  bytes.Buffer // every response: status line, headers, body
	logs  syncBuffer
	bobPW string
}

// syncBuffer is a bytes.Buffer for a logger that several requests share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	bobID       = "u-bob"
	bobUser     = "bob"
	calendarID  = "calendar"
	searchID    = "search"
	calendarNam = "Calendar"
)

func newConnEnv(t *testing.T, opts ...servertest.Option) *connEnv {
	t.Helper()
	return newConnEnvOn(t, nil, opts...)
}

// connBackends runs test in a connEnv on SQLite and on PostgreSQL.
func connBackends(t *testing.T, test func(*testing.T, *connEnv)) {
	t.Run("sqlite", func(t *testing.T) { test(t, newConnEnv(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, newConnEnvOn(t, openPostgresStore(t))) })
}

// newConnEnvOn is newConnEnv on st (nil: a fresh SQLite store).
func newConnEnvOn(t *testing.T, st store.Store, opts ...servertest.Option) *connEnv {
	t.Helper()
	e := &connEnv{clk: newFakeClock(), bobPW: "bob's own long password"}
	opts = append([]servertest.Option{withClock(e.clk), func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}}, opts...)
	if st == nil {
		e.hub = newHub(t, opts...)
	} else {
		e.hub = &hub{servertest.NewOn(t, st, opts...)}
	}
	ctx := context.Background()
	e.prov = vaulttest.New(t, vaulttest.Options{RedirectURI: e.URL + "/connections/callback", RequirePKCE: true, Now: e.clk.Now})
	sp, err := e.prov.StoreProvider(e.Vault, store.DefaultTenant, calendarID)
	if err != nil {
		t.Fatal(err)
	}
	sp.Name = calendarNam
	if err := e.Store.CreateProvider(ctx, sp, nil); err != nil {
		t.Fatal(err)
	}
	kp := vaulttest.APIKeyProvider(store.DefaultTenant, searchID)
	kp.Name, kp.KeyHint = "Search", "starts with sk_"
	if err := e.Store.CreateProvider(ctx, kp, nil); err != nil {
		t.Fatal(err)
	}
	hash, err := password.Hash(e.bobPW)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := e.Store.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: bobID, Username: bobUser, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	e.Wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			e.mu.Lock()
			_ = rec.Result().Header.Write(&e.sent)
			e.sent.Write(rec.Body.Bytes())
			e.mu.Unlock()
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	})
	return e
}

var (
	csrfFieldRe   = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	intentFieldRe = regexp.MustCompile(`name="intent" value="([^"]*)"`)
)

func formField(t *testing.T, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no %s:\n%s", re, body)
	}
	return html.UnescapeString(m[1])
}

// signIn opens /connections in a new browser as user and returns the
// browser and the connections page.
func (e *connEnv) signIn(t *testing.T, user, pw string) (*servertest.Browser, *servertest.Page) {
	t.Helper()
	b := e.Browser()
	p := b.Login(b.Get(e.URL+"/connections"), user, pw)
	if p.Status != http.StatusOK || p.URL.Path != "/connections" || !strings.Contains(p.Body, "<h1>Connections</h1>") {
		t.Fatalf("after signing in: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	return b, p
}

func (e *connEnv) alice(t *testing.T) (*servertest.Browser, string) {
	t.Helper()
	b, p := e.signIn(t, servertest.TestUser, servertest.TestPassword)
	return b, formField(t, csrfFieldRe, p.Body)
}

func (e *connEnv) bob(t *testing.T) (*servertest.Browser, string) {
	t.Helper()
	b, p := e.signIn(t, bobUser, e.bobPW)
	return b, formField(t, csrfFieldRe, p.Body)
}

// postRaw posts a same-origin form from b and returns the hub's answer
// without following it.
func (e *connEnv) postRaw(t *testing.T, b *servertest.Browser, path string, form url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.URL)
	c := *b.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// start posts the Connect form of provider and returns the 303's target
// (the provider's authorization request) and the response.
func (e *connEnv) start(t *testing.T, b *servertest.Browser, csrf string, extra url.Values) (*url.URL, *http.Response) {
	t.Helper()
	form := url.Values{"csrf_token": {csrf}}
	for k, v := range extra {
		form[k] = v
	}
	resp := e.postRaw(t, b, "/connections/"+calendarID+"/start", form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %s", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc, resp
}

// atProvider follows the authorization request at the provider (which
// approves at once) and returns the callback query it sends the browser
// back with.
func (e *connEnv) atProvider(t *testing.T, authURL *url.URL) url.Values {
	t.Helper()
	code, state, err := e.prov.Authorize(context.Background(), authURL.String())
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"code": {code}, "state": {state}}
}

func (e *connEnv) callback(b *servertest.Browser, q url.Values) *servertest.Page {
	return b.Get(e.URL + "/connections/callback?" + q.Encode())
}

// connectCalendar runs the whole flow for b and returns the final page.
func (e *connEnv) connectCalendar(t *testing.T, b *servertest.Browser, csrf string, extra url.Values) *servertest.Page {
	t.Helper()
	loc, _ := e.start(t, b, csrf, extra)
	return e.callback(b, e.atProvider(t, loc))
}

func (e *connEnv) connections(t *testing.T, userID string) []*store.Connection {
	t.Helper()
	cs, err := e.Store.ListConnections(context.Background(), store.ConnectionFilter{TenantID: store.DefaultTenant, OwnerKind: store.OwnerUser, OwnerID: userID})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func wantPage(t *testing.T, p *servertest.Page, status int, texts ...string) {
	t.Helper()
	if p.Status != status {
		t.Fatalf("status %d, want %d:\n%s", p.Status, status, p.Body)
	}
	text := pageText(p.Body)
	for _, s := range texts {
		// Markup is looked for in the source, words in the text a reader
		// sees (tags gone, entities decoded, white space collapsed).
		in := text
		if strings.ContainsAny(s, "<=&") {
			in = p.Body
		}
		if !strings.Contains(in, s) {
			t.Errorf("page lacks %q:\n%s", s, text)
		}
	}
}

var tagRe = regexp.MustCompile(`<[^>]*>`)

// pageText is what a page says, roughly as a browser shows it.
func pageText(body string) string {
	return strings.Join(strings.Fields(html.UnescapeString(tagRe.ReplaceAllString(body, ""))), " ")
}

func TestConnectionsNeedLogin(t *testing.T) {
	e := newConnEnv(t)
	b := e.Browser()
	p := b.Get(e.URL + "/connections")
	if p.URL.Path != "/login" || p.URL.Query().Get("return_to") != "/connections" {
		t.Fatalf("/connections signed out went to %s", p.URL)
	}
	p = b.Login(p, servertest.TestUser, servertest.TestPassword)
	wantPage(t, p, http.StatusOK, "Connections", "Connect Calendar", "API key for Search", "starts with sk_", "You have not connected any service yet.")
	if p.URL.Path != "/connections" {
		t.Fatalf("after signing in: %s", p.URL)
	}

	// A connect link opened signed out comes back to itself after sign-in.
	link, err := e.Server.ConnectURL(server.ConnectIntent{TenantID: store.DefaultTenant, UserID: "u-alice", Provider: calendarID, Scopes: []string{"calendar.read"}, Resource: e.Resource})
	if err != nil {
		t.Fatal(err)
	}
	b2 := e.Browser()
	p = b2.Get(link)
	if p.URL.Path != "/login" {
		t.Fatalf("connect link signed out went to %s", p.URL)
	}
	p = b2.Login(p, servertest.TestUser, servertest.TestPassword)
	if p.URL.String() != link {
		t.Fatalf("after signing in: %s, want the connect link back", p.URL)
	}
	wantPage(t, p, http.StatusOK, "Connect Calendar?", "calendar.read")

	// A POST without a session goes to sign in too (its CSRF token
	// belongs to the pre-session, so the form itself is refused first).
	b3 := e.Browser()
	lp := b3.Get(e.URL + "/login")
	resp := e.postRaw(t, b3, "/connections/calendar/start", url.Values{"csrf_token": {formField(t, csrfFieldRe, lp.Body)}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?return_to=%2Fconnections") {
		t.Fatalf("start signed out: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	if e.prov.Counts().Authorizations != 0 {
		t.Fatal("the provider was asked")
	}
}

// TestConnectOAuth connects the calendar through the provider's real
// authorization-code flow: the request carries the exact callback, PKCE
// and state; the flow cookie is sealed, HttpOnly, Lax, confined to the
// callback and short-lived; the callback stores the connection for the
// person and clears the cookie, so the same answer cannot be used twice.
func TestConnectOAuth(t *testing.T) { connBackends(t, testConnectOAuth) }

func testConnectOAuth(t *testing.T, e *connEnv) {
	b, csrf := e.alice(t)
	loc, resp := e.start(t, b, csrf, url.Values{"scope": {"calendar.read"}})

	q := loc.Query()
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != e.prov.AuthorizationEndpoint() {
		t.Fatalf("sent to %s", got)
	}
	if q.Get("redirect_uri") != e.URL+"/connections/callback" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || len(q.Get("state")) < 20 || q.Get("scope") != "calendar.read" || q.Get("client_id") != e.prov.ClientID() {
		t.Fatalf("authorization request %v", q)
	}
	var flow *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "agentid_connect") {
			flow = c
		}
	}
	if flow == nil {
		t.Fatalf("no flow cookie in %v", resp.Header["Set-Cookie"])
	}
	if !flow.HttpOnly || flow.SameSite != http.SameSiteLaxMode || flow.Path != "/connections/callback" || flow.MaxAge != 600 || flow.Secure {
		t.Errorf("flow cookie %+v", flow)
	}
	for _, secret := range []string{q.Get("state"), "u-alice", "calendar.read"} {
		if strings.Contains(flow.Value, secret) {
			t.Errorf("the flow cookie shows %q in clear", secret)
		}
	}

	cb := e.atProvider(t, loc)
	p := e.callback(b, cb)
	wantPage(t, p, http.StatusOK, "Connected Calendar", "calendar.read")
	if strings.Contains(p.Body, `id="return"`) {
		t.Error("a connection started from /connections talks about returning to an agent")
	}
	cs := e.connections(t, "u-alice")
	if len(cs) != 1 || cs[0].ProviderID != calendarID || cs[0].Status != store.ConnectionActive || !slices.Equal(cs[0].Scopes, []string{"calendar.read"}) {
		t.Fatalf("connections %+v", cs)
	}
	if n := e.prov.Counts().CodeExchanges; n != 1 {
		t.Fatalf("%d code exchanges", n)
	}
	if evs := e.auditEvents(audit.ConnectionCreated); len(evs) != 1 || evs[0].UserID != "u-alice" {
		t.Fatalf("connection.created events %+v", evs)
	}

	// The cookie is gone: the same answer again connects nothing.
	p = e.callback(b, cb)
	wantPage(t, p, http.StatusBadRequest, "Connection not completed")
	if len(e.connections(t, "u-alice")) != 1 || e.prov.Counts().CodeExchanges != 1 {
		t.Fatal("a replayed answer was exchanged")
	}

	// The connection shows on /connections and /account.
	for _, path := range []string{"/connections", "/account"} {
		p = b.Get(e.URL + path)
		wantPage(t, p, http.StatusOK, "Calendar", "Active", "calendar.read", "never", `action="/account/connections/`+cs[0].ID+`/disconnect"`)
	}
}

// TestConnectRefusals: every way the provider's answer can fail to
// belong to this person's flow connects nothing and says why in words.
func TestConnectRefusals(t *testing.T) {
	tests := []struct {
		name string
		// run returns the page the person ends on.
		run    func(t *testing.T, e *connEnv) *servertest.Page
		status int
		texts  []string
		// exchanged: the provider's token endpoint was called.
		exchanged bool
	}{
		{
			name: "state mismatch",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				cb := e.atProvider(t, loc)
				cb.Set("state", cb.Get("state")+"x")
				return e.callback(b, cb)
			},
			status: http.StatusBadRequest, texts: []string{"does not belong to a connection started in this browser"},
		},
		{
			name: "no state",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				cb := e.atProvider(t, loc)
				cb.Del("state")
				return e.callback(b, cb)
			},
			status: http.StatusBadRequest, texts: []string{"nothing was connected"},
		},
		{
			name: "answer in another browser of the same person",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				other, _ := e.alice(t)
				return e.callback(other, e.atProvider(t, loc))
			},
			status: http.StatusBadRequest, texts: []string{"does not belong to a connection started in this browser"},
		},
		{
			name: "cookie of another user",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				// Bob starts a flow; his flow cookie ends up in Alice's
				// browser with his provider answer (a login-CSRF style
				// attempt to attach his account to hers, or the reverse).
				bb, bcsrf := e.bob(t)
				loc, _ := e.start(t, bb, bcsrf, nil)
				a, _ := e.alice(t)
				hub, _ := url.Parse(e.URL + "/connections/callback")
				var flow []*http.Cookie
				for _, c := range bb.Client().Jar.Cookies(hub) {
					if strings.HasPrefix(c.Name, "agentid_connect") {
						flow = append(flow, c)
					}
				}
				if len(flow) != 1 {
					t.Fatalf("bob's browser holds %d flow cookies", len(flow))
				}
				a.Client().Jar.SetCookies(hub, flow)
				return e.callback(a, e.atProvider(t, loc))
			},
			status: http.StatusForbidden, texts: []string{"started by another account"},
		},
		{
			name: "signed in again since starting",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				if p := b.Post(e.URL+"/logout", url.Values{"csrf_token": {csrf}}); p.Status != http.StatusOK {
					t.Fatalf("logout: %d", p.Status)
				}
				b.Login(b.Get(e.URL+"/connections"), servertest.TestUser, servertest.TestPassword)
				return e.callback(b, e.atProvider(t, loc))
			},
			status: http.StatusForbidden, texts: []string{"before you last signed in"},
		},
		{
			name: "signed out before the answer",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				b.Post(e.URL+"/logout", url.Values{"csrf_token": {csrf}})
				return e.callback(b, e.atProvider(t, loc))
			},
			status: http.StatusUnauthorized, texts: []string{"You were signed out", "Sign in"},
		},
		{
			name: "expired: ten minutes on the moving clock",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				e.clk.Advance(10 * time.Minute)
				return e.callback(b, e.atProvider(t, loc))
			},
			status: http.StatusBadRequest, texts: []string{"in the last ten minutes"},
		},
		{
			name: "provider: access_denied",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				return e.callback(b, url.Values{"error": {"access_denied"}, "error_description": {"the user said no"}, "state": {loc.Query().Get("state")}})
			},
			status: http.StatusForbidden, texts: []string{"You did not allow access to Calendar", "nothing was connected"},
		},
		{
			name: "provider: temporarily_unavailable",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				return e.callback(b, url.Values{"error": {"temporarily_unavailable"}, "error_description": {"<b>down</b> for maintenance"}, "state": {loc.Query().Get("state")}})
			},
			status: http.StatusServiceUnavailable, texts: []string{"Try again in a few minutes", "temporarily_unavailable: &lt;b&gt;down&lt;/b&gt; for maintenance"},
		},
		{
			name: "provider: error without our state",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				e.start(t, b, csrf, nil)
				return e.callback(b, url.Values{"error": {"access_denied"}})
			},
			status: http.StatusBadRequest, texts: []string{"does not belong to a connection"},
		},
		{
			name: "no code",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				return e.callback(b, url.Values{"state": {loc.Query().Get("state")}})
			},
			status: http.StatusBadRequest, texts: []string{"without an authorization"},
		},
		{
			name: "RFC 9207 iss of another provider",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				ctx := context.Background()
				p, err := e.Store.GetProvider(ctx, store.DefaultTenant, calendarID)
				if err != nil {
					t.Fatal(err)
				}
				p.Issuer = e.prov.URL
				if err := e.Store.UpdateProvider(ctx, p, nil); err != nil {
					t.Fatal(err)
				}
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				cb := e.atProvider(t, loc)
				cb.Set("iss", "https://attacker.example")
				return e.callback(b, cb)
			},
			status: http.StatusBadRequest, texts: []string{"came from another service"},
		},
		{
			name: "RFC 9207 iss of another provider on an error answer",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				// A mixed-up error answer is another service's words: it is
				// not shown as the provider's (RFC 9207 §2.4 covers error
				// responses too).
				ctx := context.Background()
				p, err := e.Store.GetProvider(ctx, store.DefaultTenant, calendarID)
				if err != nil {
					t.Fatal(err)
				}
				p.Issuer = e.prov.URL
				if err := e.Store.UpdateProvider(ctx, p, nil); err != nil {
					t.Fatal(err)
				}
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				return e.callback(b, url.Values{"error": {"invalid_request"}, "error_description": {"call support at +1 555 0100"},
					"state": {loc.Query().Get("state")}, "iss": {"https://attacker.example"}})
			},
			status: http.StatusBadRequest, texts: []string{"came from another service"},
		},
		{
			name: "code the provider does not know",
			run: func(t *testing.T, e *connEnv) *servertest.Page {
				b, csrf := e.alice(t)
				loc, _ := e.start(t, b, csrf, nil)
				cb := e.atProvider(t, loc)
				cb.Set("code", "code_forged")
				return e.callback(b, cb)
			},
			status: http.StatusBadGateway, texts: []string{"did not complete the connection"}, exchanged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConnEnv(t)
			p := tt.run(t, e)
			wantPage(t, p, tt.status, tt.texts...)
			if n := e.prov.Counts().TokenCalls; (n > 0) != tt.exchanged {
				t.Errorf("provider token endpoint called %d times", n)
			}
			if cs := append(e.connections(t, "u-alice"), e.connections(t, bobID)...); len(cs) != 0 {
				t.Errorf("connected anyway: %+v", cs)
			}
		})
	}
}

// TestConnectExpiryBoundary: a flow answered just inside ten minutes
// completes; the clock decides, not the cookie's own Max-Age.
func TestConnectExpiryBoundary(t *testing.T) {
	e := newConnEnv(t)
	b, csrf := e.alice(t)
	loc, _ := e.start(t, b, csrf, nil)
	e.clk.Advance(10*time.Minute - time.Second)
	wantPage(t, e.callback(b, e.atProvider(t, loc)), http.StatusOK, "Connected Calendar")
}

// TestConnectFormsNeedCSRF: every form of the connection pages refuses a
// post without this session's form token, or from another origin, and
// does nothing.
func TestConnectFormsNeedCSRF(t *testing.T) {
	e := newConnEnv(t)
	b, csrf := e.alice(t)
	e.connectCalendar(t, b, csrf, nil)
	conn := e.connections(t, "u-alice")[0]
	_, bobCSRF := e.bob(t)
	for _, path := range []string{"/connections/calendar/start", "/connections/search/key", "/account/connections/" + conn.ID + "/disconnect"} {
		for name, token := range map[string]string{"missing": "", "another session's": bobCSRF, "garbage": "x"} {
			t.Run(path+" "+name, func(t *testing.T) {
				form := url.Values{"key": {"sk_test_0123456789abcdef"}}
				if token != "" {
					form.Set("csrf_token", token)
				}
				resp := e.postRaw(t, b, path, form)
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("%s", resp.Status)
				}
			})
		}
		t.Run(path+" cross-origin", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(url.Values{"csrf_token": {csrf}, "key": {"sk_test_0123456789abcdef"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", "https://attacker.example")
			resp, err := b.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s", resp.Status)
			}
		})
	}
	if e.prov.Counts().Authorizations != 1 || len(e.connections(t, "u-alice")) != 1 {
		t.Fatal("a refused form did something")
	}
}

// TestConnectAPIKey saves an API key from the form. The key never comes
// back: not in any response the hub sent, any audit event or any log
// line; the pages show only its last four characters.
func TestConnectAPIKey(t *testing.T) { connBackends(t, testConnectAPIKey) }

func testConnectAPIKey(t *testing.T, e *connEnv) {
	b, csrf := e.alice(t)
	const key = "sk_live_4f8a0c1e9b7d2a6c3e5f7a9b1d3c5e7fabcd"

	t.Run("refused keys are not echoed", func(t *testing.T) {
		for _, bad := range []string{"", "sk live with spaces 0123456789", "sk_\x00nul_0123456789", strings.Repeat("k", 4097)} {
			p := b.Post(e.URL+"/connections/search/key", url.Values{"csrf_token": {csrf}, "key": {bad}})
			wantPage(t, p, http.StatusBadRequest, "Nothing was saved")
			if bad != "" && strings.Contains(p.Body, bad) {
				t.Fatal("the refused key is on the page")
			}
		}
		p := b.Post(e.URL+"/connections/search/key", url.Values{"csrf_token": {csrf}, "key": {key}, "label": {strings.Repeat("n", 65)}})
		wantPage(t, p, http.StatusBadRequest, "too long")
	})
	t.Run("an OAuth provider takes no key, an unknown one nothing", func(t *testing.T) {
		wantPage(t, b.Post(e.URL+"/connections/calendar/key", url.Values{"csrf_token": {csrf}, "key": {key}}), http.StatusNotFound, "No such service")
		wantPage(t, b.Post(e.URL+"/connections/nope/key", url.Values{"csrf_token": {csrf}, "key": {key}}), http.StatusNotFound, "No such service")
		wantPage(t, b.Post(e.URL+"/connections/search/start", url.Values{"csrf_token": {csrf}}), http.StatusNotFound, "No such service")
	})
	if len(e.connections(t, "u-alice")) != 0 {
		t.Fatal("a refused key was saved")
	}

	p := b.Post(e.URL+"/connections/search/key", url.Values{"csrf_token": {csrf}, "key": {"  " + key + "\n"}, "label": {"Work"}})
	if p.URL.Path != "/connections" || p.URL.Query().Get("done") != "saved" {
		t.Fatalf("after saving: %s", p.URL)
	}
	wantPage(t, p, http.StatusOK, "Key saved", "Work …abcd", "Search", "Active")
	cs := e.connections(t, "u-alice")
	if len(cs) != 1 || cs[0].ProviderID != searchID || cs[0].Label != "Work …abcd" {
		t.Fatalf("connections %+v", cs)
	}
	if bytes.Contains(cs[0].Secret, []byte(key)) {
		t.Fatal("the key is stored in clear")
	}
	cred, err := e.Vault.Credential(context.Background(), audit.Meta{TenantID: store.DefaultTenant, Time: e.clk.Now()}, cs[0], false)
	if err != nil || cred.AccessToken != key {
		t.Fatalf("the saved key does not open: %v", err)
	}
	wantPage(t, b.Get(e.URL+"/account"), http.StatusOK, "Work …abcd")

	evs, err := e.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(evs)
	e.mu.Lock()
	sent := e.sent.String()
	e.mu.Unlock()
	for where, text := range map[string]string{"a response": sent, "an audit event": string(js), "the log": e.logs.String()} {
		// The whole key, and any long piece of it.
		for _, piece := range []string{key, key[:16], key[8:24], key[len(key)-16:]} {
			if strings.Contains(text, piece) {
				t.Errorf("%s carries the API key (%q)", where, piece)
			}
		}
	}
	if !strings.Contains(sent, "…abcd") {
		t.Fatal("the recorder saw no page with the key's hint: it records nothing")
	}
}

// TestConnectShortKeyShowsNothing: of a short key not even the last four
// characters are shown.
func TestConnectShortKeyShowsNothing(t *testing.T) {
	e := newConnEnv(t)
	b, csrf := e.alice(t)
	b.Post(e.URL+"/connections/search/key", url.Values{"csrf_token": {csrf}, "key": {"k9Zq7wX"}})
	cs := e.connections(t, "u-alice")
	if len(cs) != 1 || cs[0].Label != "…" {
		t.Fatalf("connections %+v", cs)
	}
}

func (e *connEnv) link(t *testing.T, userID, provider string, scopes ...string) string {
	t.Helper()
	link, err := e.Server.ConnectURL(server.ConnectIntent{TenantID: store.DefaultTenant, UserID: userID, Provider: provider, Scopes: scopes, ClientID: "research-assistant", Resource: e.Resource})
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// TestConnectIntent is connect on demand from the person's side: the page
// a connect link opens names the agent, the MCP server, the provider and
// the scopes; Connect runs the provider's flow with those scopes; the last
// page sends the person back to their agent. A link made for someone else,
// altered, for another provider or expired connects nothing.
func TestConnectIntent(t *testing.T) {
	e := newConnEnv(t)
	e.AddClient(&store.Client{ID: "research-assistant", Name: "Research Assistant", RedirectURIs: []string{"http://127.0.0.1:9/cb"}, GrantTypes: []string{"authorization_code"}})
	b, _ := e.alice(t)

	t.Run("oauth", func(t *testing.T) {
		p := b.Get(e.link(t, "u-alice", calendarID, "calendar.read"))
		wantPage(t, p, http.StatusOK, "Connect Calendar?", "Research Assistant", "wants to use Calendar for you through", "Notes", "calendar.read")
		if strings.Contains(p.Body, "calendar.write") {
			t.Error("the page offers a scope the link did not ask for")
		}
		form := url.Values{"csrf_token": {formField(t, csrfFieldRe, p.Body)}, "intent": {formField(t, intentFieldRe, p.Body)}}
		loc, _ := e.start(t, b, form.Get("csrf_token"), url.Values{"intent": form["intent"], "scope": {"calendar.write"}})
		if got := loc.Query().Get("scope"); got != "calendar.read" {
			t.Fatalf("asked the provider for %q, want the link's scopes", got)
		}
		p = e.callback(b, e.atProvider(t, loc))
		wantPage(t, p, http.StatusOK, "Connected Calendar", `id="return"`, "You can return to", "Research Assistant", "Notes", "can now use Calendar for you")
		if cs := e.connections(t, "u-alice"); len(cs) != 1 || !slices.Equal(cs[0].Scopes, []string{"calendar.read"}) {
			t.Fatalf("connections %+v", cs)
		}
	})

	t.Run("api key", func(t *testing.T) {
		p := b.Get(e.link(t, "u-alice", searchID))
		wantPage(t, p, http.StatusOK, "Connect Search?", "API key for Search", "starts with sk_")
		p = b.Post(e.URL+"/connections/search/key", url.Values{"csrf_token": {formField(t, csrfFieldRe, p.Body)}, "intent": {formField(t, intentFieldRe, p.Body)}, "key": {"sk_test_0123456789wxyz"}})
		wantPage(t, p, http.StatusOK, "Connected Search", "…wxyz", "You can return to", "Research Assistant")
	})

	refusals := []struct {
		name   string
		link   func() string
		status int
		text   string
	}{
		{"made for another user", func() string { return e.link(t, bobID, calendarID) }, http.StatusForbidden, "This link was made for another account"},
		{"made for another user, api key", func() string { return e.link(t, bobID, searchID) }, http.StatusForbidden, "This link was made for another account"},
		{"for another provider than the path", func() string {
			return strings.Replace(e.link(t, "u-alice", searchID), "/connect/search?", "/connect/calendar?", 1)
		}, http.StatusBadRequest, "not valid or has expired"},
		{"altered", func() string { return e.link(t, "u-alice", calendarID) + "A" }, http.StatusBadRequest, "not valid or has expired"},
		{"empty", func() string { return e.URL + "/connections/connect/calendar?intent=" }, http.StatusBadRequest, "not valid or has expired"},
		{"expired", func() string {
			l := e.link(t, "u-alice", calendarID)
			e.clk.Advance(15 * time.Minute)
			return l
		}, http.StatusBadRequest, "not valid or has expired"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.connections(t, "u-alice"))
			link := tt.link()
			p := b.Get(link)
			wantPage(t, p, tt.status, tt.text)
			if strings.Contains(p.Body, `action="/connections/calendar/start"`) {
				t.Fatal("the refusal offers a Connect button")
			}
			// Posting the link's intent straight to the provider's form is
			// refused too.
			u, _ := url.Parse(link)
			if intent := u.Query().Get("intent"); intent != "" {
				path := "/connections/calendar/start"
				if strings.Contains(u.Path, "/search") {
					path = "/connections/search/key"
				}
				csrf := formField(t, csrfFieldRe, b.Get(e.URL+"/connections").Body)
				resp := e.postRaw(t, b, path, url.Values{"csrf_token": {csrf}, "intent": {intent}, "key": {"sk_test_0123456789abcd"}})
				if resp.StatusCode != tt.status {
					t.Errorf("%s with the intent: %s, want %d", path, resp.Status, tt.status)
				}
			}
			if len(e.connections(t, "u-alice")) != before || len(e.connections(t, bobID)) != 0 {
				t.Fatal("connected anyway")
			}
		})
	}
	if n := e.prov.Counts().Authorizations; n != 1 {
		t.Fatalf("the provider saw %d authorization requests, want only the good link's", n)
	}
}

// TestDisconnect: the owner disconnects from /account (the provider's
// revocation endpoint is called, the credential deleted, the event
// written); someone else's connection id is a 404, as an unknown one.
func TestDisconnect(t *testing.T) { connBackends(t, testDisconnect) }

func testDisconnect(t *testing.T, e *connEnv) {
	a, acsrf := e.alice(t)
	e.connectCalendar(t, a, acsrf, nil)
	bb, bcsrf := e.bob(t)
	e.connectCalendar(t, bb, bcsrf, nil)
	mine, bobs := e.connections(t, "u-alice")[0], e.connections(t, bobID)[0]

	kp, err := e.Store.GetProvider(context.Background(), store.DefaultTenant, searchID)
	if err != nil {
		t.Fatal(err)
	}
	orgs, err := e.Vault.SaveAPIKey(context.Background(), audit.Meta{TenantID: store.DefaultTenant, Time: e.clk.Now()}, kp, vault.Owner{Kind: store.OwnerTenant, ID: store.DefaultTenant}, "", "sk_org_0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]string{"someone else's": bobs.ID, "the tenant's": orgs.ID, "unknown": "conn_nope", "empty-ish": "%20"} {
		t.Run(name, func(t *testing.T) {
			p := a.Post(e.URL+"/account/connections/"+id+"/disconnect", url.Values{"csrf_token": {acsrf}})
			wantPage(t, p, http.StatusNotFound, "You have no such connection")
		})
	}
	if len(e.connections(t, bobID)) != 1 {
		t.Fatal("bob's connection was disconnected by alice")
	}
	if _, err := e.Store.GetConnection(context.Background(), store.DefaultTenant, orgs.ID); err != nil {
		t.Fatalf("the tenant's connection: %v", err)
	}
	if p := a.Get(e.URL + "/account"); strings.Contains(p.Body, orgs.ID) {
		t.Fatal("the account page lists the tenant's connection")
	}
	t.Run("someone else's, to reconnect", func(t *testing.T) {
		p := a.Post(e.URL+"/connections/calendar/start", url.Values{"csrf_token": {acsrf}, "replace": {bobs.ID}})
		wantPage(t, p, http.StatusNotFound, "no such connection")
	})

	p := a.Post(e.URL+"/account/connections/"+mine.ID+"/disconnect", url.Values{"csrf_token": {acsrf}})
	if p.URL.Path != "/account" || p.URL.Query().Get("done") != "disconnected" {
		t.Fatalf("after disconnecting: %s", p.URL)
	}
	wantPage(t, p, http.StatusOK, "Disconnected.", "You have not connected any service.")
	if len(e.connections(t, "u-alice")) != 0 || len(e.connections(t, bobID)) != 1 {
		t.Fatal("wrong connections left")
	}
	if len(e.prov.Revoked()) == 0 {
		t.Error("the provider's revocation endpoint was not called")
	}
	evs := e.auditEvents(audit.ConnectionRevoked)
	if len(evs) != 1 || evs[0].Details["connection_id"] != mine.ID || evs[0].Details["reason"] != "disconnected" || evs[0].UserID != "u-alice" {
		t.Fatalf("connection.revoked events %+v", evs)
	}
	// From /connections the form comes back to /connections.
	e.connectCalendar(t, a, acsrf, nil)
	again := e.connections(t, "u-alice")[0]
	p = a.Post(e.URL+"/account/connections/"+again.ID+"/disconnect", url.Values{"csrf_token": {acsrf}, "from": {"connections"}})
	if p.URL.Path != "/connections" {
		t.Fatalf("after disconnecting from /connections: %s", p.URL)
	}
	wantPage(t, p, http.StatusOK, "Disconnected.")
}

// TestReconnect: a connection the provider stopped honouring shows as
// needing reconnecting with a Reconnect button; reconnecting runs the
// flow with the same scopes and replaces it.
func TestReconnect(t *testing.T) {
	e := newConnEnv(t)
	a, csrf := e.alice(t)
	e.connectCalendar(t, a, csrf, url.Values{"scope": {"calendar.read"}})
	old := e.connections(t, "u-alice")[0]
	if _, err := e.Store.UpdateConnection(context.Background(), store.DefaultTenant, old.ID, func(c *store.Connection) error {
		c.Status = store.ConnectionNeedsReauth
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	p := a.Get(e.URL + "/account")
	wantPage(t, p, http.StatusOK, "Needs reconnecting", "Reconnect", `name="replace" value="`+old.ID+`"`)

	// The intent page says so too.
	wantPage(t, a.Get(e.link(t, "u-alice", calendarID, "calendar.read")), http.StatusOK, "needs reconnecting")

	loc, _ := e.start(t, a, csrf, url.Values{"replace": {old.ID}, "scope": {"calendar.read"}})
	if loc.Query().Get("scope") != "calendar.read" {
		t.Fatalf("reconnect asked for %q", loc.Query().Get("scope"))
	}
	wantPage(t, e.callback(a, e.atProvider(t, loc)), http.StatusOK, "Connected Calendar")
	cs := e.connections(t, "u-alice")
	if len(cs) != 1 || cs[0].ID == old.ID || cs[0].Status != store.ConnectionActive {
		t.Fatalf("after reconnecting: %+v", cs)
	}
	if evs := e.auditEvents(audit.ConnectionRevoked); len(evs) != 1 || evs[0].Details["connection_id"] != old.ID || evs[0].Details["reason"] != "reconnected" {
		t.Fatalf("connection.revoked events %+v", evs)
	}

	// Connecting from a connect link retires a connection needing
	// reconnecting that the new one covers, and keeps one it does not.
	cur := cs[0]
	bb, bcsrf := e.bob(t)
	e.connectCalendar(t, bb, bcsrf, url.Values{"scope": {"calendar.read"}})
	e.connectCalendar(t, a, csrf, url.Values{"scope": {"calendar.write"}})
	for _, c := range append(e.connections(t, "u-alice"), e.connections(t, bobID)...) {
		if _, err := e.Store.UpdateConnection(context.Background(), store.DefaultTenant, c.ID, func(c *store.Connection) error {
			c.Status = store.ConnectionNeedsReauth
			return nil
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	p = a.Get(e.link(t, "u-alice", calendarID, "calendar.read"))
	loc, _ = e.start(t, a, csrf, url.Values{"intent": {formField(t, intentFieldRe, p.Body)}})
	wantPage(t, e.callback(a, e.atProvider(t, loc)), http.StatusOK, "Connected Calendar")
	var left []string
	for _, c := range e.connections(t, "u-alice") {
		left = append(left, c.Status+" "+strings.Join(c.Scopes, ","))
		if c.ID == cur.ID {
			t.Error("the covered connection needing reconnecting is still there")
		}
	}
	slices.Sort(left)
	if want := []string{"active calendar.read", "needs_reauth calendar.write"}; !slices.Equal(left, want) {
		t.Fatalf("alice's connections %q, want %q", left, want)
	}
	if n := len(e.connections(t, bobID)); n != 1 {
		t.Fatal("bob's connection was touched")
	}
}

// TestConnectScopesChecked: /start asks the provider only for scopes it
// offers.
func TestConnectScopesChecked(t *testing.T) {
	e := newConnEnv(t)
	a, csrf := e.alice(t)
	p := a.Post(e.URL+"/connections/calendar/start", url.Values{"csrf_token": {csrf}, "scope": {"calendar.read admin"}})
	wantPage(t, p, http.StatusBadRequest, "does not offer every permission")
	if e.prov.Counts().Authorizations != 0 {
		t.Fatal("the provider was asked")
	}
}

// TestConnectionsOffWithoutVault: a hub without a vault has no
// connection pages and no Connections section.
func TestConnectionsOffWithoutVault(t *testing.T) {
	h := newHub(t, func(c *server.Config) { c.Keyring = nil })
	b := h.Browser()
	p := b.Login(b.Get(h.URL+"/account"), servertest.TestUser, servertest.TestPassword)
	if p.Status != http.StatusOK || strings.Contains(p.Body, "connections-h") {
		t.Fatalf("account without a vault:\n%s", p.Body)
	}
	req, _ := http.NewRequest(http.MethodGet, h.URL+"/connections", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := b.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/connections without a vault: %s", resp.Status)
	}
}

// TestConnectFlowCookieSecure: over https the flow cookie is Secure and
// named __Secure- (not __Host-: it is confined to the callback's path),
// and the callback reads only that name, so a cookie planted over plain
// http is not taken for it.
func TestConnectFlowCookieSecure(t *testing.T) {
	e := newConnEnv(t, func(c *server.Config) { c.SecureCookies = true })
	cookies := signedIn(t, e.hub, "__Host-")
	csrf := csrfOf(t, readBody(serve(e.hub, http.MethodGet, "/connections", nil, cookies...)))
	resp := serve(e.hub, http.MethodPost, "/connections/calendar/start", url.Values{"csrf_token": {csrf}}, cookies...)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d %s", resp.StatusCode, readBody(resp))
	}
	var flow *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "__Secure-agentid_connect_") {
			flow = c
		}
	}
	if flow == nil || !flow.Secure || !flow.HttpOnly || flow.Path != "/connections/callback" || flow.SameSite != http.SameSiteLaxMode {
		t.Fatalf("flow cookie %+v in %v", flow, resp.Header["Set-Cookie"])
	}
	loc, _ := resp.Location()
	cb := e.atProvider(t, loc)

	plain := &http.Cookie{Name: strings.TrimPrefix(flow.Name, "__Secure-"), Value: flow.Value}
	if resp := serve(e.hub, http.MethodGet, "/connections/callback?"+cb.Encode(), nil, append(cookies, plain)...); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("callback with the unprefixed cookie: %d", resp.StatusCode)
	}
	resp = serve(e.hub, http.MethodGet, "/connections/callback?"+cb.Encode(), nil, append(cookies, flow)...)
	if body := readBody(resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Connected") {
		t.Fatalf("callback: %d\n%s", resp.StatusCode, body)
	}
	if cleared := cookieNamed(resp.Cookies(), flow.Name); cleared == nil || cleared.MaxAge >= 0 || cleared.Path != "/connections/callback" {
		t.Fatalf("the flow cookie is not cleared: %+v", cleared)
	}
}

// TestConnectTwoFlowsAtOnce: two connect flows started in one browser
// (two connect links in two tabs) both finish, each with its own cookie.
func TestConnectTwoFlowsAtOnce(t *testing.T) {
	e := newConnEnv(t)
	b, csrf := e.alice(t)
	first, _ := e.start(t, b, csrf, url.Values{"scope": {"calendar.read"}})
	second, _ := e.start(t, b, csrf, url.Values{"scope": {"calendar.write"}})
	wantPage(t, e.callback(b, e.atProvider(t, second)), http.StatusOK, "Connected Calendar", "calendar.write")
	wantPage(t, e.callback(b, e.atProvider(t, first)), http.StatusOK, "Connected Calendar", "calendar.read")
	if n := len(e.connections(t, "u-alice")); n != 2 {
		t.Fatalf("%d connections", n)
	}
}

// TestReplaceKey: on /account a person replaces the key of their own
// API-key connection: the new key is handed out, the old one stays
// retrievable (forced) for the overlap, the label shows the new last four,
// the event is connection.rotated; a bad key, an OAuth connection and
// someone else's connection are refused, and no key reaches a page.
func TestReplaceKey(t *testing.T) {
	e := newConnEnv(t)
	a, csrf := e.alice(t)
	const oldKey, newKey = "sk_live_4f8a0c1e9b7d2a6c3e5f7a9b1d3c5e7fabcd", "sk_live_99990000111122223333444455556666wxyz"
	p := a.Post(e.URL+"/connections/search/key", url.Values{"csrf_token": {csrf}, "key": {oldKey}, "label": {"Work"}})
	wantPage(t, p, http.StatusOK, "Work …abcd")
	mine := e.connections(t, "u-alice")[0]
	bb, bcsrf := e.bob(t)
	bb.Post(e.URL+"/connections/search/key", url.Values{"csrf_token": {bcsrf}, "key": {"sk_bob_0123456789abcdefgh"}})
	bobs := e.connections(t, bobID)[0]
	e.connectCalendar(t, a, csrf, nil)
	var cal *store.Connection
	for _, c := range e.connections(t, "u-alice") {
		if c.ProviderID == "calendar" {
			cal = c
		}
	}
	if cal == nil {
		t.Fatal("no calendar connection")
	}

	if p := a.Get(e.URL + "/account"); !strings.Contains(p.Body, "/account/connections/"+mine.ID+"/key") ||
		strings.Contains(p.Body, "/account/connections/"+cal.ID+"/key") {
		t.Fatal("the account page should offer Replace key for the API key and not for the OAuth connection")
	}
	for name, tc := range map[string]struct {
		id, key string
		status  int
		want    string
	}{
		"someone else's": {bobs.ID, newKey, http.StatusNotFound, "You have no such connection"},
		"unknown":        {"conn_nope", newKey, http.StatusNotFound, "You have no such connection"},
		"an OAuth one":   {cal.ID, newKey, http.StatusBadRequest, "not with a key"},
		"a bad key":      {mine.ID, "has spaces 0123456789", http.StatusBadRequest, "The old key is unchanged"},
		"an empty key":   {mine.ID, "", http.StatusBadRequest, "The old key is unchanged"},
	} {
		t.Run(name, func(t *testing.T) {
			p := a.Post(e.URL+"/account/connections/"+tc.id+"/key", url.Values{"csrf_token": {csrf}, "key": {tc.key}})
			wantPage(t, p, tc.status, tc.want)
			if tc.key != "" && strings.Contains(p.Body, tc.key) {
				t.Fatal("the refused key is on the page")
			}
		})
	}
	t.Run("without the form token", func(t *testing.T) {
		if r := e.postRaw(t, a, "/account/connections/"+mine.ID+"/key", url.Values{"key": {newKey}}); r.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.StatusCode)
		}
	})
	if n := len(e.auditEvents(audit.ConnectionRotated)); n != 0 {
		t.Fatalf("%d rotations recorded by refused requests", n)
	}

	p = a.Post(e.URL+"/account/connections/"+mine.ID+"/key", url.Values{"csrf_token": {csrf}, "key": {newKey}})
	if p.URL.Path != "/account" || p.URL.Query().Get("done") != "rotated" {
		t.Fatalf("after replacing: %s", p.URL)
	}
	wantPage(t, p, http.StatusOK, "New key saved", "Work …wxyz")
	if strings.Contains(p.Body, newKey) || strings.Contains(p.Body, oldKey) {
		t.Fatal("a key is on the page")
	}
	got, err := e.Store.GetConnection(context.Background(), store.DefaultTenant, mine.ID)
	if err != nil {
		t.Fatal(err)
	}
	m := audit.Meta{TenantID: store.DefaultTenant, Time: e.clk.Now()}
	if cred, err := e.Vault.Credential(context.Background(), m, got, false); err != nil || cred.AccessToken != newKey {
		t.Fatalf("the connection does not hand out the new key (%v)", err)
	}
	if cred, err := e.Vault.Credential(context.Background(), m, got, true); err != nil || cred.AccessToken != oldKey {
		t.Fatalf("within the overlap a forced retrieval does not fall back to the old key (%v)", err)
	}
	evs := e.auditEvents(audit.ConnectionRotated)
	if len(evs) != 1 || evs[0].Details["connection_id"] != mine.ID || evs[0].UserID != "u-alice" {
		t.Fatalf("connection.rotated events %+v", evs)
	}
	for _, ev := range e.auditEvents("") {
		if s := fmt.Sprintf("%+v", ev); strings.Contains(s, newKey) || strings.Contains(s, oldKey) {
			t.Fatalf("a key is in an event: %s", s)
		}
	}
	if got, err := e.Store.GetConnection(context.Background(), store.DefaultTenant, bobs.ID); err != nil || got.Label != bobs.Label {
		t.Fatalf("bob's connection changed: %+v, %v", got, err)
	}
}
