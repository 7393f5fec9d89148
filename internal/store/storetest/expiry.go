package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- sweeps that record what they find (ExpireConsents, PruneClients) ----

// expiredEvent is the event the tests have ExpireConsents write: the key
// in its fields, the scopes in Scopes.
func expiredEvent(now time.Time) func(store.ConsentFilter, []string) *store.AuditEvent {
	return func(k store.ConsentFilter, scopes []string) *store.AuditEvent {
		return &store.AuditEvent{TenantID: k.TenantID, Time: now, Type: "consent.expired", ClientID: k.ClientID,
			UserID: k.UserID, Resource: k.Resource, Scopes: slices.Clone(scopes), Outcome: "success"}
	}
}

// testExpireConsents: the grants that ran out by now (inclusive) and
// are not revoked are revoked with their tokens, one event per key; a
// second sweep finds nothing; a grant renewed after its expiry is left
// alone.
func testExpireConsents(t *testing.T, s store.Store) {
	tn := uniq("tn")
	t0 := base().Truncate(time.Microsecond)
	due := t0.Add(time.Hour)
	grant := func(user, client, resource, scope string, expires time.Time) *store.ConsentGrant {
		g := consent(tn, user, client, resource, scope)
		g.GrantedAt, g.ExpiresAt = t0, expires
		return g
	}
	grants := []*store.ConsentGrant{
		grant("u1", "c1", "https://r1/", "b", due),                       // expires exactly now
		grant("u1", "c1", "https://r1/", "a", due.Add(-time.Minute)),     // expired before
		grant("u1", "c1", "https://r1/", "later", due.Add(24*time.Hour)), // still live
		grant("u1", "c1", "https://r1/", "forever", time.Time{}),         // until revoked
		grant("u2", "c1", "https://r2/", "a", due.Add(-time.Hour/2)),
		grant("u1", "c2", "https://r1/", "gone", due.Add(-time.Minute)), // revoked below
	}
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), grants, nil))
	must(t, "RevokeConsents", s.RevokeConsents(ctx(t), store.ConsentFilter{TenantID: tn, ClientID: "c2"}, nil, t0, nil))
	// Tokens of u1 and c1: one carries an expiring scope, one only a live one.
	hit := refreshToken(tn, uniq("g"), "c1", "u1", "https://r1/", "a", "later")
	kept := refreshToken(tn, uniq("g"), "c1", "u1", "https://r1/", "later")
	hitAT := accessToken(tn, uniq("g"), "c1", "u1", "https://r1/", "b")
	hitAT.ExpiresAt = due.Add(time.Hour)
	issue(t, s, hit, nil)
	issue(t, s, kept, hitAT)
	// Another tenant's expired grant is not this sweep's.
	other := consent(uniq("tn"), "u1", "c1", "https://r1/", "a")
	other.ExpiresAt = t0
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{other}, nil))

	n, err := s.ExpireConsents(ctx(t), tn, due, expiredEvent(due))
	must(t, "ExpireConsents", err)
	if n != 3 {
		t.Fatalf("ExpireConsents revoked %d grants, want 3", n)
	}
	evs, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: tn, Type: "consent.expired", Ascending: true})
	must(t, "ListAudit", err)
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprintf("%s/%s/%s %s", ev.UserID, ev.ClientID, ev.Resource, strings.Join(ev.Scopes, " ")))
	}
	want := []string{"u1/c1/https://r1/ a b", "u2/c1/https://r2/ a"}
	if !slices.Equal(got, want) {
		t.Fatalf("consent.expired events = %q, want %q", got, want)
	}
	live, err := s.ListConsents(ctx(t), store.ConsentFilter{TenantID: tn})
	must(t, "ListConsents", err)
	for _, g := range live {
		revoked := !g.RevokedAt.IsZero()
		wantRevoked := g.ClientID == "c2" || g.Scope == "a" || g.Scope == "b"
		if revoked != wantRevoked {
			t.Errorf("grant %s/%s/%s %s: revoked %v, want %v", g.UserID, g.ClientID, g.Resource, g.Scope, revoked, wantRevoked)
		}
		if g.ClientID == "c1" && wantRevoked && !g.RevokedAt.Equal(due) {
			t.Errorf("grant %s %s revoked at %v, want %v", g.UserID, g.Scope, g.RevokedAt, due)
		}
	}
	if refreshState(t, s, hit).RevokedAt.IsZero() {
		t.Error("a refresh token carrying an expired scope was not revoked")
	}
	if !refreshState(t, s, kept).RevokedAt.IsZero() {
		t.Error("a refresh token carrying only live scopes was revoked")
	}
	if revoked, err := s.AccessTokenRevoked(ctx(t), hitAT.JTI); err != nil || !revoked {
		t.Errorf("an access token carrying an expired scope: revoked %v, %v; want revoked", revoked, err)
	}
	if gs, err := s.ListConsents(ctx(t), store.ConsentFilter{TenantID: other.TenantID}); err != nil || len(gs) != 1 || !gs[0].RevokedAt.IsZero() {
		t.Fatalf("another tenant's expired grant was swept: %+v, %v", gs, err)
	}

	// Again: nothing left to expire, no event.
	n, err = s.ExpireConsents(ctx(t), tn, due.Add(time.Millisecond), expiredEvent(due))
	must(t, "ExpireConsents again", err)
	if n != 0 {
		t.Fatalf("a second sweep revoked %d grants, want 0", n)
	}
	// The person consents again (the grant is renewed): the next sweep
	// leaves the renewed grant alone until its new expiry.
	renewed := grant("u2", "c1", "https://r2/", "a", due.Add(time.Hour))
	renewed.GrantedAt = due.Add(time.Minute)
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), []*store.ConsentGrant{renewed}, nil))
	n, err = s.ExpireConsents(ctx(t), tn, due.Add(2*time.Minute), nil)
	must(t, "ExpireConsents after renewal", err)
	if n != 0 {
		t.Fatalf("a sweep after renewal revoked %d grants, want 0", n)
	}
	evs, err = s.ListAudit(ctx(t), store.AuditFilter{TenantID: tn, Type: "consent.expired"})
	must(t, "ListAudit", err)
	if len(evs) != 2 {
		t.Fatalf("%d consent.expired events after the later sweeps, want still 2", len(evs))
	}
}

// SweepsAcrossStores runs the sweeps that record an event per thing they
// find (ExpireConsents, PruneClients) several times at once over the
// handles in stores (one database, as hub replicas share it): every
// expired grant and every prunable client is recorded exactly once.
// The stores must be migrated and share one database.
func SweepsAcrossStores(t *testing.T, stores ...store.Store) {
	s := stores[0]
	tn := uniq("tn")
	t0 := base().Truncate(time.Microsecond)
	now := t0.Add(60 * 24 * time.Hour)
	const keys, prunable = 40, 30
	var grants []*store.ConsentGrant
	for i := range keys {
		for _, scope := range []string{"a", "b"} {
			g := consent(tn, fmt.Sprintf("u%02d", i), "c1", "https://r/", scope)
			g.GrantedAt, g.ExpiresAt = t0, now.Add(-time.Duration(i)*time.Minute)
			grants = append(grants, g)
		}
	}
	must(t, "UpsertConsents", s.UpsertConsents(ctx(t), grants, nil))
	for i := range prunable {
		c := fullClient(tn, fmt.Sprintf("dcr%02d", i))
		c.RegistrationMethod, c.CreatedAt, c.UpdatedAt = store.RegistrationDCR, t0, t0
		must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))
	}

	const sweepers = 6
	revoked := make([]int, sweepers)
	pruned := make([][]*store.Client, sweepers)
	errs := make([]error, 2*sweepers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range sweepers {
		st := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			revoked[i], errs[i] = st.ExpireConsents(ctx(t), tn, now, expiredEvent(now))
		})
		wg.Go(func() {
			<-start
			// Small batches, as the hub's job takes them, so the sweeps
			// interleave.
			for {
				gone, err := st.PruneClients(ctx(t), store.PruneRequest{TenantID: tn, Methods: []string{store.RegistrationDCR},
					UnusedSince: now.Add(-30 * 24 * time.Hour), Now: now, Limit: 4},
					func(c *store.Client) *store.AuditEvent {
						return &store.AuditEvent{TenantID: c.TenantID, Time: now, Type: "client.expired", ClientID: c.ID, Outcome: "success"}
					})
				pruned[i] = append(pruned[i], gone...)
				if err != nil || len(gone) == 0 {
					errs[sweepers+i] = err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	total := 0
	for _, n := range revoked {
		total += n
	}
	if total != 2*keys {
		t.Errorf("the sweeps revoked %d grants in all (%v), want %d", total, revoked, 2*keys)
	}
	events := func(typ string) map[string]int {
		seen := map[string]int{}
		var after int64
		for {
			evs, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: tn, Type: typ, Ascending: true, After: after, Limit: 100})
			must(t, "ListAudit", err)
			for _, ev := range evs {
				seen[ev.UserID+ev.ClientID]++
				after = ev.ID
			}
			if len(evs) < 100 {
				return seen
			}
		}
	}
	for typ, want := range map[string]int{"consent.expired": keys, "client.expired": prunable} {
		seen := events(typ)
		if len(seen) != want {
			t.Errorf("%s recorded for %d keys, want %d", typ, len(seen), want)
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s recorded %d times for %s", typ, n, k)
			}
		}
	}
	removed := map[string]int{}
	for _, list := range pruned {
		for _, c := range list {
			removed[c.ID]++
		}
	}
	if len(removed) != prunable {
		t.Errorf("the sweeps returned %d pruned clients, want %d", len(removed), prunable)
	}
	for id, n := range removed {
		if n != 1 {
			t.Errorf("client %s returned as pruned by %d sweeps", id, n)
		}
	}
}

func testSweepsConcurrent(t *testing.T, s store.Store) { SweepsAcrossStores(t, s) }
