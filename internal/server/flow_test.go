package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

const redirectURI = "http://127.0.0.1:9999/callback"

func (h *hub) oauth2Config(clientID, secret string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: redirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"},
	}
}

// codeFlow runs authorization code + PKCE with x/oauth2 and returns the token.
func (h *hub) codeFlow(b *servertest.Browser, conf *oauth2.Config, approve []string) (*oauth2.Token, error) {
	h.T.Helper()
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource))
	back := b.Authorize(authURL, approve)
	q := back.Query()
	if q.Get("state") != "state-123" {
		h.T.Fatalf("state not echoed: %s", back)
	}
	if q.Get("iss") != h.URL {
		h.T.Fatalf("iss = %q, want %q (RFC 9207)", q.Get("iss"), h.URL)
	}
	if e := q.Get("error"); e != "" {
		return nil, errors.New(e)
	}
	return conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource))
}

func (h *hub) claims(tok string) map[string]any {
	h.T.Helper()
	c, err := h.Keys.Verify(tok, h.URL)
	if err != nil {
		h.T.Fatalf("hub cannot verify its own token: %v", err)
	}
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func TestAuthorizationCodeFlow(t *testing.T) { forEachBackend(t, testAuthorizationCodeFlow) }

func testAuthorizationCodeFlow(t *testing.T, h *hub) {
	secret := h.AddClient(&store.Client{ID: "agent-1", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read", "notes.write")
	b := h.Browser()
	tok, err := h.codeFlow(b, conf, []string{"notes.read", "notes.write"})
	if err != nil {
		t.Fatal(err)
	}
	c := h.claims(tok.AccessToken)
	if c["sub"] != "u-alice" || c["client_id"] != "agent-1" || c["aud"] != h.Resource || c["scope"] != "notes.read notes.write" {
		t.Fatalf("claims = %v", c)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for a client with the refresh_token grant")
	}

	// A second authorization with the same scopes skips the consent screen.
	tok2, err := h.codeFlow(b, conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.claims(tok2.AccessToken)["scope"] != "notes.read notes.write" {
		t.Fatal("second flow lost scopes")
	}
}

func TestConsentDenyAndPartial(t *testing.T) { forEachBackend(t, testConsentDenyAndPartial) }

func testConsentDenyAndPartial(t *testing.T, h *hub) {
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read", "notes.write")
	if _, err := h.codeFlow(h.Browser(), conf, nil); err == nil || err.Error() != "access_denied" {
		t.Fatalf("deny: err = %v, want access_denied", err)
	}
	tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read" {
		t.Fatalf("scope = %v, want only the approved notes.read", got)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) { consentBackends(t, testRefreshRotationAndReuse) }

func testRefreshRotationAndReuse(t *testing.T, h *hub, clk *fakeClock) {
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read", "notes.write")
	tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read", "notes.write"})
	if err != nil {
		t.Fatal(err)
	}
	first := tok.RefreshToken
	r1 := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}, "scope": {"notes.read"}}, "agent-1", secret)
	if r1.status != 200 || r1.body["refresh_token"] == first || r1.body["scope"] != "notes.read" {
		t.Fatalf("narrowing refresh: %d %v", r1.status, r1.body)
	}
	// Widening is refused.
	second := r1.body["refresh_token"].(string)
	if r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second}, "scope": {"notes.read notes.delete"}}, "agent-1", secret); r.status != 400 || r.body["error"] != "invalid_scope" {
		t.Fatalf("widening refresh: %d %v", r.status, r.body)
	}
	// The narrowed refresh still carries the whole grant.
	r2 := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second}}, "agent-1", secret)
	if r2.status != 200 || r2.body["scope"] != "notes.read notes.write" {
		t.Fatalf("refresh without scope: %d %v", r2.status, r2.body)
	}
	// Reusing the first (rotated) token after the reuse interval revokes
	// the whole family.
	clk.Advance(server.DefaultRefreshReuseInterval + time.Second)
	if r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}}, "agent-1", secret); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", r.status, r.body)
	}
	third := r2.body["refresh_token"].(string)
	if r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {third}}, "agent-1", secret); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Fatalf("the family was not revoked after reuse: %d %v", r.status, r.body)
	}
	if active := h.introspect(r2.body["access_token"].(string), "agent-1", secret)["active"]; active != false {
		t.Fatal("access token of a revoked family is still active")
	}
	events, _ := h.Store.ListAudit(context.Background(), store.AuditFilter{Type: "refresh.reuse_detected"})
	if len(events) == 0 {
		t.Fatal("no reuse audit event")
	}
}

func TestCodeReplayRevokesTokens(t *testing.T) { forEachBackend(t, testCodeReplayRevokesTokens) }

func testCodeReplayRevokesTokens(t *testing.T, h *hub) {
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read")
	verifier := oauth2.GenerateVerifier()
	back := h.Browser().Authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)), []string{"notes.read"})
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "code_verifier": {verifier}, "redirect_uri": {redirectURI}}
	r1 := h.tokenRequest(form, "agent-1", secret)
	if r1.status != 200 {
		t.Fatalf("first exchange: %d %v", r1.status, r1.body)
	}
	replays := func() []*store.AuditEvent {
		evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{Type: "code.replayed"})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	if n := len(replays()); n != 0 {
		t.Fatalf("a first, successful exchange wrote %d code.replayed events", n)
	}
	r2 := h.tokenRequest(form, "agent-1", secret)
	if r2.status != 400 || r2.body["error"] != "invalid_grant" {
		t.Fatalf("replay: %d %v", r2.status, r2.body)
	}
	if evs := replays(); len(evs) != 1 || evs[0].UserID != "u-alice" || evs[0].Outcome != "failure" || evs[0].Resource != h.Resource {
		t.Fatalf("replay events = %+v, want one failure naming the user and resource", evs)
	}
	if h.introspect(r1.body["access_token"].(string), "agent-1", secret)["active"] != false {
		t.Fatal("access token issued from a replayed code is still active")
	}
	if r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1.body["refresh_token"].(string)}}, "agent-1", secret); r.body["error"] != "invalid_grant" {
		t.Fatalf("refresh token from a replayed code still works: %v", r.body)
	}
}

func TestClientCredentials(t *testing.T) { forEachBackend(t, testClientCredentials) }

func testClientCredentials(t *testing.T, h *hub) {
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		conf := clientcredentials.Config{ClientID: "bot", ClientSecret: secret, TokenURL: h.URL + "/token", AuthStyle: style, Scopes: []string{"notes.read", "notes.write"}}
		tok, err := conf.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c := h.claims(tok.AccessToken)
		if c["sub"] != "bot" || c["scope"] != "notes.read" || c["aud"] != h.Resource {
			t.Fatalf("claims = %v (policy must drop notes.write: not permitted for this agent)", c)
		}
	}
	conf := clientcredentials.Config{ClientID: "bot", ClientSecret: "wrong", TokenURL: h.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}
	var re *oauth2.RetrieveError
	if _, err := conf.Token(context.Background()); !errors.As(err, &re) || re.Response.StatusCode != 401 || re.ErrorCode != "invalid_client" {
		t.Fatalf("wrong secret: %v", err)
	}
	if !strings.HasPrefix(re.Response.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatal("invalid_client without WWW-Authenticate")
	}
}

func TestRevokeThenIntrospect(t *testing.T) { forEachBackend(t, testRevokeThenIntrospect) }

func testRevokeThenIntrospect(t *testing.T, h *hub) {
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", secret)
	at := r.body["access_token"].(string)
	got := h.introspect(at, "bot", secret)
	if got["active"] != true || got["scope"] != "notes.read" || got["client_id"] != "bot" {
		t.Fatalf("introspection before revocation: %v", got)
	}
	if s := h.post("/revoke", url.Values{"token": {at}}, "bot", secret); s.status != 200 {
		t.Fatalf("revoke: %d %v", s.status, s.body)
	}
	if got := h.introspect(at, "bot", secret); len(got) != 1 || got["active"] != false {
		t.Fatalf("introspection after revocation = %v, want exactly {active:false}", got)
	}
	// Unknown tokens answer 200 (RFC 7009 §2.2).
	if s := h.post("/revoke", url.Values{"token": {"no-such-token"}}, "bot", secret); s.status != 200 {
		t.Fatalf("revoke unknown: %d", s.status)
	}
	events, _ := h.Store.ListAudit(context.Background(), store.AuditFilter{Type: "token.revoked"})
	if len(events) != 1 {
		t.Fatalf("token.revoked events = %d", len(events))
	}
}

type jsonResp struct {
	status int
	header http.Header
	body   map[string]any
}

func (h *hub) post(path string, form url.Values, clientID, secret string) jsonResp {
	h.T.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	return h.send(req)
}

func (h *hub) send(req *http.Request) jsonResp {
	h.T.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.T.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return jsonResp{status: resp.StatusCode, header: resp.Header, body: body}
}

func (h *hub) tokenRequest(form url.Values, clientID, secret string) jsonResp {
	h.T.Helper()
	r := h.post("/token", form, clientID, secret)
	if r.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		h.T.Fatalf("token response headers: %v", r.header)
	}
	return r
}

func (h *hub) introspect(tok, clientID, secret string) map[string]any {
	h.T.Helper()
	r := h.post("/introspect", url.Values{"token": {tok}}, clientID, secret)
	if r.status != 200 {
		h.T.Fatalf("introspect: %d %v", r.status, r.body)
	}
	return r.body
}

func TestMetadata(t *testing.T) { forEachBackend(t, testMetadata) }

func testMetadata(t *testing.T, h *hub) {
	var docs []map[string]any
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		resp, err := http.Get(h.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s content type %q", p, resp.Header.Get("Content-Type"))
		}
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		docs = append(docs, m)
	}
	m := docs[0]
	if m["issuer"] != h.URL || docs[1]["issuer"] != h.URL {
		t.Fatalf("issuer mismatch: %v / %v", m["issuer"], docs[1]["issuer"])
	}
	want := map[string]any{
		"authorization_endpoint": h.URL + "/authorize", "token_endpoint": h.URL + "/token", "registration_endpoint": h.URL + "/register",
		"revocation_endpoint": h.URL + "/revoke", "introspection_endpoint": h.URL + "/introspect", "jwks_uri": h.URL + "/jwks.json",
		"authorization_response_iss_parameter_supported": true,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	list := func(k string) []string {
		var out []string
		for _, v := range m[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if !slices.Equal(list("code_challenge_methods_supported"), []string{"S256"}) || !slices.Equal(list("response_types_supported"), []string{"code"}) {
		t.Error("PKCE or response types wrong")
	}
	if !slices.Equal(list("scopes_supported"), []string{"openid", "profile", "email", "notes.delete", "notes.read", "notes.write"}) {
		t.Errorf("scopes_supported = %v", list("scopes_supported"))
	}
	for _, meth := range []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"} {
		if !slices.Contains(list("token_endpoint_auth_methods_supported"), meth) {
			t.Errorf("auth method %s missing", meth)
		}
	}
	resp, err := http.Get(h.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || len(jwks.Keys) == 0 || jwks.Keys[0]["d"] != nil {
		t.Fatalf("jwks: %v %v", err, jwks)
	}
}

// TestCORS: browser-based MCP clients call the protocol endpoints from
// other origins; the browser pages stay same-origin.
func TestCORS(t *testing.T) {
	h := newHub(t)
	req, _ := http.NewRequest(http.MethodOptions, h.URL+"/token", nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type, mcp-protocol-version")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "MCP-Protocol-Version") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	r := h.post("/token", url.Values{"grant_type": {"client_credentials"}}, "nobody", "x")
	if r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Fatalf("token error response lacks CORS headers: %v", r.header)
	}
	resp, err = http.Get(h.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("the login page must not be readable cross-origin")
	}
}

// TestRefreshWithOfflineAccessOnly: scope=offline_access alone asks for the
// grant as it is, not for nothing.
func TestRefreshWithOfflineAccessOnly(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"offline_access"}}, "agent-1", secret)
	if r.status != 200 || r.body["scope"] != "notes.read" {
		t.Fatalf("refresh with scope=offline_access: %d %v", r.status, r.body)
	}
}
