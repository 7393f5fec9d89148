package server_test

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestReviewPolicyLeavesNothing: when policy denies every requested scope,
// the authorization endpoint redirects with invalid_scope (before any
// consent screen) and a refresh answers invalid_scope, recording a
// token.denied event with the deciding policy.
func TestReviewPolicyLeavesNothing(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read", "notes.write")
	tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read", "notes.write"})
	if err != nil {
		t.Fatal(err)
	}
	applyPolicy(t, h.Store, h.engine, `@id("agent-1-cut-off")
forbid (principal == Agent::"agent-1", action == Action::"grant", resource);`)
	h.settle()

	t.Run("refresh", func(t *testing.T) {
		r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent-1", secret)
		if r.status != http.StatusBadRequest || r.body["error"] != "invalid_scope" {
			t.Fatalf("refresh with every scope denied: %d %v", r.status, r.body)
		}
		evs := h.auditEvents(audit.TokenDenied)
		if len(evs) != 1 {
			t.Fatalf("token.denied events: %v", evs)
		}
		checkDecisions(t, evs[0], map[string]string{
			"notes.read": "denied:agent-1-cut-off", "notes.write": "denied:agent-1-cut-off",
		})
	})
	t.Run("authorize", func(t *testing.T) {
		b := h.Browser()
		p := b.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource)))
		if strings.Contains(p.Body, `action="/login"`) {
			p = b.Login(p, servertest.TestUser, servertest.TestPassword)
		}
		if p.Location == nil {
			t.Fatalf("no redirect to the client (consent screen shown?): %d", p.Status)
		}
		if e := p.Location.Query().Get("error"); e != "invalid_scope" {
			t.Fatalf("authorize with every scope denied: %s", p.Location)
		}
	})
}
