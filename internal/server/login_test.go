package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

func TestLoginPage(t *testing.T) {
	h := newHub(t)
	b := h.Browser()
	p := b.Get(h.URL + "/login")
	if p.Status != 200 || !strings.Contains(p.Body, `<label for="username">`) || !strings.Contains(p.Body, `<label for="password">`) {
		t.Fatalf("login page: %d\n%s", p.Status, p.Body)
	}
	resp, err := http.Get(h.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP = %q", csp)
	}

	t.Run("wrong password", func(t *testing.T) {
		p := b.Login(b.Get(h.URL+"/login"), servertest.TestUser, "nope")
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "not correct") {
			t.Fatalf("got %d", p.Status)
		}
	})
	t.Run("missing CSRF token", func(t *testing.T) {
		p := b.Post(h.URL+"/login", url.Values{"username": {servertest.TestUser}, "password": {servertest.TestPassword}})
		if p.Status != http.StatusForbidden {
			t.Fatalf("got %d", p.Status)
		}
	})
	t.Run("cross-origin POST", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/login", strings.NewReader("username=a&password=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if p := b.Do(req); p.Status != http.StatusForbidden {
			t.Fatalf("got %d", p.Status)
		}
	})
	t.Run("session cookie", func(t *testing.T) {
		jar := h.Browser()
		p := jar.Get(h.URL + "/login?return_to=" + url.QueryEscape("/authorize?x=1"))
		form := url.Values{"csrf_token": {csrfOf(t, p.Body)}, "return_to": {"/authorize?x=1"}, "username": {servertest.TestUser}, "password": {servertest.TestPassword}}
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range jarCookies(jar, h.URL) {
			req.AddCookie(c)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/authorize?x=1" {
			t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		var sess *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "agentid_session" {
				sess = c
			}
		}
		// Secure is off only because the issuer is http on loopback.
		if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Secure {
			t.Fatalf("session cookie = %+v", sess)
		}
	})
	t.Run("open redirect refused", func(t *testing.T) {
		p := b.Get(h.URL + "/login?return_to=" + url.QueryEscape("https://evil.example/"))
		if strings.Contains(p.Body, "evil.example") {
			t.Fatal("return_to to another site kept")
		}
	})
}

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	const marker = `name="csrf_token" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no CSRF token in\n%s", body)
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

func jarCookies(b *servertest.Browser, u string) []*http.Cookie {
	pu, _ := url.Parse(u)
	return b.Client().Jar.Cookies(pu)
}

// TestLoginThrottling: failed attempts are limited per user (and per IP).
func TestLoginThrottling(t *testing.T) {
	h := newHub(t)
	b := h.Browser()
	var last *servertest.Page
	for range 6 {
		last = b.Login(b.Get(h.URL+"/login"), servertest.TestUser, "wrong")
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("6th failed attempt: %d, want 429", last.Status)
	}
	// Even the right password is refused while throttled.
	if p := b.Login(b.Get(h.URL+"/login"), servertest.TestUser, servertest.TestPassword); p.Status != http.StatusTooManyRequests {
		t.Fatalf("right password while throttled: %d", p.Status)
	}
}

// TestAuditTrail checks the lifecycle events of one authorization and that
// no token, code or secret appears in any of them.
func TestAuditTrail(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	b := h.Browser()
	b.Login(b.Get(h.URL+"/login"), servertest.TestUser, "wrong")
	conf := h.oauth2Config("agent-1", secret, "notes.read")
	verifier := oauth2.GenerateVerifier()
	back := b.Authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)), []string{"notes.read"})
	code := back.Query().Get("code")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent-1", secret)
	h.post("/revoke", url.Values{"token": {r.body["refresh_token"].(string)}}, "agent-1", secret)
	h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent-1", secret)

	events, err := h.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]*store.AuditEvent{}
	secrets := []string{secret, code, tok.AccessToken, tok.RefreshToken, r.body["refresh_token"].(string), r.body["access_token"].(string), servertest.TestPassword, verifier}
	for _, e := range events {
		seen[e.Type] = e
		all := e.Type + e.ClientID + e.UserID + e.Resource + strings.Join(e.Scopes, " ") + e.IP + e.Outcome
		for k, v := range e.Details {
			all += k + v
		}
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Fatalf("event %s leaks a secret", e.Type)
			}
		}
	}
	for _, typ := range []string{"user.login_failed", "user.login_succeeded", "consent.given", "code.issued", "token.issued", "refresh.rotated", "token.revoked"} {
		if seen[typ] == nil {
			t.Errorf("no %s event (have %v)", typ, keys(seen))
		}
	}
	issued := seen["token.issued"]
	if issued.ClientID != "agent-1" || issued.UserID != "u-alice" || issued.Resource != h.Resource || issued.Details["jti"] == "" || issued.Details["grant_type"] == "" || len(issued.Scopes) == 0 || issued.IP == "" {
		t.Errorf("token.issued = %+v", issued)
	}
}

func keys(m map[string]*store.AuditEvent) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestLoginThrottlingPerIP: one address failing for many usernames is
// limited too.
func TestLoginThrottlingPerIP(t *testing.T) {
	h := newHub(t, func(c *server.Config) {
		c.LoginAttemptsPerIP = server.LoginLimit{PerMinute: 3, Burst: 3}
	})
	b := h.Browser()
	var last *servertest.Page
	for i := range 4 {
		last = b.Login(b.Get(h.URL+"/login"), "user"+string(rune('a'+i)), "wrong")
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("4th failure from one IP: %d, want 429", last.Status)
	}
}
