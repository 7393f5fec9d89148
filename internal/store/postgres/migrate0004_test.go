package postgres

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// TestMigration0004KeepsData upgrades a version-3 schema holding users,
// signing keys and policy sets in the old shape (groups, id, a jsonb files
// column) and checks every row reads back through the store.
func TestMigration0004KeepsData(t *testing.T) {
	ctx := t.Context()
	s, _ := storeAtVersion(t, 3)
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, q := range []string{
		`INSERT INTO users (tenant_id, id, username, password_hash, roles, groups, disabled, created_at, updated_at)
		 VALUES ('default', 'u1', 'alice', 'h', ARRAY['admin'], ARRAY['eng','ops'], false, $1, $1)`,
		`INSERT INTO signing_keys (id, algorithm, public_jwk, private_enc, activate_at, created_at)
		 VALUES ('kid-1', 'ES256', '{}', '\x01', $1, $1)`,
		`INSERT INTO policy_sets (tenant_id, version, files, comment, created_by, created_at, active) VALUES
		 ('default', 1, '{"base.cedar": "permit(principal, action, resource);", "extra.cedar": "forbid(principal, action, resource);"}', 'first', 'admin', $1, false),
		 ('default', 2, NULL, 'empty', 'admin', $1, true)`,
	} {
		if _, err := s.pool.Exec(ctx, q, at); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	from, to, err := s.Migrate(ctx)
	if err != nil || from != 3 || to < 4 {
		t.Fatalf("Migrate = %d→%d, %v; want 3→≥4", from, to, err)
	}
	t.Run("users", func(t *testing.T) {
		u, err := s.GetUser(ctx, store.DefaultTenant, "u1")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(u.Groups, []string{"eng", "ops"}) || !slices.Equal(u.Roles, []string{"admin"}) {
			t.Fatalf("user after migration = %+v", u)
		}
	})
	t.Run("signing keys", func(t *testing.T) {
		keys, err := s.ListSigningKeys(ctx)
		if err != nil || len(keys) != 1 || keys[0].ID != "kid-1" {
			t.Fatalf("ListSigningKeys = %v, %v", keys, err)
		}
		keys[0].RetiredAt = at
		if err := s.UpdateSigningKey(ctx, keys[0]); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("policy sets", func(t *testing.T) {
		sets, err := s.ListPolicySets(ctx, store.DefaultTenant)
		if err != nil || len(sets) != 2 {
			t.Fatalf("ListPolicySets = %d sets, %v", len(sets), err)
		}
		want := map[string]string{
			"base.cedar":  "permit(principal, action, resource);",
			"extra.cedar": "forbid(principal, action, resource);",
		}
		if sets[1].Version != 1 || !maps.Equal(sets[1].Files, want) {
			t.Fatalf("version 1 after migration = %+v", sets[1])
		}
		active, err := s.ActivePolicySet(ctx, store.DefaultTenant)
		if err != nil || active.Version != 2 || len(active.Files) != 0 {
			t.Fatalf("ActivePolicySet = %+v, %v", active, err)
		}
	})
}

// storeAtVersion opens a store on a fresh schema migrated to version (the
// first version migrations), for a test of the migrations after it; it
// returns every migration too.
func storeAtVersion(t *testing.T, version int) (*Store, []migrate.Migration) {
	t.Helper()
	s := openStore(t, pgtest.FreshSchema(t))
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrate.Run(t.Context(), dialect{s}, ms[:version], nil); err != nil {
		t.Fatal(err)
	}
	return s, ms
}
