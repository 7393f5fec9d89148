package storetest

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

func consent(tenant, user, client, resource, scope string) *store.ConsentGrant {
	return &store.ConsentGrant{
		TenantID:  tenant,
		UserID:    user,
		ClientID:  client,
		Resource:  resource,
		Scope:     scope,
		GrantedAt: base(),
		ExpiresAt: base().Add(30 * 24 * time.Hour),
	}
}

func consentKey(g *store.ConsentGrant) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s", g.TenantID, g.UserID, g.ClientID, g.Resource, g.Scope)
}

func listConsents(t *testing.T, s store.Store, f store.ConsentFilter) map[string]*store.ConsentGrant {
	t.Helper()
	list, err := s.ListConsents(ctx(t), f)
	must(t, "ListConsents", err)
	m := make(map[string]*store.ConsentGrant, len(list))
	for _, g := range list {
		if _, dup := m[consentKey(g)]; dup {
			t.Fatalf("ListConsents returned %s twice", consentKey(g))
		}
		m[consentKey(g)] = g
	}
	return m
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func testConsents(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const r1, r2 = "https://files.example.com/mcp", "https://mail.example.com/mcp"
	forever := consent(tn, "u1", "c1", r1, "files:write")
	forever.ExpiresAt = time.Time{}
	grants := []*store.ConsentGrant{
		consent(tn, "u1", "c1", r1, "files:read"),
		forever,
		consent(tn, "u1", "c2", r1, "files:read"),
		consent(tn, "u1", "c1", r2, "mail:send"),
		consent(tn, "u2", "c1", r1, "files:read"),
		consent("t2", "u1", "c1", r1, "files:read"),
	}
	ev := event(tn, "consent.granted")
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), grants, ev))
	wantAudit(t, s, ev)

	filters := []struct {
		name string
		f    store.ConsentFilter
		want []*store.ConsentGrant
	}{
		{"tenant", store.ConsentFilter{TenantID: tn}, grants[:5]},
		{"user", store.ConsentFilter{TenantID: tn, UserID: "u1"}, grants[:4]},
		{"user and client", store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1"}, []*store.ConsentGrant{grants[0], grants[1], grants[3]}},
		{"user client resource", store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1", Resource: r1}, grants[:2]},
		{"client", store.ConsentFilter{TenantID: tn, ClientID: "c1"}, []*store.ConsentGrant{grants[0], grants[1], grants[3], grants[4]}},
		{"resource", store.ConsentFilter{TenantID: tn, Resource: r2}, []*store.ConsentGrant{grants[3]}},
		{"other tenant", store.ConsentFilter{TenantID: "t2"}, grants[5:]},
		{"no match", store.ConsentFilter{TenantID: tn, UserID: "u9"}, nil},
	}
	for _, tc := range filters {
		t.Run("list by "+tc.name, func(t *testing.T) {
			got := listConsents(t, s, tc.f)
			want := make(map[string]*store.ConsentGrant)
			for _, g := range tc.want {
				want[consentKey(g)] = g
			}
			wantIDs(t, "ListConsents", keys(got), keys(want))
			for k, g := range got {
				if w := want[k]; w != nil {
					checkEqual(t, "consent "+k, w, g)
				}
			}
		})
	}

	t.Run("touch", func(t *testing.T) {
		now := base().Add(time.Hour)
		f := store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1", Resource: r1}
		use := &store.ConsentUse{Filter: f, Scopes: []string{"files:read"}, At: now}
		must(t, "IssueTokens", s.IssueTokens(ctx(t), &store.Issuance{ConsentUse: use}))
		got := listConsents(t, s, f)
		if g := got[consentKey(grants[0])]; !sameTime(now, g.LastUsedAt) {
			t.Errorf("touched LastUsedAt = %v, want %v", g.LastUsedAt, now)
		}
		if g := got[consentKey(forever)]; !g.LastUsedAt.IsZero() {
			t.Errorf("untouched scope LastUsedAt = %v", g.LastUsedAt)
		}
		for k, g := range listConsents(t, s, store.ConsentFilter{}) {
			if k != consentKey(grants[0]) && !g.LastUsedAt.IsZero() {
				t.Errorf("the consent use touched %s", k)
			}
		}
	})

	t.Run("upsert renews and un-revokes, keeps last use", func(t *testing.T) {
		f := store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1", Resource: r1}
		must(t, "RevokeConsents", s.RevokeConsents(ctx(t), f, []string{"files:read"}, base().Add(2*time.Hour), nil))
		if g := listConsents(t, s, f)[consentKey(grants[0])]; g.RevokedAt.IsZero() || g.Live(base().Add(2*time.Hour)) {
			t.Fatalf("revoked grant: %+v", g)
		}
		renewed := consent(tn, "u1", "c1", r1, "files:read")
		renewed.GrantedAt = base().Add(3 * time.Hour)
		renewed.ExpiresAt = base().Add(60 * 24 * time.Hour)
		ev := event(tn, "consent.granted")
		must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{renewed}, ev))
		wantAudit(t, s, ev)
		got := listConsents(t, s, f)[consentKey(renewed)]
		want := *renewed
		want.LastUsedAt = base().Add(time.Hour) // from "touch"
		checkEqual(t, "renewed consent", &want, got)
		if !got.Live(base().Add(3 * time.Hour)) {
			t.Error("renewed consent not live")
		}
	})
}

func testConsentRevokeCascade(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	const r1, r2 = "https://files.example.com/mcp", "https://mail.example.com/mcp"
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{
		consent(tn, "u1", "c1", r1, "a"),
		consent(tn, "u1", "c1", r1, "b"),
		consent(tn, "u1", "c1", r2, "a"),
		consent(tn, "u1", "c2", r1, "a"),
		consent(tn, "u2", "c1", r1, "a"),
	}, nil))

	type pair struct {
		rt *store.RefreshToken
		at *store.AccessToken
	}
	mk := func(user, client, resource string, scopes ...string) pair {
		g := uniq("g")
		p := pair{refreshToken(tn, g, client, user, resource, scopes...), accessToken(tn, g, client, user, resource, scopes...)}
		issue(t, s, p.rt, p.at)
		return p
	}
	tokA := mk("u1", "c1", r1, "a")
	tokB := mk("u1", "c1", r1, "b")
	tokAB := mk("u1", "c1", r1, "b", "a")
	tokR2 := mk("u1", "c1", r2, "a")
	// A resource the user has no consent row for: only a revocation that
	// names no resource reaches it.
	tokR3 := mk("u1", "c1", "https://other.example.com/", "a")
	tokOtherClient := mk("u1", "c2", r1, "a")
	tokOtherUser := mk("u2", "c1", r1, "a")
	all := map[string]pair{"A": tokA, "B": tokB, "AB": tokAB, "R2": tokR2, "R3": tokR3, "otherClient": tokOtherClient, "otherUser": tokOtherUser}

	steps := []struct {
		name        string
		f           store.ConsentFilter
		scopes      []string
		wantRevoked []string // token names revoked after this step
		wantConsent []string // consent keys revoked after this step
	}{
		{
			name:        "one scope of one resource",
			f:           store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1", Resource: r1},
			scopes:      []string{"a"},
			wantRevoked: []string{"A", "AB"},
			wantConsent: []string{consentKey(consent(tn, "u1", "c1", r1, "a"))},
		},
		{
			name:        "all scopes of the client",
			f:           store.ConsentFilter{TenantID: tn, UserID: "u1", ClientID: "c1"},
			scopes:      nil,
			wantRevoked: []string{"A", "AB", "B", "R2", "R3"},
			wantConsent: []string{
				consentKey(consent(tn, "u1", "c1", r1, "a")),
				consentKey(consent(tn, "u1", "c1", r1, "b")),
				consentKey(consent(tn, "u1", "c1", r2, "a")),
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			now := base().Add(time.Hour)
			ev := event(tn, "consent.revoked")
			must(t, "RevokeConsents", s.RevokeConsents(ctx(t), st.f, st.scopes, now, ev))
			wantAudit(t, s, ev)

			wantRev := make(map[string]bool)
			for _, k := range st.wantConsent {
				wantRev[k] = true
			}
			for k, g := range listConsents(t, s, store.ConsentFilter{TenantID: tn}) {
				if g.RevokedAt.IsZero() == wantRev[k] {
					t.Errorf("consent %s: RevokedAt = %v, want revoked=%v", k, g.RevokedAt, wantRev[k])
				}
			}
			wantTok := make(map[string]bool)
			for _, n := range st.wantRevoked {
				wantTok[n] = true
			}
			for name, p := range all {
				got := refreshState(t, s, p.rt)
				if got.RevokedAt.IsZero() == wantTok[name] {
					t.Errorf("refresh token %s: RevokedAt = %v, want revoked=%v", name, got.RevokedAt, wantTok[name])
				}
				if revoked(t, s, p.at) != wantTok[name] {
					t.Errorf("access token %s: revoked=%v, want %v", name, !wantTok[name], wantTok[name])
				}
			}
		})
	}
}

func testPolicySets(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	_, err := s.ActivePolicySet(ctx(t), tn)
	wantErr(t, "ActivePolicySet before any", err, store.ErrNotFound)

	mk := func(tenant string, n int) *store.PolicySet {
		return &store.PolicySet{
			TenantID:  tenant,
			Files:     map[string]string{"base.cedar": fmt.Sprintf("permit(principal, action, resource); // v%d", n), "extra.cedar": "forbid(principal, action, resource) when { false };"},
			Comment:   fmt.Sprintf("version %d", n),
			CreatedBy: "admin",
			CreatedAt: base().Add(time.Duration(n) * time.Minute),
		}
	}
	v1, v2, v3 := mk(tn, 1), mk(tn, 2), mk(tn, 3)
	v3.Files = map[string]string{"only.cedar": ""}
	for i, ps := range []*store.PolicySet{v1, v2, v3} {
		ev := event(tn, "policy.created")
		must(t, "CreatePolicySet", s.CreatePolicySet(ctx(t), ps, ev))
		wantAudit(t, s, ev)
		if ps.Version != int64(i+1) {
			t.Fatalf("CreatePolicySet #%d set Version %d", i+1, ps.Version)
		}
	}
	foreign := mk("t2", 1)
	must(t, "CreatePolicySet t2", s.CreatePolicySet(ctx(t), foreign, nil))
	if foreign.Version != 1 {
		t.Fatalf("first version of another tenant = %d, want 1 (versions are per tenant)", foreign.Version)
	}

	wantActive := func(t *testing.T, want *store.PolicySet) {
		t.Helper()
		got, err := s.ActivePolicySet(ctx(t), tn)
		must(t, "ActivePolicySet", err)
		w := *want
		w.Active = true
		checkEqual(t, "active policy set", &w, got)
		list, err := s.ListPolicySets(ctx(t), tn)
		must(t, "ListPolicySets", err)
		if len(list) != 3 {
			t.Fatalf("ListPolicySets returned %d sets", len(list))
		}
		for i, ps := range list {
			if ps.Version != int64(3-i) {
				t.Fatalf("ListPolicySets[%d].Version = %d, want newest first", i, ps.Version)
			}
			if ps.Active != (ps.Version == want.Version) {
				t.Errorf("version %d Active = %v with %d active", ps.Version, ps.Active, want.Version)
			}
			w := *[]*store.PolicySet{v3, v2, v1}[i]
			w.Active = ps.Active
			checkEqual(t, "listed policy set", &w, ps)
		}
	}
	t.Run("newest is active", func(t *testing.T) { wantActive(t, v3) })
	t.Run("rollback", func(t *testing.T) {
		ev := event(tn, "policy.activated")
		must(t, "ActivatePolicySet", s.ActivatePolicySet(ctx(t), tn, 1, ev))
		wantAudit(t, s, ev)
		wantActive(t, v1)
	})
	t.Run("activate the active one", func(t *testing.T) {
		must(t, "ActivatePolicySet", s.ActivatePolicySet(ctx(t), tn, 1, nil))
		wantActive(t, v1)
	})
	t.Run("activate unknown", func(t *testing.T) {
		ev := event(tn, "policy.activated")
		wantErr(t, "ActivatePolicySet", s.ActivatePolicySet(ctx(t), tn, 9, ev), store.ErrNotFound)
		wantNoAudit(t, s, ev)
		wantErr(t, "ActivatePolicySet other tenant's version", s.ActivatePolicySet(ctx(t), "t3", 1, nil), store.ErrNotFound)
		wantActive(t, v1)
	})
	t.Run("create after rollback", func(t *testing.T) {
		v4 := mk(tn, 4)
		must(t, "CreatePolicySet", s.CreatePolicySet(ctx(t), v4, nil))
		if v4.Version != 4 {
			t.Fatalf("Version = %d, want 4", v4.Version)
		}
		got, err := s.ActivePolicySet(ctx(t), tn)
		must(t, "ActivePolicySet", err)
		if got.Version != 4 {
			t.Fatalf("active version %d, want 4", got.Version)
		}
	})
	t.Run("other tenant unaffected", func(t *testing.T) {
		got, err := s.ActivePolicySet(ctx(t), "t2")
		must(t, "ActivePolicySet", err)
		w := *foreign
		w.Active = true
		checkEqual(t, "t2 active set", &w, got)
	})
}
