package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
)

// TestMigration0008KeepsData upgrades a version-7 database holding a
// client and a token family and checks they read back: the client active,
// never used, without a software statement; the tokens of no installation;
// and that a migrated client can be pruned and touched.
func TestMigration0008KeepsData(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "v7.db"), defaultMaxBatch)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrate.Run(ctx, dialect{s}, ms[:7], nil); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	err = s.w.do(ctx, func(tx *wtx) error {
		for _, q := range []string{
			`INSERT INTO clients (tenant_id, id, name, registration_method, software_id, token_endpoint_auth_method, created_at, updated_at)
			 VALUES ('default', 'c1', 'Old agent', 'dcr', 'sw', 'none', ?1, ?1)`,
			`INSERT INTO refresh_tokens (hash, tenant_id, grant_id, client_id, user_id, resource, auth_time, created_at, expires_at)
			 VALUES (x'01', 'default', 'g1', 'c1', 'u1', 'https://r/', ?1, ?1, ?1 + 3600000000)`,
			`INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, expires_at)
			 VALUES ('j1', 'default', 'g1', 'c1', 'u1', 'https://r/', ?1 + 600000000)`,
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
	from, to, err := s.Migrate(ctx)
	if err != nil || from != 7 || to < 8 {
		t.Fatalf("Migrate = %d→%d, %v; want 7→≥8", from, to, err)
	}
	c, err := s.GetClient(ctx, store.DefaultTenant, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != store.ClientActive || !c.LastUsedAt.IsZero() || c.SoftwareStatementIssuer != "" {
		t.Fatalf("client after migration = status %q, last used %v, issuer %q", c.Status, c.LastUsedAt, c.SoftwareStatementIssuer)
	}
	rt, err := s.GetRefreshToken(ctx, []byte{1})
	if err != nil || rt.RedirectURI != "" {
		t.Fatalf("refresh token after migration = %+v, %v", rt, err)
	}
	if list, err := s.ClientsBySoftware(ctx, store.DefaultTenant, "sw", ""); err != nil || len(list) != 1 {
		t.Fatalf("ClientsBySoftware = %d, %v", len(list), err)
	}
	// The family is live until an hour after creation; the client goes
	// once it has expired.
	req := store.PruneRequest{TenantID: store.DefaultTenant, Methods: []string{store.RegistrationDCR},
		UnusedSince: created.Add(time.Minute), Now: created.Add(time.Minute)}
	if got, err := s.PruneClients(ctx, req, nil); err != nil || len(got) != 0 {
		t.Fatalf("PruneClients with a live family = %d, %v", len(got), err)
	}
	req.Now = created.Add(2 * time.Hour)
	if got, err := s.PruneClients(ctx, req, nil); err != nil || len(got) != 1 {
		t.Fatalf("PruneClients after expiry = %d, %v", len(got), err)
	}
}
