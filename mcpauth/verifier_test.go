package mcpauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
	"github.com/go-jose/go-jose/v4"
)

// hubPublicKey fetches the test hub's current public key, as an attacker
// could.
func hubPublicKey(t *testing.T, hub *mcpauthtest.Server) (jwkJSON []byte, pemBytes []byte) {
	t.Helper()
	resp, err := http.Get(hub.Issuer() + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	k := set.Keys[len(set.Keys)-1]
	jwkJSON, _ = json.Marshal(k)
	der, err := x509.MarshalPKIXPublicKey(k.Key.(*ecdsa.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return jwkJSON, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// forge builds a compact JWS with the given header over the payload of a
// genuine token, signed by sign (nil: empty signature).
func forge(genuine, header string, sign func(input string) []byte) string {
	parts := strings.Split(genuine, ".")
	input := b64(header) + "." + parts[1]
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hs256(secret []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	h, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestMiddlewareRejects is the adversarial table: every token here must be
// refused with the right status, error code and challenge.
func TestMiddlewareRejects(t *testing.T) {
	f := newFixture(t, nil)
	hub, now := f.hub, f.clock.Now()
	genuine := hub.Token(resource, "notes:read")
	jwk, pemKey := hubPublicKey(t, hub)
	other := mcpauthtest.NewServer(t) // a different hub with its own keys

	tampered := func() string {
		parts := strings.Split(genuine, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"notes:read"`, `"notes:admin"`, 1))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}()
	if tampered == genuine {
		t.Fatal("tampering did not change the token")
	}

	tests := []struct {
		name      string
		req       func() *http.Request
		wantCode  int
		wantError string // error attribute of the challenge; "" = none
		wantKind  error
	}{
		{
			name:     "no token",
			req:      func() *http.Request { return request("POST", "", "") },
			wantCode: 401, wantKind: mcpauth.ErrNoToken,
		},
		{
			name: "other auth scheme",
			req: func() *http.Request {
				r := request("POST", "", "")
				r.SetBasicAuth("user", "pass")
				return r
			},
			wantCode: 401, wantKind: mcpauth.ErrNoToken,
		},
		{
			name: "expired",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenExpired,
		},
		{
			name: "expired just beyond the leeway",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-31 * time.Second)}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenExpired,
		},
		{
			name: "no exp",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, OmitExpiry: true}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "not yet valid",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, NotBefore: now.Add(time.Hour)}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenNotYetValid,
		},
		{
			name: "issued in the future",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, IssuedAt: now.Add(time.Hour)}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenNotYetValid,
		},
		{
			name: "wrong aud: token for another resource",
			req: func() *http.Request {
				return request("POST", hub.Token("https://other.example.com/mcp", "notes:read"), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrWrongAudience,
		},
		{
			name:     "wrong aud: origin only",
			req:      func() *http.Request { return request("POST", hub.Token("https://mcp.example.com", "notes:read"), "") },
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrWrongAudience,
		},
		{
			name: "no aud",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Scopes: []string{"notes:read"}}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrWrongAudience,
		},
		{
			name: "wrong iss",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Issuer: "https://evil.example.com"}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrWrongIssuer,
		},
		{
			name: "wrong typ: JWT",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Type: "JWT"}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "wrong typ: ID token",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Type: "id_token+jwt"}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "typ missing",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, OmitType: true}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name:     "alg none",
			req:      func() *http.Request { return request("POST", forge(genuine, `{"alg":"none","typ":"at+jwt"}`, nil), "") },
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "alg None with the real kid",
			req: func() *http.Request {
				return request("POST", forge(genuine, `{"alg":"None","typ":"at+jwt","kid":"`+kidOf(t, genuine)+`"}`, nil), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "HMAC signed with the public JWK as secret",
			req: func() *http.Request {
				return request("POST", forge(genuine, `{"alg":"HS256","typ":"at+jwt","kid":"`+kidOf(t, genuine)+`"}`, hs256(jwk)), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "HMAC signed with the public PEM as secret",
			req: func() *http.Request {
				return request("POST", forge(genuine, `{"alg":"HS256","typ":"at+jwt"}`, hs256(pemKey)), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "alg switched to RS256 over an EC key",
			req: func() *http.Request {
				parts := strings.Split(genuine, ".")
				return request("POST", forge(genuine, `{"alg":"RS256","typ":"at+jwt","kid":"`+kidOf(t, genuine)+`"}`, func(string) []byte {
					s, _ := base64.RawURLEncoding.DecodeString(parts[2])
					return s
				}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "unknown kid",
			req: func() *http.Request {
				return request("POST", hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, KeyID: "no-such-key"}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "signed by another hub's key under our kid",
			req: func() *http.Request {
				return request("POST", other.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Issuer: hub.Issuer(), KeyID: kidOf(t, genuine)}), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name:     "tampered payload",
			req:      func() *http.Request { return request("POST", tampered, "") },
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "critical header",
			req: func() *http.Request {
				return request("POST", forge(genuine, `{"alg":"ES256","typ":"at+jwt","crit":["exp"],"exp":1}`, nil), "")
			},
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name:     "not a JWT",
			req:      func() *http.Request { return request("POST", "opaque-token-value", "") },
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name:     "JWE-shaped",
			req:      func() *http.Request { return request("POST", "a.b.c.d.e", "") },
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name:     "oversized",
			req:      func() *http.Request { return request("POST", strings.Repeat("a", 20000)+".b.c", "") },
			wantCode: 401, wantError: "invalid_token", wantKind: mcpauth.ErrTokenInvalid,
		},
		{
			name: "empty bearer",
			req: func() *http.Request {
				r := request("POST", "", "")
				r.Header.Set("Authorization", "Bearer ")
				return r
			},
			wantCode: 400, wantError: "invalid_request", wantKind: mcpauth.ErrInvalidRequest,
		},
		{
			name: "bearer with junk",
			req: func() *http.Request {
				r := request("POST", "", "")
				r.Header.Set("Authorization", "Bearer "+genuine+" extra")
				return r
			},
			wantCode: 400, wantError: "invalid_request", wantKind: mcpauth.ErrInvalidRequest,
		},
		{
			name: "two Authorization headers",
			req: func() *http.Request {
				r := request("POST", genuine, "")
				r.Header.Add("Authorization", "Bearer "+genuine)
				return r
			},
			wantCode: 400, wantError: "invalid_request", wantKind: mcpauth.ErrInvalidRequest,
		},
		{
			name: "token in the query",
			req: func() *http.Request {
				return httptest.NewRequest("POST", resource+"?access_token="+genuine, nil)
			},
			wantCode: 400, wantError: "invalid_request", wantKind: mcpauth.ErrInvalidRequest,
		},
	}
	mw := mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{Scopes: []string{"notes:read"}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.Check(tt.req())
			if !errors.Is(err, tt.wantKind) {
				t.Errorf("Check() error = %v, want %v", err, tt.wantKind)
			}
			if tt.wantError == "invalid_token" && !errors.Is(err, mcpauth.ErrTokenInvalid) {
				t.Errorf("Check() error = %v does not match ErrTokenInvalid", err)
			}
			if te, ok := errors.AsType[*mcpauth.TokenError](err); !ok {
				t.Errorf("Check() error %T is not a *TokenError", err)
			} else if strings.Contains(te.Error(), genuine) || strings.Contains(te.Error(), genuine[:20]) {
				t.Errorf("error message leaks the token: %q", te.Error())
			}

			rec, s := serve(t, mw, tt.req())
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.wantCode, rec.Body)
			}
			if s.called {
				t.Fatal("protected handler ran")
			}
			ch := challenge(t, rec)
			if ch["resource_metadata"] != metadataURL {
				t.Errorf("resource_metadata = %q, want %q", ch["resource_metadata"], metadataURL)
			}
			if ch["error"] != tt.wantError {
				t.Errorf("error = %q, want %q", ch["error"], tt.wantError)
			}
			if tt.wantError != "" && ch["error_description"] == "" {
				t.Error("error_description missing")
			}
			if ch["scope"] != "notes:read" {
				t.Errorf("scope = %q, want %q", ch["scope"], "notes:read")
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] == "" {
				t.Errorf("body %q is not a JSON error: %v", rec.Body, err)
			}
			if strings.Contains(rec.Body.String(), genuine[:20]) {
				t.Error("response body echoes the token")
			}
		})
	}
}

func TestMiddlewareAccepts(t *testing.T) {
	f := newFixture(t, nil)
	now := f.clock.Now()
	tests := []struct {
		name  string
		token string
	}{
		{"plain", f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Scopes: []string{"notes:read", "notes:write"}, JTI: "jti-1"})},
		{"aud array", f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{"https://other.example.com", resource}, Scopes: []string{"notes:read", "notes:write"}, JTI: "jti-1"})},
		{"aud with trailing slash", f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource + "/"}, Scopes: []string{"notes:read", "notes:write"}, JTI: "jti-1"})},
		{"typ application/at+jwt", f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Type: "application/AT+JWT", Scopes: []string{"notes:read", "notes:write"}, JTI: "jti-1"})},
		{"expired within the leeway", f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, IssuedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-20 * time.Second), Scopes: []string{"notes:read", "notes:write"}, JTI: "jti-1"})},
		{"nbf within the leeway", f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, NotBefore: now.Add(20 * time.Second), Scopes: []string{"notes:read", "notes:write"}, JTI: "jti-1"})},
	}
	mw := mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request("POST", "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
			r.Header.Set("Authorization", "bearer  "+tt.token) // scheme is case-insensitive, 1*SP
			rec, s := serve(t, mw, r)
			if rec.Code != http.StatusNoContent || !s.called {
				t.Fatalf("status = %d, handler called = %v, body %s", rec.Code, s.called, rec.Body)
			}
			c := s.claims
			if c == nil {
				t.Fatal("no claims in context")
			}
			if c.Subject != "user-1" || c.JTI != "jti-1" || c.Issuer != f.hub.Issuer() || c.ClientID == "" {
				t.Errorf("claims = %+v", c)
			}
			if !slices.Equal(c.Scopes, []string{"notes:read", "notes:write"}) || !c.HasScopes("notes:write") || c.HasScopes("notes:delete") {
				t.Errorf("scopes = %q", c.Scopes)
			}
			if c.ExpiresAt.IsZero() || c.IssuedAt.IsZero() {
				t.Errorf("times not parsed: %+v", c)
			}
			if s.body != `{"jsonrpc":"2.0","id":1,"method":"tools/list"}` {
				t.Errorf("body seen by handler = %q", s.body)
			}
		})
	}
}

func TestMiddlewarePassesPreflight(t *testing.T) {
	f := newFixture(t, nil)
	rec, s := serve(t, mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{}), request(http.MethodOptions, "", ""))
	if !s.called || rec.Code != http.StatusNoContent {
		t.Fatalf("preflight: status %d, handler called %v", rec.Code, s.called)
	}
}

func TestClaimsAct(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.hub.TokenWith(mcpauthtest.TokenOptions{
		Audience: []string{resource},
		Extra:    map[string]any{"act": map[string]any{"sub": "agent-7"}, "auth_time": f.clock.Now().Add(-time.Minute).Unix()},
	})
	c, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Act) != `{"sub":"agent-7"}` {
		t.Errorf("Act = %s", c.Act)
	}
	if c.AuthTime.IsZero() {
		t.Error("auth_time not parsed")
	}
	if _, ok := c.Raw["act"]; !ok {
		t.Error("Raw lacks act")
	}

	bad := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Extra: map[string]any{"exp": "tomorrow"}})
	if _, err := f.v.Verify(context.Background(), bad); !errors.Is(err, mcpauth.ErrTokenInvalid) {
		t.Errorf("string exp: err = %v, want ErrTokenInvalid", err)
	}
}

// TestUnknownKidRefetchRateLimited floods the verifier with made-up kids and
// checks the hub's key set is fetched at most once per interval.
func TestUnknownKidRefetchRateLimited(t *testing.T) {
	f := newFixture(t, nil)
	start := f.hub.JWKSFetches()
	if start != 1 {
		t.Fatalf("JWKS fetched %d times at start-up, want 1", start)
	}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, KeyID: fmt.Sprintf("bogus-%d", i)})
			if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, mcpauth.ErrTokenInvalid) {
				t.Errorf("bogus kid %d: err = %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := f.hub.JWKSFetches() - start; got > 1 {
		t.Fatalf("100 bogus kids caused %d key set fetches, want at most 1", got)
	}
	f.clock.Advance(11 * time.Second)
	for i := range 10 {
		tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, KeyID: fmt.Sprintf("again-%d", i)})
		_, _ = f.v.Verify(context.Background(), tok)
	}
	if got := f.hub.JWKSFetches() - start; got > 2 {
		t.Fatalf("after the interval: %d fetches in total, want at most 2", got)
	}
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t, nil)
	old := f.hub.Token(resource, "notes:read")
	if err := f.hub.RotateKey(); err != nil {
		t.Fatal(err)
	}
	fresh := f.hub.Token(resource, "notes:read")
	if kidOf(t, old) == kidOf(t, fresh) {
		t.Fatal("rotation kept the kid")
	}
	for name, tok := range map[string]string{"new kid": fresh, "old kid still published": old} {
		if _, err := f.v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := f.hub.JWKSFetches(); got != 2 {
		t.Errorf("JWKS fetches = %d, want 2 (start-up + one refetch for the new kid)", got)
	}

	// A rotation right after a refetch waits out the rate limit.
	if err := f.hub.RotateKey(); err != nil {
		t.Fatal(err)
	}
	newer := f.hub.Token(resource, "notes:read")
	if _, err := f.v.Verify(context.Background(), newer); !errors.Is(err, mcpauth.ErrTokenInvalid) {
		t.Errorf("within the interval: err = %v, want ErrTokenInvalid", err)
	}
	f.clock.Advance(11 * time.Second)
	if _, err := f.v.Verify(context.Background(), newer); err != nil {
		t.Errorf("after the interval: %v", err)
	}
}

func TestStaleKeySetRefreshed(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, ExpiresAt: f.clock.Now().Add(3 * time.Hour)})
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if got := f.hub.JWKSFetches(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
	f.clock.Advance(61 * time.Minute)
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if got := f.hub.JWKSFetches(); got != 2 {
		t.Fatalf("fetches = %d after an hour, want 2", got)
	}
}

func TestHubUnavailable(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, KeyID: "rotated-while-down"})
	f.hub.Close()
	_, err := f.v.Verify(context.Background(), tok)
	if !errors.Is(err, mcpauth.ErrUnavailable) || errors.Is(err, mcpauth.ErrTokenInvalid) {
		t.Fatalf("err = %v, want ErrUnavailable only", err)
	}
	rec, s := serve(t, mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{}), request("POST", tok, ""))
	if rec.Code != http.StatusServiceUnavailable || s.called {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	if h := rec.Header().Get("WWW-Authenticate"); h != "" {
		t.Errorf("503 carries a challenge %q; clients would re-authorize in vain", h)
	}
}

func TestIntrospection(t *testing.T) {
	t.Run("revoked token rejected once the positive cache expires", func(t *testing.T) {
		f := newFixture(t, introspection(0)) // default 5 s cache
		tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, JTI: "to-revoke"})
		for range 3 {
			if _, err := f.v.Verify(context.Background(), tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.hub.Introspections(); n != 1 {
			t.Fatalf("introspections = %d, want 1 (positive answers are cached)", n)
		}
		f.hub.Revoke("to-revoke")
		f.clock.Advance(6 * time.Second)
		for range 2 {
			_, err := f.v.Verify(context.Background(), tok)
			if !errors.Is(err, mcpauth.ErrTokenRevoked) || !errors.Is(err, mcpauth.ErrTokenInvalid) {
				t.Fatalf("err = %v, want ErrTokenRevoked", err)
			}
		}
		if n := f.hub.Introspections(); n != 3 {
			t.Fatalf("introspections = %d, want 3 (negative answers are not cached)", n)
		}
		rec, _ := serve(t, mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{}), request("POST", tok, ""))
		if ch := challenge(t, rec); rec.Code != 401 || ch["error"] != "invalid_token" || ch["resource_metadata"] != metadataURL {
			t.Fatalf("revoked: status %d, challenge %v", rec.Code, ch)
		}
	})
	t.Run("no cache: revocation is immediate", func(t *testing.T) {
		f := newFixture(t, introspection(-1))
		tok := f.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, JTI: "j"})
		if _, err := f.v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		f.hub.Revoke("j")
		if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, mcpauth.ErrTokenRevoked) {
			t.Fatalf("err = %v, want ErrTokenRevoked", err)
		}
	})
	t.Run("local checks still apply", func(t *testing.T) {
		f := newFixture(t, introspection(0))
		if _, err := f.v.Verify(context.Background(), f.hub.Token("https://other.example.com/mcp")); !errors.Is(err, mcpauth.ErrWrongAudience) {
			t.Fatalf("err = %v, want ErrWrongAudience", err)
		}
		if n := f.hub.Introspections(); n != 0 {
			t.Fatalf("introspected a locally invalid token %d times", n)
		}
	})
	t.Run("bad credentials: unavailable, not invalid", func(t *testing.T) {
		f := newFixture(t, func(c *mcpauth.Config, _ *mcpauthtest.Server) {
			c.Introspection = &mcpauth.IntrospectionConfig{ClientID: "nobody", ClientSecret: "wrong"}
		})
		_, err := f.v.Verify(context.Background(), f.hub.Token(resource))
		if !errors.Is(err, mcpauth.ErrUnavailable) || errors.Is(err, mcpauth.ErrTokenInvalid) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
}

// TestIntrospectionOpaque checks the introspection-only path for tokens that
// are not JWTs, against a stub hub whose answers the test controls.
func TestIntrospectionOpaque(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	var answer string
	var mu sync.Mutex
	var hub *httptest.Server
	hub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q,"introspection_endpoint":%q}`, hub.URL, hub.URL+"/jwks", hub.URL+"/introspect")
		case "/jwks":
			fmt.Fprint(w, `{"keys":[]}`)
		case "/introspect":
			if id, secret, ok := r.BasicAuth(); !ok || id != "rs" || secret != "s%3Ac" { // ":" is form-encoded
				w.WriteHeader(401)
				return
			}
			if r.PostFormValue("token") != "opaque-123" {
				fmt.Fprint(w, `{"active":false}`)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprint(w, answer)
		}
	}))
	defer hub.Close()
	v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{
		Issuer: hub.URL, Resource: resource,
		Introspection: &mcpauth.IntrospectionConfig{ClientID: "rs", ClientSecret: "s:c", CacheTTL: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		answer string
		want   error
	}{
		{"active", fmt.Sprintf(`{"active":true,"iss":%q,"aud":%q,"exp":%d,"scope":"a b","sub":"u"}`, hub.URL, resource, exp), nil},
		{"inactive", `{"active":false}`, mcpauth.ErrTokenRevoked},
		{"active as string", `{"active":"true"}`, mcpauth.ErrUnavailable},
		{"other audience", fmt.Sprintf(`{"active":true,"iss":%q,"aud":"https://x.example","exp":%d}`, hub.URL, exp), mcpauth.ErrWrongAudience},
		{"no issuer", fmt.Sprintf(`{"active":true,"aud":%q,"exp":%d}`, resource, exp), mcpauth.ErrWrongIssuer},
		{"no exp", fmt.Sprintf(`{"active":true,"iss":%q,"aud":%q}`, hub.URL, resource), mcpauth.ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			answer = tt.answer
			mu.Unlock()
			c, err := v.Verify(context.Background(), "opaque-123")
			if tt.want == nil {
				if err != nil || !slices.Equal(c.Scopes, []string{"a", "b"}) || c.Subject != "u" {
					t.Fatalf("Verify = %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
