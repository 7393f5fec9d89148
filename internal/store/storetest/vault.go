package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- fixtures ------------------------------------------------------------------

func oauthProvider(tenant, id string) *store.Provider {
	b := base()
	return &store.Provider{
		TenantID:              tenant,
		ID:                    id,
		Name:                  "Calendar " + id,
		Kind:                  store.ProviderOAuth2,
		Issuer:                "https://accounts.example.com",
		AuthorizationEndpoint: "https://accounts.example.com/authorize",
		TokenEndpoint:         "https://accounts.example.com/token",
		RevocationEndpoint:    "https://accounts.example.com/revoke",
		ClientID:              "hub-client-" + id,
		ClientSecret:          []byte("v1|kek-1|sealed-secret-" + id),
		TokenAuthMethod:       "client_secret_post",
		Scopes:                []string{"calendar.read", "calendar.write", "offline_access"},
		DisablePKCE:           true,
		AuthParams:            map[string]string{"access_type": "offline", "prompt": "consent"},
		Disabled:              true,
		CreatedAt:             b,
		UpdatedAt:             b.Add(time.Second),
	}
}

func apiKeyProvider(tenant, id string) *store.Provider {
	return &store.Provider{
		TenantID:   tenant,
		ID:         id,
		Name:       "Search " + id,
		Kind:       store.ProviderAPIKey,
		KeyHeader:  "Authorization",
		KeyFormat:  "Bearer {key}",
		KeyHint:    "starts with sk_live_",
		KeyOverlap: 36 * time.Hour,
		CreatedAt:  base(),
		UpdatedAt:  base(),
	}
}

func fullConnection(tenant, id, provider, owner string) *store.Connection {
	b := base()
	return &store.Connection{
		TenantID:          tenant,
		ID:                id,
		ProviderID:        provider,
		OwnerKind:         store.OwnerUser,
		OwnerID:           owner,
		Label:             owner + "@example.com",
		Status:            store.ConnectionActive,
		Scopes:            []string{"calendar.read", "offline_access"},
		DataKey:           []byte("v1|kek-1|wrapped-dek-" + id),
		KEKID:             "kek-1",
		Secret:            []byte("v1|sealed-tokens-" + id),
		PreviousSecret:    []byte("v1|sealed-old-key-" + id),
		PreviousUntil:     b.Add(24 * time.Hour),
		ExpiresAt:         b.Add(time.Hour),
		LastRefreshedAt:   b.Add(-time.Minute),
		LastUsedAt:        b.Add(-time.Second),
		RefreshHolder:     "replica-1/42",
		RefreshLeaseUntil: b.Add(30 * time.Second),
		Failures:          3,
		NextAttemptAt:     b.Add(8 * time.Second),
		CreatedAt:         b.Add(-time.Hour),
		UpdatedAt:         b,
	}
}

func minimalConnection(tenant, id, provider, owner string) *store.Connection {
	return &store.Connection{
		TenantID:   tenant,
		ID:         id,
		ProviderID: provider,
		OwnerKind:  store.OwnerUser,
		OwnerID:    owner,
		Status:     store.ConnectionActive,
		DataKey:    []byte("dek-" + id),
		KEKID:      "kek-1",
		Secret:     []byte("secret-" + id),
		CreatedAt:  base(),
		UpdatedAt:  base(),
	}
}

func connIDs(list []*store.Connection) []string {
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return ids
}

// ---- providers -----------------------------------------------------------------

func testProviders(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	oauth := oauthProvider(tn, "calendar")
	key := apiKeyProvider(tn, "search")
	for _, p := range []*store.Provider{key, oauth} {
		ev := event(tn, "provider.created")
		must(t, "CreateProvider", s.CreateProvider(ctx(t), p, ev))
		wantAudit(t, s, ev)
	}
	t.Run("round trip", func(t *testing.T) {
		for _, p := range []*store.Provider{oauth, key} {
			got, err := s.GetProvider(ctx(t), tn, p.ID)
			must(t, "GetProvider", err)
			checkEqual(t, "provider "+p.ID, p, got)
		}
	})
	t.Run("list by id", func(t *testing.T) {
		list, err := s.ListProviders(ctx(t), tn)
		must(t, "ListProviders", err)
		checkEqual(t, "providers", []*store.Provider{oauth, key}, list)
		other, err := s.ListProviders(ctx(t), "t2")
		must(t, "ListProviders t2", err)
		if len(other) != 0 {
			t.Errorf("ListProviders of another tenant = %d providers", len(other))
		}
	})
	t.Run("update replaces all but key kind and creation", func(t *testing.T) {
		upd := &store.Provider{
			TenantID:              tn,
			ID:                    "calendar",
			Name:                  "Calendar v2",
			Kind:                  store.ProviderAPIKey, // not replaced
			AuthorizationEndpoint: "https://new.example.com/authorize",
			TokenEndpoint:         "https://new.example.com/token",
			ClientID:              "hub-2",
			TokenAuthMethod:       "client_secret_basic",
			Scopes:                []string{"calendar.read"},
			AuthParams:            map[string]string{"prompt": "select_account"},
			KeyOverlap:            time.Hour,
			CreatedAt:             base().Add(time.Hour), // not replaced
			UpdatedAt:             base().Add(time.Minute),
		}
		ev := event(tn, "provider.updated")
		must(t, "UpdateProvider", s.UpdateProvider(ctx(t), upd, ev))
		wantAudit(t, s, ev)
		got, err := s.GetProvider(ctx(t), tn, "calendar")
		must(t, "GetProvider", err)
		want := *upd
		want.Kind, want.CreatedAt = store.ProviderOAuth2, oauth.CreatedAt
		checkEqual(t, "updated provider", &want, got)
		if got.ClientSecret != nil || got.Issuer != "" || got.DisablePKCE || got.Disabled {
			t.Errorf("cleared fields came back: secret %x, issuer %q, pkce off %v, disabled %v",
				got.ClientSecret, got.Issuer, got.DisablePKCE, got.Disabled)
		}
	})
}

func testProviderErrors(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	p := oauthProvider(tn, "calendar")
	must(t, "CreateProvider", s.CreateProvider(ctx(t), p, nil))
	mod := func(f func(*store.Provider)) *store.Provider {
		q := oauthProvider(tn, "other")
		f(q)
		return q
	}
	tests := []writeCase{
		{"duplicate id", "provider.created", func(ev *store.AuditEvent) error {
			return s.CreateProvider(ctx(t), apiKeyProvider(tn, "calendar"), ev)
		}, store.ErrConflict},
		{"empty tenant", "provider.created", func(ev *store.AuditEvent) error {
			return s.CreateProvider(ctx(t), mod(func(q *store.Provider) { q.TenantID = "" }), ev)
		}, store.ErrInvalid},
		{"empty id", "provider.created", func(ev *store.AuditEvent) error {
			return s.CreateProvider(ctx(t), mod(func(q *store.Provider) { q.ID = "" }), ev)
		}, store.ErrInvalid},
		{"empty kind", "provider.created", func(ev *store.AuditEvent) error {
			return s.CreateProvider(ctx(t), mod(func(q *store.Provider) { q.Kind = "" }), ev)
		}, store.ErrInvalid},
		{"unknown kind", "provider.created", func(ev *store.AuditEvent) error {
			return s.CreateProvider(ctx(t), mod(func(q *store.Provider) { q.Kind = "saml" }), ev)
		}, store.ErrInvalid},
		{"get unknown", "", func(*store.AuditEvent) error {
			_, err := s.GetProvider(ctx(t), tn, "unknown")
			return err
		}, store.ErrNotFound},
		{"get other tenant", "", func(*store.AuditEvent) error {
			_, err := s.GetProvider(ctx(t), "t2", "calendar")
			return err
		}, store.ErrNotFound},
		{"update unknown", "provider.updated", func(ev *store.AuditEvent) error {
			return s.UpdateProvider(ctx(t), oauthProvider(tn, "unknown"), ev)
		}, store.ErrNotFound},
		{"update other tenant", "provider.updated", func(ev *store.AuditEvent) error {
			return s.UpdateProvider(ctx(t), oauthProvider("t2", "calendar"), ev)
		}, store.ErrNotFound},
		{"delete unknown", "provider.deleted", func(ev *store.AuditEvent) error {
			return s.DeleteProvider(ctx(t), tn, "unknown", ev)
		}, store.ErrNotFound},
		{"same id other tenant", "provider.created", func(ev *store.AuditEvent) error {
			return s.CreateProvider(ctx(t), oauthProvider("t2", "calendar"), ev)
		}, nil},
	}
	runWriteCases(t, s, tn, tests)
	got, err := s.GetProvider(ctx(t), tn, "calendar")
	must(t, "GetProvider", err)
	checkEqual(t, "provider after failed writes", p, got)
}

// testProviderDeleteCascade pins that a provider's connections, their
// ciphertext with them, go in the transaction that deletes it, and no
// other provider's or tenant's.
func testProviderDeleteCascade(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	for _, p := range []*store.Provider{oauthProvider(tn, "calendar"), apiKeyProvider(tn, "search"), oauthProvider("t2", "calendar")} {
		must(t, "CreateProvider", s.CreateProvider(ctx(t), p, nil))
	}
	for _, c := range []*store.Connection{
		fullConnection(tn, "conn_a", "calendar", "u1"),
		fullConnection(tn, "conn_b", "calendar", "u2"),
		minimalConnection(tn, "conn_c", "search", "u1"),
		fullConnection("t2", "conn_a", "calendar", "u1"),
	} {
		must(t, "CreateConnection", s.CreateConnection(ctx(t), c, nil))
	}
	ev := event(tn, "provider.deleted")
	must(t, "DeleteProvider", s.DeleteProvider(ctx(t), tn, "calendar", ev))
	wantAudit(t, s, ev)
	for _, id := range []string{"conn_a", "conn_b"} {
		_, err := s.GetConnection(ctx(t), tn, id)
		wantErr(t, "GetConnection "+id+" after its provider was deleted", err, store.ErrNotFound)
	}
	_, err := s.GetProvider(ctx(t), tn, "calendar")
	wantErr(t, "GetProvider after delete", err, store.ErrNotFound)
	list, err := s.ListConnections(ctx(t), store.ConnectionFilter{TenantID: tn})
	must(t, "ListConnections", err)
	if !slices.Equal(connIDs(list), []string{"conn_c"}) {
		t.Errorf("connections left = %v, want [conn_c]", connIDs(list))
	}
	_, err = s.GetConnection(ctx(t), "t2", "conn_a")
	must(t, "the other tenant's connection stays", err)
	// A provider made again under the same id starts with no connections.
	must(t, "CreateProvider again", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	list, err = s.ListConnections(ctx(t), store.ConnectionFilter{TenantID: tn, ProviderID: "calendar"})
	must(t, "ListConnections", err)
	if len(list) != 0 {
		t.Errorf("recreated provider has connections %v", connIDs(list))
	}
}

// ---- connections -----------------------------------------------------------------

func testConnectionRoundTrip(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	must(t, "CreateProvider", s.CreateProvider(ctx(t), apiKeyProvider(tn, "search"), nil))
	full := fullConnection(tn, "conn_full", "calendar", "u1")
	bare := minimalConnection(tn, "conn_bare", "search", "u1")
	org := minimalConnection(tn, "conn_org", "search", tn)
	org.OwnerKind, org.Status, org.Label = store.OwnerTenant, store.ConnectionNeedsReauth, "org key"
	for _, c := range []*store.Connection{full, bare, org} {
		ev := event(tn, "connection.created")
		must(t, "CreateConnection", s.CreateConnection(ctx(t), c, ev))
		wantAudit(t, s, ev)
		got, err := s.GetConnection(ctx(t), tn, c.ID)
		must(t, "GetConnection", err)
		checkEqual(t, "connection "+c.ID, c, got)
	}
	list, err := s.ListConnections(ctx(t), store.ConnectionFilter{TenantID: tn})
	must(t, "ListConnections", err)
	checkEqual(t, "listed connections", []*store.Connection{bare, full, org}, list)
}

func testConnectionErrors(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	c := fullConnection(tn, "conn_1", "calendar", "u1")
	must(t, "CreateConnection", s.CreateConnection(ctx(t), c, nil))
	mod := func(f func(*store.Connection)) *store.Connection {
		d := fullConnection(tn, "conn_2", "calendar", "u1")
		f(d)
		return d
	}
	tests := []writeCase{
		{"duplicate id", "connection.created", func(ev *store.AuditEvent) error {
			return s.CreateConnection(ctx(t), fullConnection(tn, "conn_1", "calendar", "u2"), ev)
		}, store.ErrConflict},
		{"unknown provider", "connection.created", func(ev *store.AuditEvent) error {
			return s.CreateConnection(ctx(t), mod(func(d *store.Connection) { d.ProviderID = "unknown" }), ev)
		}, store.ErrNotFound},
		{"provider of another tenant", "connection.created", func(ev *store.AuditEvent) error {
			return s.CreateConnection(ctx(t), fullConnection("t2", "conn_2", "calendar", "u1"), ev)
		}, store.ErrNotFound},
		{"unknown status", "connection.created", func(ev *store.AuditEvent) error {
			return s.CreateConnection(ctx(t), mod(func(d *store.Connection) { d.Status = "paused" }), ev)
		}, store.ErrInvalid},
		{"unknown owner kind", "connection.created", func(ev *store.AuditEvent) error {
			return s.CreateConnection(ctx(t), mod(func(d *store.Connection) { d.OwnerKind = "group" }), ev)
		}, store.ErrInvalid},
		{"no owner", "connection.created", func(ev *store.AuditEvent) error {
			return s.CreateConnection(ctx(t), mod(func(d *store.Connection) { d.OwnerID = "" }), ev)
		}, store.ErrInvalid},
		{"no id", "connection.created", func(ev *store.AuditEvent) error {
			return s.CreateConnection(ctx(t), mod(func(d *store.Connection) { d.ID = "" }), ev)
		}, store.ErrInvalid},
		{"get unknown", "", func(*store.AuditEvent) error {
			_, err := s.GetConnection(ctx(t), tn, "conn_unknown")
			return err
		}, store.ErrNotFound},
		{"get other tenant", "", func(*store.AuditEvent) error {
			_, err := s.GetConnection(ctx(t), "t2", "conn_1")
			return err
		}, store.ErrNotFound},
		{"update unknown", "connection.updated", func(ev *store.AuditEvent) error {
			_, err := s.UpdateConnection(ctx(t), tn, "conn_unknown", func(*store.Connection) error { return nil }, ev)
			return err
		}, store.ErrNotFound},
		{"touch unknown", "connection.retrieved", func(ev *store.AuditEvent) error {
			return s.TouchConnection(ctx(t), tn, "conn_unknown", base(), ev)
		}, store.ErrNotFound},
		{"touch other tenant", "connection.retrieved", func(ev *store.AuditEvent) error {
			return s.TouchConnection(ctx(t), "t2", "conn_1", base(), ev)
		}, store.ErrNotFound},
		{"lease unknown", "", func(*store.AuditEvent) error {
			_, err := s.AcquireRefreshLease(ctx(t), tn, "conn_unknown", "h", base(), base().Add(time.Minute))
			return err
		}, store.ErrNotFound},
		{"delete unknown", "connection.revoked", func(ev *store.AuditEvent) error {
			return s.DeleteConnection(ctx(t), tn, "conn_unknown", ev)
		}, store.ErrNotFound},
		{"list without tenant", "", func(*store.AuditEvent) error {
			_, err := s.ListConnections(ctx(t), store.ConnectionFilter{})
			return err
		}, store.ErrInvalid},
	}
	runWriteCases(t, s, tn, tests)
	got, err := s.GetConnection(ctx(t), tn, "conn_1")
	must(t, "GetConnection", err)
	checkEqual(t, "connection after failed writes", c, got)

	t.Run("delete", func(t *testing.T) {
		ev := event(tn, "connection.revoked")
		must(t, "DeleteConnection", s.DeleteConnection(ctx(t), tn, "conn_1", ev))
		wantAudit(t, s, ev)
		_, err := s.GetConnection(ctx(t), tn, "conn_1")
		wantErr(t, "GetConnection after delete", err, store.ErrNotFound)
		ev = event(tn, "connection.revoked")
		wantErr(t, "DeleteConnection again", s.DeleteConnection(ctx(t), tn, "conn_1", ev), store.ErrNotFound)
		wantNoAudit(t, s, ev)
	})
}

func testConnectionUpdate(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	before := fullConnection(tn, "conn_1", "calendar", "u1")
	must(t, "CreateConnection", s.CreateConnection(ctx(t), before, nil))

	t.Run("stores every field the update leaves", func(t *testing.T) {
		b := base().Add(2 * time.Hour)
		ev := event(tn, "connection.refreshed")
		got, err := s.UpdateConnection(ctx(t), tn, "conn_1", func(c *store.Connection) error {
			checkEqual(t, "connection handed to the update", before, c)
			c.Label, c.Status, c.Scopes = "work account", store.ConnectionRefreshing, []string{"calendar.read"}
			c.DataKey, c.KEKID, c.Secret = []byte("dek-2"), "kek-2", []byte("tokens-2")
			c.PreviousSecret, c.PreviousUntil = nil, time.Time{}
			c.ExpiresAt, c.LastRefreshedAt, c.LastUsedAt = b.Add(time.Hour), b, b.Add(time.Second)
			c.RefreshHolder, c.RefreshLeaseUntil = "", time.Time{}
			c.Failures, c.NextAttemptAt, c.UpdatedAt = 0, time.Time{}, b
			return nil
		}, ev)
		must(t, "UpdateConnection", err)
		wantAudit(t, s, ev)
		stored, err := s.GetConnection(ctx(t), tn, "conn_1")
		must(t, "GetConnection", err)
		checkEqual(t, "returned connection", stored, got)
		want := &store.Connection{TenantID: tn, ID: "conn_1", ProviderID: "calendar", OwnerKind: store.OwnerUser,
			OwnerID: "u1", Label: "work account", Status: store.ConnectionRefreshing, Scopes: []string{"calendar.read"},
			DataKey: []byte("dek-2"), KEKID: "kek-2", Secret: []byte("tokens-2"), ExpiresAt: b.Add(time.Hour),
			LastRefreshedAt: b, LastUsedAt: b.Add(time.Second), CreatedAt: before.CreatedAt, UpdatedAt: b}
		checkEqual(t, "updated connection", want, stored)
		before = stored
	})

	errRefused := errors.New("the update refuses")
	tests := []struct {
		name   string
		update func(*store.Connection) error
		want   error
	}{
		{"update returns an error", func(c *store.Connection) error { c.Status = store.ConnectionNeedsReauth; return errRefused }, errRefused},
		{"update changes the id", func(c *store.Connection) error { c.ID = "conn_2"; return nil }, store.ErrInvalid},
		{"update changes the provider", func(c *store.Connection) error { c.ProviderID = "other"; return nil }, store.ErrInvalid},
		{"update changes the owner", func(c *store.Connection) error { c.OwnerID = "u2"; return nil }, store.ErrInvalid},
		{"update changes the tenant", func(c *store.Connection) error { c.TenantID = "t2"; return nil }, store.ErrInvalid},
		{"update sets an unknown status", func(c *store.Connection) error { c.Status = "paused"; return nil }, store.ErrInvalid},
		{"update panics", func(c *store.Connection) error { c.Label = "half-done"; panic("boom") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(tn, "connection.updated")
			got, err := s.UpdateConnection(ctx(t), tn, "conn_1", tc.update, ev)
			if err == nil || got != nil {
				t.Fatalf("UpdateConnection = %v, %v; want an error and no connection", got, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("UpdateConnection: %v, want %v", err, tc.want)
			}
			wantNoAudit(t, s, ev)
			stored, err := s.GetConnection(ctx(t), tn, "conn_1")
			must(t, "GetConnection", err)
			checkEqual(t, "connection after a failed update", before, stored)
		})
	}

	t.Run("update fills the event", func(t *testing.T) {
		ev := new(store.AuditEvent)
		want := event(tn, "connection.needs_reauth")
		_, err := s.UpdateConnection(ctx(t), tn, "conn_1", func(c *store.Connection) error {
			c.Status = store.ConnectionNeedsReauth
			*ev = *want
			ev.Details = map[string]string{"provider": c.ProviderID}
			return nil
		}, ev)
		must(t, "UpdateConnection", err)
		want.Details = map[string]string{"provider": "calendar"}
		wantAudit(t, s, want)
	})
}

// testConnectionUpdateConcurrent races updates of different fields, and
// read-modify-write updates of one field: every one lands.
func testConnectionUpdateConcurrent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	c := minimalConnection(tn, "conn_1", "calendar", "u1")
	must(t, "CreateConnection", s.CreateConnection(ctx(t), c, nil))
	const counters = 20
	var wg sync.WaitGroup
	errs := make([]error, counters+2)
	start := make(chan struct{})
	for i := range counters {
		wg.Go(func() {
			<-start
			_, errs[i] = s.UpdateConnection(ctx(t), tn, "conn_1", func(c *store.Connection) error {
				c.Failures++
				c.Scopes = append(c.Scopes, fmt.Sprintf("s%02d", i))
				return nil
			}, event(tn, "connection.refresh_failed"))
		})
	}
	wg.Go(func() {
		<-start
		_, errs[counters] = s.UpdateConnection(ctx(t), tn, "conn_1", func(c *store.Connection) error {
			c.Label = "renamed"
			return nil
		}, event(tn, "connection.updated"))
	})
	wg.Go(func() {
		<-start
		_, errs[counters+1] = s.UpdateConnection(ctx(t), tn, "conn_1", func(c *store.Connection) error {
			c.Secret, c.ExpiresAt = []byte("rotated"), base().Add(time.Hour)
			return nil
		}, event(tn, "connection.refreshed"))
	})
	close(start)
	wg.Wait()
	for i, err := range errs {
		must(t, fmt.Sprintf("UpdateConnection %d", i), err)
	}
	got, err := s.GetConnection(ctx(t), tn, "conn_1")
	must(t, "GetConnection", err)
	if got.Failures != counters || len(got.Scopes) != counters {
		t.Errorf("after %d concurrent increments: failures %d, scopes %d", counters, got.Failures, len(got.Scopes))
	}
	if got.Label != "renamed" || string(got.Secret) != "rotated" || !sameTime(base().Add(time.Hour), got.ExpiresAt) {
		t.Errorf("concurrent updates of other fields lost: label %q, secret %q, expires %v", got.Label, got.Secret, got.ExpiresAt)
	}
}

// testRefreshLease pins the single flight of refreshes: one holder at a
// time, renewals, expiry takeover as the clock moves, and release.
func testRefreshLease(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	c := minimalConnection(tn, "conn_1", "calendar", "u1")
	c.Status = store.ConnectionNeedsReauth // the lease leaves the status alone
	must(t, "CreateConnection", s.CreateConnection(ctx(t), c, nil))
	now := base()
	until := now.Add(30 * time.Second)

	got, err := s.AcquireRefreshLease(ctx(t), tn, "conn_1", "A", now, until)
	must(t, "AcquireRefreshLease A", err)
	if got.RefreshHolder != "A" || !sameTime(until, got.RefreshLeaseUntil) || got.Status != store.ConnectionNeedsReauth {
		t.Fatalf("lease = holder %q until %v status %q", got.RefreshHolder, got.RefreshLeaseUntil, got.Status)
	}
	want := *c
	want.RefreshHolder, want.RefreshLeaseUntil = "A", until
	checkEqual(t, "connection returned with the lease", &want, got)

	steps := []struct {
		name      string
		holder    string
		now       time.Time
		until     time.Time
		wantErr   error
		wantOwner string
		wantUntil time.Time
	}{
		{"another holder while it is valid", "B", now.Add(time.Second), now.Add(time.Minute), store.ErrConflict, "A", until},
		{"another holder a microsecond before expiry", "B", until.Add(-time.Microsecond), until.Add(time.Minute), store.ErrConflict, "A", until},
		{"the holder renews", "A", now.Add(10 * time.Second), now.Add(40 * time.Second), nil, "A", now.Add(40 * time.Second)},
		{"renewed lease still refuses others", "B", until.Add(time.Second), until.Add(time.Minute), store.ErrConflict, "A", now.Add(40 * time.Second)},
		{"expired lease is taken over", "B", now.Add(40 * time.Second), now.Add(70 * time.Second), nil, "B", now.Add(70 * time.Second)},
		{"the old holder is refused", "A", now.Add(50 * time.Second), now.Add(80 * time.Second), store.ErrConflict, "B", now.Add(70 * time.Second)},
	}
	for _, st := range steps {
		got, err := s.AcquireRefreshLease(ctx(t), tn, "conn_1", st.holder, st.now, st.until)
		wantErr(t, st.name, err, st.wantErr)
		if got == nil {
			t.Fatalf("%s: no connection returned (err %v)", st.name, err)
		}
		if got.RefreshHolder != st.wantOwner || !sameTime(st.wantUntil, got.RefreshLeaseUntil) {
			t.Fatalf("%s: holder %q until %v, want %q until %v", st.name, got.RefreshHolder, got.RefreshLeaseUntil,
				st.wantOwner, st.wantUntil.UTC())
		}
	}

	// Released (an update clears the holder), anyone may take it at once.
	_, err = s.UpdateConnection(ctx(t), tn, "conn_1", func(c *store.Connection) error {
		c.RefreshHolder, c.RefreshLeaseUntil = "", time.Time{}
		return nil
	}, nil)
	must(t, "release", err)
	got, err = s.AcquireRefreshLease(ctx(t), tn, "conn_1", "C", now, now.Add(time.Second))
	must(t, "AcquireRefreshLease after release", err)
	if got.RefreshHolder != "C" {
		t.Fatalf("holder after release = %q", got.RefreshHolder)
	}
	_, err = s.AcquireRefreshLease(ctx(t), tn, "conn_1", "", now.Add(time.Hour), now.Add(2*time.Hour))
	wantErr(t, "empty holder", err, store.ErrInvalid)
}

// testRefreshLeaseRace has 50 callers ask for the lease at once, and again
// once it expired: exactly one wins each round, the others learn who.
func testRefreshLeaseRace(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	must(t, "CreateConnection", s.CreateConnection(ctx(t), minimalConnection(tn, "conn_1", "calendar", "u1"), nil))
	const callers = 50
	now := base()
	for round := range 2 {
		until := now.Add(time.Minute)
		var wg sync.WaitGroup
		got := make([]*store.Connection, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		for i := range callers {
			wg.Go(func() {
				<-start
				got[i], errs[i] = s.AcquireRefreshLease(ctx(t), tn, "conn_1", fmt.Sprintf("r%d-%02d", round, i), now, until)
			})
		}
		close(start)
		wg.Wait()
		var winners []string
		for i, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, fmt.Sprintf("r%d-%02d", round, i))
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d caller %d: %v", round, i, err)
			case got[i] == nil:
				t.Fatalf("round %d caller %d: conflict without the connection", round, i)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d winners %v, want exactly 1", round, len(winners), winners)
		}
		for i, c := range got {
			if c.RefreshHolder != winners[0] || !sameTime(until, c.RefreshLeaseUntil) {
				t.Fatalf("round %d caller %d sees holder %q until %v, want %q until %v", round, i,
					c.RefreshHolder, c.RefreshLeaseUntil, winners[0], until.UTC())
			}
		}
		now = until // the lease has expired: the next round takes it over
	}
}

func testTouchConnection(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	c := fullConnection(tn, "conn_1", "calendar", "u1")
	must(t, "CreateConnection", s.CreateConnection(ctx(t), c, nil))
	at := base().Add(5 * time.Minute)
	ev := event(tn, "connection.retrieved")
	must(t, "TouchConnection", s.TouchConnection(ctx(t), tn, "conn_1", at, ev))
	wantAudit(t, s, ev)
	got, err := s.GetConnection(ctx(t), tn, "conn_1")
	must(t, "GetConnection", err)
	want := *c
	want.LastUsedAt = at
	checkEqual(t, "touched connection", &want, got)
}

// testConnectionFilter pins each ConnectionFilter field alone and together.
func testConnectionFilter(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	for _, p := range []*store.Provider{oauthProvider(tn, "calendar"), apiKeyProvider(tn, "search"), oauthProvider("t2", "calendar")} {
		must(t, "CreateProvider", s.CreateProvider(ctx(t), p, nil))
	}
	type fix struct {
		id, provider, ownerKind, owner, status, kek string
		expires, refreshed, created                 time.Time
	}
	fixtures := []fix{
		// Expires soon, refreshed recently.
		{"conn_01", "calendar", store.OwnerUser, "u1", store.ConnectionActive, "kek-1", b.Add(time.Minute), b.Add(-time.Hour), b.Add(-48 * time.Hour)},
		// Expires late, refreshed two days ago.
		{"conn_02", "calendar", store.OwnerUser, "u1", store.ConnectionActive, "kek-2", b.Add(2 * time.Hour), b.Add(-48 * time.Hour), b.Add(-72 * time.Hour)},
		// Does not expire, never refreshed, made three days ago.
		{"conn_03", "search", store.OwnerUser, "u1", store.ConnectionActive, "kek-2", time.Time{}, time.Time{}, b.Add(-72 * time.Hour)},
		// Does not expire, never refreshed, made an hour ago.
		{"conn_04", "search", store.OwnerTenant, tn, store.ConnectionActive, "kek-1", time.Time{}, time.Time{}, b.Add(-time.Hour)},
		{"conn_05", "calendar", store.OwnerUser, "u2", store.ConnectionNeedsReauth, "kek-1", b.Add(-time.Hour), b.Add(-time.Hour), b.Add(-time.Hour)},
		{"conn_06", "calendar", store.OwnerUser, "u2", store.ConnectionRefreshing, "kek-2", b.Add(3 * time.Hour), b, b},
		{"conn_07", "calendar", store.OwnerUser, "u1", store.ConnectionRevoked, "kek-1", time.Time{}, b, b},
	}
	for _, f := range fixtures {
		c := minimalConnection(tn, f.id, f.provider, f.owner)
		c.OwnerKind, c.Status, c.KEKID = f.ownerKind, f.status, f.kek
		c.ExpiresAt, c.LastRefreshedAt, c.CreatedAt = f.expires, f.refreshed, f.created
		must(t, "CreateConnection", s.CreateConnection(ctx(t), c, nil))
	}
	// Another tenant's connection matches every filter below but the tenant.
	other := minimalConnection("t2", "conn_00", "calendar", "u1")
	other.KEKID, other.ExpiresAt, other.CreatedAt = "kek-0", b.Add(-time.Hour), b.Add(-96*time.Hour)
	must(t, "CreateConnection t2", s.CreateConnection(ctx(t), other, nil))

	tests := []struct {
		name string
		f    store.ConnectionFilter
		want []string
	}{
		{"tenant only", store.ConnectionFilter{}, []string{"conn_01", "conn_02", "conn_03", "conn_04", "conn_05", "conn_06", "conn_07"}},
		{"provider", store.ConnectionFilter{ProviderID: "search"}, []string{"conn_03", "conn_04"}},
		{"owner", store.ConnectionFilter{OwnerKind: store.OwnerUser, OwnerID: "u1"}, []string{"conn_01", "conn_02", "conn_03", "conn_07"}},
		{"owner kind", store.ConnectionFilter{OwnerKind: store.OwnerTenant}, []string{"conn_04"}},
		{"person and provider", store.ConnectionFilter{ProviderID: "calendar", OwnerKind: store.OwnerUser, OwnerID: "u2"}, []string{"conn_05", "conn_06"}},
		{"one status", store.ConnectionFilter{Statuses: []string{store.ConnectionNeedsReauth}}, []string{"conn_05"}},
		{"statuses", store.ConnectionFilter{Statuses: []string{store.ConnectionActive, store.ConnectionRefreshing}},
			[]string{"conn_01", "conn_02", "conn_03", "conn_04", "conn_06"}},
		{"not kek", store.ConnectionFilter{NotKEK: "kek-2"}, []string{"conn_01", "conn_04", "conn_05", "conn_07"}},
		{"expires before", store.ConnectionFilter{ExpiresBefore: b.Add(5 * time.Minute)}, []string{"conn_01", "conn_05"}},
		{"expires before is exclusive", store.ConnectionFilter{ExpiresBefore: b.Add(time.Minute)}, []string{"conn_05"}},
		// Never refreshed counts from creation.
		{"refreshed before", store.ConnectionFilter{RefreshedBefore: b.Add(-24 * time.Hour)}, []string{"conn_02", "conn_03"}},
		{"refreshed before is exclusive", store.ConnectionFilter{RefreshedBefore: b.Add(-time.Hour)}, []string{"conn_02", "conn_03"}},
		{"expires or refreshed before", store.ConnectionFilter{ExpiresBefore: b.Add(5 * time.Minute), RefreshedBefore: b.Add(-24 * time.Hour)},
			[]string{"conn_01", "conn_02", "conn_03", "conn_05"}},
		{"due and active", store.ConnectionFilter{ExpiresBefore: b.Add(5 * time.Minute), RefreshedBefore: b.Add(-24 * time.Hour),
			Statuses: []string{store.ConnectionActive}}, []string{"conn_01", "conn_02", "conn_03"}},
		{"after", store.ConnectionFilter{After: "conn_05"}, []string{"conn_06", "conn_07"}},
		{"limit", store.ConnectionFilter{Limit: 2}, []string{"conn_01", "conn_02"}},
		{"after and limit", store.ConnectionFilter{After: "conn_02", Limit: 2}, []string{"conn_03", "conn_04"}},
		{"not kek page", store.ConnectionFilter{NotKEK: "kek-1", After: "conn_02", Limit: 1}, []string{"conn_03"}},
		{"nothing", store.ConnectionFilter{ProviderID: "unknown"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.TenantID = tn
			list, err := s.ListConnections(ctx(t), f)
			must(t, "ListConnections", err)
			if got := connIDs(list); !slices.Equal(got, tc.want) {
				t.Errorf("ListConnections(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
	t.Run("pages cover everything once", func(t *testing.T) {
		var all []string
		after := ""
		for range 10 {
			page, err := s.ListConnections(ctx(t), store.ConnectionFilter{TenantID: tn, After: after, Limit: 3})
			must(t, "ListConnections", err)
			if len(page) == 0 {
				break
			}
			all = append(all, connIDs(page)...)
			after = page[len(page)-1].ID
		}
		if want := []string{"conn_01", "conn_02", "conn_03", "conn_04", "conn_05", "conn_06", "conn_07"}; !slices.Equal(all, want) {
			t.Errorf("pages = %v, want %v", all, want)
		}
	})
}

// testResealSigningKey pins the compare-and-set KEK rotation re-wraps
// signing keys with.
func testResealSigningKey(t *testing.T, s store.Store) {
	k := &store.SigningKey{ID: "k1", Algorithm: "ES256", PublicJWK: `{"kty":"EC"}`,
		PrivateEnc: []byte("v1|kek-1|sealed"), ActivateAt: base(), CreatedAt: base()}
	must(t, "CreateSigningKey", s.CreateSigningKey(ctx(t), k))
	stored := func() []byte {
		list, err := s.ListSigningKeys(ctx(t))
		must(t, "ListSigningKeys", err)
		if len(list) != 1 {
			t.Fatalf("%d signing keys", len(list))
		}
		return list[0].PrivateEnc
	}
	steps := []struct {
		name     string
		kid      string
		from, to string
		want     error
		after    string
	}{
		{"wrong from", "k1", "v1|kek-0|sealed", "v1|kek-2|sealed", store.ErrConflict, "v1|kek-1|sealed"},
		{"unknown kid", "k9", "v1|kek-1|sealed", "v1|kek-2|sealed", store.ErrNotFound, "v1|kek-1|sealed"},
		{"empty to", "k1", "v1|kek-1|sealed", "", store.ErrInvalid, "v1|kek-1|sealed"},
		{"right from", "k1", "v1|kek-1|sealed", "v1|kek-2|sealed", nil, "v1|kek-2|sealed"},
		{"the old from again", "k1", "v1|kek-1|sealed", "v1|kek-3|sealed", store.ErrConflict, "v1|kek-2|sealed"},
	}
	for _, st := range steps {
		wantErr(t, st.name, s.ResealSigningKey(ctx(t), st.kid, []byte(st.from), []byte(st.to)), st.want)
		if got := string(stored()); got != st.after {
			t.Fatalf("%s: stored key %q, want %q", st.name, got, st.after)
		}
	}
	// Two rotations racing on one key: exactly one re-wrap lands.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.ResealSigningKey(ctx(t), "k1", []byte("v1|kek-2|sealed"), fmt.Appendf(nil, "v1|kek-3|sealed-%d", i))
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("reseal %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent reseals from the same ciphertext landed, want 1", wins)
	}
}

// testResourceProviders pins that resources carry their provider links.
func testResourceProviders(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	r := fullResource(tn, "r1", "https://files.example.com/mcp")
	r.Providers = []store.ResourceProvider{
		{ProviderID: "calendar", Scopes: map[string][]string{
			"files:read":  {"calendar.read"},
			"files:write": {"calendar.read", "calendar.write"},
		}},
		{ProviderID: "search", Scopes: map[string][]string{"files:read": {}}},
	}
	must(t, "CreateResource", s.CreateResource(ctx(t), r, nil))
	got, err := s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	checkEqual(t, "resource with providers", r, got)
	if len(got.Providers) != 2 {
		t.Fatalf("providers = %+v", got.Providers)
	}
	if sc, ok := got.Providers[1].Scopes["files:read"]; !ok || len(sc) != 0 {
		t.Errorf("an API-key link's scope with no provider scopes came back as %v, %v", sc, ok)
	}
	list, err := s.ListResources(ctx(t), tn)
	must(t, "ListResources", err)
	checkEqual(t, "listed resources", []*store.Resource{r}, list)

	upd := *r
	upd.Providers = []store.ResourceProvider{{ProviderID: "mail", Scopes: map[string][]string{"admin": {"mail.send"}}}}
	must(t, "UpdateResource", s.UpdateResource(ctx(t), &upd, nil))
	got, err = s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	checkEqual(t, "resource with replaced providers", &upd, got)

	upd.Providers = nil
	must(t, "UpdateResource", s.UpdateResource(ctx(t), &upd, nil))
	got, err = s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	if len(got.Providers) != 0 {
		t.Errorf("providers after clearing = %+v", got.Providers)
	}
}

// VaultAcrossStores checks the vault's single-flight guarantees between
// store instances that share one database, as hub processes (or replicas)
// do: 50 callers spread over the stores ask for one connection's refresh
// lease, and exactly one wins, in two rounds (the second after the first
// lease expired); and read-modify-write updates through every store all
// land. stores must be migrated, share one empty database, and number at
// least two.
func VaultAcrossStores(t *testing.T, stores ...store.Store) {
	if len(stores) < 2 {
		t.Fatalf("VaultAcrossStores needs at least two stores, got %d", len(stores))
	}
	const tn = store.DefaultTenant
	s0 := stores[0]
	must(t, "CreateProvider", s0.CreateProvider(ctx(t), oauthProvider(tn, "calendar"), nil))
	must(t, "CreateConnection", s0.CreateConnection(ctx(t), minimalConnection(tn, "conn_1", "calendar", "u1"), nil))

	const callers = 50
	now := base()
	for round := range 2 {
		until := now.Add(time.Minute)
		var wg sync.WaitGroup
		errs := make([]error, callers)
		start := make(chan struct{})
		for i := range callers {
			s := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				_, errs[i] = s.AcquireRefreshLease(ctx(t), tn, "conn_1", fmt.Sprintf("p%d/r%d-%02d", i%len(stores), round, i), now, until)
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d caller %d: %v", round, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d callers across %d stores won the lease, want exactly 1", round, winners, len(stores))
		}
		now = until
	}

	const perStore = 10
	var wg sync.WaitGroup
	errs := make([]error, perStore*len(stores))
	for i := range errs {
		s := stores[i%len(stores)]
		wg.Go(func() {
			_, errs[i] = s.UpdateConnection(ctx(t), tn, "conn_1", func(c *store.Connection) error {
				c.Failures++
				return nil
			}, nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		must(t, fmt.Sprintf("UpdateConnection %d", i), err)
	}
	got, err := stores[len(stores)-1].GetConnection(ctx(t), tn, "conn_1")
	must(t, "GetConnection", err)
	if got.Failures != len(errs) {
		t.Errorf("failures after %d increments across stores = %d", len(errs), got.Failures)
	}
}

// testConnectionDeleteExpired pins that DeleteExpired destroys a
// rotated-out API key once its overlap ended, and nothing else of the
// connection.
func testConnectionDeleteExpired(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateProvider", s.CreateProvider(ctx(t), apiKeyProvider(tn, "search"), nil))
	b := base()
	ended := fullConnection(tn, "conn_ended", "search", "u1")
	ended.PreviousUntil = b.Add(-time.Microsecond)
	open := fullConnection(tn, "conn_open", "search", "u1")
	open.PreviousUntil = b
	none := minimalConnection(tn, "conn_none", "search", "u1")
	none.ExpiresAt = b.Add(-time.Hour) // an expired access token is the vault's to refresh, not to delete
	for _, c := range []*store.Connection{ended, open, none} {
		must(t, "CreateConnection", s.CreateConnection(ctx(t), c, nil))
	}
	must(t, "DeleteExpired", s.DeleteExpired(ctx(t), b))
	want := *ended
	want.PreviousSecret, want.PreviousUntil = nil, time.Time{}
	for _, c := range []*store.Connection{&want, open, none} {
		got, err := s.GetConnection(ctx(t), tn, c.ID)
		must(t, "GetConnection", err)
		checkEqual(t, "connection after DeleteExpired", c, got)
	}
}
