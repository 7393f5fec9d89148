package server_test

import (
	"context"
	"crypto/rand"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// TestIntrospectionAcrossReplicas: two hubs on one SQLite file, as two
// replicas sharing the signing keys. A token one hub issued, introspected
// as active by the other several times in a row (anything it might keep
// of the token warm), introspects as exactly {"active":false} at that
// other hub on the very next request after the first hub revokes it, and
// after the agent is disabled through the first hub's store: no change
// feed, no cache between the store and the answer (RFC 7662 §2.2).
func TestIntrospectionAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "agentid.db")
	kek, err := keyring.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	var hubs [2]*hub
	for i := range hubs {
		st := openSQLiteStore(t, path)
		keys, err := token.NewKeys(ctx, token.Options{Store: st, Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		hubs[i] = &hub{servertest.NewOn(t, st, func(c *server.Config) {
			c.Keys = keys
			if i > 0 {
				c.Issuer = hubs[0].URL // replicas share one issuer
			}
		})}
	}
	a, b := hubs[0], hubs[1]
	rsSecret := a.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
	a.LinkResourceServer("notes-mcp")

	issue := func(t *testing.T, id string) (tok, secret string) {
		t.Helper()
		secret = a.AddClient(&store.Client{ID: id, GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: a.Resource})
		r := a.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, id, secret)
		if r.status != 200 {
			t.Fatalf("client credentials at hub a: %d %v", r.status, r.body)
		}
		tok = r.body["access_token"].(string)
		for range 3 {
			if got := b.introspect(tok, "notes-mcp", rsSecret); got["active"] != true || got["client_id"] != id {
				t.Fatalf("hub b before the change: %v, want active", got)
			}
		}
		return tok, secret
	}
	inactiveAtB := func(t *testing.T, what, tok string) {
		t.Helper()
		if got := b.introspect(tok, "notes-mcp", rsSecret); len(got) != 1 || got["active"] != false {
			t.Fatalf("%s: hub b's next introspection = %v, want exactly {\"active\":false}", what, got)
		}
	}

	t.Run("revoked at the other hub", func(t *testing.T) {
		tok, secret := issue(t, "agent-revoke")
		if r := a.post("/revoke", url.Values{"token": {tok}}, "agent-revoke", secret); r.status != 200 {
			t.Fatalf("revoke at hub a: %d %v", r.status, r.body)
		}
		inactiveAtB(t, "revoked through hub a", tok)
	})
	t.Run("agent disabled at the other hub", func(t *testing.T) {
		tok, _ := issue(t, "agent-disabled")
		if _, err := a.Store.UpdateClient(ctx, store.DefaultTenant, "agent-disabled", func(c *store.Client) error {
			c.Disabled = true
			return nil
		}, nil); err != nil {
			t.Fatal(err)
		}
		inactiveAtB(t, "agent disabled through hub a's store", tok)
	})
}
