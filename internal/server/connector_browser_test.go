package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/store"
)

// TestBrowserConnectorSignIn: in a real browser a person signs in through
// the corp connector from the login page, consents (the page says which
// connector they came through), and the agent gets a token whose
// notes.write depended on the eng-oncall group claim; the provider then
// drops the group, the person signs in again, their groups change and
// notes.write is no longer offered.
func TestBrowserConnectorSignIn(t *testing.T) {
	b := newTab(t)
	h := newConnectorHub(t)
	h.Wrap(slowPages)
	h.oncallPolicy(t)
	cb := newCallback(t)
	conf := h.browserAgent("oncall-agent", "On-call Agent", cb)
	consentForm := chromedp.CSS(`form[action="/authorize/decision"]`)

	signIn := func(t *testing.T, state string, opts ...oauth2.AuthCodeOption) string {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)}, opts...)
		b.do(t, chromedp.Navigate(conf.AuthCodeURL(state, opts...)), chromedp.WaitVisible(chromedp.CSS("#connector-corp")), loaded)
		b.do(t, chromedp.Click(chromedp.CSS("#connector-corp")), chromedp.WaitVisible(consentForm), loaded)
		if via := evalIn[string](t, b, `document.querySelector('#via').innerText`); via != "through Corp SSO" {
			t.Fatalf("consent page says %q of the connector", via)
		}
		return verifier
	}
	offered := func(t *testing.T) []string {
		var out []string
		for _, box := range evalIn[[]scopeBox](t, b, scopeBoxesJS) {
			out = append(out, box.Value)
		}
		return out
	}
	exchange := func(t *testing.T, state, verifier string) *oauth2.Token {
		t.Helper()
		q := cb.wait(t, state)
		tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange %v: %v", q, err)
		}
		return tok
	}

	t.Run("sign in through the connector with eng-oncall", func(t *testing.T) {
		b.do(t, chromedp.Navigate(h.URL+"/login"), chromedp.WaitVisible(chromedp.CSS("#connector-corp")), loaded)
		b.checkPage(t, "login-connectors")
		verifier := signIn(t, "first")
		if got := offered(t); !slices.Equal(got, []string{"notes.read", "notes.write"}) {
			t.Fatalf("offered %v", got)
		}
		b.checkPage(t, "consent-connector")
		b.do(t, chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#back")), loaded)
		tok := exchange(t, "first", verifier)
		if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read notes.write" {
			t.Fatalf("token scope = %v", got)
		}
	})

	t.Run("the group removed upstream", func(t *testing.T) {
		h.idp.SignIn("sub-carol", map[string]any{"preferred_username": "carol", "email": "carol@corp.example", "name": "Carol Example", "groups": []any{"eng"}})
		verifier := signIn(t, "second", oauth2.SetAuthURLParam("prompt", "login consent"))
		if u := h.user(t, store.DefaultTenant, "carol"); !slices.Equal(u.Groups, []string{"eng"}) {
			t.Fatalf("groups after signing in again: %v", u.Groups)
		}
		if got := offered(t); !slices.Equal(got, []string{"notes.read"}) {
			t.Fatalf("offered %v without eng-oncall", got)
		}
		if text := b.text(t); !strings.Contains(text, "Write your notes") {
			t.Fatalf("the refused scope is not shown:\n%s", text)
		}
		b.do(t, chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#back")), loaded)
		tok := exchange(t, "second", verifier)
		if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read" {
			t.Fatalf("token scope without eng-oncall = %v", got)
		}
	})
}
