package postgres

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestMigration0008KeepsData upgrades a version-7 schema holding a client
// and a token family and checks they read back: the client active, never
// used, without a software statement; the tokens of no installation; and
// that a migrated client can be pruned.
func TestMigration0008KeepsData(t *testing.T) {
	ctx := t.Context()
	s, _ := storeAtVersion(t, 7)
	created := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, q := range []string{
		`INSERT INTO clients (tenant_id, id, name, token_endpoint_auth_method, application_type, default_resource,
		 jwks, jwks_uri, client_uri, logo_uri, tos_uri, policy_uri, software_id, software_version,
		 registration_method, created_ip, owner_user_id, disabled, created_at, updated_at)
		 VALUES ('default', 'c1', 'Old agent', 'none', '', '', '', '', '', '', '', '', 'sw', '', 'dcr', '', '', false, $1, $1)`,
		`INSERT INTO refresh_tokens (hash, tenant_id, grant_id, client_id, user_id, resource, auth_time, created_at, expires_at)
		 VALUES ('\x01', 'default', 'g1', 'c1', 'u1', 'https://r/', $1::timestamptz, $1, $1 + interval '1 hour')`,
		`INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, expires_at)
		 VALUES ('j1', 'default', 'g1', 'c1', 'u1', 'https://r/', $1::timestamptz + interval '10 minutes')`,
	} {
		if _, err := s.pool.Exec(ctx, q, created); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
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
