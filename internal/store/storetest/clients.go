package storetest

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

func testSchema(t *testing.T, s store.Store) {
	must(t, "Ping", s.Ping(ctx(t)))
	cur, known, err := s.SchemaVersion(ctx(t))
	must(t, "SchemaVersion", err)
	if known < 1 || cur != known {
		t.Fatalf("SchemaVersion = %d, %d; want current = known >= 1 on a migrated store", cur, known)
	}
	// Migrating a migrated store is a no-op.
	for i := range 2 {
		from, to, err := s.Migrate(ctx(t))
		must(t, "Migrate", err)
		if from != known || to != known {
			t.Fatalf("Migrate #%d = %d→%d, want %d→%d", i, from, to, known, known)
		}
	}
}

func testClientRoundTrip(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		c    *store.Client
	}{
		{"every field", fullClient(store.DefaultTenant, "c-full")},
		{"minimal public", minimalClient(store.DefaultTenant, "c-min")},
		{"empty slices", func() *store.Client {
			c := minimalClient(store.DefaultTenant, "c-empty")
			c.RedirectURIs, c.GrantTypes, c.Scopes, c.Tags, c.Contacts = []string{}, []string{}, []string{}, []string{}, []string{}
			c.RequestedScopes = []string{}
			c.SecretHash = []byte{}
			return c
		}()},
		{"disabled private_key_jwt", func() *store.Client {
			c := fullClient(store.DefaultTenant, "c-pkjwt")
			c.SecretHash, c.SecretExpiresAt = nil, time.Time{}
			c.TokenEndpointAuthMethod = "private_key_jwt"
			c.RegistrationMethod = store.RegistrationCIMD
			c.Disabled = true
			return c
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(tc.c.TenantID, "client.created")
			must(t, "CreateClient", s.CreateClient(ctx(t), tc.c, ev))
			got, err := s.GetClient(ctx(t), tc.c.TenantID, tc.c.ID)
			must(t, "GetClient", err)
			checkEqual(t, "client", tc.c, got)
			wantAudit(t, s, ev)
		})
	}
	t.Run("nil event writes none", func(t *testing.T) {
		c := minimalClient(store.DefaultTenant, "c-noev")
		before, err := s.ListAudit(ctx(t), store.AuditFilter{Limit: 1000})
		must(t, "ListAudit", err)
		must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))
		after, err := s.ListAudit(ctx(t), store.AuditFilter{Limit: 1000})
		must(t, "ListAudit", err)
		if len(after) != len(before) {
			t.Fatalf("CreateClient with nil event wrote %d events", len(after)-len(before))
		}
	})
}

func testClientErrors(t *testing.T, s store.Store) {
	c := fullClient(store.DefaultTenant, "c1")
	must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))

	t.Run("get unknown", func(t *testing.T) {
		_, err := s.GetClient(ctx(t), store.DefaultTenant, "nope")
		wantErr(t, "GetClient", err, store.ErrNotFound)
	})
	t.Run("duplicate id", func(t *testing.T) {
		ev := event(store.DefaultTenant, "client.created")
		dup := minimalClient(store.DefaultTenant, "c1")
		wantErr(t, "CreateClient", s.CreateClient(ctx(t), dup, ev), store.ErrConflict)
		// The failed write must not leave its audit event behind (same transaction).
		wantNoAudit(t, s, ev)
		got, err := s.GetClient(ctx(t), store.DefaultTenant, "c1")
		must(t, "GetClient", err)
		checkEqual(t, "client after failed duplicate", c, got)
	})
	t.Run("update unknown", func(t *testing.T) {
		ev := event(store.DefaultTenant, "client.updated")
		_, err := s.UpdateClient(ctx(t), store.DefaultTenant, "nope", func(*store.Client) error { return nil }, ev)
		wantErr(t, "UpdateClient", err, store.ErrNotFound)
		wantNoAudit(t, s, ev)
	})
	t.Run("delete unknown", func(t *testing.T) {
		ev := event(store.DefaultTenant, "client.deleted")
		wantErr(t, "DeleteClient", s.DeleteClient(ctx(t), store.DefaultTenant, "nope", base(), ev), store.ErrNotFound)
		wantNoAudit(t, s, ev)
	})
}

func testClientUpdate(t *testing.T, s store.Store) {
	tests := []struct {
		name   string
		before *store.Client
		after  func(c *store.Client)
	}{
		{"change every field", fullClient(store.DefaultTenant, "c1"), func(c *store.Client) {
			c.Name = "Renamed"
			c.SecretHash = hash("rotated")
			c.SecretExpiresAt = base().Add(time.Hour)
			c.RedirectURIs = []string{"https://new.example.com/cb"}
			c.GrantTypes = []string{"client_credentials"}
			c.ResponseTypes = nil
			c.TokenEndpointAuthMethod = "client_secret_post"
			c.ApplicationType = "native"
			c.Scopes = []string{"only:this"}
			c.RequestedScopes = []string{"only:this", "and:that"}
			c.DefaultResource = "https://other.example.com/"
			c.JWKS, c.JWKSURI = "", ""
			c.ClientURI, c.LogoURI, c.TOSURI, c.PolicyURI = "https://n/", "https://n/l", "https://n/t", "https://n/p"
			c.Contacts = []string{"new@example.com"}
			c.SoftwareID, c.SoftwareVersion = "sw2", "3"
			c.RegistrationMethod = store.RegistrationManual
			c.RegistrationTokenHash = nil
			c.CreatedIP = "198.51.100.1"
			c.Tags = []string{"quarantined"}
			c.OwnerUserID = "user-2"
			c.Disabled = true
			c.UpdatedAt = base().Add(time.Hour)
		}},
		{"clear to empty", fullClient(store.DefaultTenant, "c2"), func(c *store.Client) {
			c.SecretHash, c.SecretExpiresAt = nil, time.Time{}
			c.RedirectURIs, c.GrantTypes, c.ResponseTypes, c.Scopes, c.Contacts, c.Tags = nil, nil, nil, nil, nil, nil
			c.RequestedScopes = nil
			c.TokenEndpointAuthMethod = "none"
		}},
		{"empty ceiling, scopes requested", fullClient(store.DefaultTenant, "c4"), func(c *store.Client) {
			c.Scopes = nil
			c.RequestedScopes = []string{"files:delete"}
		}},
		{"fill minimal", minimalClient(store.DefaultTenant, "c3"), func(c *store.Client) {
			*c = *fullClient(store.DefaultTenant, "c3")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "CreateClient", s.CreateClient(ctx(t), tc.before, nil))
			upd := *tc.before
			tc.after(&upd)
			ev := event(store.DefaultTenant, "client.updated")
			stored, err := s.UpdateClient(ctx(t), upd.TenantID, upd.ID, func(c *store.Client) error {
				checkEqual(t, "client handed to the update", tc.before, c)
				tc.after(c)
				return nil
			}, ev)
			must(t, "UpdateClient", err)
			checkEqual(t, "client UpdateClient returned", &upd, stored)
			got, err := s.GetClient(ctx(t), upd.TenantID, upd.ID)
			must(t, "GetClient", err)
			checkEqual(t, "updated client", &upd, got)
			wantAudit(t, s, ev)
		})
	}
}

func testClientList(t *testing.T, s store.Store) {
	for _, id := range []string{"b", "a", "c"} {
		must(t, "CreateClient", s.CreateClient(ctx(t), fullClient(store.DefaultTenant, id), nil))
	}
	must(t, "CreateClient", s.CreateClient(ctx(t), fullClient("t2", "z"), nil))

	tests := []struct {
		name   string
		tenant string
		want   []string
	}{
		{"default tenant", store.DefaultTenant, []string{"a", "b", "c"}},
		{"other tenant", "t2", []string{"z"}},
		{"empty tenant", "t3", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListClients(ctx(t), tc.tenant)
			must(t, "ListClients", err)
			wantIDs(t, "ListClients", sortedIDs(list, func(c *store.Client) string { return c.ID }), tc.want)
			for _, c := range list {
				checkEqual(t, "listed client", fullClient(tc.tenant, c.ID), c)
			}
		})
	}
}

func testClientDeleteCascade(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateClient", s.CreateClient(ctx(t), fullClient(tn, "gone"), nil))
	must(t, "CreateClient", s.CreateClient(ctx(t), fullClient(tn, "kept"), nil))

	goneRT1 := refreshToken(tn, "g1", "gone", "u1", "https://r/", "a")
	goneRT2 := refreshToken(tn, "g2", "gone", "u2", "https://r/", "b")
	goneAT1 := accessToken(tn, "g1", "gone", "u1", "https://r/", "a")
	goneCC := accessToken(tn, "", "gone", "", "https://r/", "a") // client credentials
	keptRT := refreshToken(tn, "g3", "kept", "u1", "https://r/", "a")
	keptAT := accessToken(tn, "g3", "kept", "u1", "https://r/", "a")
	// Same client id in another tenant: untouched.
	otherRT := refreshToken("t2", "g1", "gone", "u1", "https://r/", "a")
	otherAT := accessToken("t2", "g1", "gone", "u1", "https://r/", "a")
	issue(t, s, goneRT1, goneAT1)
	issue(t, s, goneRT2, goneCC)
	issue(t, s, keptRT, keptAT)
	issue(t, s, otherRT, otherAT)

	now := base().Add(time.Hour)
	ev := event(tn, "client.deleted")
	must(t, "DeleteClient", s.DeleteClient(ctx(t), tn, "gone", now, ev))
	wantAudit(t, s, ev)

	_, err := s.GetClient(ctx(t), tn, "gone")
	wantErr(t, "GetClient after delete", err, store.ErrNotFound)
	if _, err := s.GetClient(ctx(t), tn, "kept"); err != nil {
		t.Fatalf("GetClient kept: %v", err)
	}
	for _, rt := range []*store.RefreshToken{goneRT1, goneRT2} {
		if got := refreshState(t, s, rt); !sameTime(now, got.RevokedAt) {
			t.Errorf("refresh token of deleted client: RevokedAt = %v, want %v", got.RevokedAt, now)
		}
	}
	for _, rt := range []*store.RefreshToken{keptRT, otherRT} {
		if got := refreshState(t, s, rt); !got.RevokedAt.IsZero() {
			t.Errorf("refresh token of client %s/%s revoked by deleting another client", rt.TenantID, rt.ClientID)
		}
	}
	for _, at := range []*store.AccessToken{goneAT1, goneCC} {
		if !revoked(t, s, at) {
			t.Errorf("access token %s of deleted client not revoked", at.JTI)
		}
	}
	for _, at := range []*store.AccessToken{keptAT, otherAT} {
		if revoked(t, s, at) {
			t.Errorf("access token of client %s/%s revoked by deleting another client", at.TenantID, at.ClientID)
		}
	}
}
