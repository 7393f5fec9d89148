package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/store"
)

// TestAuthorizeErrors covers every /authorize refusal: problems with the
// client or redirect URI get an HTML page and no redirect; the rest are
// redirected with error, state and iss.
func TestAuthorizeErrors(t *testing.T) {
	h := newHub(t)
	h.addSecondResource(t, "notes.read")
	h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI, "https://app.example/cb"}, GrantTypes: []string{"authorization_code"}})
	h.AddClient(&store.Client{ID: "cc-only", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"client_credentials"}})
	h.AddClient(&store.Client{ID: "disabled", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}, Disabled: true})
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := func(mod func(url.Values)) string {
		q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {redirectURI}, "state": {"st"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "resource": {h.Resource}, "scope": {"notes.read"}}
		mod(q)
		return h.URL + "/authorize?" + q.Encode()
	}
	pageTests := []struct {
		name string
		mod  func(url.Values)
	}{
		{"missing client_id", func(q url.Values) { q.Del("client_id") }},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }},
		{"disabled client", func(q url.Values) { q.Set("client_id", "disabled") }},
		{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }},
		{"redirect differs in path", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9999/callback/x") }},
		{"redirect required with several registered", func(q url.Values) { q.Del("redirect_uri") }},
	}
	for _, tc := range pageTests {
		t.Run(tc.name, func(t *testing.T) {
			p := h.Browser().Get(base(tc.mod))
			if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "<h1>") {
				t.Fatalf("got %d location=%v, want a 400 HTML page", p.Status, p.Location)
			}
		})
	}
	redirectTests := []struct {
		name string
		mod  func(url.Values)
		code string
	}{
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"missing PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"unknown scope", func(q url.Values) { q.Set("scope", "notes.read admin") }, "invalid_scope"},
		{"unknown resource", func(q url.Values) { q.Set("resource", "https://other.example/mcp") }, "invalid_target"},
		{"resource with fragment", func(q url.Values) { q.Set("resource", h.Resource+"#x") }, "invalid_target"},
		{"missing resource, ambiguous, no default", func(q url.Values) { q.Del("resource") }, "invalid_target"},
		{"client without code grant", func(q url.Values) { q.Set("client_id", "cc-only") }, "unauthorized_client"},
		{"duplicate parameter", func(q url.Values) { q.Add("scope", "notes.write") }, "invalid_request"},
		{"prompt none without login", func(q url.Values) { q.Set("prompt", "none") }, "login_required"},
	}
	for _, tc := range redirectTests {
		t.Run(tc.name, func(t *testing.T) {
			p := h.Browser().Get(base(tc.mod))
			if p.Location == nil {
				t.Fatalf("no redirect: %d %s", p.Status, p.Body)
			}
			q := p.Location.Query()
			if q.Get("error") != tc.code || q.Get("state") != "st" || q.Get("iss") != h.URL {
				t.Fatalf("redirect %s, want error=%s with state and iss", p.Location, tc.code)
			}
		})
	}
	t.Run("trailing slash resource accepted", func(t *testing.T) {
		p := h.Browser().Get(base(func(q url.Values) { q.Set("resource", h.Resource+"/") }))
		if !strings.Contains(p.Body, `action="/login"`) {
			t.Fatalf("got %d %s", p.Status, p.Location)
		}
	})
	t.Run("loopback redirect any port", func(t *testing.T) {
		p := h.Browser().Get(base(func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:41234/callback") }))
		if !strings.Contains(p.Body, `action="/login"`) {
			t.Fatalf("got %d %s", p.Status, p.Location)
		}
	})
}

// TestTokenErrors asserts status and error code of every /token refusal.
func TestTokenErrors(t *testing.T) {
	h := newHub(t)
	h.addSecondResource(t, "notes.read")
	secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	h.AddClient(&store.Client{ID: "public", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "client_credentials"}})
	ccSecret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}})

	// A real code to exercise PKCE and binding failures.
	newCode := func() (string, string) {
		conf := h.oauth2Config("web", secret, "notes.read")
		v := oauth2.GenerateVerifier()
		back := h.Browser().Authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", h.Resource)), []string{"notes.read"})
		return back.Query().Get("code"), v
	}
	code1, _ := newCode()
	code2, v2 := newCode()
	code3, v3 := newCode()

	tests := []struct {
		name     string
		form     url.Values
		id, sec  string
		status   int
		code     string
		noBasic  bool
		rawQuery string
	}{
		{"no grant_type", url.Values{}, "web", secret, 400, "invalid_request", false, ""},
		{"unknown grant_type", url.Values{"grant_type": {"password"}}, "web", secret, 400, "unsupported_grant_type", false, ""},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}}, "bot", "nope", 401, "invalid_client", false, ""},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}}, "ghost", "nope", 401, "invalid_client", false, ""},
		{"no client auth", url.Values{"grant_type": {"client_credentials"}}, "", "", 401, "invalid_client", true, ""},
		{"grant not registered", url.Values{"grant_type": {"client_credentials"}}, "web", secret, 400, "unauthorized_client", false, ""},
		{"public client credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {"public"}}, "", "", 400, "unauthorized_client", true, ""},
		{"client credentials without resource", url.Values{"grant_type": {"client_credentials"}}, "bot", ccSecret, 400, "invalid_target", false, ""},
		{"client credentials unknown resource", url.Values{"grant_type": {"client_credentials"}, "resource": {"https://x.example/mcp"}}, "bot", ccSecret, 400, "invalid_target", false, ""},
		{"two resources", url.Values{"grant_type": {"client_credentials"}, "resource": {h.Resource, "https://x.example/mcp"}}, "bot", ccSecret, 400, "invalid_target", false, ""},
		{"client credentials unknown scope", url.Values{"grant_type": {"client_credentials"}, "resource": {h.Resource}, "scope": {"admin"}}, "bot", ccSecret, 400, "invalid_scope", false, ""},
		{"client credentials denied scope", url.Values{"grant_type": {"client_credentials"}, "resource": {h.Resource}, "scope": {"notes.write"}}, "bot", ccSecret, 400, "invalid_scope", false, ""},
		{"missing code_verifier", url.Values{"grant_type": {"authorization_code"}, "code": {code1}}, "web", secret, 400, "invalid_request", false, ""},
		{"unknown code", url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "code_verifier": {strings.Repeat("a", 43)}}, "web", secret, 400, "invalid_grant", false, ""},
		{"wrong verifier", url.Values{"grant_type": {"authorization_code"}, "code": {code1}, "code_verifier": {strings.Repeat("b", 43)}}, "web", secret, 400, "invalid_grant", false, ""},
		{"wrong redirect_uri", url.Values{"grant_type": {"authorization_code"}, "code": {code2}, "code_verifier": {v2}, "redirect_uri": {"http://127.0.0.1:9999/other"}}, "web", secret, 400, "invalid_grant", false, ""},
		{"wrong resource", url.Values{"grant_type": {"authorization_code"}, "code": {code3}, "code_verifier": {v3}, "resource": {"https://x.example/mcp"}}, "web", secret, 400, "invalid_target", false, ""},
		{"unknown refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, "web", secret, 400, "invalid_grant", false, ""},
		{"duplicate parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, "bot", ccSecret, 400, "invalid_request", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/token", tc.form, tc.id, tc.sec)
			if r.status != tc.status || r.body["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatal("error without Cache-Control: no-store")
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	// A failed client authentication does not consume the code: the same
	// code still works with the right credentials.
	code, v := newCode()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}}
	if r := h.post("/token", form, "web", "wrong-secret"); r.status != 401 {
		t.Fatalf("wrong secret: %d", r.status)
	}
	if r := h.post("/token", form, "web", secret); r.status != 200 {
		t.Fatalf("code consumed by a failed authentication: %d %v", r.status, r.body)
	}
	// GET is not allowed on the token endpoint.
	resp, err := http.Get(h.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Allow") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /token = %d %v", resp.StatusCode, resp.Header)
	}
}

// TestPublicClientBasicEmptyPassword: x/oauth2's auto-detection sends Basic
// with an empty password first for public clients.
func TestPublicClientBasicEmptyPassword(t *testing.T) {
	h := newHub(t)
	h.AddClient(&store.Client{ID: "public", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("public", "", "notes.read")
	tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	if h.claims(tok.AccessToken)["client_id"] != "public" {
		t.Fatal("wrong client")
	}
}

// addSecondResource registers another MCP server offering scopes, so that
// a request naming no resource is ambiguous.
func (h *hub) addSecondResource(t *testing.T, scopes ...string) string {
	t.Helper()
	uri := h.URL + "/other-mcp"
	r := &store.Resource{TenantID: store.DefaultTenant, ID: "other", URI: uri, Name: "Other", CreatedAt: time.Now()}
	for _, sc := range scopes {
		r.Scopes = append(r.Scopes, store.Scope{Name: sc, Description: sc})
	}
	if err := h.Store.CreateResource(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	return uri
}

// TestResourceInference: a request naming no resource, from a client with
// no default, gets the one resource offering the requested scopes.
func TestResourceInference(t *testing.T) {
	h := newHub(t)
	h.addSecondResource(t, "files.read")
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}})
	r := h.post("/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, "bot", secret)
	if r.status != 200 || h.claims(r.body["access_token"].(string))["aud"] != h.Resource {
		t.Fatalf("inferred resource: %d %v", r.status, r.body)
	}
	if r := h.post("/token", url.Values{"grant_type": {"client_credentials"}}, "bot", secret); r.status != 400 || r.body["error"] != "invalid_target" {
		t.Fatalf("no scope, two resources: %d %v", r.status, r.body)
	}
	h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {redirectURI}, "state": {"st"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}, "scope": {"notes.write"}}
	if p := h.Browser().Get(h.URL + "/authorize?" + q.Encode()); !strings.Contains(p.Body, `action="/login"`) {
		t.Fatalf("authorize with an inferable resource: %d %v", p.Status, p.Location)
	}
}
