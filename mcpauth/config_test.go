package mcpauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
)

func TestConfigValidate(t *testing.T) {
	base := mcpauth.Config{Issuer: "https://hub.example.com", Resource: resource}
	tests := []struct {
		name    string
		mutate  func(*mcpauth.Config)
		wantErr []string // substrings, all reported at once
	}{
		{"valid", func(*mcpauth.Config) {}, nil},
		{"valid with options", func(c *mcpauth.Config) {
			c.Algorithms = []string{"ES384", "EdDSA"}
			c.Leeway = time.Minute
			c.Introspection = &mcpauth.IntrospectionConfig{ClientID: "rs"}
		}, nil},
		{"missing everything", func(c *mcpauth.Config) { *c = mcpauth.Config{} }, []string{"Issuer", "Resource"}},
		{"issuer with query", func(c *mcpauth.Config) { c.Issuer += "?x=1" }, []string{"Issuer"}},
		{"issuer not http", func(c *mcpauth.Config) { c.Issuer = "hub.example.com" }, []string{"Issuer"}},
		{"resource with fragment", func(c *mcpauth.Config) { c.Resource += "#f" }, []string{"Resource"}},
		{"alg none", func(c *mcpauth.Config) { c.Algorithms = []string{"none"} }, []string{`"none"`}},
		{"HMAC", func(c *mcpauth.Config) { c.Algorithms = []string{"ES256", "HS256"} }, []string{`"HS256"`}},
		{"empty alg list", func(c *mcpauth.Config) { c.Algorithms = []string{} }, []string{"Algorithms"}},
		{"negative leeway", func(c *mcpauth.Config) { c.Leeway = -time.Second }, []string{"Leeway"}},
		{"huge leeway", func(c *mcpauth.Config) { c.Leeway = time.Hour }, []string{"Leeway"}},
		{"introspection without client", func(c *mcpauth.Config) { c.Introspection = &mcpauth.IntrospectionConfig{} }, []string{"Introspection.ClientID"}},
		{"all problems at once", func(c *mcpauth.Config) {
			c.Issuer, c.Algorithms, c.Leeway = "", []string{"HS512"}, -1
		}, []string{"Issuer", "HS512", "Leeway"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want mention of %s", err, w)
				}
			}
		})
	}
}

// stubHub serves handlers by path and lets tests use its own URL in them.
func stubHub(t *testing.T, routes func(base string) map[string]string, status map[string]int) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, ok := status[r.URL.Path]; ok {
			w.WriteHeader(code)
			return
		}
		body, ok := routes(srv.URL)[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscovery(t *testing.T) {
	md := func(iss, jwks string) string { return fmt.Sprintf(`{"issuer":%q,"jwks_uri":%q}`, iss, jwks) }
	tests := []struct {
		name       string
		issuerPath string
		routes     func(base string) map[string]string
		status     map[string]int
		intro      bool
		wantErr    bool
		wantUnavl  bool
	}{
		{
			name: "RFC 8414 metadata",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/oauth-authorization-server": md(b, b+"/keys"), "/keys": `{"keys":[]}`}
			},
		},
		{
			name: "OpenID Connect fallback",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/openid-configuration": md(b, b+"/keys"), "/keys": `{"keys":[]}`}
			},
		},
		{
			name:       "issuer with a path: inserted well-known",
			issuerPath: "/tenant1",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/oauth-authorization-server/tenant1": md(b+"/tenant1", b+"/keys"), "/keys": `{"keys":[]}`}
			},
		},
		{
			name:       "issuer with a path: appended OIDC",
			issuerPath: "/tenant1",
			routes: func(b string) map[string]string {
				return map[string]string{"/tenant1/.well-known/openid-configuration": md(b+"/tenant1", b+"/keys"), "/keys": `{"keys":[]}`}
			},
		},
		{
			name: "issuer mismatch",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/oauth-authorization-server": md("https://evil.example.com", b+"/keys"), "/keys": `{"keys":[]}`}
			},
			wantErr: true,
		},
		{
			name: "issuer differs by a trailing slash",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/oauth-authorization-server": md(b+"/", b+"/keys"), "/keys": `{"keys":[]}`}
			},
			wantErr: true,
		},
		{
			name:    "no metadata anywhere",
			routes:  func(string) map[string]string { return nil },
			wantErr: true,
		},
		{
			name:      "metadata server error",
			routes:    func(string) map[string]string { return nil },
			status:    map[string]int{"/.well-known/oauth-authorization-server": 502},
			wantErr:   true,
			wantUnavl: true,
		},
		{
			name: "no jwks_uri",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/oauth-authorization-server": fmt.Sprintf(`{"issuer":%q}`, b)}
			},
			wantErr: true,
		},
		{
			name: "key set missing",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/oauth-authorization-server": md(b, b+"/keys")}
			},
			wantErr: true, wantUnavl: true,
		},
		{
			name: "introspection wanted but not offered",
			routes: func(b string) map[string]string {
				return map[string]string{"/.well-known/oauth-authorization-server": md(b, b+"/keys"), "/keys": `{"keys":[]}`}
			},
			intro:   true,
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := stubHub(t, tt.routes, tt.status)
			cfg := mcpauth.Config{Issuer: srv.URL + tt.issuerPath, Resource: resource}
			if tt.intro {
				cfg.Introspection = &mcpauth.IntrospectionConfig{ClientID: "rs"}
			}
			_, err := mcpauth.NewVerifier(context.Background(), cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewVerifier() error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantUnavl != errors.Is(err, mcpauth.ErrUnavailable) {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v (err %v)", !tt.wantUnavl, tt.wantUnavl, err)
			}
		})
	}
}

// TestKeySetFiltering: keys that must never verify are dropped from the set.
func TestKeySetFiltering(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.hub.Token(resource)
	kid := kidOf(t, tok)
	genuine, _ := hubPublicKey(t, f.hub)
	// Serve the hub's key three ways that must all be ignored, and once
	// correctly under another kid that the token does not use.
	jwks := func(mutate string) string {
		return `{"keys":[` + strings.Replace(string(genuine), `"kid":"`+kid+`"`, mutate, 1) + `]}`
	}
	tests := []struct {
		name string
		keys string
	}{
		{"use enc", strings.Replace(jwks(`"kid":"`+kid+`"`), `"use":"sig"`, `"use":"enc"`, 1)},
		{"alg mismatch", strings.Replace(jwks(`"kid":"`+kid+`"`), `"alg":"ES256"`, `"alg":"ES384"`, 1)},
		{"symmetric key under the kid", `{"keys":[{"kty":"oct","kid":"` + kid + `","k":"c2VjcmV0"}]}`},
		{"garbage key", `{"keys":[{"kty":"EC","kid":"` + kid + `","crv":"P-256","x":"AA","y":"AA"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := stubHub(t, func(b string) map[string]string {
				return map[string]string{
					"/.well-known/oauth-authorization-server": fmt.Sprintf(`{"issuer":%q,"jwks_uri":%q}`, f.hub.Issuer(), b+"/keys"),
					"/keys": tt.keys,
				}
			}, nil)
			// The stub's metadata names the real hub as issuer, so fetch the
			// metadata from the stub by pointing the client there.
			client := &http.Client{Transport: rewriteHost(f.hub.Issuer(), srv.URL)}
			v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{Issuer: f.hub.Issuer(), Resource: resource, HTTPClient: client})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, mcpauth.ErrTokenInvalid) {
				t.Fatalf("err = %v, want ErrTokenInvalid", err)
			}
		})
	}
}

type rewriteTransport struct{ from, to string }

func rewriteHost(from, to string) http.RoundTripper { return rewriteTransport{from, to} }

func (rt rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL.String()
	if strings.HasPrefix(u, rt.from) {
		nr, err := http.NewRequestWithContext(r.Context(), r.Method, rt.to+strings.TrimPrefix(u, rt.from), r.Body)
		if err != nil {
			return nil, err
		}
		nr.Header = r.Header
		r = nr
	}
	return http.DefaultTransport.RoundTrip(r)
}
