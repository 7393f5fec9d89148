package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/store/migrate"
	"github.com/agentid/agentid/internal/store/storetest"
)

// TestMigration0009KeepsData seeds a version-8 database with the rows
// storetest.Migration0009Seeded describes and lets CheckMigration0009
// migrate it and read them back.
func TestMigration0009KeepsData(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "v8.db"), defaultMaxBatch)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrate.Run(ctx, dialect{s}, ms[:8], nil); err != nil {
		t.Fatal(err)
	}
	created := storetest.Migration0009Seeded
	err = s.w.do(ctx, func(tx *wtx) error {
		for _, q := range []string{
			`INSERT INTO users (tenant_id, id, username, password_hash, roles, disabled, created_at, updated_at)
			 VALUES ('default', 'u1', 'alice', 'h', '["admin"]', 0, ?1, ?1)`,
			`INSERT INTO clients (tenant_id, id, name, registration_method, token_endpoint_auth_method, created_at, updated_at)
			 VALUES ('default', 'c1', 'Old agent', 'manual', 'none', ?1, ?1)`,
			`INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, scopes, expires_at, redirect_uri)
			 VALUES ('j1', 'default', 'g1', 'c1', 'u1', 'https://r/', '["a","b"]', ?1 + 600000000, 'http://127.0.0.1/cb')`,
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
	storetest.CheckMigration0009(t, ctx, s)
}
