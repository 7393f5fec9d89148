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

// The store side of issue 10: client status and last use, installations,
// domains, duplicate candidates and pruning.

// testClientGovernanceFields: Status, LastUsedAt and SoftwareStatementIssuer
// round-trip through Create, Get, List and Update; an empty status is
// stored as active and an unknown one is refused without a trace.
func testClientGovernanceFields(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	pending := fullClient(tn, "c-pending")
	pending.Status = store.ClientPending
	pending.LastUsedAt = time.Time{}
	must(t, "CreateClient pending", s.CreateClient(ctx(t), pending, nil))
	got, err := s.GetClient(ctx(t), tn, pending.ID)
	must(t, "GetClient", err)
	checkEqual(t, "pending client", pending, got)
	if !got.Pending() {
		t.Fatal("a pending client reads as not pending")
	}

	empty := minimalClient(tn, "c-nostatus")
	empty.Status = ""
	must(t, "CreateClient without status", s.CreateClient(ctx(t), empty, nil))
	got, err = s.GetClient(ctx(t), tn, empty.ID)
	must(t, "GetClient", err)
	if got.Status != store.ClientActive {
		t.Errorf("a client created without status reads %q, want %q", got.Status, store.ClientActive)
	}

	t.Run("unknown status refused", func(t *testing.T) {
		bad := minimalClient(tn, "c-bad")
		bad.Status = "approved"
		ev := event(tn, "client.created")
		wantErr(t, "CreateClient", s.CreateClient(ctx(t), bad, ev), store.ErrInvalid)
		wantNoAudit(t, s, ev)
		_, err := s.GetClient(ctx(t), tn, bad.ID)
		wantErr(t, "GetClient of a refused client", err, store.ErrNotFound)

		ev = event(tn, "client.updated")
		_, err = s.UpdateClient(ctx(t), tn, pending.ID, func(c *store.Client) error {
			c.Status = "approved"
			return nil
		}, ev)
		wantErr(t, "UpdateClient", err, store.ErrInvalid)
		wantNoAudit(t, s, ev)
		got, err := s.GetClient(ctx(t), tn, pending.ID)
		must(t, "GetClient", err)
		checkEqual(t, "client after a refused update", pending, got)
	})

	t.Run("approve", func(t *testing.T) {
		want := *pending
		want.Status = store.ClientActive
		want.LastUsedAt = base().Add(2 * time.Hour)
		want.SoftwareStatementIssuer = "https://other-issuer.example.com"
		stored, err := s.UpdateClient(ctx(t), tn, pending.ID, func(c *store.Client) error {
			c.Status, c.LastUsedAt, c.SoftwareStatementIssuer = want.Status, want.LastUsedAt, want.SoftwareStatementIssuer
			return nil
		}, nil)
		must(t, "UpdateClient", err)
		checkEqual(t, "approved client", &want, stored)
		list, err := s.ListClients(ctx(t), tn)
		must(t, "ListClients", err)
		i := slices.IndexFunc(list, func(c *store.Client) bool { return c.ID == pending.ID })
		if i < 0 {
			t.Fatal("approved client not listed")
		}
		checkEqual(t, "listed client", &want, list[i])
	})
}

// lastUsed returns the stored LastUsedAt of a client.
func lastUsed(t *testing.T, s store.Store, c *store.Client) time.Time {
	t.Helper()
	got, err := s.GetClient(ctx(t), c.TenantID, c.ID)
	must(t, "GetClient", err)
	return got.LastUsedAt
}

// testClientTouch: Issuance.Touch moves LastUsedAt forward, never back, on
// every issuance path (the client-credentials hot path included), changes
// nothing else of the client, and is not written by a refused issuance.
func testClientTouch(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c, u := liveFixture(t, s, tn)
	other, _ := liveFixture(t, s, tn)
	c0, err := s.GetClient(ctx(t), tn, c.ID)
	must(t, "GetClient", err)
	otherUse := lastUsed(t, s, other)
	b := base()

	// A family to rotate along the way.
	grant := uniq("g")
	first := checkedIssuance(tn, grant, c, u)
	must(t, "IssueTokens", s.IssueTokens(ctx(t), first))
	prev := first.RefreshToken

	steps := []struct {
		name string
		at   time.Time // Touch.At
		via  string    // cc | grant | unchecked | rotate
		want time.Time
	}{
		{"client credentials moves forward", b.Add(2 * time.Hour), "cc", b.Add(2 * time.Hour)},
		{"earlier touch keeps the later use", b.Add(90 * time.Minute), "grant", b.Add(2 * time.Hour)},
		{"equal touch is a no-op", b.Add(2 * time.Hour), "unchecked", b.Add(2 * time.Hour)},
		{"rotation moves forward", b.Add(3 * time.Hour), "rotate", b.Add(3 * time.Hour)},
		{"rotation never back", b.Add(time.Hour), "rotate", b.Add(3 * time.Hour)},
		{"grant moves forward (nanoseconds dropped)", b.Add(4*time.Hour + 50), "grant", b.Add(4 * time.Hour)},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			touch := &store.ClientTouch{TenantID: tn, ClientID: c.ID, At: st.at}
			switch st.via {
			case "cc":
				iss := checkedIssuance(tn, "", c, nil)
				iss.RefreshToken, iss.Touch = nil, touch
				must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
			case "grant":
				iss := checkedIssuance(tn, uniq("g"), c, u)
				iss.Touch = touch
				must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
			case "unchecked":
				iss := checkedIssuance(tn, uniq("g"), c, u)
				iss.Check, iss.Touch = nil, touch
				must(t, "IssueTokens", s.IssueTokens(ctx(t), iss))
			case "rotate":
				next := checkedIssuance(tn, grant, c, u)
				next.Touch = touch
				must(t, "RotateRefresh", s.RotateRefresh(ctx(t), prev.Hash, st.at, next, nil))
				prev = next.RefreshToken
			}
			if got := lastUsed(t, s, c); !sameTime(st.want, got) {
				t.Fatalf("LastUsedAt = %v, want %v", got, st.want.UTC())
			}
		})
	}
	t.Run("nothing else changes", func(t *testing.T) {
		got, err := s.GetClient(ctx(t), tn, c.ID)
		must(t, "GetClient", err)
		want := *c0
		want.LastUsedAt = got.LastUsedAt
		checkEqual(t, "touched client", &want, got)
		if got := lastUsed(t, s, other); !sameTime(otherUse, got) {
			t.Fatalf("another client's LastUsedAt moved to %v", got)
		}
	})
	t.Run("refused issuance touches nothing", func(t *testing.T) {
		before := lastUsed(t, s, c)
		setClientDisabled(t, s, c, true)
		iss := checkedIssuance(tn, "", c, nil)
		iss.RefreshToken = nil
		iss.Touch = &store.ClientTouch{TenantID: tn, ClientID: c.ID, At: b.Add(10 * time.Hour)}
		wantErr(t, "IssueTokens", s.IssueTokens(ctx(t), iss), store.ErrClientGone)
		if got := lastUsed(t, s, c); !got.Equal(before) {
			t.Fatalf("a refused issuance moved LastUsedAt to %v", got)
		}
	})
}

// testClientsBySoftware: the live dynamic registrations of one software
// (or, without a software id, of one name), newest first, at most 100.
func testClientsBySoftware(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	mk := func(id, tenant, method, sw, name string, created time.Duration, edit func(*store.Client)) {
		t.Helper()
		c := minimalClient(tenant, id)
		c.RegistrationMethod, c.SoftwareID, c.Name = method, sw, name
		c.CreatedAt, c.UpdatedAt = b.Add(created), b.Add(created)
		if edit != nil {
			edit(c)
		}
		must(t, "CreateClient "+id, s.CreateClient(ctx(t), c, nil))
	}
	dcr, cimd, manual := store.RegistrationDCR, store.RegistrationCIMD, store.RegistrationManual
	mk("sw-old", tn, dcr, "sw-1", "Agent", 0, nil)
	mk("sw-new", tn, dcr, "sw-1", "Agent", time.Minute, nil)
	mk("sw-pending", tn, dcr, "sw-1", "Agent", 2*time.Minute, func(c *store.Client) { c.Status = store.ClientPending })
	mk("sw-disabled", tn, dcr, "sw-1", "Agent", 3*time.Minute, func(c *store.Client) { c.Disabled = true })
	mk("sw-manual", tn, manual, "sw-1", "Agent", 4*time.Minute, nil)
	mk("sw-cimd", tn, cimd, "sw-1", "Agent", 5*time.Minute, nil)
	mk("sw-tenant", "other", dcr, "sw-1", "Agent", 6*time.Minute, nil)
	mk("sw-other", tn, dcr, "sw-2", "Agent", 7*time.Minute, nil)
	mk("name-a", tn, dcr, "", "Claude", 0, nil)
	mk("name-b", tn, dcr, "", "Claude", time.Minute, nil)
	mk("name-other", tn, dcr, "", "Cursor", 0, nil)
	mk("name-manual", tn, manual, "", "Claude", 0, nil)

	for _, tc := range []struct {
		sw, name string
		want     []string // in order
	}{
		{"sw-1", "", []string{"sw-pending", "sw-new", "sw-old"}},
		{"sw-1", "Cursor", []string{"sw-pending", "sw-new", "sw-old"}}, // the name does not narrow a software id
		{"sw-2", "", []string{"sw-other"}},
		{"", "Claude", []string{"name-b", "name-a"}},
		{"", "Agent", nil}, // clients with a software id are not matched by name
		{"sw-none", "Claude", nil},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.sw, tc.name), func(t *testing.T) {
			list, err := s.ClientsBySoftware(ctx(t), tn, tc.sw, tc.name)
			must(t, "ClientsBySoftware", err)
			var got []string
			for _, c := range list {
				got = append(got, c.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ClientsBySoftware(%q, %q) = %v, want %v", tc.sw, tc.name, got, tc.want)
			}
		})
	}
	t.Run("full client", func(t *testing.T) {
		c := fullClient(tn, "sw-full")
		c.SoftwareID = "sw-full"
		must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))
		list, err := s.ClientsBySoftware(ctx(t), tn, "sw-full", "")
		must(t, "ClientsBySoftware", err)
		if len(list) != 1 {
			t.Fatalf("got %d clients", len(list))
		}
		checkEqual(t, "candidate", c, list[0])
	})
	t.Run("at most 100", func(t *testing.T) {
		for i := range 101 {
			mk(fmt.Sprintf("many-%03d", i), tn, dcr, "sw-many", "Agent", time.Duration(i)*time.Second, nil)
		}
		list, err := s.ClientsBySoftware(ctx(t), tn, "sw-many", "")
		must(t, "ClientsBySoftware", err)
		if len(list) != 100 || list[0].ID != "many-100" || list[99].ID != "many-001" {
			t.Fatalf("got %d clients, first %s", len(list), list[0].ID)
		}
	})
}

// testDomains: put (create and replace), list by pattern, delete, refusals.
func testDomains(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	dom := func(pattern, trust string, plain bool) *store.Domain {
		return &store.Domain{TenantID: tn, Pattern: pattern, Trust: trust, AllowTextPlain: plain, CreatedAt: b, UpdatedAt: b}
	}
	wild := dom("*.example.com", store.DomainTrusted, true)
	app := dom("app.example.com", store.DomainBlocked, false)
	org := dom("b.example.org", store.DomainAllowed, false)
	for _, d := range []*store.Domain{org, app, wild} {
		ev := event(tn, "domain.updated")
		must(t, "PutDomain "+d.Pattern, s.PutDomain(ctx(t), d, ev))
		wantAudit(t, s, ev)
	}
	other := dom("app.example.com", store.DomainTrusted, false)
	other.TenantID = "other"
	must(t, "PutDomain other tenant", s.PutDomain(ctx(t), other, nil))

	list := func(tenant string) []*store.Domain {
		t.Helper()
		l, err := s.ListDomains(ctx(t), tenant)
		must(t, "ListDomains", err)
		return l
	}
	checkEqual(t, "domains", []*store.Domain{wild, app, org}, list(tn))

	t.Run("replace keeps CreatedAt", func(t *testing.T) {
		repl := dom("app.example.com", store.DomainAllowed, true)
		repl.CreatedAt, repl.UpdatedAt = b.Add(time.Hour), b.Add(time.Hour)
		must(t, "PutDomain", s.PutDomain(ctx(t), repl, nil))
		want := *repl
		want.CreatedAt = b
		checkEqual(t, "domains", []*store.Domain{wild, &want, org}, list(tn))
		checkEqual(t, "other tenant's domains", []*store.Domain{other}, list("other"))
	})
	t.Run("refused", func(t *testing.T) {
		for _, d := range []*store.Domain{
			dom("x.example.com", "maybe", false),
			dom("X.Example.com", store.DomainBlocked, false),
			dom("", store.DomainBlocked, false),
		} {
			ev := event(tn, "domain.updated")
			wantErr(t, "PutDomain "+d.Pattern+" "+d.Trust, s.PutDomain(ctx(t), d, ev), store.ErrInvalid)
			wantNoAudit(t, s, ev)
		}
		if n := len(list(tn)); n != 3 {
			t.Fatalf("%d domains after refused puts, want 3", n)
		}
	})
	t.Run("delete", func(t *testing.T) {
		ev := event(tn, "domain.removed")
		must(t, "DeleteDomain", s.DeleteDomain(ctx(t), tn, "app.example.com", ev))
		wantAudit(t, s, ev)
		checkEqual(t, "domains", []*store.Domain{wild, org}, list(tn))
		checkEqual(t, "other tenant's domains", []*store.Domain{other}, list("other"))
		ev = event(tn, "domain.removed")
		wantErr(t, "DeleteDomain again", s.DeleteDomain(ctx(t), tn, "app.example.com", ev), store.ErrNotFound)
		wantNoAudit(t, s, ev)
	})
}

// testRevokeInstallation: one installation (user, client, redirect URI) of
// a metadata-document client is signed out, whole families, and nothing
// else: not the user's other installation, not another user's same
// installation, not another client's.
func testRevokeInstallation(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const client = "https://app.example.com/oauth/client.json"
	const instA, instB = "http://127.0.0.1/callback", "https://app.example.com/cb"
	b := base()
	// grant issues a family: an access and a refresh token labelled with
	// the installation, the refresh token rotated once.
	type fam struct {
		rts []*store.RefreshToken
		ats []*store.AccessToken
	}
	grant := func(tenant, user, clientID, redirect string, labelSuccessor bool) fam {
		t.Helper()
		g := uniq("g")
		rt := refreshToken(tenant, g, clientID, user, "https://r/", "a")
		at := accessToken(tenant, g, clientID, user, "https://r/", "a")
		rt.RedirectURI, at.RedirectURI = redirect, redirect
		issue(t, s, rt, at)
		next := refreshToken(tenant, g, clientID, user, "https://r/", "a")
		nextAT := accessToken(tenant, g, clientID, user, "https://r/", "a")
		if labelSuccessor {
			next.RedirectURI, nextAT.RedirectURI = redirect, redirect
		}
		must(t, "RotateRefresh", s.RotateRefresh(ctx(t), rt.Hash, b.Add(time.Minute),
			&store.Issuance{RefreshToken: next, AccessToken: nextAT}, nil))
		if got := refreshState(t, s, next).RedirectURI; got != next.RedirectURI {
			t.Fatalf("stored RedirectURI %q, want %q", got, next.RedirectURI)
		}
		return fam{[]*store.RefreshToken{rt, next}, []*store.AccessToken{at, nextAT}}
	}
	a1 := grant(tn, "u1", client, instA, true)
	a2 := grant(tn, "u1", client, instA, true)  // a second sign-in of the same installation
	a3 := grant(tn, "u1", client, instA, false) // successor not labelled: the family still goes
	bFam := grant(tn, "u1", client, instB, true)
	u2 := grant(tn, "u2", client, instA, true)
	otherClient := grant(tn, "u1", "https://other.example.com/client.json", instA, true)
	otherTenant := grant("other", "u1", client, instA, true)

	alive := func(f fam) bool {
		t.Helper()
		for _, rt := range f.rts {
			if !refreshState(t, s, rt).RevokedAt.IsZero() {
				return false
			}
		}
		for _, at := range f.ats {
			if revoked(t, s, at) {
				return false
			}
		}
		return true
	}
	gone := func(f fam) bool {
		t.Helper()
		for _, rt := range f.rts {
			if refreshState(t, s, rt).RevokedAt.IsZero() {
				return false
			}
		}
		for _, at := range f.ats {
			if !revoked(t, s, at) {
				return false
			}
		}
		return true
	}

	t.Run("refused arguments", func(t *testing.T) {
		for _, args := range [][3]string{{"", client, instA}, {"u1", "", instA}, {"u1", client, ""}} {
			ev := event(tn, "installation.revoked")
			n, err := s.RevokeInstallation(ctx(t), tn, args[0], args[1], args[2], b, ev)
			wantErr(t, fmt.Sprint("RevokeInstallation", args), err, store.ErrInvalid)
			if n != 0 {
				t.Fatalf("refused call reports %d", n)
			}
			wantNoAudit(t, s, ev)
		}
		if !alive(a1) {
			t.Fatal("a refused call revoked tokens")
		}
	})
	ev := event(tn, "installation.revoked")
	n, err := s.RevokeInstallation(ctx(t), tn, "u1", client, instA, b.Add(time.Hour), ev)
	must(t, "RevokeInstallation", err)
	if n != 3 {
		t.Fatalf("RevokeInstallation revoked %d families, want 3", n)
	}
	wantAudit(t, s, ev)
	for name, f := range map[string]fam{"first sign-in": a1, "second sign-in": a2, "unlabelled successor": a3} {
		if !gone(f) {
			t.Errorf("%s of the installation survived", name)
		}
	}
	if got := refreshState(t, s, a1.rts[1]).RevokedAt; !sameTime(b.Add(time.Hour), got) {
		t.Errorf("RevokedAt = %v, want %v", got, b.Add(time.Hour).UTC())
	}
	for name, f := range map[string]fam{"other installation": bFam, "other user": u2, "other client": otherClient, "other tenant": otherTenant} {
		if !alive(f) {
			t.Errorf("%s was revoked", name)
		}
	}
	t.Run("again revokes nothing and writes no event", func(t *testing.T) {
		ev := event(tn, "installation.revoked")
		n, err := s.RevokeInstallation(ctx(t), tn, "u1", client, instA, b.Add(2*time.Hour), ev)
		must(t, "RevokeInstallation", err)
		if n != 0 {
			t.Fatalf("second call reports %d families", n)
		}
		wantNoAudit(t, s, ev)
		if got := refreshState(t, s, a1.rts[1]).RevokedAt; !sameTime(b.Add(time.Hour), got) {
			t.Errorf("second call moved RevokedAt to %v", got)
		}
	})
}

// pruneFixture is one client of the prune scenarios.
type pruneCase struct {
	name     string
	tenant   string // "": the default tenant
	method   string
	created  time.Time
	lastUsed time.Time
	status   string
	disabled bool
	// setup gives the client tokens or consents.
	setup func(t *testing.T, s store.Store, c *store.Client)
	// pruned: removed by the prune at now; later: by the one at later (if
	// it survived the first).
	pruned, later bool
}

// testPruneClients: the clients of the requested methods unused since
// UnusedSince go, unless they hold a live refresh token, live access token
// or live consent; dry runs and limits; the clock moves and what was
// protected by a token that has expired since goes too.
func testPruneClients(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const unused = 30 * 24 * time.Hour
	t0 := base()
	now := t0.Add(60 * 24 * time.Hour)
	later := now.Add(40 * 24 * time.Hour)
	dcr, cimd, manual := store.RegistrationDCR, store.RegistrationCIMD, store.RegistrationManual

	withRefresh := func(expires time.Time, edit func(*store.RefreshToken)) func(*testing.T, store.Store, *store.Client) {
		return func(t *testing.T, s store.Store, c *store.Client) {
			rt := refreshToken(c.TenantID, uniq("g"), c.ID, "u1", "https://r/", "a")
			rt.ExpiresAt = expires
			if edit != nil {
				edit(rt)
			}
			issue(t, s, rt, nil)
		}
	}
	withAccess := func(expires time.Time, revokedAt time.Time) func(*testing.T, store.Store, *store.Client) {
		return func(t *testing.T, s store.Store, c *store.Client) {
			at := accessToken(c.TenantID, uniq("g"), c.ID, "u1", "https://r/", "a")
			at.ExpiresAt, at.RevokedAt = expires, revokedAt
			issue(t, s, nil, at)
		}
	}
	withConsent := func(expires time.Time, revoke bool) func(*testing.T, store.Store, *store.Client) {
		return func(t *testing.T, s store.Store, c *store.Client) {
			g := consent(c.TenantID, "u1", c.ID, "https://r/", "a")
			g.GrantedAt, g.ExpiresAt = t0, expires
			must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{g}, nil))
			if revoke {
				must(t, "RevokeConsents", s.RevokeConsents(ctx(t), store.ConsentFilter{TenantID: c.TenantID, ClientID: c.ID}, nil, t0, nil))
			}
		}
	}
	cases := []pruneCase{
		{name: "dcr never used", method: dcr, created: t0, pruned: true},
		{name: "cimd never used", method: cimd, created: t0, pruned: true},
		{name: "manual is never pruned", method: manual, created: t0},
		{name: "pending", method: dcr, created: t0, status: store.ClientPending, pruned: true},
		{name: "disabled", method: dcr, created: t0, disabled: true, pruned: true},
		// Removing a disabled metadata-document client would let its URL
		// back in as a new, enabled client at its next request; removing a
		// deprovisioned one would also erase the inventory's record of it.
		{name: "disabled cimd", method: cimd, created: t0, disabled: true},
		{name: "deprovisioned dcr", method: dcr, created: t0, disabled: true, status: store.ClientDeprovisioned},
		{name: "deprovisioned cimd", method: cimd, created: t0, disabled: true, status: store.ClientDeprovisioned},
		{name: "created recently", method: dcr, created: now.Add(-24 * time.Hour), later: true},
		{name: "created exactly at UnusedSince", method: dcr, created: now.Add(-unused), later: true},
		{name: "used recently", method: cimd, created: t0, lastUsed: now.Add(-24 * time.Hour), later: true},
		{name: "used long ago", method: dcr, created: t0, lastUsed: t0.Add(10 * 24 * time.Hour), pruned: true},
		{name: "live refresh token", method: cimd, created: t0, setup: withRefresh(now.Add(10*24*time.Hour), nil), later: true},
		{name: "refresh token expiring at now", method: dcr, created: t0, setup: withRefresh(now, nil), pruned: true},
		{name: "rotated refresh token", method: dcr, created: t0, pruned: true,
			setup: withRefresh(later.Add(time.Hour), func(rt *store.RefreshToken) { rt.RotatedAt = t0 })},
		{name: "revoked refresh token", method: dcr, created: t0, pruned: true,
			setup: withRefresh(later.Add(time.Hour), func(rt *store.RefreshToken) { rt.RevokedAt = t0 })},
		{name: "live access token", method: dcr, created: t0, setup: withAccess(now.Add(5*time.Minute), time.Time{}), later: true},
		{name: "revoked access token", method: dcr, created: t0, setup: withAccess(now.Add(5*time.Minute), t0), pruned: true},
		{name: "expired access token", method: dcr, created: t0, setup: withAccess(now, time.Time{}), pruned: true},
		{name: "consent until revoked", method: cimd, created: t0, setup: withConsent(time.Time{}, false)},
		{name: "consent until later", method: dcr, created: t0, setup: withConsent(now.Add(24*time.Hour), false), later: true},
		{name: "expired consent", method: dcr, created: t0, setup: withConsent(now, false), pruned: true},
		{name: "revoked consent", method: dcr, created: t0, setup: withConsent(time.Time{}, true), pruned: true},
		{name: "other tenant", tenant: "other", method: dcr, created: t0},
	}
	clients := make(map[string]*store.Client, len(cases))
	var wantNow, wantLater []string
	for i, tc := range cases {
		tenant := tc.tenant
		if tenant == "" {
			tenant = tn
		}
		c := fullClient(tenant, fmt.Sprintf("p%02d", i))
		c.Name = tc.name
		c.RegistrationMethod, c.CreatedAt, c.UpdatedAt, c.LastUsedAt = tc.method, tc.created, tc.created, tc.lastUsed
		c.Disabled = tc.disabled
		if tc.status != "" {
			c.Status = tc.status
		}
		must(t, "CreateClient "+tc.name, s.CreateClient(ctx(t), c, nil))
		if tc.setup != nil {
			tc.setup(t, s, c)
		}
		clients[c.ID] = c
		switch {
		case tc.pruned:
			wantNow = append(wantNow, c.ID)
		case tc.later:
			wantLater = append(wantLater, c.ID)
		}
	}
	methods := []string{dcr, cimd}
	req := store.PruneRequest{TenantID: tn, Methods: methods, UnusedSince: now.Add(-unused), Now: now}
	ids := func(list []*store.Client) []string {
		return sortedIDs(list, func(c *store.Client) string { return c.ID })
	}
	exists := func(id string) bool {
		t.Helper()
		c := clients[id]
		_, err := s.GetClient(ctx(t), c.TenantID, c.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	evs := map[string]*store.AuditEvent{}
	var evMu sync.Mutex
	expired := func(c *store.Client) *store.AuditEvent {
		ev := event(c.TenantID, "client.expired")
		ev.ClientID = c.ID
		evMu.Lock()
		evs[c.ID] = ev
		evMu.Unlock()
		return ev
	}

	t.Run("no methods selects nothing", func(t *testing.T) {
		r := req
		r.Methods = nil
		got, err := s.PruneClients(ctx(t), r, expired)
		must(t, "PruneClients", err)
		if len(got) != 0 {
			t.Fatalf("pruned %v", ids(got))
		}
	})
	t.Run("dry run", func(t *testing.T) {
		r := req
		r.DryRun = true
		got, err := s.PruneClients(ctx(t), r, expired)
		must(t, "PruneClients", err)
		wantIDs(t, "dry run", ids(got), wantNow)
		for _, id := range wantNow {
			if !exists(id) {
				t.Fatalf("dry run removed %s", id)
			}
		}
		if len(evs) != 0 {
			t.Fatalf("dry run made %d events", len(evs))
		}
	})
	t.Run("limit", func(t *testing.T) {
		r := req
		r.Limit = 2
		got, err := s.PruneClients(ctx(t), r, expired)
		must(t, "PruneClients", err)
		if len(got) != 2 {
			t.Fatalf("pruned %d clients with limit 2", len(got))
		}
		for _, c := range got {
			if !slices.Contains(wantNow, c.ID) || exists(c.ID) {
				t.Fatalf("limit pruned %s (%s) wrongly", c.ID, c.Name)
			}
		}
	})
	t.Run("at now", func(t *testing.T) {
		got, err := s.PruneClients(ctx(t), req, expired)
		must(t, "PruneClients", err)
		if len(got)+2 != len(wantNow) {
			t.Fatalf("pruned %v, want the rest of %v", ids(got), wantNow)
		}
		for _, c := range got {
			checkEqual(t, "pruned client "+c.Name, clients[c.ID], c)
		}
		for id, c := range clients {
			want := !slices.Contains(wantNow, id)
			if exists(id) != want {
				t.Errorf("%s (%s): exists = %v, want %v", id, c.Name, !want, want)
			}
		}
		for _, id := range wantNow {
			wantAudit(t, s, evs[id])
		}
		// An issuance for a pruned client finds it gone.
		iss := checkedIssuance(tn, "", clients[wantNow[0]], nil)
		iss.RefreshToken = nil
		wantErr(t, "IssueTokens to a pruned client", s.IssueTokens(ctx(t), iss), store.ErrClientGone)
	})
	t.Run("later", func(t *testing.T) {
		r := req
		r.Now, r.UnusedSince = later, later.Add(-unused)
		got, err := s.PruneClients(ctx(t), r, nil)
		must(t, "PruneClients", err)
		wantIDs(t, "pruned later", ids(got), wantLater)
		for id, c := range clients {
			want := !slices.Contains(wantNow, id) && !slices.Contains(wantLater, id)
			if exists(id) != want {
				t.Errorf("%s (%s): exists = %v, want %v", id, c.Name, !want, want)
			}
		}
	})
}

// testPruneRacesIssuance: a prune racing issuances for the client either
// removes it, and every issuance fails with ErrClientGone leaving nothing,
// or keeps it because an issuance landed first.
func testPruneRacesIssuance(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	b := base()
	for round := range 4 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			c := fullClient(tn, uniq("c"))
			c.RegistrationMethod = store.RegistrationCIMD
			c.CreatedAt, c.LastUsedAt = b.Add(-90*24*time.Hour), time.Time{}
			must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))
			const n = 12
			issued := make([]*store.Issuance, n)
			errs := make([]error, n)
			var pruned []*store.Client
			var pruneErr error
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				grant := ""
				if i%2 == 1 {
					grant = uniq("g")
				}
				issued[i] = checkedIssuance(tn, grant, c, nil)
				if grant == "" {
					issued[i].RefreshToken = nil
				}
				issued[i].Touch = &store.ClientTouch{TenantID: tn, ClientID: c.ID, At: b}
				wg.Go(func() {
					<-start
					time.Sleep(time.Duration(i%4) * 200 * time.Microsecond)
					errs[i] = s.IssueTokens(ctx(t), issued[i])
				})
			}
			wg.Go(func() {
				<-start
				time.Sleep(time.Duration(round) * 300 * time.Microsecond)
				pruned, pruneErr = s.PruneClients(ctx(t), store.PruneRequest{TenantID: tn,
					Methods: []string{store.RegistrationCIMD}, UnusedSince: b.Add(-30 * 24 * time.Hour), Now: b}, nil)
			})
			close(start)
			wg.Wait()
			must(t, "PruneClients", pruneErr)
			ok := 0
			for i, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrClientGone):
					if issued[i].RefreshToken != nil {
						wantNothingIssued(t, s, issued[i])
					}
					for _, ev := range issued[i].Events {
						wantNoAudit(t, s, ev)
					}
				default:
					t.Errorf("issuance %d: %v", i, err)
				}
			}
			_, getErr := s.GetClient(ctx(t), tn, c.ID)
			switch len(pruned) {
			case 0:
				must(t, "GetClient of a kept client", getErr)
				if ok == 0 {
					t.Error("the client was kept though no issuance landed")
				}
			case 1:
				wantErr(t, "GetClient of a pruned client", getErr, store.ErrNotFound)
				if ok != 0 {
					t.Errorf("the client was pruned though %d issuances landed", ok)
				}
			default:
				t.Fatalf("pruned %d clients", len(pruned))
			}
		})
	}
}
