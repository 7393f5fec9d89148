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

// TestPolicyLeavesNothing: when policy denies every requested scope,
// the authorization endpoint shows why and links back with invalid_scope
// (no consent screen) and a refresh answers invalid_scope, recording a
// token.denied event with the deciding policy.
func TestPolicyLeavesNothing(t *testing.T) {
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
		// The person sees why (issue 9 item 2), then takes the client back
		// an invalid_scope.
		back := servertest.BackLink(p.Body)
		if p.Location != nil || back == nil || strings.Contains(p.Body, `action="/authorize/decision"`) {
			t.Fatalf("want the refusal page with a link back, no consent form: %d %v\n%s", p.Status, p.Location, p.Body)
		}
		if e := back.Query().Get("error"); e != "invalid_scope" {
			t.Fatalf("authorize with every scope denied: %s", back)
		}
	})
}
