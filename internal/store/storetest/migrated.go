package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Migration0009Seeded is when the rows a backend's migration-0009 test
// inserts at schema version 8 were created: a user u1 "alice" (roles
// ["admin"]), a client c1 "Old agent" and an access token j1 of grant g1
// for them (resource https://r/, scopes a and b, expiring ten minutes
// later, redirect URI http://127.0.0.1/cb).
var Migration0009Seeded = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

// CheckMigration0009 migrates s, which holds the rows Migration0009Seeded
// describes at schema version 8, and checks they read back: the user
// without a profile, the client federated by no issuer, the token's record
// whole; that the migrated user takes a profile; and that issuers can be
// added. Both backends' migration tests end with it.
func CheckMigration0009(t *testing.T, ctx context.Context, s store.Store) {
	t.Helper()
	created := Migration0009Seeded
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

// Migration0010Seeded is when the rows a backend's migration-0010 test
// inserts at schema version 9 were created: a resource r1 "Files" at
// https://files.example.com/mcp (5-minute tokens, tag pii, server client
// rs-files) with scopes files:read and files:write (sensitive), and a
// signing key k1 whose sealed private key is "v1|kek-1".
var Migration0010Seeded = time.Date(2030, 6, 7, 8, 9, 10, 0, time.UTC)

// CheckMigration0010 migrates s, which holds the rows Migration0010Seeded
// describes at schema version 9, and checks they read back: the resource
// whole and linked to no provider, the key resealable; and that the
// vault's tables take providers and connections, and the resource its
// provider links. Both backends' migration tests end with it.
func CheckMigration0010(t *testing.T, ctx context.Context, s store.Store) {
	t.Helper()
	created := Migration0010Seeded
	from, to, err := s.Migrate(ctx)
	if err != nil || from != 9 || to < 10 {
		t.Fatalf("Migrate = %d→%d, %v; want 9→≥10", from, to, err)
	}
	r, err := s.GetResource(ctx, store.DefaultTenant, "https://files.example.com/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "r1" || r.Name != "Files" || r.AccessTokenTTL != 5*time.Minute || r.ClientID != "rs-files" ||
		len(r.Tags) != 1 || len(r.Scopes) != 2 || r.Scopes[1].Name != "files:write" || !r.Scopes[1].Sensitive ||
		!r.CreatedAt.Equal(created) || len(r.Providers) != 0 {
		t.Fatalf("resource after migration = %+v", r)
	}
	if err := s.ResealSigningKey(ctx, "k1", []byte("v1|kek-1"), []byte("v1|kek-2")); err != nil {
		t.Fatalf("ResealSigningKey after migration: %v", err)
	}

	p := &store.Provider{TenantID: store.DefaultTenant, ID: "calendar", Name: "Calendar", Kind: store.ProviderOAuth2,
		TokenEndpoint: "https://cal.example.com/token", CreatedAt: created, UpdatedAt: created}
	if err := s.CreateProvider(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	r.Providers = []store.ResourceProvider{{ProviderID: "calendar", Scopes: map[string][]string{"files:read": {"calendar.read"}}}}
	if err := s.UpdateResource(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetResource(ctx, store.DefaultTenant, r.URI)
	if err != nil || len(got.Providers) != 1 || got.Providers[0].Scopes["files:read"][0] != "calendar.read" {
		t.Fatalf("resource with a provider = %+v, %v", got, err)
	}
	c := &store.Connection{TenantID: store.DefaultTenant, ID: "conn_1", ProviderID: "calendar", OwnerKind: store.OwnerUser,
		OwnerID: "u1", Status: store.ConnectionActive, DataKey: []byte("dek"), KEKID: "kek-1", Secret: []byte("s"),
		CreatedAt: created, UpdatedAt: created}
	if err := s.CreateConnection(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant}); err != nil || len(list) != 1 {
		t.Fatalf("ListConnections = %d, %v", len(list), err)
	}
}
