package mcpauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
)

// TestPlainHTTPHubRefused: a hub reached over plain http could have its
// signing keys replaced on the way; only loopback may skip TLS.
func TestPlainHTTPHubRefused(t *testing.T) {
	tests := []struct {
		issuer string
		ok     bool
	}{
		{"http://hub.example.com", false},
		{"http://10.0.0.5:8080", false},
		{"https://hub.example.com", true},
		{"http://127.0.0.1:8080", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
	}
	for _, tc := range tests {
		t.Run(tc.issuer, func(t *testing.T) {
			cfg := mcpauth.Config{Issuer: tc.issuer, Resource: "https://mcp.example.com/mcp"}
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate(%q) = %v, want ok=%v", tc.issuer, err, tc.ok)
			}
		})
	}
}

// TestIntrospectedRefreshTokenRefused: in introspection mode an active
// token whose token_type is not an access token's is refused.
func TestIntrospectedRefreshTokenRefused(t *testing.T) {
	const resource = "http://127.0.0.1:9999/mcp"
	for _, tc := range []struct {
		tokenType string
		ok        bool
	}{{"refresh_token", false}, {"Bearer", true}, {"", true}} {
		t.Run("token_type="+tc.tokenType, func(t *testing.T) {
			var hub *httptest.Server
			hub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/.well-known/oauth-authorization-server":
					fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q,"introspection_endpoint":%q}`, hub.URL, hub.URL+"/jwks", hub.URL+"/introspect")
				case "/jwks":
					fmt.Fprint(w, `{"keys":[]}`)
				case "/introspect":
					fmt.Fprintf(w, `{"active":true,"token_type":%q,"iss":%q,"aud":[%q],"exp":%d,"scope":"notes:read","sub":"u","client_id":"rs"}`,
						tc.tokenType, hub.URL, resource, time.Now().Add(time.Hour).Unix())
				}
			}))
			defer hub.Close()
			v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{Issuer: hub.URL, Resource: resource,
				Introspection: &mcpauth.IntrospectionConfig{ClientID: "rs", ClientSecret: "s", CacheTTL: -1}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), "an-opaque-token-value")
			if (err == nil) != tc.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
