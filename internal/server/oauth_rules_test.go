package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
)

// These review tests pin protocol points of issue 2 that no other test
// asserts directly.

// oauthCoreCode runs the browser part of the code flow for clientID and
// returns the code and its verifier.
func (h *hub) oauthCoreCode(t *testing.T, clientID, secret string) (code, verifier string) {
	t.Helper()
	conf := h.oauth2Config(clientID, secret, "notes.read")
	verifier = oauth2.GenerateVerifier()
	back := h.Browser().Authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)), []string{"notes.read"})
	code = back.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", back)
	}
	return code, verifier
}

// TestCodeLifetime: an authorization code lives at most 60 s, even
// when the server is configured with a longer lifetime (issue 2: "code
// single-use, ≤ 60 s").
func TestCodeLifetime(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
	}{
		{"default", 0},
		{"configured longer is capped", 10 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &testClock{}
			h := newHub(t, func(c *server.Config) { c.Now, c.AuthCodeTTL = clk.Now, tc.ttl })
			secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
			code, v := h.oauthCoreCode(t, "web", secret)
			clk.Advance(61 * time.Second)
			r := h.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}}, "web", secret)
			if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
				t.Fatalf("code after 61 s: %d %v, want 400 invalid_grant", r.status, r.body)
			}
		})
	}
	t.Run("control: within 60 s", func(t *testing.T) {
		clk := &testClock{}
		h := newHub(t, func(c *server.Config) { c.Now = clk.Now })
		secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
		code, v := h.oauthCoreCode(t, "web", secret)
		clk.Advance(50 * time.Second)
		if r := h.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}}, "web", secret); r.status != http.StatusOK {
			t.Fatalf("code after 50 s: %d %v", r.status, r.body)
		}
	})
}

// TestCodeBoundToClient: a code (with its correct verifier) presented
// by another authenticated client is invalid_grant.
func TestCodeBoundToClient(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	other := h.AddClient(&store.Client{ID: "other", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	code, v := h.oauthCoreCode(t, "web", secret)
	r := h.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v}, "redirect_uri": {redirectURI}}, "other", other)
	if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
		t.Fatalf("code of another client: %d %v, want 400 invalid_grant", r.status, r.body)
	}
}

// TestRefreshResource: a refresh without resource keeps the grant's
// resource as aud; naming another registered resource is invalid_target.
func TestRefreshResource(t *testing.T) {
	h := newHub(t)
	other := h.addSecondResource(t, "notes.read")
	secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("web", secret, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "web", secret)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	if aud := h.claims(r.body["access_token"].(string))["aud"]; aud != h.Resource {
		t.Fatalf("aud after a refresh without resource = %v, want %s", aud, h.Resource)
	}
	next := r.body["refresh_token"].(string)
	r = h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}, "resource": {other}}, "web", secret)
	if r.status != http.StatusBadRequest || r.body["error"] != "invalid_target" {
		t.Fatalf("refresh naming another resource: %d %v, want 400 invalid_target", r.status, r.body)
	}
	r = h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}, "resource": {h.Resource + "/"}}, "web", secret)
	if r.status != http.StatusOK {
		t.Fatalf("refresh naming the grant's resource with a trailing slash: %d %v", r.status, r.body)
	}
}

// TestMetadataDocuments: both discovery documents agree on every
// field they share, the OpenID Connect fields are in the OpenID document
// only, nothing the hub does not implement is advertised, and
// grant_types_supported lists exactly the implemented grants.
func TestMetadataDocuments(t *testing.T) {
	h := newHub(t)
	get := func(p string) []byte {
		resp, err := http.Get(h.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	a, o := get("/.well-known/oauth-authorization-server"), get("/.well-known/openid-configuration")
	var am, om map[string]json.RawMessage
	if err := json.Unmarshal(a, &am); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(o, &om); err != nil {
		t.Fatal(err)
	}
	shared := 0
	for k, v := range am {
		if ov, ok := om[k]; ok {
			shared++
			if !bytes.Equal(v, ov) {
				t.Errorf("%s differs: %s in RFC 8414, %s in OpenID discovery", k, v, ov)
			}
		}
	}
	if shared < 10 || shared != len(am) {
		t.Errorf("the OpenID document shares %d of the RFC 8414 document's %d fields", shared, len(am))
	}
	for k := range am {
		if strings.Contains(k, "id_token") || strings.Contains(k, "userinfo") || k == "claims_supported" {
			t.Errorf("RFC 8414 metadata advertises the OpenID Connect field %s", k)
		}
	}
	for _, k := range []string{"userinfo_endpoint", "id_token_signing_alg_values_supported", "claims_supported"} {
		if _, ok := om[k]; !ok {
			t.Errorf("OpenID discovery lacks %s", k)
		}
	}
	for k := range om {
		if k == "acr_values_supported" || k == "id_token_encryption_alg_values_supported" || k == "request_parameter_supported" || k == "claims_parameter_supported" {
			t.Errorf("OpenID discovery advertises %s, which the hub does not implement", k)
		}
	}
	if string(om["response_types_supported"]) != `["code"]` || string(om["subject_types_supported"]) != `["public"]` {
		t.Errorf("response_types_supported = %s, subject_types_supported = %s", om["response_types_supported"], om["subject_types_supported"])
	}
	if !strings.HasPrefix(string(om["scopes_supported"]), `["openid","profile","email",`) {
		t.Errorf("scopes_supported = %s, want openid, profile and email first", om["scopes_supported"])
	}
	var m struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	if err := json.Unmarshal(a, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"}
	if !slices.Equal(m.GrantTypes, want) {
		t.Fatalf("grant_types_supported = %v, want exactly %v", m.GrantTypes, want)
	}
}

// TestIntrospectionCallers: a public client may not introspect, and a
// refresh token is inactive to every client but its own.
func TestIntrospectionCallers(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	rs := h.AddClient(&store.Client{ID: "rs", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("rs")
	h.AddClient(&store.Client{ID: "public", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("web", secret, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.post("/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {"public"}}, "", "")
	if r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("public client introspecting: %d %v %v", r.status, r.body, r.header)
	}
	if got := h.introspect(tok.AccessToken, "rs", rs); got["active"] != true || got["sub"] != "u-alice" {
		t.Fatalf("the resource server introspecting an access token: %v", got)
	}
	if got := h.introspect(tok.RefreshToken, "rs", rs); len(got) != 1 || got["active"] != false {
		t.Fatalf("another client introspecting a refresh token = %v, want exactly {active:false}", got)
	}
	if got := h.introspect(tok.RefreshToken, "web", secret); got["active"] != true {
		t.Fatalf("the owner introspecting its refresh token = %v", got)
	}
}

// TestRevokeOthersToken: revoking another client's token answers 200
// (RFC 7009 §2.2) and changes nothing.
func TestRevokeOthersToken(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	rs := h.AddClient(&store.Client{ID: "rs", GrantTypes: []string{"client_credentials"}})
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("web", secret, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"access token": tok.AccessToken, "refresh token": tok.RefreshToken} {
		t.Run(name, func(t *testing.T) {
			if r := h.post("/revoke", url.Values{"token": {raw}}, "rs", rs); r.status != http.StatusOK {
				t.Fatalf("revoke: %d %v", r.status, r.body)
			}
			if got := h.introspect(raw, "web", secret); got["active"] != true {
				t.Fatalf("another client revoked the %s: %v", name, got)
			}
		})
	}
}
