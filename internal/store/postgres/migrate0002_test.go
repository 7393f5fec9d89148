package postgres

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// TestMigration0002BackfillsRequestedScopes upgrades a version-1 schema
// holding clients: each existing client is taken to have asked for the
// ceiling it was given, so a later recomputation never widens it.
func TestMigration0002BackfillsRequestedScopes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.FreshSchema(t)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		createMigrationsTableSQL,
		ms[0].SQL,
		`INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')`,
		`INSERT INTO clients (tenant_id, id, name, token_endpoint_auth_method, application_type, scopes, default_resource,
			jwks, jwks_uri, client_uri, logo_uri, tos_uri, policy_uri, software_id, software_version, registration_method,
			created_ip, owner_user_id, disabled, created_at, updated_at)
		 VALUES ('default', 'dcr-1', '', 'none', 'web', ARRAY['notes.read','notes.write'], '', '', '', '', '', '', '', '', '', 'dcr',
			'', '', false, now(), now()),
		        ('default', 'manual-1', '', 'none', 'web', NULL, '', '', '', '', '', '', '', '', '', 'manual',
			'', '', false, now(), now())`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, dsn)
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
