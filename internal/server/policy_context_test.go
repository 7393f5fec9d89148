package server_test

import (
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestSessionAgeReachesPolicy: the token endpoint gives policies the
// age of the user's session (context.auth_age_seconds), so a policy that
// wants a recent login bites on a refresh made long after the login.
func TestSessionAgeReachesPolicy(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	applyPolicy(t, h.Store, h.engine, `@id("write-needs-recent-login")
forbid (principal, action == Action::"grant", resource)
when { resource.name == "notes.write" && context has user }
unless { context has auth_age_seconds && context.auth_age_seconds < 300 };`)
	h.settle()
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read", "notes.write"), []string{"notes.read", "notes.write"})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read notes.write" {
		t.Fatalf("fresh login: scope %v, want both", got)
	}
	h.clock.Advance(10 * time.Minute)
	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent-1", secret)
	if r.status != http.StatusOK || r.body["scope"] != "notes.read" {
		t.Fatalf("refresh ten minutes after login: %d %v, want notes.write dropped", r.status, r.body)
	}
	checkDecisions(t, lastIssued(t, h.Store, "agent-1"), map[string]string{
		"notes.read": "granted:user-consent", "notes.write": "denied:write-needs-recent-login",
	})
}

// TestRequestContextReachesPolicy: the caller's address and the
// request's resource reach policies at the token endpoint.
func TestRequestContextReachesPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy string
	}{
		{name: "ip", policy: `@id("no-write-from-loopback")
forbid (principal, action, resource)
when { resource.name == "notes.write" && context has ip && context.ip.isLoopback() };`},
		{name: "resource", policy: `@id("no-write-on-this-resource")
forbid (principal, action, resource)
when { resource.name == "notes.write" && context.resource like "http://127.0.0.1:*/mcp" };`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
			applyPolicy(t, h.Store, h.engine, tt.policy)
			h.settle()
			secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read", "cc:notes.write"}})
			r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "resource": {h.Resource}, "scope": {"notes.read notes.write"}}, "bot", secret)
			if r.status != http.StatusOK || r.body["scope"] != "notes.read" {
				t.Fatalf("got %d %v, want notes.write denied", r.status, r.body)
			}
		})
	}
}
