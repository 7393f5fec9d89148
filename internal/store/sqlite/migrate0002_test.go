package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	"github.com/agentid/agentid/internal/store"
)

// TestMigration0002BackfillsRequestedScopes upgrades a version-1 database
// holding clients: each existing client is taken to have asked for the
// ceiling it was given, so a later recomputation never widens it.
func TestMigration0002BackfillsRequestedScopes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		createMigrationsTable,
		ms[0].SQL,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO clients (tenant_id, id, scopes, registration_method) VALUES ('default', 'dcr-1', '["notes.read","notes.write"]', 'dcr')`,
		`INSERT INTO clients (tenant_id, id, scopes, registration_method) VALUES ('default', 'manual-1', '[]', 'manual')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	from, to, err := s.Migrate(ctx)
	if err != nil || from != 1 || to < 2 {
		t.Fatalf("Migrate = %d→%d, %v; want 1→≥2", from, to, err)
	}
	tests := []struct {
		id   string
		want []string
	}{
		{"dcr-1", []string{"notes.read", "notes.write"}},
		{"manual-1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			c, err := s.GetClient(ctx, store.DefaultTenant, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.RequestedScopes, tc.want) || !slices.Equal(c.Scopes, tc.want) {
				t.Fatalf("scopes %v requested %v, want both %v", c.Scopes, c.RequestedScopes, tc.want)
			}
		})
	}
}
