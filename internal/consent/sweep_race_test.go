package consent_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/store"
)

// renewingStore renews a grant (the person consents again) at the moment
// the sweep reads: after a read of the grants, or as the one statement
// that expires them begins. A sweep that decides on what it read and then
// writes would retire the renewed grant.
type renewingStore struct {
	store.Consents
	once  sync.Once
	renew func()
}

func (r *renewingStore) ListConsents(ctx context.Context, f store.ConsentFilter) ([]*store.ConsentGrant, error) {
	gs, err := r.Consents.ListConsents(ctx, f)
	r.once.Do(r.renew)
	return gs, err
}

func (r *renewingStore) ExpireConsents(ctx context.Context, tenant string, now time.Time, ev func(store.ConsentFilter, []string) *store.AuditEvent) (int, error) {
	r.once.Do(r.renew)
	return r.Consents.ExpireConsents(ctx, tenant, now, ev)
}

// TestSweepSparesRenewal: consent renewed while the sweep runs stays
// live, and so do the tokens issued on it; the grant that ran out beside
// it is retired and recorded.
func TestSweepSparesRenewal(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		_, clk := newLedger(t, st)
		k := consent.Key{UserID: user, ClientID: agent, Resource: notes}
		other := consent.Key{UserID: "u-bob", ClientID: agent, Resource: notes}
		plain, err := consent.New(consent.Options{Store: st, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		grant(t, plain, k, []string{"notes.read"}, start.Add(time.Hour))
		grant(t, plain, other, []string{"notes.read"}, start.Add(time.Hour))
		clk.advance(2 * time.Hour)
		rs := &renewingStore{Consents: st, renew: func() {
			grant(t, plain, k, []string{"notes.read"}, clk.now().Add(24*time.Hour))
		}}
		l, err := consent.New(consent.Options{Store: rs, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.SweepExpired(ctx, meta(clk.now())); err != nil {
			t.Fatal(err)
		}
		if s := snapshot(t, plain, k); len(s.Live([]string{"notes.read"})) != 1 {
			t.Fatalf("consent renewed during the sweep: live scopes %v, want notes.read", s.Live([]string{"notes.read"}))
		}
		if s := snapshot(t, plain, other); len(s.Live([]string{"notes.read"})) != 0 {
			t.Fatalf("consent that ran out: live scopes %v, want none", s.Live([]string{"notes.read"}))
		}
		evs, err := st.ListAudit(ctx, store.AuditFilter{Type: audit.ConsentExpired})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].UserID != other.UserID {
			t.Fatalf("consent.expired events %v, want one for %s", evs, other.UserID)
		}
	})
}
