package storetest

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// fullIssuer is an issuer with every field set (keys by URI).
func fullIssuer(tenant, id, issuer string) *store.Issuer {
	b := base()
	return &store.Issuer{
		TenantID:    tenant,
		ID:          id,
		Issuer:      issuer,
		JWKSURI:     issuer + "/openid/v1/jwks",
		Audiences:   []string{"https://hub.example.com", "https://hub.example.com/token"},
		Algorithms:  []string{"ES256", "RS256"},
		Uses:        []string{store.IssuerUseWorkload, store.IssuerUseJWTBearer},
		MaxLifetime: 90 * time.Minute,
		UserClaim:   "email",
		Rules: []store.IssuerRule{
			{Claims: map[string]string{"sub": "system:serviceaccount:agents:*", "kubernetes.io/namespace": "agents"},
				Agent: "k8s:{kubernetes.io/namespace}:{sub}", Scopes: []string{"files:read", "mail:send"}},
			{Claims: map[string]string{"repository": "acme/*"}, Agent: "ci:{repository}"},
		},
		Disabled:  false,
		CreatedAt: b,
		UpdatedAt: b.Add(time.Second),
	}
}

// staticIssuer is an issuer with a static key set and only what is
// required besides.
func staticIssuer(tenant, id, issuer string) *store.Issuer {
	return &store.Issuer{
		TenantID:  tenant,
		ID:        id,
		Issuer:    issuer,
		JWKS:      `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"a","y":"b"}]}`,
		Uses:      []string{store.IssuerUseIDJAG},
		CreatedAt: base(),
		UpdatedAt: base(),
	}
}

// testIssuers: trusted issuers round-trip every field, list by id
// bytewise per tenant, are unique by id and by issuer URL in a tenant,
// refuse what the contract calls invalid, update everything but the key
// and CreatedAt, and delete without touching the clients they federated.
// Every write's event is written exactly when the write is.
func testIssuers(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	k8s := fullIssuer(tn, "k8s-prod", "https://kubernetes.default.svc")
	okta := staticIssuer(tn, "okta", "https://acme.okta.com")
	upper := staticIssuer(tn, "Zeta", "https://zeta.example.com")
	upper.Disabled = true
	for _, iss := range []*store.Issuer{okta, k8s, upper} {
		ev := event(tn, "issuer.added")
		must(t, "CreateIssuer "+iss.ID, s.CreateIssuer(ctx(t), iss, ev))
		wantAudit(t, s, ev)
	}
	// The same id and issuer URL in another tenant are another issuer.
	other := staticIssuer("other", "okta", "https://acme.okta.com")
	must(t, "CreateIssuer other tenant", s.CreateIssuer(ctx(t), other, nil))

	list := func(tenant string) []*store.Issuer {
		t.Helper()
		l, err := s.ListIssuers(ctx(t), tenant)
		must(t, "ListIssuers", err)
		return l
	}
	t.Run("round trip", func(t *testing.T) {
		for _, iss := range []*store.Issuer{k8s, okta, upper} {
			got, err := s.GetIssuer(ctx(t), tn, iss.ID)
			must(t, "GetIssuer "+iss.ID, err)
			checkEqual(t, "issuer "+iss.ID, iss, got)
		}
		got, err := s.GetIssuer(ctx(t), "other", "okta")
		must(t, "GetIssuer other tenant", err)
		checkEqual(t, "other tenant's issuer", other, got)
	})
	t.Run("list", func(t *testing.T) {
		// Bytewise: upper case before lower case.
		checkEqual(t, "issuers", []*store.Issuer{upper, k8s, okta}, list(tn))
		checkEqual(t, "other tenant's issuers", []*store.Issuer{other}, list("other"))
		if l := list("empty"); len(l) != 0 {
			t.Fatalf("ListIssuers of an empty tenant = %d issuers", len(l))
		}
	})
	t.Run("update", func(t *testing.T) {
		upd := staticIssuer(tn, "k8s-prod", "https://oidc.eks.example.com/id/ABC")
		upd.Audiences = []string{"sts.example.com"}
		upd.Algorithms = []string{"RS256"}
		upd.Uses = []string{store.IssuerUseWorkload, store.IssuerUseSubjectToken}
		upd.MaxLifetime = 10 * time.Minute
		upd.UserClaim = "preferred_username"
		upd.Rules = []store.IssuerRule{{Claims: map[string]string{"sub": "*"}, Agent: "eks:{sub}"}}
		upd.Disabled = true
		upd.CreatedAt = base().Add(48 * time.Hour) // ignored
		upd.UpdatedAt = base().Add(time.Hour)
		ev := event(tn, "issuer.updated")
		must(t, "UpdateIssuer", s.UpdateIssuer(ctx(t), upd, ev))
		wantAudit(t, s, ev)
		want := *upd
		want.CreatedAt = k8s.CreatedAt
		got, err := s.GetIssuer(ctx(t), tn, "k8s-prod")
		must(t, "GetIssuer", err)
		checkEqual(t, "updated issuer", &want, got)
		if got.JWKSURI != "" {
			t.Fatalf("JWKS URI %q kept after switching to a static key set", got.JWKSURI)
		}
		// The old issuer URL is free again; enabling brings it back.
		k8s.UpdatedAt = base().Add(2 * time.Hour)
		must(t, "UpdateIssuer back", s.UpdateIssuer(ctx(t), k8s, nil))
		got, err = s.GetIssuer(ctx(t), tn, "k8s-prod")
		must(t, "GetIssuer", err)
		checkEqual(t, "issuer updated back", k8s, got)
		checkEqual(t, "other tenant's issuers", []*store.Issuer{other}, list("other"))
	})

	invalid := func(mod func(*store.Issuer)) func(ev *store.AuditEvent) error {
		return func(ev *store.AuditEvent) error {
			iss := fullIssuer(tn, "new", "https://new.example.com")
			mod(iss)
			return s.CreateIssuer(ctx(t), iss, ev)
		}
	}
	invalidUpdate := func(mod func(*store.Issuer)) func(ev *store.AuditEvent) error {
		return func(ev *store.AuditEvent) error {
			iss := staticIssuer(tn, "okta", "https://acme.okta.com")
			mod(iss)
			return s.UpdateIssuer(ctx(t), iss, ev)
		}
	}
	runWriteCases(t, s, tn, []writeCase{
		{"duplicate id", "issuer.added", func(ev *store.AuditEvent) error {
			return s.CreateIssuer(ctx(t), staticIssuer(tn, "okta", "https://other.okta.com"), ev)
		}, store.ErrConflict},
		{"duplicate issuer URL", "issuer.added", func(ev *store.AuditEvent) error {
			return s.CreateIssuer(ctx(t), staticIssuer(tn, "okta-2", "https://acme.okta.com"), ev)
		}, store.ErrConflict},
		{"same issuer URL other tenant", "issuer.added", func(ev *store.AuditEvent) error {
			return s.CreateIssuer(ctx(t), staticIssuer("t2", "k8s", "https://kubernetes.default.svc"), ev)
		}, nil},
		{"no id", "issuer.added", invalid(func(i *store.Issuer) { i.ID = "" }), store.ErrInvalid},
		{"no tenant", "issuer.added", invalid(func(i *store.Issuer) { i.TenantID = "" }), store.ErrInvalid},
		{"no issuer URL", "issuer.added", invalid(func(i *store.Issuer) { i.Issuer = "" }), store.ErrInvalid},
		{"no use", "issuer.added", invalid(func(i *store.Issuer) { i.Uses = nil }), store.ErrInvalid},
		{"unknown use", "issuer.added", invalid(func(i *store.Issuer) { i.Uses = []string{store.IssuerUseWorkload, "login"} }), store.ErrInvalid},
		{"no keys", "issuer.added", invalid(func(i *store.Issuer) { i.JWKSURI = "" }), store.ErrInvalid},
		{"both keys", "issuer.added", invalid(func(i *store.Issuer) { i.JWKS = `{"keys":[]}` }), store.ErrInvalid},
		{"negative lifetime", "issuer.added", invalid(func(i *store.Issuer) { i.MaxLifetime = -time.Second }), store.ErrInvalid},
		{"get unknown", "", func(*store.AuditEvent) error { _, err := s.GetIssuer(ctx(t), tn, "nope"); return err }, store.ErrNotFound},
		{"get other tenant", "", func(*store.AuditEvent) error { _, err := s.GetIssuer(ctx(t), "t3", "okta"); return err }, store.ErrNotFound},
		{"update unknown", "issuer.updated", func(ev *store.AuditEvent) error {
			return s.UpdateIssuer(ctx(t), staticIssuer(tn, "nope", "https://nope.example.com"), ev)
		}, store.ErrNotFound},
		{"update other tenant", "issuer.updated", func(ev *store.AuditEvent) error {
			return s.UpdateIssuer(ctx(t), staticIssuer("t3", "okta", "https://acme.okta.com"), ev)
		}, store.ErrNotFound},
		{"update to another's issuer URL", "issuer.updated", invalidUpdate(func(i *store.Issuer) { i.Issuer = "https://zeta.example.com" }), store.ErrConflict},
		{"update without use", "issuer.updated", invalidUpdate(func(i *store.Issuer) { i.Uses = nil }), store.ErrInvalid},
		{"update with both keys", "issuer.updated", invalidUpdate(func(i *store.Issuer) { i.JWKSURI = "https://acme.okta.com/keys" }), store.ErrInvalid},
		{"delete unknown", "issuer.deleted", func(ev *store.AuditEvent) error { return s.DeleteIssuer(ctx(t), tn, "nope", ev) }, store.ErrNotFound},
		{"delete other tenant", "issuer.deleted", func(ev *store.AuditEvent) error { return s.DeleteIssuer(ctx(t), "t3", "okta", ev) }, store.ErrNotFound},
	})
	t.Run("refusals wrote nothing", func(t *testing.T) {
		checkEqual(t, "issuers", []*store.Issuer{upper, k8s, okta}, list(tn))
	})

	t.Run("delete keeps federated clients", func(t *testing.T) {
		c := minimalClient(tn, "k8s:agents:system:serviceaccount:agents:bot")
		c.RegistrationMethod = store.RegistrationWorkload
		c.FederatedIssuer = "k8s-prod"
		c.GrantTypes = []string{"urn:ietf:params:oauth:grant-type:jwt-bearer", "client_credentials"}
		must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))
		ev := event(tn, "issuer.deleted")
		must(t, "DeleteIssuer", s.DeleteIssuer(ctx(t), tn, "k8s-prod", ev))
		wantAudit(t, s, ev)
		wantErr(t, "GetIssuer deleted", func() error { _, err := s.GetIssuer(ctx(t), tn, "k8s-prod"); return err }(), store.ErrNotFound)
		checkEqual(t, "issuers", []*store.Issuer{upper, okta}, list(tn))
		checkEqual(t, "other tenant's issuers", []*store.Issuer{other}, list("other"))
		got, err := s.GetClient(ctx(t), tn, c.ID)
		must(t, "GetClient", err)
		checkEqual(t, "federated client", c, got)
		// Its id and issuer URL can be registered again.
		must(t, "CreateIssuer again", s.CreateIssuer(ctx(t), fullIssuer(tn, "k8s-prod", "https://kubernetes.default.svc"), nil))
	})
}

// testGetAccessToken: the record of an issued access token reads back with
// every field, whatever its state: live, revoked by jti (the first
// revocation time kept), revoked with its family, or recorded only by its
// revocation; an unknown jti is ErrNotFound.
func testGetAccessToken(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	must(t, "CreateClient", s.CreateClient(ctx(t), minimalClient(tn, "c1"), nil))
	get := func(jti string) *store.AccessToken {
		t.Helper()
		got, err := s.GetAccessToken(ctx(t), jti)
		must(t, "GetAccessToken", err)
		return got
	}

	at := accessToken(tn, "g1", "c1", "u1", "https://mcp.example.com/", "files:read", "files:write")
	at.RedirectURI = "http://127.0.0.1/cb"
	issue(t, s, refreshToken(tn, "g1", "c1", "u1", "https://mcp.example.com/", "files:read"), at)
	checkEqual(t, "live access token", at, get(at.JTI))

	cc := accessToken(tn, "", "c1", "", "https://api.example.com/")
	issue(t, s, nil, cc)
	checkEqual(t, "client-credentials access token", cc, get(cc.JTI))

	t.Run("revoked by jti", func(t *testing.T) {
		must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), cc, b.Add(time.Minute), nil))
		must(t, "RevokeAccessToken again", s.RevokeAccessToken(ctx(t), cc, b.Add(2*time.Minute), nil))
		want := *cc
		want.RevokedAt = b.Add(time.Minute)
		checkEqual(t, "revoked access token", &want, get(cc.JTI))
	})
	t.Run("revoked with its family", func(t *testing.T) {
		must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, "g1", b.Add(3*time.Minute), nil))
		want := *at
		want.RevokedAt = b.Add(3 * time.Minute)
		checkEqual(t, "access token of a revoked family", &want, get(at.JTI))
	})
	t.Run("recorded by its revocation", func(t *testing.T) {
		unrec := accessToken(tn, "g2", "c1", "u2", "https://mcp.example.com/", "files:read")
		must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), unrec, b, nil))
		want := *unrec
		want.RevokedAt = b
		checkEqual(t, "access token recorded on revocation", &want, get(unrec.JTI))
	})
	t.Run("unknown", func(t *testing.T) {
		_, err := s.GetAccessToken(ctx(t), "no-such-jti")
		wantErr(t, "GetAccessToken unknown", err, store.ErrNotFound)
	})
}

// testAccessTokenStanding: a recorded access token's jti, tenant, client,
// user, revocation and digest read back as GetAccessToken reads them,
// whatever its state, together with the standing its client and user have
// at the moment of the read: found or not, disabled, a client's status and
// registration method; a token without a user has no user standing; an
// unknown jti is ErrNotFound.
func testAccessTokenStanding(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c := minimalClient(tn, "standing-c")
	c.RegistrationMethod = store.RegistrationCIMD
	c.Status = store.ClientPending
	must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))
	u := &store.User{TenantID: tn, ID: "standing-u", Username: "standing", PasswordHash: "h", CreatedAt: base(), UpdatedAt: base()}
	must(t, "CreateUser", s.CreateUser(ctx(t), u, nil))
	// standing reads the token's standing and checks its record's part
	// against GetAccessToken.
	standing := func(jti string) *store.TokenStanding {
		t.Helper()
		got, err := s.AccessTokenStanding(ctx(t), jti)
		must(t, "AccessTokenStanding", err)
		rec, err := s.GetAccessToken(ctx(t), jti)
		must(t, "GetAccessToken", err)
		checkEqual(t, "the standing's record", recordOf(rec, got.Client, got.User), got)
		return got
	}
	clientOK := store.Standing{Found: true, Status: store.ClientPending, RegistrationMethod: store.RegistrationCIMD}
	userOK := store.Standing{Found: true}

	at := accessToken(tn, "standing-g", "standing-c", "standing-u", "https://mcp.example.com/", "files:read")
	at.Digest = hash("the token as minted")
	issue(t, s, refreshToken(tn, "standing-g", "standing-c", "standing-u", "https://mcp.example.com/", "files:read"), at)
	cc := accessToken(tn, "", "standing-c", "", "https://api.example.com/")
	issue(t, s, nil, cc)
	orphan := accessToken(tn, "", "no-such-client", "no-such-user", "https://api.example.com/")
	must(t, "RevokeAccessToken", s.RevokeAccessToken(ctx(t), orphan, base(), nil))

	checkEqual(t, "person's token", recordOf(at, clientOK, userOK), standing(at.JTI))
	checkEqual(t, "client-credentials token", recordOf(cc, clientOK, store.Standing{}), standing(cc.JTI))
	want := *orphan
	want.RevokedAt = base()
	checkEqual(t, "token of a client and user that do not exist", recordOf(&want, store.Standing{}, store.Standing{}), standing(orphan.JTI))

	t.Run("disabled", func(t *testing.T) {
		_, err := s.UpdateClient(ctx(t), tn, "standing-c", func(c *store.Client) error {
			c.Disabled, c.Status = true, store.ClientActive
			return nil
		}, nil)
		must(t, "UpdateClient", err)
		u.Disabled = true
		must(t, "UpdateUser", s.UpdateUser(ctx(t), u, nil))
		got := standing(at.JTI)
		checkEqual(t, "client", store.Standing{Found: true, Disabled: true, Status: store.ClientActive, RegistrationMethod: store.RegistrationCIMD}, got.Client)
		checkEqual(t, "user", store.Standing{Found: true, Disabled: true}, got.User)
	})
	t.Run("revoked, client deleted", func(t *testing.T) {
		must(t, "DeleteClient", s.DeleteClient(ctx(t), tn, "standing-c", base().Add(time.Minute), nil))
		got := standing(at.JTI)
		if got.RevokedAt.IsZero() || got.Client.Found || !got.User.Found {
			t.Fatalf("after the client's deletion: %+v", got)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		_, err := s.AccessTokenStanding(ctx(t), "no-such-jti")
		wantErr(t, "AccessTokenStanding unknown", err, store.ErrNotFound)
	})
}

// recordOf is the TokenStanding of the record at with these standings.
func recordOf(at *store.AccessToken, client, user store.Standing) *store.TokenStanding {
	return &store.TokenStanding{JTI: at.JTI, TenantID: at.TenantID, ClientID: at.ClientID, UserID: at.UserID,
		RevokedAt: at.RevokedAt, Digest: at.Digest, Client: client, User: user}
}

// testUserProfile: a user's name, email and email-verified flag are stored
// on create, read back by id, username and in lists, and UpdateUser
// replaces them (clearing included) without touching the identity.
func testUserProfile(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	u := &store.User{TenantID: tn, ID: "u1", Username: "alice", PasswordHash: "h", Name: "Alice Liddell",
		Email: "alice@example.com", EmailVerified: true, Roles: []string{"dev"}, CreatedAt: base(), UpdatedAt: base()}
	plain := &store.User{TenantID: tn, ID: "u2", Username: "bob", PasswordHash: "h", CreatedAt: base(), UpdatedAt: base()}
	for _, x := range []*store.User{u, plain} {
		must(t, "CreateUser", s.CreateUser(ctx(t), x, nil))
	}
	got, err := s.GetUser(ctx(t), tn, "u1")
	must(t, "GetUser", err)
	checkEqual(t, "user", u, got)
	got, err = s.GetUserByUsername(ctx(t), tn, "alice")
	must(t, "GetUserByUsername", err)
	checkEqual(t, "user by username", u, got)
	got, err = s.GetUser(ctx(t), tn, "u2")
	must(t, "GetUser", err)
	checkEqual(t, "user without profile", plain, got)
	list, err := s.ListUsers(ctx(t), tn)
	must(t, "ListUsers", err)
	if len(list) != 2 {
		t.Fatalf("ListUsers = %d users", len(list))
	}
	for _, l := range list {
		if l.ID == "u1" {
			checkEqual(t, "listed user", u, l)
		}
	}

	steps := []struct {
		name, fullName, email string
		verified              bool
	}{
		{"change", "Alice Pleasance Liddell", "alice@wonderland.example", false},
		{"verify", "Alice Pleasance Liddell", "alice@wonderland.example", true},
		{"clear", "", "", false},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			upd := *u
			upd.Name, upd.Email, upd.EmailVerified = st.fullName, st.email, st.verified
			upd.UpdatedAt = base().Add(time.Duration(i+1) * time.Hour)
			ev := event(tn, "user.updated")
			must(t, "UpdateUser", s.UpdateUser(ctx(t), &upd, ev))
			wantAudit(t, s, ev)
			got, err := s.GetUser(ctx(t), tn, "u1")
			must(t, "GetUser", err)
			checkEqual(t, "updated user", &upd, got)
		})
	}
	got, err = s.GetUser(ctx(t), tn, "u2")
	must(t, "GetUser", err)
	checkEqual(t, "other user after updates", plain, got)
}
