package mcpauthtest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func postForm(t *testing.T, u string, form url.Values, id, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestMetadataAndKeys(t *testing.T) {
	hub := mcpauthtest.NewServer(t)
	md := getJSON(t, hub.Issuer()+"/.well-known/oauth-authorization-server")
	if md["issuer"] != hub.Issuer() || md["jwks_uri"] != hub.Issuer()+"/jwks" || md["token_endpoint"] == nil || md["introspection_endpoint"] == nil {
		t.Errorf("metadata = %v", md)
	}
	if s, _ := json.Marshal(md["code_challenge_methods_supported"]); string(s) != `["S256"]` {
		t.Errorf("code_challenge_methods_supported = %s", s)
	}
	if s, _ := json.Marshal(md["response_types_supported"]); string(s) != `["code"]` {
		t.Errorf("response_types_supported = %s", s)
	}
	if n := hub.JWKSFetches(); n != 0 {
		t.Fatalf("JWKSFetches = %d before any fetch", n)
	}
	keys := getJSON(t, hub.Issuer()+"/jwks")["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("%d keys", len(keys))
	}
	if k := keys[0].(map[string]any); k["d"] != nil || k["kty"] != "EC" || k["alg"] != "ES256" || k["kid"] == "" {
		t.Errorf("published key = %v", k)
	}
	if err := hub.RotateKey(); err != nil {
		t.Fatal(err)
	}
	if keys := getJSON(t, hub.Issuer()+"/jwks")["keys"].([]any); len(keys) != 2 {
		t.Errorf("after rotation: %d keys, want 2", len(keys))
	}
	if n := hub.JWKSFetches(); n != 2 {
		t.Errorf("JWKSFetches = %d, want 2", n)
	}
}

func TestIntrospectAndRevoke(t *testing.T) {
	now := time.Now()
	hub := mcpauthtest.NewServer(t, mcpauthtest.WithClock(func() time.Time { return now }))
	id, secret := hub.IntrospectionCredentials()
	tok := hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{"https://mcp.example.com/mcp"}, Scopes: []string{"a"}, JTI: "j-1"})
	tests := []struct {
		name       string
		token      string
		id, secret string
		revoke     bool
		wantCode   int
		wantActive bool
	}{
		{name: "active", token: tok, id: id, secret: secret, wantCode: 200, wantActive: true},
		{name: "no client auth", token: tok, wantCode: 401},
		{name: "wrong secret", token: tok, id: id, secret: "nope", wantCode: 401},
		{name: "garbage token", token: "x.y.z", id: id, secret: secret, wantCode: 200},
		{name: "expired", token: hub.TokenWith(mcpauthtest.TokenOptions{ExpiresAt: now.Add(-time.Second)}), id: id, secret: secret, wantCode: 200},
		{name: "other hub's token", token: mcpauthtest.NewServer(t).Token("r"), id: id, secret: secret, wantCode: 200},
		{name: "revoked", token: tok, id: id, secret: secret, revoke: true, wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.revoke {
				hub.Revoke("j-1")
			}
			code, body := postForm(t, hub.Issuer()+"/introspect", url.Values{"token": {tt.token}}, tt.id, tt.secret)
			if code != tt.wantCode {
				t.Fatalf("status = %d, want %d", code, tt.wantCode)
			}
			if code != 200 {
				return
			}
			if body["active"] != tt.wantActive {
				t.Fatalf("active = %v, want %v (%v)", body["active"], tt.wantActive, body)
			}
			if !tt.wantActive && len(body) != 1 {
				t.Errorf("inactive response carries more than active: %v", body) // RFC 7662 §2.2
			}
			if tt.wantActive && (body["jti"] != "j-1" || body["scope"] != "a" || body["aud"] != "https://mcp.example.com/mcp") {
				t.Errorf("claims = %v", body)
			}
		})
	}
}

func TestTokenEndpoint(t *testing.T) {
	hub := mcpauthtest.NewServer(t, mcpauthtest.WithTokenLifetime(time.Minute))
	id, secret := hub.IntrospectionCredentials()
	tests := []struct {
		name      string
		form      url.Values
		id        string
		secret    string
		wantCode  int
		wantError string
	}{
		{name: "client credentials", form: url.Values{"grant_type": {"client_credentials"}, "resource": {"https://mcp.example.com/mcp"}, "scope": {"a b"}}, id: id, secret: secret, wantCode: 200},
		{name: "credentials in the form", form: url.Values{"grant_type": {"client_credentials"}, "resource": {"r"}, "client_id": {id}, "client_secret": {secret}}, wantCode: 200},
		{name: "bad secret", form: url.Values{"grant_type": {"client_credentials"}, "resource": {"r"}}, id: id, secret: "x", wantCode: 401, wantError: "invalid_client"},
		{name: "other grant", form: url.Values{"grant_type": {"password"}}, id: id, secret: secret, wantCode: 400, wantError: "unsupported_grant_type"},
		{name: "no resource", form: url.Values{"grant_type": {"client_credentials"}}, id: id, secret: secret, wantCode: 400, wantError: "invalid_target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := postForm(t, hub.Issuer()+"/token", tt.form, tt.id, tt.secret)
			if code != tt.wantCode || (tt.wantError != "" && body["error"] != tt.wantError) {
				t.Fatalf("status %d body %v, want %d %s", code, body, tt.wantCode, tt.wantError)
			}
			if code == 200 && (body["access_token"] == "" || body["token_type"] != "Bearer" || body["expires_in"] != float64(60)) {
				t.Errorf("token response = %v", body)
			}
		})
	}
	t.Run("default audience", func(t *testing.T) {
		hub := mcpauthtest.NewServer(t, mcpauthtest.WithDefaultAudience("https://mcp.example.com/mcp"))
		code, body := postForm(t, hub.Issuer()+"/token", url.Values{"grant_type": {"client_credentials"}}, id, secret)
		if code != 200 {
			t.Fatalf("status %d %v", code, body)
		}
		_, intro := postForm(t, hub.Issuer()+"/introspect", url.Values{"token": {body["access_token"].(string)}}, id, secret)
		if intro["aud"] != "https://mcp.example.com/mcp" || intro["sub"] != id {
			t.Errorf("introspection = %v", intro)
		}
	})
}

// TestTokenExchange: the RFC 8693 grant as the hub does it (act chain,
// narrowed scopes, capped expiry) and its error codes.
func TestTokenExchange(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	hub := mcpauthtest.NewServer(t, mcpauthtest.WithClock(func() time.Time { return now }))
	id, secret := hub.IntrospectionCredentials()
	const (
		grant  = "urn:ietf:params:oauth:grant-type:token-exchange"
		atType = "urn:ietf:params:oauth:token-type:access_token"
		api    = "https://api.example.com/"
	)
	subject := hub.TokenWith(mcpauthtest.TokenOptions{
		Audience: []string{"https://mcp.example.com/mcp"}, Subject: "alice", ClientID: "agent-7",
		Scopes: []string{"a", "b"}, ExpiresAt: now.Add(90 * time.Second),
		Extra: map[string]any{"act": map[string]any{"sub": "mcp-0"}},
	})
	form := func(mut func(url.Values)) url.Values {
		f := url.Values{"grant_type": {grant}, "subject_token": {subject}, "subject_token_type": {atType}, "resource": {api}}
		if mut != nil {
			mut(f)
		}
		return f
	}

	code, body := postForm(t, hub.Issuer()+"/token", form(func(f url.Values) { f.Set("scope", "a") }), id, secret)
	if code != 200 || body["issued_token_type"] != atType || body["token_type"] != "Bearer" ||
		body["expires_in"] != float64(90) || body["scope"] != "a" {
		t.Fatalf("status %d, response %v", code, body)
	}
	_, intro := postForm(t, hub.Issuer()+"/introspect", url.Values{"token": {body["access_token"].(string)}}, id, secret)
	act, _ := json.Marshal(intro["act"])
	if intro["sub"] != "alice" || intro["client_id"] != id || intro["aud"] != api ||
		string(act) != `{"act":{"sub":"mcp-0"},"sub":"`+id+`"}` {
		t.Errorf("exchanged token claims = %v", intro)
	}

	for _, tc := range []struct {
		name string
		mut  func(url.Values)
		code string
	}{
		{"subject token type", func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:jwt") }, "unsupported_token_type"},
		{"requested token type", func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag") }, "unsupported_token_type"},
		{"not a hub token", func(f url.Values) { f.Set("subject_token", "x.y.z") }, "invalid_grant"},
		{"no resource", func(f url.Values) { f.Del("resource") }, "invalid_target"},
		{"wider scope", func(f url.Values) { f.Set("scope", "a c") }, "invalid_scope"},
	} {
		if code, body := postForm(t, hub.Issuer()+"/token", form(tc.mut), id, secret); code != 400 || body["error"] != tc.code {
			t.Errorf("%s: status %d, %v; want %s", tc.name, code, body, tc.code)
		}
	}
}
