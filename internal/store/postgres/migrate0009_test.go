package postgres

import (
	"testing"

	"github.com/agentid/agentid/internal/store/storetest"
)

// TestMigration0009KeepsData seeds a version-8 database with the rows
// storetest.Migration0009Seeded describes and lets CheckMigration0009
// migrate it and read them back.
func TestMigration0009KeepsData(t *testing.T) {
	ctx := t.Context()
	s, _ := storeAtVersion(t, 8)
	created := storetest.Migration0009Seeded
	for _, q := range []string{
		`INSERT INTO users (tenant_id, id, username, password_hash, roles, disabled, created_at, updated_at)
		 VALUES ('default', 'u1', 'alice', 'h', '{admin}', false, $1, $1)`,
		`INSERT INTO clients (tenant_id, id, name, token_endpoint_auth_method, application_type, default_resource,
		 jwks, jwks_uri, client_uri, logo_uri, tos_uri, policy_uri, software_id, software_version,
		 registration_method, created_ip, owner_user_id, disabled, created_at, updated_at)
		 VALUES ('default', 'c1', 'Old agent', 'none', '', '', '', '', '', '', '', '', '', '', 'manual', '', '', false, $1, $1)`,
		`INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, scopes, expires_at, redirect_uri)
		 VALUES ('j1', 'default', 'g1', 'c1', 'u1', 'https://r/', '{a,b}', $1::timestamptz + interval '10 minutes', 'http://127.0.0.1/cb')`,
	} {
		if _, err := s.pool.Exec(ctx, q, created); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	storetest.CheckMigration0009(t, ctx, s)
}
