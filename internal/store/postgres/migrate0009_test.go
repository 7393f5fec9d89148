package postgres

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// TestMigration0009KeepsData upgrades a version-8 schema holding a user, a
// client and an access token and checks they read back: the user without a
// profile, the client federated by no issuer, the token's record whole;
// that the migrated user takes a profile; and that issuers can be added.
func TestMigration0009KeepsData(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, pgtest.FreshSchema(t))
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrate.Run(ctx, dialect{s}, ms[:8], nil); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
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
	from, to, err := s.Migrate(ctx)
	if err != nil || from != 8 || to < 9 {
		t.Fatalf("Migrate = %d→%d, %v; want 8→≥9", from, to, err)
	}
	u, err := s.GetUser(ctx, store.DefaultTenant, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.Name != "" || u.Email != "" || u.EmailVerified || len(u.Roles) != 1 {
		t.Fatalf("user after migration = %+v", u)
	}
	c, err := s.GetClient(ctx, store.DefaultTenant, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Old agent" || c.FederatedIssuer != "" {
		t.Fatalf("client after migration = name %q, federated issuer %q", c.Name, c.FederatedIssuer)
	}
	at, err := s.GetAccessToken(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if at.GrantID != "g1" || at.UserID != "u1" || len(at.Scopes) != 2 || at.RedirectURI != "http://127.0.0.1/cb" ||
		!at.ExpiresAt.Equal(created.Add(10*time.Minute)) || !at.RevokedAt.IsZero() {
		t.Fatalf("access token after migration = %+v", at)
	}
	u.Name, u.Email, u.EmailVerified = "Alice", "alice@example.com", true
	if err := s.UpdateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetUserByUsername(ctx, store.DefaultTenant, "alice"); err != nil || got.Email != "alice@example.com" || !got.EmailVerified {
		t.Fatalf("user after profile update = %+v, %v", got, err)
	}
	if list, err := s.ListIssuers(ctx, store.DefaultTenant); err != nil || len(list) != 0 {
		t.Fatalf("ListIssuers after migration = %d, %v", len(list), err)
	}
	iss := &store.Issuer{TenantID: store.DefaultTenant, ID: "k8s", Issuer: "https://kubernetes.default.svc",
		JWKSURI: "https://kubernetes.default.svc/openid/v1/jwks", Uses: []string{store.IssuerUseWorkload},
		CreatedAt: created, UpdatedAt: created}
	if err := s.CreateIssuer(ctx, iss, nil); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListIssuers(ctx, store.DefaultTenant); err != nil || len(list) != 1 {
		t.Fatalf("ListIssuers = %d, %v", len(list), err)
	}
}
