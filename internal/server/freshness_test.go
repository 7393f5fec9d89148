package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestMaxAgeAndPromptLogin: with a clock that moves, a session older than
// max_age signs in again, max_age=0 and prompt=login ask for a sign-in
// unless one just happened, and the sign-in they cause does not loop.
func TestMaxAgeAndPromptLogin(t *testing.T) {
	clk := &testClock{}
	h := newHub(t, func(c *server.Config) { c.Now = clk.Now })
	secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("web", secret, "notes.read")
	authURL := func(params ...string) string {
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource)}
		for i := 0; i+1 < len(params); i += 2 {
			opts = append(opts, oauth2.SetAuthURLParam(params[i], params[i+1]))
		}
		return conf.AuthCodeURL("st", opts...)
	}
	isLogin := func(p *servertest.Page) bool { return strings.Contains(p.Body, `action="/login"`) }
	b := h.Browser()
	// Sign in and approve once, so that later requests need no consent.
	b.Authorize(authURL(), []string{"notes.read"})
	clk.Advance(10 * time.Minute)

	tests := []struct {
		name   string
		params []string
		login  bool
	}{
		{"no freshness asked", nil, false},
		{"max_age above the session's age", []string{"max_age", "3600"}, false},
		{"max_age below the session's age", []string{"max_age", "300"}, true},
		{"max_age=0", []string{"max_age", "0"}, true},
		{"prompt=login", []string{"prompt", "login"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Get(authURL(tc.params...))
			if isLogin(p) != tc.login {
				t.Fatalf("login page shown = %v, want %v (status %d, location %v)", isLogin(p), tc.login, p.Status, p.Location)
			}
			if !tc.login && (p.Location == nil || p.Location.Query().Get("code") == "") {
				t.Fatalf("no code: %d %v", p.Status, p.Location)
			}
		})
	}
	t.Run("prompt=none with a stale session", func(t *testing.T) {
		p := b.Get(authURL("prompt", "none", "max_age", "300"))
		if p.Location == nil || p.Location.Query().Get("error") != "login_required" {
			t.Fatalf("got %d %v, want a redirect with login_required", p.Status, p.Location)
		}
	})
	for _, params := range [][]string{{"max_age", "0"}, {"prompt", "login"}, {"max_age", "60"}} {
		t.Run("the sign-in it causes does not loop: "+strings.Join(params, "="), func(t *testing.T) {
			p := b.Get(authURL(params...))
			if !isLogin(p) {
				t.Fatal("no login page")
			}
			clk.Advance(2 * time.Second) // typing the password
			p = b.Login(p, servertest.TestUser, servertest.TestPassword)
			if p.Location == nil || p.Location.Query().Get("code") == "" {
				t.Fatalf("after signing in: %d %v\n%s", p.Status, p.Location, p.Body)
			}
			clk.Advance(5 * time.Minute)
		})
	}
	// A sign-in moments ago, for this or any other request, is not the
	// sign-in prompt=login and max_age=0 ask for.
	for _, params := range [][]string{{"prompt", "login"}, {"max_age", "0"}, {"prompt", "login consent"}} {
		t.Run("right after another sign-in: "+strings.Join(params, "="), func(t *testing.T) {
			b.Login(b.Get(authURL("prompt", "login")), servertest.TestUser, servertest.TestPassword)
			clk.Advance(time.Second)
			if p := b.Get(authURL(params...)); !isLogin(p) {
				t.Fatalf("no login page a second after a sign-in: %d %v", p.Status, p.Location)
			}
			clk.Advance(5 * time.Minute)
		})
	}
	t.Run("a wrong password does not satisfy it", func(t *testing.T) {
		p := b.Get(authURL("prompt", "login"))
		if p = b.Login(p, servertest.TestUser, "not the password"); p.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", p.Status)
		}
		if p := b.Get(authURL("prompt", "login")); !isLogin(p) {
			t.Fatal("prompt=login passed after a failed sign-in")
		}
	})
}
