package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// The admin operations as the CLI performs them (cmd/agentid): the change,
// then the revocation it implies.
func disableClient(t *testing.T, st store.Store, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.UpdateClient(ctx, store.DefaultTenant, id, func(c *store.Client) error {
		c.Disabled = true
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeClientTokens(ctx, store.DefaultTenant, id, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
}

func updateUser(t *testing.T, st store.Store, id string, change func(*store.User)) {
	t.Helper()
	ctx := context.Background()
	u, err := st.GetUser(ctx, store.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	change(u)
	if err := st.UpdateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
}

func revokeUserAccess(t *testing.T, st store.Store, id string) {
	t.Helper()
	if err := st.RevokeUserAccess(context.Background(), store.DefaultTenant, id, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
}

// TestDisableAndDeleteEndTokens: after clients delete / disable, users
// disable / set-password, every token of that client or user introspects
// inactive — issued before the change or during it (while the token path
// still has the client cached) — its refresh tokens are dead, and a
// password change or disable ends the user's browser sessions.
func TestDisableAndDeleteEndTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *hub) {
		rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		type session struct {
			b   *servertest.Browser
			tok struct{ access, refresh string }
		}
		// start registers an agent (also a client-credentials one), signs
		// alice in through it and returns her browser and tokens.
		start := func(t *testing.T, id string) (secret string, s session) {
			secret = h.AddClient(&store.Client{ID: id, RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
			s.b = h.Browser()
			tok, err := h.codeFlow(s.b, h.oauth2Config(id, secret, "notes.read"), []string{"notes.read"})
			if err != nil {
				t.Fatal(err)
			}
			s.tok.access, s.tok.refresh = tok.AccessToken, tok.RefreshToken
			// Warm the token path's client cache, as a busy agent does.
			if r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, id, secret); r.status != http.StatusOK {
				t.Fatalf("client credentials: %d %v", r.status, r.body)
			}
			return secret, s
		}
		inactive := func(t *testing.T, what, tok string) {
			t.Helper()
			if got := h.introspect(tok, "notes-mcp", rs); len(got) != 1 || got["active"] != false {
				t.Errorf("%s introspects %v, want {\"active\":false}", what, got)
			}
		}
		refreshDead := func(t *testing.T, rt, id, secret string) {
			t.Helper()
			rec, err := h.Store.GetRefreshToken(context.Background(), token.Hash(rt))
			if err != nil || rec.RevokedAt.IsZero() {
				t.Errorf("refresh token record = %+v, %v; want revoked", rec, err)
			}
			if r := h.refresh(rt, id, secret); r.status == http.StatusOK {
				t.Errorf("the old refresh token still works: %v", r.body)
			}
		}
		signedOut := func(t *testing.T, b *servertest.Browser) {
			t.Helper()
			if p := b.Get(h.URL + "/account"); p.URL.Path != "/login" {
				t.Errorf("the browser session survived: %d at %s", p.Status, p.URL)
			}
		}

		t.Run("clients disable", func(t *testing.T) {
			secret, s := start(t, "agent-disable")
			disableClient(t, h.Store, "agent-disable")
			// Within the cache's two seconds the token path still knows the
			// client as enabled; the issuance itself must refuse.
			if r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "agent-disable", secret); r.status == http.StatusOK {
				inactive(t, "a token minted during the disable", r.body["access_token"].(string))
				t.Errorf("a token was minted for a disabled client")
			}
			inactive(t, "an access token issued before", s.tok.access)
			refreshDead(t, s.tok.refresh, "agent-disable", secret)
		})
		t.Run("clients delete", func(t *testing.T) {
			secret, s := start(t, "agent-delete")
			if err := h.Store.DeleteClient(context.Background(), store.DefaultTenant, "agent-delete", time.Now(), nil); err != nil {
				t.Fatal(err)
			}
			if r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "agent-delete", secret); r.status == http.StatusOK {
				inactive(t, "a token minted during the delete", r.body["access_token"].(string))
				t.Errorf("a token was minted for a deleted client")
			}
			inactive(t, "an access token issued before", s.tok.access)
		})
		t.Run("users disable", func(t *testing.T) {
			secret, s := start(t, "agent-user-off")
			updateUser(t, h.Store, "u-alice", func(u *store.User) { u.Disabled = true })
			// Issued while the user is disabled but before the revocation:
			// the issuance itself refuses.
			if r := h.refresh(s.tok.refresh, "agent-user-off", secret); r.status == http.StatusOK {
				t.Errorf("a refresh succeeded for a disabled user")
			}
			revokeUserAccess(t, h.Store, "u-alice")
			inactive(t, "an access token issued before", s.tok.access)
			refreshDead(t, s.tok.refresh, "agent-user-off", secret)
			signedOut(t, s.b)
			// Enabling the user again brings nothing back.
			updateUser(t, h.Store, "u-alice", func(u *store.User) { u.Disabled = false })
			inactive(t, "an access token issued before, after re-enabling", s.tok.access)
			refreshDead(t, s.tok.refresh, "agent-user-off", secret)
		})
		t.Run("users set-password", func(t *testing.T) {
			secret, s := start(t, "agent-password")
			updateUser(t, h.Store, "u-alice", func(u *store.User) { u.PasswordHash = "changed" })
			// A refresh between the change and the revocation: its tokens
			// must end too.
			r := h.refresh(s.tok.refresh, "agent-password", secret)
			if r.status != http.StatusOK {
				t.Fatalf("refresh: %d %v", r.status, r.body)
			}
			during := struct{ access, refresh string }{r.body["access_token"].(string), r.body["refresh_token"].(string)}
			revokeUserAccess(t, h.Store, "u-alice")
			inactive(t, "an access token issued before", s.tok.access)
			inactive(t, "an access token issued during", during.access)
			refreshDead(t, during.refresh, "agent-password", secret)
			signedOut(t, s.b)
		})
	})
}
