package postgres

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// TestMigration0010KeepsData upgrades a version-9 schema holding a
// resource with scopes and a signing key and checks they read back: the
// resource whole and linked to no provider, the key resealable; and that
// the vault's tables take providers and connections, and the resource
// provider links.
func TestMigration0010KeepsData(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, pgtest.FreshSchema(t))
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrate.Run(ctx, dialect{s}, ms[:9], nil); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO resources (tenant_id, id, uri, name, access_token_ttl_ns, consent_max_ttl_ns,
		 consent_default_ttl_ns, tags, client_id, created_at)
		 VALUES ('default', 'r1', 'https://files.example.com/mcp', 'Files', 300000000000, 0, 0, '{pii}', 'rs-files', $1)`, []any{created}},
		{`INSERT INTO resource_scopes (tenant_id, resource_uri, name, position, description, sensitive)
		 VALUES ('default', 'https://files.example.com/mcp', 'files:read', 0, 'Read files', false),
		        ('default', 'https://files.example.com/mcp', 'files:write', 1, 'Write files', true)`, nil},
		{`INSERT INTO signing_keys (kid, algorithm, public_jwk, private_enc, activate_at, created_at)
		 VALUES ('k1', 'ES256', '{}', 'v1|kek-1'::bytea, $1, $1)`, []any{created}},
	} {
		if _, err := s.pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	from, to, err := s.Migrate(ctx)
	if err != nil || from != 9 || to < 10 {
		t.Fatalf("Migrate = %d→%d, %v; want 9→≥10", from, to, err)
	}
	r, err := s.GetResource(ctx, store.DefaultTenant, "https://files.example.com/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "r1" || r.Name != "Files" || r.AccessTokenTTL != 5*time.Minute || r.ClientID != "rs-files" ||
		len(r.Tags) != 1 || len(r.Scopes) != 2 || r.Scopes[1].Name != "files:write" || !r.Scopes[1].Sensitive ||
		!r.CreatedAt.Equal(created) || len(r.Providers) != 0 {
		t.Fatalf("resource after migration = %+v", r)
	}
	if err := s.ResealSigningKey(ctx, "k1", []byte("v1|kek-1"), []byte("v1|kek-2")); err != nil {
		t.Fatalf("ResealSigningKey after migration: %v", err)
	}

	p := &store.Provider{TenantID: store.DefaultTenant, ID: "calendar", Name: "Calendar", Kind: store.ProviderOAuth2,
		TokenEndpoint: "https://cal.example.com/token", CreatedAt: created, UpdatedAt: created}
	if err := s.CreateProvider(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	r.Providers = []store.ResourceProvider{{ProviderID: "calendar", Scopes: map[string][]string{"files:read": {"calendar.read"}}}}
	if err := s.UpdateResource(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetResource(ctx, store.DefaultTenant, r.URI)
	if err != nil || len(got.Providers) != 1 || got.Providers[0].Scopes["files:read"][0] != "calendar.read" {
		t.Fatalf("resource with a provider = %+v, %v", got, err)
	}
	c := &store.Connection{TenantID: store.DefaultTenant, ID: "conn_1", ProviderID: "calendar", OwnerKind: store.OwnerUser,
		OwnerID: "u1", Status: store.ConnectionActive, DataKey: []byte("dek"), KEKID: "kek-1", Secret: []byte("s"),
		CreatedAt: created, UpdatedAt: created}
	if err := s.CreateConnection(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant}); err != nil || len(list) != 1 {
		t.Fatalf("ListConnections = %d, %v", len(list), err)
	}
}
