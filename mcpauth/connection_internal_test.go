package mcpauth

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const testHub = "https://hub.example"

// connectionRequiredBody is the hub's connection_required answer with
// connect_uri uri.
func connectionRequiredBody(t testing.TB, uri string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{
		"error": "connection_required", "error_description": "connect it",
		"connect_uri": uri, "provider": "calendar", "connection_status": "missing",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConnectURIOnlyTheHubsConnectPage: the connect URL a retrieval error
// carries goes to the person (as a URL elicitation or in a tool error);
// only the hub's own connect page for the provider asked is passed on, so
// that nothing between the hub and this server (or a hub misconfigured
// behind a proxy) can send the person to sign in somewhere else.
func TestConnectURIOnlyTheHubsConnectPage(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	tests := []struct {
		name, issuer, uri string
		ok                bool
	}{
		{"the hub's connect page", testHub, testHub + "/connections/connect/calendar?intent=v1.abc", true},
		{"host case differs", testHub, "https://HUB.example/connections/connect/calendar?intent=x", true},
		{"issuer with a path", testHub + "/t1", testHub + "/t1/connections/connect/calendar?intent=x", true},
		{"another site", testHub, "https://evil.example/connections/connect/calendar?intent=x", false},
		{"a look-alike host", testHub, "https://hub.example.evil.example/connections/connect/calendar?intent=x", false},
		{"another port", testHub, "https://hub.example:8443/connections/connect/calendar?intent=x", false},
		{"plain http to the hub's host", testHub, "http://hub.example/connections/connect/calendar?intent=x", false},
		{"another page of the hub", testHub, testHub + "/login?return_to=%2Fconnections", false},
		{"another provider's page", testHub, testHub + "/connections/connect/mail?intent=x", false},
		{"outside the issuer's path", testHub + "/t1", testHub + "/t2/connections/connect/calendar?intent=x", false},
		{"dot segments", testHub, testHub + "/connections/connect/../../login?intent=x", false},
		{"a script", testHub, "javascript:alert(1)", false},
		{"user info", testHub, "https://hub.example@evil.example/connections/connect/calendar", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseRetrievalResponse(400, connectionRequiredBody(t, tt.uri), now, tt.issuer, "calendar", []string{"calendar.read"}, 30*time.Second)
			cre, isCRE := errors.AsType[*ConnectRequiredError](err)
			switch {
			case tt.ok && (!isCRE || cre.URL != tt.uri):
				t.Fatalf("err = %v, want a ConnectRequiredError with %s", err, tt.uri)
			case !tt.ok && isCRE:
				t.Fatalf("connect URL %q passed on", cre.URL)
			case !tt.ok:
				xe, ok := errors.AsType[*ExchangeError](err)
				if !ok || xe.Code != errConnectionRequired || strings.Contains(xe.Error(), tt.uri) {
					t.Fatalf("err = %v, want the hub's error without the URL", err)
				}
			}
		})
	}
}

// FuzzRetrievalResponse: whatever the token endpoint answers to a
// retrieval, a success is a credential that can go into a request as it
// is, a connection_required passes on only the hub's connect page, and
// every other failure is an *ExchangeError with printable, bounded text.
func FuzzRetrievalResponse(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"tok","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":300,"scope":"calendar.read","provider":"calendar","connection_id":"conn_1"}`,
		`{"access_token":"k","issued_token_type":"urn:agentid:params:oauth:token-type:api_key","token_type":"N_A","key_header":"X-Key","key_header_value":"Bearer k"}`,
		`{"access_token":"k","issued_token_type":"urn:agentid:params:oauth:token-type:api_key","token_type":"N_A","key_query":"key"}`,
		`{"error":"connection_required","connect_uri":"https://hub.example/connections/connect/calendar?intent=x","connection_status":"needs_reauth"}`,
		`{"error":"connection_required","connect_uri":"https://evil.example/connections/connect/calendar?intent=x"}`,
		`{"error":"temporarily_unavailable"}`, `null`, `<html>`,
	} {
		f.Add(200, []byte(s))
		f.Add(400, []byte(s))
	}
	now := time.Unix(1_900_000_000, 0)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		cred, refreshAt, err := parseRetrievalResponse(status, body, now, testHub, "calendar", nil, 30*time.Second)
		if cre, ok := errors.AsType[*ConnectRequiredError](err); ok {
			if !strings.HasPrefix(cre.URL, testHub+"/connections/connect/calendar") {
				t.Fatalf("connect URL %q passed on", cre.URL)
			}
			return
		}
		if err != nil {
			xe, ok := errors.AsType[*ExchangeError](err)
			if !ok {
				t.Fatalf("error %T", err)
			}
			if quoteSafe(xe.Description) != xe.Description || len(xe.Description) > maxDescription || !validScopeToken(xe.Code) && xe.Code != "" {
				t.Fatalf("unsafe error %q %q", xe.Code, xe.Description)
			}
			return
		}
		if status != 200 || cred.AccessToken == "" || !headerValueSafe(cred.AccessToken) || !headerValueSafe(cred.KeyHeaderValue) {
			t.Fatalf("accepted status %d credential %q", status, cred.AccessToken)
		}
		if refreshAt.Before(now) || !cred.ExpiresAt.IsZero() && refreshAt.After(cred.ExpiresAt) {
			t.Fatalf("refresh at %v outside [%v, %v]", refreshAt, now, cred.ExpiresAt)
		}
	})
}
