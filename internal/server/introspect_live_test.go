package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// TestIntrospectionInactiveAtOnce: a token the resource server has just
// introspected as active, several times in a row (so that anything the hub
// might remember of it is warm), introspects as exactly {"active":false}
// on the very next request after each of the changes that end it — its
// revocation, the person withdrawing consent, its client or its user
// disabled without any token being revoked (the hub's own liveness check
// alone), its signing key withdrawn from the key set — and the audit trail
// records why (RFC 7662 §2.2: an inactive token reveals nothing else).
// The person is disabled last: every case shares her.
func TestIntrospectionInactiveAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *hub) {
		ctx := context.Background()
		rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		b := h.Browser()

		// tokens registers an agent, gets a person's access token for it
		// through the browser, and a client-credentials token of its own.
		tokens := func(t *testing.T, id string) (person, cc, secret string) {
			t.Helper()
			secret = h.AddClient(&store.Client{ID: id, RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
			tok, err := h.codeFlow(b, h.oauth2Config(id, secret, "notes.read"), []string{"notes.read"})
			if err != nil {
				t.Fatal(err)
			}
			r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, id, secret)
			if r.status != 200 {
				t.Fatalf("client credentials: %d %v", r.status, r.body)
			}
			return tok.AccessToken, r.body["access_token"].(string), secret
		}
		active := func(t *testing.T, tok string) {
			t.Helper()
			for range 3 {
				if got := h.introspect(tok, "notes-mcp", rs); got["active"] != true {
					t.Fatalf("introspection before the change = %v, want active", got)
				}
			}
		}
		inactive := func(t *testing.T, what, tok, clientID, reason string) {
			t.Helper()
			for range 2 {
				if got := h.introspect(tok, "notes-mcp", rs); len(got) != 1 || got["active"] != false {
					t.Fatalf("%s: introspection = %v, want exactly {\"active\":false}", what, got)
				}
			}
			evs, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.TokenIntrospectedInactive, ClientID: clientID})
			if err != nil || len(evs) == 0 || evs[0].Details["reason"] != reason {
				t.Errorf("%s: token.introspected_inactive = %+v, %v; want reason %q", what, evs, err, reason)
			}
		}
		setClientDisabled := func(t *testing.T, id string) {
			t.Helper()
			if _, err := h.Store.UpdateClient(ctx, store.DefaultTenant, id, func(c *store.Client) error {
				c.Disabled = true
				return nil
			}, nil); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("token revoked", func(t *testing.T) {
			person, cc, secret := tokens(t, "agent-revoke")
			active(t, person)
			active(t, cc)
			for _, tok := range []string{person, cc} {
				if r := h.post("/revoke", url.Values{"token": {tok}}, "agent-revoke", secret); r.status != 200 {
					t.Fatalf("revoke: %d %v", r.status, r.body)
				}
			}
			inactive(t, "a revoked person's token", person, "agent-revoke", audit.InactiveRevoked)
			inactive(t, "a revoked client-credentials token", cc, "agent-revoke", audit.InactiveRevoked)
		})
		t.Run("consent withdrawn", func(t *testing.T) {
			person, cc, _ := tokens(t, "agent-consent")
			active(t, person)
			csrf := cfField(t, cfCSRF, h.account(b).Body)
			if p := h.revoke(b, csrf, url.Values{"client_id": {"agent-consent"}, "resource": {h.Resource}, "scope": {"notes.read"}}); p.URL.Query().Get("done") != "revoked" {
				t.Fatalf("withdrawing consent: %d %s", p.Status, p.URL)
			}
			inactive(t, "a token of withdrawn consent", person, "agent-consent", audit.InactiveRevoked)
			active(t, cc) // the agent's own token rests on no consent
		})
		t.Run("client disabled", func(t *testing.T) {
			person, cc, _ := tokens(t, "agent-disabled")
			active(t, person)
			active(t, cc)
			setClientDisabled(t, "agent-disabled")
			inactive(t, "a disabled agent's person token", person, "agent-disabled", audit.InactiveClientGone)
			inactive(t, "a disabled agent's own token", cc, "agent-disabled", audit.InactiveClientGone)
		})
		t.Run("signing key withdrawn", func(t *testing.T) {
			person, cc, _ := tokens(t, "agent-key")
			if _, err := h.Keys.Rotate(ctx, true); err != nil {
				t.Fatal(err)
			}
			// Retired, the key is still published: its tokens stay active.
			active(t, person)
			active(t, cc)
			// Withdrawn: an operator ends the old key's life now, and the
			// key set reloads (as the change feed has every replica do).
			var withdrawn int
			for _, k := range h.Keys.List() {
				if k.RetiredAt.IsZero() {
					continue
				}
				k.ExpiresAt = time.Now().Add(-time.Second)
				if err := h.Store.UpdateSigningKey(ctx, k); err != nil {
					t.Fatal(err)
				}
				withdrawn++
			}
			if withdrawn == 0 {
				t.Fatal("no retired key to withdraw")
			}
			if err := h.Keys.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			for _, tok := range []string{person, cc} {
				if got := h.introspect(tok, "notes-mcp", rs); len(got) != 1 || got["active"] != false {
					t.Fatalf("a token of a withdrawn key: introspection = %v, want exactly {\"active\":false}", got)
				}
			}
		})
		t.Run("user disabled", func(t *testing.T) {
			person, cc, _ := tokens(t, "agent-user")
			active(t, person)
			updateUser(t, h.Store, "u-alice", func(u *store.User) { u.Disabled = true })
			inactive(t, "a disabled person's token", person, "agent-user", audit.InactiveUserGone)
			active(t, cc) // the agent's own token is no person's
		})
	})
}

// TestIntrospectionRecordedToken: a token whose SHA-256 is the one the hub
// recorded at minting introspects without a signature check (its record,
// read anyway for revocation, vouches for it); the same token with its
// signature altered matches no record and fails its signature check.
func TestIntrospectionRecordedToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *hub) {
		bot := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
		at := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", bot).body["access_token"].(string)
		before := h.Keys.SignatureChecks()
		if got := h.introspect(at, "bot", bot); got["active"] != true || got["client_id"] != "bot" || got["scope"] != "notes.read" {
			t.Fatalf("introspection = %v, want active", got)
		}
		if n := h.Keys.SignatureChecks() - before; n != 0 {
			t.Errorf("%d signature checks for a recorded token, want 0", n)
		}
		sig := strings.LastIndexByte(at, '.') + 1
		flip := byte('A')
		if at[sig] == 'A' {
			flip = 'B'
		}
		altered := at[:sig] + string(flip) + at[sig+1:]
		if got := h.introspect(altered, "bot", bot); len(got) != 1 || got["active"] != false {
			t.Fatalf("altered signature: introspection = %v, want exactly {\"active\":false}", got)
		}
		if h.Keys.SignatureChecks() == before {
			t.Error("the altered token was not checked by its signature")
		}
	})
}
