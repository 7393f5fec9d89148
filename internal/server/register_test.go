package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

func (h *hub) jsonRequest(method, path string, body any, bearer string) jsonResp {
	h.T.Helper()
	var rd *bytes.Reader
	if s, ok := body.(string); ok {
		rd = bytes.NewReader([]byte(s))
	} else {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return h.send(req)
}

func TestDynamicRegistrationAndManagement(t *testing.T) {
	forEachBackend(t, testDynamicRegistrationAndManagement)
}

func testDynamicRegistrationAndManagement(t *testing.T, h *hub) {
	r := h.jsonRequest(http.MethodPost, "/register", map[string]any{
		"client_name": "dcr agent", "redirect_uris": []string{"http://127.0.0.1/cb"}, "grant_types": []string{"authorization_code", "refresh_token"},
		"scope": "notes.read notes.delete",
	}, "")
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	id, _ := r.body["client_id"].(string)
	secret, _ := r.body["client_secret"].(string)
	regToken, _ := r.body["registration_access_token"].(string)
	regURI, _ := r.body["registration_client_uri"].(string)
	if id == "" || secret == "" || regToken == "" || regURI != h.URL+"/register/"+id {
		t.Fatalf("registration response: %v", r.body)
	}
	if _, ok := r.body["client_secret_expires_at"]; !ok {
		t.Fatal("client_secret_expires_at missing (RFC 7591 §3.2.1)")
	}
	// The registered scope is every scope the register policy allows this
	// agent (a starting point does not limit later step-up); the default
	// policy keeps sensitive scopes from self-registered agents.
	if r.body["scope"] != "notes.read notes.write" {
		t.Fatalf("scope = %v, want the non-sensitive scopes without notes.delete", r.body["scope"])
	}
	c, err := h.Store.GetClient(context.Background(), store.DefaultTenant, id)
	if err != nil || bytes.Contains(c.SecretHash, []byte(secret)) || !bytes.Equal(c.SecretHash, token.Hash(secret)) {
		t.Fatalf("stored secret is not the hash: %v", err)
	}

	// RFC 7592 read.
	if g := h.jsonRequest(http.MethodGet, "/register/"+id, "", regToken); g.status != 200 || g.body["client_name"] != "dcr agent" || g.body["client_secret"] != nil {
		t.Fatalf("read: %d %v", g.status, g.body)
	}
	if g := h.jsonRequest(http.MethodGet, "/register/"+id, "", "wrong"); g.status != 401 {
		t.Fatalf("read with a wrong token: %d", g.status)
	}
	// RFC 7592 update replaces the metadata.
	u := h.jsonRequest(http.MethodPut, "/register/"+id, map[string]any{
		"client_id": id, "client_name": "renamed", "redirect_uris": []string{"http://127.0.0.1/cb2"}, "scope": "notes.read notes.write",
	}, regToken)
	if u.status != 200 || u.body["client_name"] != "renamed" || u.body["scope"] != "notes.read notes.write" {
		t.Fatalf("update: %d %v", u.status, u.body)
	}
	c, _ = h.Store.GetClient(context.Background(), store.DefaultTenant, id)
	if len(c.RedirectURIs) != 1 || c.RedirectURIs[0] != "http://127.0.0.1/cb2" {
		t.Fatalf("redirect URIs after update = %v", c.RedirectURIs)
	}
	if u := h.jsonRequest(http.MethodPut, "/register/"+id, map[string]any{"client_id": "other", "redirect_uris": []string{"http://127.0.0.1/cb"}}, regToken); u.status != 400 {
		t.Fatalf("update with another client_id: %d", u.status)
	}
	// The secret still works after the update.
	if r := h.post("/token", url.Values{"grant_type": {"client_credentials"}}, id, secret); r.body["error"] != "unauthorized_client" {
		t.Fatalf("token with the updated client: %v", r.body)
	}
	// Delete.
	if d := h.jsonRequest(http.MethodDelete, "/register/"+id, "", regToken); d.status != http.StatusNoContent {
		t.Fatalf("delete: %d", d.status)
	}
	if _, err := h.Store.GetClient(context.Background(), store.DefaultTenant, id); err == nil {
		t.Fatal("client still exists after delete")
	}
	events, _ := h.Store.ListAudit(context.Background(), store.AuditFilter{ClientID: id})
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	for _, want := range []string{"client.registered", "client.updated", "client.deleted"} {
		found := false
		for _, got := range types {
			found = found || got == want
		}
		if !found {
			t.Errorf("audit events %v lack %s", types, want)
		}
	}
}

func TestRegistrationErrors(t *testing.T) { forEachBackend(t, testRegistrationErrors) }

func testRegistrationErrors(t *testing.T, h *hub) {
	tests := []struct {
		name string
		body any
		code string
	}{
		{"not json", "{", "invalid_client_metadata"},
		{"fragment in redirect", map[string]any{"redirect_uris": []string{"https://a.example/cb#x"}}, "invalid_redirect_uri"},
		{"http non-loopback redirect", map[string]any{"redirect_uris": []string{"http://a.example/cb"}}, "invalid_redirect_uri"},
		{"javascript redirect", map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}, "invalid_redirect_uri"},
		{"unknown auth method", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "token_endpoint_auth_method": "magic"}, "invalid_client_metadata"},
		{"implicit grant", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "grant_types": []string{"implicit"}}, "invalid_client_metadata"},
		{"code grant without code response", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "response_types": []string{"token"}}, "invalid_client_metadata"},
		{"unknown scope", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "scope": "nope"}, "invalid_client_metadata"},
		{"wrong type", map[string]any{"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata"},
		// The token endpoint does not serve it: registration must not accept it.
		{"device code grant", map[string]any{"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}}, "invalid_client_metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.jsonRequest(http.MethodPost, "/register", tc.body, "")
			if r.status != 400 || r.body["error"] != tc.code {
				t.Fatalf("got %d %v, want 400 %s", r.status, r.body, tc.code)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatal("no Cache-Control: no-store")
			}
		})
	}
	if evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{Type: audit.ClientRegistered}); err != nil || len(evs) != 0 {
		t.Errorf("refused registrations wrote %d client.registered events (%v)", len(evs), err)
	}
}

// TestDynamicRegistrationAudit: /register and its RFC 7592 update go
// through the one registration path: the client and its event are stored
// together, the event complete, with the request's id and the policy
// version that decided the ceiling.
func TestDynamicRegistrationAudit(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	r := h.jsonRequest(http.MethodPost, "/register", map[string]any{"client_name": "dcr agent", "redirect_uris": []string{"http://127.0.0.1/cb"}, "token_endpoint_auth_method": "none"}, "")
	id, _ := r.body["client_id"].(string)
	regToken, _ := r.body["registration_access_token"].(string)
	if r.status != http.StatusCreated || id == "" {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	u := h.jsonRequest(http.MethodPut, "/register/"+id, map[string]any{"client_id": id, "client_name": "renamed", "redirect_uris": []string{"http://127.0.0.1/cb"}, "token_endpoint_auth_method": "none"}, regToken)
	if u.status != http.StatusOK {
		t.Fatalf("update: %d %v", u.status, u.body)
	}
	for _, tc := range []struct {
		typ, requestID, change string
	}{{audit.ClientRegistered, r.header.Get("X-Request-Id"), ""}, {audit.ClientUpdated, u.header.Get("X-Request-Id"), audit.ChangeMetadata}} {
		evs, err := h.Store.ListAudit(ctx, store.AuditFilter{Type: tc.typ, ClientID: id})
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s events: %d %v", tc.typ, len(evs), err)
		}
		ev := evs[0]
		if err := audit.Check(ev); err != nil {
			t.Error(err)
		}
		d, ok, err := audit.DecisionOf(ev)
		if ev.RequestID == "" || ev.RequestID != tc.requestID || ev.Details["method"] != store.RegistrationDCR || ev.Details["change"] != tc.change ||
			!ok || err != nil || d.PolicyVersion != 0 || !slices.Equal(ev.Scopes, []string{"notes.read", "notes.write"}) {
			t.Errorf("%s event %+v, decision %+v", tc.typ, ev, d)
		}
	}
}

func TestRegistrationWithInitialAccessToken(t *testing.T) {
	h := newHub(t, func(c *server.Config) {
		c.Registration = &server.RegistrationConfig{InitialAccessTokenHashes: [][]byte{token.Hash("let-me-in")}}
	})
	body := map[string]any{"redirect_uris": []string{"https://a.example/cb"}}
	if r := h.jsonRequest(http.MethodPost, "/register", body, ""); r.status != 401 || r.body["error"] != "invalid_token" {
		t.Fatalf("without token: %d %v", r.status, r.body)
	}
	if r := h.jsonRequest(http.MethodPost, "/register", body, "let-me-in"); r.status != 201 {
		t.Fatalf("with token: %d %v", r.status, r.body)
	}
}

func TestPrivateKeyJWT(t *testing.T) { forEachBackend(t, testPrivateKeyJWT) }

func testPrivateKeyJWT(t *testing.T, h *hub) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	h.AddClient(&store.Client{ID: "jwt-bot", TokenEndpointAuthMethod: "private_key_jwt", JWKS: string(set), GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	assertion := func(jti, aud string, exp time.Time) string {
		s, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "jwt-bot", Subject: "jwt-bot", Audience: jwt.Audience{aud}, ID: jti, Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(time.Now())}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	// With golang.org/x/oauth2 as the client: the assertion travels as
	// endpoint parameters (RFC 7523 §2.2), no secret.
	cc := clientcredentials.Config{ClientID: "jwt-bot", TokenURL: h.URL + "/token", AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion("jti-0", h.URL+"/token", time.Now().Add(time.Minute))}}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("private_key_jwt with x/oauth2: %v", err)
	}
	if h.claims(tok.AccessToken)["sub"] != "jwt-bot" {
		t.Fatal("wrong subject")
	}
	a := assertion("jti-1", h.URL+"/token", time.Now().Add(time.Minute))
	if r := h.post("/token", form(a), "", ""); r.status != 200 || r.body["scope"] != "notes.read" {
		t.Fatalf("private_key_jwt: %d %v", r.status, r.body)
	}
	if r := h.post("/token", form(a), "", ""); r.status != 401 || r.body["error"] != "invalid_client" {
		t.Fatalf("replayed assertion: %d %v", r.status, r.body)
	}
	if r := h.post("/token", form(assertion("jti-2", h.URL, time.Now().Add(time.Minute))), "", ""); r.status != 200 {
		t.Fatalf("aud = issuer: %d %v", r.status, r.body)
	}
	if r := h.post("/token", form(assertion("jti-3", "https://elsewhere.example/token", time.Now().Add(time.Minute))), "", ""); r.status != 401 {
		t.Fatalf("wrong aud: %d %v", r.status, r.body)
	}
	if r := h.post("/token", form(assertion("jti-4", h.URL, time.Now().Add(-time.Minute))), "", ""); r.status != 401 {
		t.Fatalf("expired: %d %v", r.status, r.body)
	}
}

// TestSelfRegisteredClientCanStepUp: MCP clients (the TypeScript SDK among
// them) register with the scope of their first challenge and step up later;
// the registered scope must not stop the step-up.
func TestSelfRegisteredClientCanStepUp(t *testing.T) {
	h := newHub(t)
	reg := h.jsonRequest(http.MethodPost, "/register", map[string]any{
		"client_name": "ts agent", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "scope": "notes.read",
	}, "")
	if reg.status != http.StatusCreated {
		t.Fatalf("registration: %d %v", reg.status, reg.body)
	}
	id := reg.body["client_id"].(string)
	b := h.Browser()
	conf := h.oauth2Config(id, "", "notes.read")
	if _, err := h.codeFlow(b, conf, []string{"notes.read"}); err != nil {
		t.Fatal(err)
	}
	conf.Scopes = []string{"notes.read", "notes.write"}
	v := oauth2.GenerateVerifier()
	p := b.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", h.Resource)))
	if p.Location != nil {
		t.Fatalf("the step-up skipped the consent screen: %s", p.Location)
	}
	if got := servertest.Offered(p.Body); !slices.Contains(got, "notes.write") {
		t.Fatalf("step-up consent offers %v, want notes.write", got)
	}
}
