package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/store/migrate"
	"github.com/agentid/agentid/internal/store/storetest"
)

// TestMigration0010KeepsData seeds a version-9 database with the rows
// storetest.Migration0010Seeded describes and lets CheckMigration0010
// migrate it and read them back.
func TestMigration0010KeepsData(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "v9.db"), defaultMaxBatch)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrate.Run(ctx, dialect{s}, ms[:9], nil); err != nil {
		t.Fatal(err)
	}
	created := storetest.Migration0010Seeded
	err = s.w.do(ctx, func(tx *wtx) error {
		for _, q := range []string{
			`INSERT INTO resources (tenant_id, id, uri, name, access_token_ttl_ns, tags, client_id, created_at)
			 VALUES ('default', 'r1', 'https://files.example.com/mcp', 'Files', 300000000000, '["pii"]', 'rs-files', ?1)`,
			`INSERT INTO resource_scopes (tenant_id, resource_uri, name, position, description, sensitive)
			 VALUES ('default', 'https://files.example.com/mcp', 'files:read', 0, 'Read files', 0),
			        ('default', 'https://files.example.com/mcp', 'files:write', 1, 'Write files', 1)`,
			`INSERT INTO signing_keys (kid, algorithm, public_jwk, private_enc, activate_at, created_at)
			 VALUES ('k1', 'ES256', '{}', X'76317c6b656b2d31', ?1, ?1)`,
		} {
			if _, err := tx.exec(q, created.UnixMicro()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckMigration0010(t, ctx, s)
}
