package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// TestDomainsRecomputeCeilings: trusting a domain is a policy change for
// the metadata-document agents on it. `agentid domains add` recomputes
// their ceilings (audited), so an agent on a newly trusted domain may hold
// the sensitive scope it asked for; removing the domain takes it away.
func TestDomainsRecomputeCeilings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"AGENTID_DATA_DIR": dir}
	if code, _, stderr := runCLI(t, env, "resources", "add", "--uri", "https://notes.example.test/mcp", "--name", "Notes",
		"--scope", "notes.read=Read your notes", "--scope", "notes.delete=Delete your notes", "--sensitive", "notes.delete"); code != 0 {
		t.Fatalf("resources add: %s", stderr)
	}
	const id = "https://app.example.com/oauth/client.json"
	ctx := context.Background()
	withStore := func(fn func(st store.Store)) {
		t.Helper()
		st, err := sqlite.Open(ctx, filepath.Join(dir, "agentid.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		fn(st)
	}
	ceiling := func() []string {
		t.Helper()
		var got []string
		withStore(func(st store.Store) {
			c, err := st.GetClient(ctx, store.DefaultTenant, id)
			if err != nil {
				t.Fatal(err)
			}
			got = c.Scopes
		})
		return got
	}
	withStore(func(st store.Store) {
		now := time.Now()
		if err := st.CreateClient(ctx, &store.Client{TenantID: store.DefaultTenant, ID: id, Name: "Example", RegistrationMethod: store.RegistrationCIMD,
			TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code"},
			RequestedScopes: []string{"notes.read", "notes.delete"}, Scopes: []string{"notes.read"}, CreatedAt: now, UpdatedAt: now}, nil); err != nil {
			t.Fatal(err)
		}
	})

	code, stdout, stderr := runCLI(t, env, "domains", "add", "*.example.com", "--trust", "trusted")
	if code != 0 || !strings.Contains(stdout, "client "+id+": ceiling now notes.read notes.delete (added notes.delete)") {
		t.Fatalf("domains add: %d\n%s%s", code, stdout, stderr)
	}
	if got := ceiling(); !slices.Equal(got, []string{"notes.read", "notes.delete"}) {
		t.Fatalf("ceiling after trusting the domain: %v", got)
	}
	withStore(func(st store.Store) {
		evs, err := st.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, ClientID: id, Type: "client.updated"})
		if err != nil || len(evs) != 1 {
			t.Fatalf("client.updated events: %v %v", evs, err)
		}
	})

	code, stdout, stderr = runCLI(t, env, "domains", "remove", "*.example.com")
	if code != 0 || !strings.Contains(stdout, "(removed notes.delete)") {
		t.Fatalf("domains remove: %d\n%s%s", code, stdout, stderr)
	}
	if got := ceiling(); !slices.Equal(got, []string{"notes.read"}) {
		t.Fatalf("ceiling after removing the domain: %v", got)
	}
}
