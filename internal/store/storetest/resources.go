package storetest

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

func fullResource(tenant, id, uri string) *store.Resource {
	return &store.Resource{
		TenantID: tenant,
		ID:       id,
		URI:      uri,
		Name:     "Files " + id,
		Scopes: []store.Scope{
			{Name: "files:write", Description: "Write files", Sensitive: true},
			{Name: "files:read", Description: "Read files"},
			{Name: "admin", Description: "", Sensitive: true},
		},
		AccessTokenTTL:    5 * time.Minute,
		ConsentMaxTTL:     90 * 24 * time.Hour,
		ConsentDefaultTTL: 1500 * time.Millisecond,
		Tags:              []string{"internal", "pii"},
		ClientID:          "rs-" + id,
		UserClaims:        map[string]string{"groups": store.UserClaimGroups, "department": "attr:department"},
		CreatedAt:         base(),
	}
}

func testResources(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	full := fullResource(tn, "r1", "https://files.example.com/mcp")
	bare := &store.Resource{TenantID: tn, ID: "r2", URI: "https://bare.example.com/", CreatedAt: base()}
	for _, r := range []*store.Resource{full, bare} {
		ev := event(tn, "resource.created")
		must(t, "CreateResource", s.CreateResource(ctx(t), r, ev))
		wantAudit(t, s, ev)
	}

	t.Run("round trip keeps scope order", func(t *testing.T) {
		for _, r := range []*store.Resource{full, bare} {
			got, err := s.GetResource(ctx(t), tn, r.URI)
			must(t, "GetResource", err)
			checkEqual(t, "resource", r, got)
		}
	})
	t.Run("list", func(t *testing.T) {
		list, err := s.ListResources(ctx(t), tn)
		must(t, "ListResources", err)
		wantIDs(t, "ListResources", sortedIDs(list, func(r *store.Resource) string { return r.ID }), []string{"r1", "r2"})
		for _, r := range list {
			want := full
			if r.ID == "r2" {
				want = bare
			}
			checkEqual(t, "listed resource", want, r)
		}
	})
	t.Run("update replaces name ttl client scopes", func(t *testing.T) {
		upd := *full
		upd.Name = "Files v2"
		upd.AccessTokenTTL = time.Hour
		upd.ConsentMaxTTL = 0
		upd.ConsentDefaultTTL = 7 * 24 * time.Hour
		upd.ClientID = "rs-other"
		upd.Scopes = []store.Scope{{Name: "files:read", Description: "Read them", Sensitive: true}, {Name: "new", Description: "New"}}
		ev := event(tn, "resource.updated")
		must(t, "UpdateResource", s.UpdateResource(ctx(t), &upd, ev))
		wantAudit(t, s, ev)
		got, err := s.GetResource(ctx(t), tn, full.URI)
		must(t, "GetResource", err)
		checkEqual(t, "updated resource", &upd, got)

		upd.Scopes = nil
		must(t, "UpdateResource", s.UpdateResource(ctx(t), &upd, nil))
		got, err = s.GetResource(ctx(t), tn, full.URI)
		must(t, "GetResource", err)
		if len(got.Scopes) != 0 {
			t.Fatalf("scopes after clearing = %v", got.Scopes)
		}
	})
	t.Run("delete", func(t *testing.T) {
		ev := event(tn, "resource.deleted")
		must(t, "DeleteResource", s.DeleteResource(ctx(t), tn, bare.URI, ev))
		wantAudit(t, s, ev)
		_, err := s.GetResource(ctx(t), tn, bare.URI)
		wantErr(t, "GetResource after delete", err, store.ErrNotFound)
		// Its URI and id are free again, and stale scopes do not come back.
		again := fullResource(tn, "r2", bare.URI)
		must(t, "CreateResource again", s.CreateResource(ctx(t), again, nil))
		got, err := s.GetResource(ctx(t), tn, bare.URI)
		must(t, "GetResource", err)
		checkEqual(t, "recreated resource", again, got)
	})
}

func testResourceErrors(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	r := fullResource(tn, "r1", "https://files.example.com/mcp")
	must(t, "CreateResource", s.CreateResource(ctx(t), r, nil))

	// Writes get an event (evType set): a failed write must leave none
	// behind (same transaction), a successful one exactly one.
	tests := []writeCase{
		{"duplicate uri", "resource.created", func(ev *store.AuditEvent) error {
			return s.CreateResource(ctx(t), fullResource(tn, "r9", r.URI), ev)
		}, store.ErrConflict},
		{"duplicate id", "resource.created", func(ev *store.AuditEvent) error {
			return s.CreateResource(ctx(t), fullResource(tn, "r1", "https://other.example.com/"), ev)
		}, store.ErrConflict},
		{"get unknown", "", func(*store.AuditEvent) error {
			_, err := s.GetResource(ctx(t), tn, "https://unknown.example.com/")
			return err
		}, store.ErrNotFound},
		{"get other tenant", "", func(*store.AuditEvent) error {
			_, err := s.GetResource(ctx(t), "t2", r.URI)
			return err
		}, store.ErrNotFound},
		{"update unknown", "resource.updated", func(ev *store.AuditEvent) error {
			return s.UpdateResource(ctx(t), fullResource(tn, "r7", "https://unknown.example.com/"), ev)
		}, store.ErrNotFound},
		{"delete unknown", "resource.deleted", func(ev *store.AuditEvent) error {
			return s.DeleteResource(ctx(t), tn, "https://unknown.example.com/", ev)
		}, store.ErrNotFound},
		{"same uri other tenant", "resource.created", func(ev *store.AuditEvent) error {
			return s.CreateResource(ctx(t), fullResource("t2", "r1", r.URI), ev)
		}, nil},
	}
	runWriteCases(t, s, tn, tests)
	// The failed writes left the original untouched.
	got, err := s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	checkEqual(t, "resource after failed writes", r, got)
}

func testUsers(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	alice := &store.User{
		TenantID:     tn,
		ID:           "u1",
		Username:     "alice",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Roles:        []string{"admin", "dev"},
		Groups:       []string{"eng"},
		Attributes:   map[string]string{"department": "R&D", "employment": "staff", "motto": "“naïve” <ok>"},
		CreatedAt:    base(),
		UpdatedAt:    base(),
	}
	bob := &store.User{TenantID: tn, ID: "u2", Username: "bob", PasswordHash: "x", Disabled: true, CreatedAt: base(), UpdatedAt: base()}
	for _, u := range []*store.User{alice, bob} {
		ev := event(tn, "user.created")
		ev.UserID = u.ID
		must(t, "CreateUser", s.CreateUser(ctx(t), u, ev))
		wantAudit(t, s, ev)
	}

	t.Run("get by id and username", func(t *testing.T) {
		for _, u := range []*store.User{alice, bob} {
			got, err := s.GetUser(ctx(t), tn, u.ID)
			must(t, "GetUser", err)
			checkEqual(t, "user", u, got)
			got, err = s.GetUserByUsername(ctx(t), tn, u.Username)
			must(t, "GetUserByUsername", err)
			checkEqual(t, "user by name", u, got)
		}
	})
	t.Run("list", func(t *testing.T) {
		list, err := s.ListUsers(ctx(t), tn)
		must(t, "ListUsers", err)
		wantIDs(t, "ListUsers", sortedIDs(list, func(u *store.User) string { return u.ID }), []string{"u1", "u2"})
	})
	t.Run("update password and disabled", func(t *testing.T) {
		upd := *alice
		upd.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3$bmV3"
		upd.Disabled = true
		upd.UpdatedAt = base().Add(time.Hour)
		ev := event(tn, "user.updated")
		ev.Details = map[string]string{"change": "disabled"}
		must(t, "UpdateUser", s.UpdateUser(ctx(t), &upd, ev))
		wantAudit(t, s, ev)
		got, err := s.GetUser(ctx(t), tn, "u1")
		must(t, "GetUser", err)
		if got.PasswordHash != upd.PasswordHash || !got.Disabled {
			t.Fatalf("after UpdateUser: hash %q disabled %v", got.PasswordHash, got.Disabled)
		}
		if got.Username != alice.Username || !sameTime(alice.CreatedAt, got.CreatedAt) {
			t.Fatalf("UpdateUser changed identity fields: %+v", got)
		}
		upd.Disabled = false
		must(t, "UpdateUser", s.UpdateUser(ctx(t), &upd, nil))
		if got, _ := s.GetUser(ctx(t), tn, "u1"); got == nil || got.Disabled {
			t.Fatalf("re-enabling failed: %+v", got)
		}
	})

	// Writes get an event (evType set): a failed write must leave none
	// behind (same transaction), a successful one exactly one.
	errs := []writeCase{
		{"duplicate id", "user.created", func(ev *store.AuditEvent) error {
			return s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u1", Username: "carol", CreatedAt: base()}, ev)
		}, store.ErrConflict},
		{"duplicate username", "user.created", func(ev *store.AuditEvent) error {
			return s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u3", Username: "alice", CreatedAt: base()}, ev)
		}, store.ErrConflict},
		// Usernames are one account's under store.UsernameKey: case,
		// fullwidth forms, ligatures and composed accents fold.
		{"username in another case", "user.created", func(ev *store.AuditEvent) error {
			return s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u3", Username: "ALICE", CreatedAt: base()}, ev)
		}, store.ErrConflict},
		{"username in fullwidth letters", "user.created", func(ev *store.AuditEvent) error {
			return s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u3", Username: "\uff41lice", CreatedAt: base()}, ev)
		}, store.ErrConflict},
		{"username with a sharp s folded", "user.created", func(ev *store.AuditEvent) error {
			must(t, "CreateUser", s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u-strasse", Username: "strasse", CreatedAt: base()}, nil))
			return s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u3", Username: "STRA\u00dfE", CreatedAt: base()}, ev)
		}, store.ErrConflict},
		{"username decomposed", "user.created", func(ev *store.AuditEvent) error {
			must(t, "CreateUser", s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u-jose", Username: "jos\u00e9", CreatedAt: base()}, nil))
			return s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u3", Username: "JOSE\u0301", CreatedAt: base()}, ev)
		}, store.ErrConflict},
		{"a different username", "user.created", func(ev *store.AuditEvent) error {
			return s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u-alicia", Username: "alicia", CreatedAt: base()}, ev)
		}, nil},
		{"same username other tenant", "user.created", func(ev *store.AuditEvent) error {
			return s.CreateUser(ctx(t), &store.User{TenantID: "t2", ID: "u1", Username: "alice", CreatedAt: base()}, ev)
		}, nil},
		{"get unknown", "", func(*store.AuditEvent) error { _, err := s.GetUser(ctx(t), tn, "nope"); return err }, store.ErrNotFound},
		{"get unknown username", "", func(*store.AuditEvent) error { _, err := s.GetUserByUsername(ctx(t), tn, "nope"); return err }, store.ErrNotFound},
		{"get other tenant", "", func(*store.AuditEvent) error { _, err := s.GetUser(ctx(t), "t3", "u1"); return err }, store.ErrNotFound},
		{"update unknown", "user.updated", func(ev *store.AuditEvent) error {
			return s.UpdateUser(ctx(t), &store.User{TenantID: tn, ID: "nope", Username: "nope"}, ev)
		}, store.ErrNotFound},
	}
	runWriteCases(t, s, tn, errs)
}

func testSigningKeys(t *testing.T, s store.Store) {
	b := base()
	mk := func(kid string, created time.Time) *store.SigningKey {
		return &store.SigningKey{
			ID:         kid,
			Algorithm:  "ES256",
			PublicJWK:  `{"kty":"EC","kid":"` + kid + `"}`,
			PrivateEnc: []byte("v1|kek-1|nonce|ct-" + kid),
			ActivateAt: created.Add(time.Hour),
			CreatedAt:  created,
		}
	}
	k2 := mk("k2", b.Add(2*time.Hour))
	k1 := mk("k1", b)
	k3 := mk("k3", b.Add(4*time.Hour))
	k3.Algorithm = "EdDSA"
	// Created out of order: the list is by CreatedAt, oldest first.
	for _, k := range []*store.SigningKey{k2, k1, k3} {
		must(t, "CreateSigningKey", s.CreateSigningKey(ctx(t), k))
	}
	list, err := s.ListSigningKeys(ctx(t))
	must(t, "ListSigningKeys", err)
	checkEqual(t, "signing keys oldest first", []*store.SigningKey{k1, k2, k3}, list)

	t.Run("duplicate kid", func(t *testing.T) {
		wantErr(t, "CreateSigningKey", s.CreateSigningKey(ctx(t), mk("k1", b)), store.ErrConflict)
	})
	t.Run("update unknown", func(t *testing.T) {
		wantErr(t, "UpdateSigningKey", s.UpdateSigningKey(ctx(t), mk("nope", b)), store.ErrNotFound)
	})
	t.Run("retire and expire", func(t *testing.T) {
		upd := *k1
		upd.RetiredAt = b.Add(5 * time.Hour)
		upd.ExpiresAt = b.Add(6 * time.Hour)
		must(t, "UpdateSigningKey", s.UpdateSigningKey(ctx(t), &upd))
		upd2 := *k2
		upd2.RetiredAt = b.Add(5 * time.Hour)
		upd2.ExpiresAt = b.Add(8 * time.Hour)
		must(t, "UpdateSigningKey", s.UpdateSigningKey(ctx(t), &upd2))
		list, err := s.ListSigningKeys(ctx(t))
		must(t, "ListSigningKeys", err)
		checkEqual(t, "updated keys", []*store.SigningKey{&upd, &upd2, k3}, list)

		// At b+7h k1 has left JWKS; k2 has not; k3 never expires.
		must(t, "DeleteExpiredSigningKeys", s.DeleteExpiredSigningKeys(ctx(t), b.Add(7*time.Hour)))
		list, err = s.ListSigningKeys(ctx(t))
		must(t, "ListSigningKeys", err)
		checkEqual(t, "keys after expiry", []*store.SigningKey{&upd2, k3}, list)
	})
}

func testSessions(t *testing.T, s store.Store) {
	b := base()
	sess := &store.Session{
		Hash:      hash("cookie-1"),
		TenantID:  store.DefaultTenant,
		UserID:    "u1",
		AuthTime:  b,
		ExpiresAt: b.Add(12 * time.Hour),
	}
	ev := event(store.DefaultTenant, "session.created")
	must(t, "CreateSession", s.CreateSession(ctx(t), sess, ev))
	wantAudit(t, s, ev)

	tests := []struct {
		name string
		hash []byte
		now  time.Time
		want error
	}{
		{"live", sess.Hash, b.Add(time.Hour), nil},
		{"just before expiry", sess.Hash, b.Add(12*time.Hour - time.Second), nil},
		{"at expiry", sess.Hash, b.Add(12 * time.Hour), store.ErrNotFound},
		{"after expiry", sess.Hash, b.Add(13 * time.Hour), store.ErrNotFound},
		{"unknown", hash("other"), b, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.GetSession(ctx(t), tc.hash, tc.now)
			wantErr(t, "GetSession", err, tc.want)
			if tc.want == nil {
				checkEqual(t, "session", sess, got)
			}
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		ev := event(store.DefaultTenant, "session.created")
		wantErr(t, "CreateSession", s.CreateSession(ctx(t), sess, ev), store.ErrConflict)
		wantNoAudit(t, s, ev)
	})
	t.Run("delete", func(t *testing.T) {
		must(t, "DeleteSession", s.DeleteSession(ctx(t), sess.Hash))
		_, err := s.GetSession(ctx(t), sess.Hash, b)
		wantErr(t, "GetSession after delete", err, store.ErrNotFound)
	})
}

// checkWriteAudit checks ev (nil: a read, nothing to check) was written
// exactly once if the write succeeded (err nil) and not at all if it failed.
func checkWriteAudit(t *testing.T, s store.Store, ev *store.AuditEvent, err error) {
	t.Helper()
	switch {
	case ev == nil:
	case err == nil:
		wantAudit(t, s, ev)
	default:
		wantNoAudit(t, s, ev)
	}
}

// writeCase is one write expected to fail with want (nil: succeed in
// another tenant), checked together with its audit event.
type writeCase struct {
	name   string
	evType string // "" for reads
	call   func(ev *store.AuditEvent) error
	want   error
}

// runWriteCases runs each case with a fresh event of its type and checks
// the error and that the event was written exactly when the write was.
func runWriteCases(t *testing.T, s store.Store, tn string, cases []writeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev *store.AuditEvent
			if tc.evType != "" {
				ev = event(tn, tc.evType)
				if tc.want == nil {
					ev.TenantID = "t2"
				}
			}
			wantErr(t, tc.name, tc.call(ev), tc.want)
			checkWriteAudit(t, s, ev, tc.want)
		})
	}
}
