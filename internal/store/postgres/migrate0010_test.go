package postgres

import (
	"testing"

	"github.com/agentid/agentid/internal/store/storetest"
)

// TestMigration0010KeepsData seeds a version-9 database with the rows
// storetest.Migration0010Seeded describes and lets CheckMigration0010
// migrate it and read them back.
func TestMigration0010KeepsData(t *testing.T) {
	ctx := t.Context()
	s, _ := storeAtVersion(t, 9)
	created := storetest.Migration0010Seeded
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
	storetest.CheckMigration0010(t, ctx, s)
}
