package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// fullConnector is a connector with every field set.
func fullConnector(tenant, id string, domains ...string) *store.Connector {
	b := base()
	return &store.Connector{
		TenantID:           tenant,
		ID:                 id,
		Type:               store.ConnectorOIDC,
		Name:               "Corp " + id,
		Issuer:             "https://idp.example.com/" + id,
		ClientID:           "agentid-" + id,
		ClientSecretSealed: []byte("v1.kek1.nonce.ct"),
		Scopes:             []string{"profile", "email", "groups"},
		Claims: store.ClaimMapping{Username: "upn", Email: "mail", Name: "display_name", Groups: "groups",
			Roles: "roles", Attributes: map[string]string{"department": "dept", "cost_center": "cc"}},
		EmailDomains: domains,
		CreatedAt:    b,
		UpdatedAt:    b.Add(time.Second),
	}
}

// testConnectors: connectors round-trip every field (email domains
// sorted bytewise), list per tenant and hub-wide, have a hub-wide id and
// email domains held by one connector each, refuse what Check refuses,
// and update everything but id, tenant and CreatedAt. Every write's event
// is written exactly when the write is.
func testConnectors(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	corp := fullConnector(tn, "corp", "corp.example", "a.corp.example")
	plain := &store.Connector{TenantID: tn, ID: "plain", Type: store.ConnectorOIDC, Issuer: "https://plain.example.com",
		ClientID: "c", ClientSecretFile: "/etc/agentid/plain.secret", CreatedAt: base(), UpdatedAt: base()}
	other := fullConnector("other", "other-idp", "other.example")
	other.Disabled = true
	samlC := &store.Connector{TenantID: tn, ID: "saml-corp", Type: store.ConnectorSAML, Name: "Corp SAML",
		Issuer: "https://idp.example.com/saml", SAMLMetadata: `<EntityDescriptor entityID="https://idp.example.com/saml"/>`,
		Claims:       store.ClaimMapping{Username: "uid", Groups: "memberOf", Attributes: map[string]string{"department": "ou"}},
		EmailDomains: []string{"saml.example"}, CreatedAt: base(), UpdatedAt: base()}
	for _, c := range []*store.Connector{corp, plain, other, samlC} {
		ev := event(c.TenantID, "connector.created")
		must(t, "CreateConnector "+c.ID, s.CreateConnector(ctx(t), c, ev))
		wantAudit(t, s, ev)
	}
	slices.Sort(corp.EmailDomains)
	list := func(tenant string) []*store.Connector {
		t.Helper()
		l, err := s.ListConnectors(ctx(t), tenant)
		must(t, "ListConnectors", err)
		return l
	}
	t.Run("round trip", func(t *testing.T) {
		for _, c := range []*store.Connector{corp, plain, other, samlC} {
			got, err := s.GetConnector(ctx(t), c.ID)
			must(t, "GetConnector "+c.ID, err)
			checkEqual(t, "connector "+c.ID, c, got)
		}
		_, err := s.GetConnector(ctx(t), "nope")
		wantErr(t, "GetConnector unknown", err, store.ErrNotFound)
	})
	t.Run("list", func(t *testing.T) {
		checkEqual(t, "tenant's connectors", []*store.Connector{corp, plain, samlC}, list(tn))
		checkEqual(t, "other tenant's connectors", []*store.Connector{other}, list("other"))
		checkEqual(t, "every connector", []*store.Connector{corp, other, plain, samlC}, list(""))
	})
	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			c    *store.Connector
			want error
		}{
			{"id used in another tenant", fullConnector("third", "corp"), store.ErrConflict},
			{"domain of another connector", fullConnector(tn, "corp2", "other.example"), store.ErrConflict},
			{"no issuer", func() *store.Connector { c := fullConnector(tn, "x"); c.Issuer = ""; return c }(), store.ErrInvalid},
			{"no client id", func() *store.Connector { c := fullConnector(tn, "x"); c.ClientID = ""; return c }(), store.ErrInvalid},
			{"upper-case id", fullConnector(tn, "Corp3"), store.ErrInvalid},
			{"unknown type", func() *store.Connector { c := fullConnector(tn, "x"); c.Type = "ldap"; return c }(), store.ErrInvalid},
			{"SAML without metadata", func() *store.Connector { c := *samlC; c.ID, c.SAMLMetadata = "x", ""; return &c }(), store.ErrInvalid},
			{"SAML with a client secret", func() *store.Connector { c := *samlC; c.ID, c.ClientSecretFile = "x", "/s"; return &c }(), store.ErrInvalid},
			{"OIDC with SAML metadata", func() *store.Connector { c := fullConnector(tn, "x"); c.SAMLMetadata = "<x/>"; return c }(), store.ErrInvalid},
			{"upper-case domain", fullConnector(tn, "x", "Corp.example"), store.ErrInvalid},
			{"duplicate domain", fullConnector(tn, "x", "d.example", "d.example"), store.ErrInvalid},
			{"bad attribute name", func() *store.Connector {
				c := fullConnector(tn, "x")
				c.Claims.Attributes = map[string]string{"has space": "c"}
				return c
			}(), store.ErrInvalid},
			{"file and sealed secret", func() *store.Connector {
				c := fullConnector(tn, "x")
				c.ClientSecretFile = "/s"
				return c
			}(), store.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ev := event(tc.c.TenantID, "connector.created")
				wantErr(t, "CreateConnector", s.CreateConnector(ctx(t), tc.c, ev), tc.want)
				wantNoAudit(t, s, ev)
			})
		}
		checkEqual(t, "every connector after refusals", []*store.Connector{corp, other, plain, samlC}, list(""))
	})
	t.Run("update", func(t *testing.T) {
		upd := fullConnector(tn, "plain", "plain.example")
		upd.Name, upd.Issuer, upd.ClientSecretSealed = "Plain", "https://plain2.example.com", nil
		upd.ClientSecretFile = "/run/secrets/plain"
		upd.Claims = store.ClaimMapping{Groups: "grp"}
		upd.Scopes = nil
		upd.Disabled = true
		upd.CreatedAt = base().Add(48 * time.Hour) // ignored
		upd.UpdatedAt = base().Add(time.Hour)
		ev := event(tn, "connector.updated")
		must(t, "UpdateConnector", s.UpdateConnector(ctx(t), upd, ev))
		wantAudit(t, s, ev)
		want := *upd
		want.CreatedAt = plain.CreatedAt
		got, err := s.GetConnector(ctx(t), "plain")
		must(t, "GetConnector", err)
		checkEqual(t, "updated connector", &want, got)

		// A domain another connector holds is refused, and nothing changes.
		bad := *upd
		bad.EmailDomains = []string{"corp.example"}
		ev = event(tn, "connector.updated")
		wantErr(t, "UpdateConnector with a taken domain", s.UpdateConnector(ctx(t), &bad, ev), store.ErrConflict)
		wantNoAudit(t, s, ev)
		got, err = s.GetConnector(ctx(t), "plain")
		must(t, "GetConnector", err)
		checkEqual(t, "connector after a refused update", &want, got)

		// Dropping a domain frees it.
		upd.EmailDomains = nil
		must(t, "UpdateConnector without domains", s.UpdateConnector(ctx(t), upd, nil))
		free := fullConnector(tn, "free", "plain.example")
		must(t, "CreateConnector with a freed domain", s.CreateConnector(ctx(t), free, nil))

		// A SAML connector's metadata is replaced like every other field.
		samlUpd := *samlC
		samlUpd.SAMLMetadata, samlUpd.UpdatedAt = `<EntityDescriptor entityID="https://idp.example.com/saml2"/>`, base().Add(time.Hour)
		must(t, "UpdateConnector saml", s.UpdateConnector(ctx(t), &samlUpd, nil))
		got, err = s.GetConnector(ctx(t), samlC.ID)
		must(t, "GetConnector saml", err)
		checkEqual(t, "updated SAML connector", &samlUpd, got)

		unknown := fullConnector(tn, "unknown")
		wantErr(t, "UpdateConnector unknown", s.UpdateConnector(ctx(t), unknown, nil), store.ErrNotFound)
		// The tenant is part of the key: another tenant cannot update it.
		moved := fullConnector("other", "corp")
		wantErr(t, "UpdateConnector of another tenant's", s.UpdateConnector(ctx(t), moved, nil), store.ErrNotFound)
	})
}

// connectorUser is a person as connector "corp" describes them.
func connectorUser(tenant, id, username, subject string) *store.User {
	return &store.User{TenantID: tenant, ID: id, Username: username, ConnectorID: "corp", ExternalSubject: subject,
		Name: "Alice Example", Email: username + "@corp.example", EmailVerified: true,
		Groups: []string{"eng", "eng-oncall"}, Roles: []string{"admin"}, Attributes: map[string]string{"department": "R&D", "level": "7"},
		CreatedAt: base(), UpdatedAt: base()}
}

func newSession(tenant string) *store.Session {
	return &store.Session{Hash: hash(uniq("sess")), TenantID: tenant, AuthTime: base(),
		ExpiresAt: base().Add(time.Hour)}
}

// testConnectorSignIn: the first sign-in through a connector provisions
// the user, later ones find them by (tenant, connector, subject) and
// refresh profile, groups and roles (nil keeps them, empty clears them)
// but never the username; a disabled user is returned and nothing is
// written; the session and the events are written with the user; a taken
// username is a conflict; concurrent first sign-ins make one user.
func testConnectorSignIn(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	signIn := func(t *testing.T, u *store.User) (*store.User, bool, *store.Session, *store.AuditEvent, error) {
		t.Helper()
		sess := newSession(tn)
		ev := event(tn, "user.signed_in")
		var sawCreated *bool
		got, created, err := s.SignInConnectorUser(ctx(t), u, sess, func(stored *store.User, created bool) []*store.AuditEvent {
			sawCreated = &created
			ev.UserID = stored.ID
			return []*store.AuditEvent{ev}
		})
		if err == nil && !got.Disabled && (sawCreated == nil || *sawCreated != created) {
			t.Fatalf("events saw created = %v, SignInConnectorUser returned %v", sawCreated, created)
		}
		return got, created, sess, ev, err
	}
	first := connectorUser(tn, "u-alice", "alice", "sub-1")
	var aliceID string
	t.Run("provision", func(t *testing.T) {
		got, created, sess, ev, err := signIn(t, first)
		must(t, "SignInConnectorUser", err)
		if !created {
			t.Fatal("first sign-in: created = false")
		}
		checkEqual(t, "provisioned user", first, got)
		stored, err := s.GetUser(ctx(t), tn, "u-alice")
		must(t, "GetUser", err)
		checkEqual(t, "stored user", first, stored)
		wantAudit(t, s, ev)
		if sess.UserID != "u-alice" {
			t.Fatalf("session user = %q", sess.UserID)
		}
		if _, err := s.GetSession(ctx(t), sess.Hash, base()); err != nil {
			t.Fatalf("session not stored: %v", err)
		}
		aliceID = got.ID
	})
	t.Run("refresh", func(t *testing.T) {
		again := connectorUser(tn, "u-ignored", "alice-renamed", "sub-1")
		again.Name, again.Email, again.EmailVerified = "Alice Q. Example", "alice.q@corp.example", false
		again.Groups = []string{"eng"} // eng-oncall removed upstream
		again.Roles = nil              // roles not mapped: kept
		again.Attributes = map[string]string{"department": "Ops"}
		again.UpdatedAt = base().Add(time.Hour)
		got, created, _, ev, err := signIn(t, again)
		must(t, "SignInConnectorUser", err)
		if created {
			t.Fatal("second sign-in: created = true")
		}
		want := *first
		want.Name, want.Email, want.EmailVerified = again.Name, again.Email, false
		want.Groups, want.UpdatedAt = []string{"eng"}, again.UpdatedAt
		want.Attributes = map[string]string{"department": "Ops"} // replaced whole
		checkEqual(t, "refreshed user", &want, got)
		stored, err := s.GetUser(ctx(t), tn, aliceID)
		must(t, "GetUser", err)
		checkEqual(t, "stored user", &want, stored)
		wantAudit(t, s, ev)

		// Nil attributes keep; an empty list or map clears.
		again.Attributes = nil
		_, _, _, _, err = signIn(t, again)
		must(t, "SignInConnectorUser", err)
		stored, err = s.GetUser(ctx(t), tn, aliceID)
		must(t, "GetUser", err)
		checkEqual(t, "attributes kept", map[string]string{"department": "Ops"}, stored.Attributes)
		again.Groups, again.Roles, again.Attributes = []string{}, []string{}, map[string]string{}
		_, _, _, _, err = signIn(t, again)
		must(t, "SignInConnectorUser", err)
		stored, err = s.GetUser(ctx(t), tn, aliceID)
		must(t, "GetUser", err)
		if len(stored.Groups) != 0 || len(stored.Roles) != 0 || len(stored.Attributes) != 0 {
			t.Fatalf("groups %q, roles %q, attributes %v after an empty refresh", stored.Groups, stored.Roles, stored.Attributes)
		}

		// What no user can hold is refused, and nothing is written.
		bad := connectorUser(tn, "u-x", "alice", "sub-1")
		bad.Groups = []string{"eng", "eng"}
		_, _, sess, ev, err := signIn(t, bad)
		wantErr(t, "SignInConnectorUser with a duplicate group", err, store.ErrInvalid)
		wantNoAudit(t, s, ev)
		if _, err := s.GetSession(ctx(t), sess.Hash, base()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("session after a refused sign-in: %v", err)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		u, err := s.GetUser(ctx(t), tn, aliceID)
		must(t, "GetUser", err)
		u.Disabled = true
		must(t, "UpdateUser", s.UpdateUser(ctx(t), u, nil))
		again := connectorUser(tn, "u-x", "alice", "sub-1")
		again.Name = "Changed"
		got, created, sess, ev, err := signIn(t, again)
		must(t, "SignInConnectorUser", err)
		if created || !got.Disabled || got.Name == "Changed" {
			t.Fatalf("disabled user: created %v, disabled %v, name %q", created, got.Disabled, got.Name)
		}
		wantNoAudit(t, s, ev)
		if _, err := s.GetSession(ctx(t), sess.Hash, base()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("session of a disabled user: %v", err)
		}
		stored, err := s.GetUser(ctx(t), tn, aliceID)
		must(t, "GetUser", err)
		if stored.Name == "Changed" {
			t.Fatal("a disabled user's profile was refreshed")
		}
	})
	t.Run("username taken", func(t *testing.T) {
		must(t, "CreateUser local", s.CreateUser(ctx(t), &store.User{TenantID: tn, ID: "u-bob-local", Username: "bob",
			CreatedAt: base(), UpdatedAt: base()}, nil))
		_, _, sess, ev, err := signIn(t, connectorUser(tn, "u-bob", "bob", "sub-bob"))
		wantErr(t, "SignInConnectorUser with a local user's name", err, store.ErrConflict)
		wantNoAudit(t, s, ev)
		if _, err := s.GetSession(ctx(t), sess.Hash, base()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("session after a conflict: %v", err)
		}
		local, err := s.GetUser(ctx(t), tn, "u-bob-local")
		must(t, "GetUser", err)
		if local.ConnectorID != "" || local.Email != "" {
			t.Fatal("a local user was linked to a connector")
		}
		// A name that folds to the local user's (store.UsernameKey) is
		// taken too: a provider cannot make "BOB" or a fullwidth "ｂｏｂ".
		for _, name := range []string{"BOB", "\uff42\uff4f\uff42"} {
			_, _, _, ev, err := signIn(t, connectorUser(tn, uniq("u-bob"), name, uniq("sub-bob")))
			wantErr(t, "SignInConnectorUser with a local user's name folded", err, store.ErrConflict)
			wantNoAudit(t, s, ev)
		}
	})
	t.Run("per connector", func(t *testing.T) {
		// The same subject at another connector is another person.
		u := connectorUser(tn, "u-alice-2", "alice-other", "sub-1")
		u.ConnectorID = "other"
		got, created, _, _, err := signIn(t, u)
		must(t, "SignInConnectorUser", err)
		if !created || got.ID == aliceID {
			t.Fatalf("same subject, other connector: created %v, id %q", created, got.ID)
		}
	})
	t.Run("concurrent first sign-ins", func(t *testing.T) {
		var wg sync.WaitGroup
		ids := make([]string, 4)
		errs := make([]error, 4)
		for i := range ids {
			wg.Go(func() {
				u := connectorUser(tn, uniq("u-carol"), "carol", "sub-carol")
				got, _, err := s.SignInConnectorUser(ctx(t), u, newSession(tn), func(*store.User, bool) []*store.AuditEvent { return nil })
				if err == nil {
					ids[i] = got.ID
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i := range ids {
			// A loser may see the username taken by the winner's insert
			// (the usernames index), never a second user.
			if errs[i] != nil && !errors.Is(errs[i], store.ErrConflict) {
				t.Fatalf("sign-in %d: %v", i, errs[i])
			}
		}
		users, err := s.ListUsers(ctx(t), tn)
		must(t, "ListUsers", err)
		n := 0
		for _, u := range users {
			if u.ExternalSubject == "sub-carol" {
				n++
				for i := range ids {
					if errs[i] == nil && ids[i] != u.ID {
						t.Fatalf("sign-in %d got user %q, stored %q", i, ids[i], u.ID)
					}
				}
			}
		}
		if n != 1 {
			t.Fatalf("%d users for one subject", n)
		}
	})
}
