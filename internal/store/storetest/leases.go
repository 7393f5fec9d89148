package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- background job leases (store.Leases) -------------------------------

// testLeases walks one lease along a moving clock: taken, refused to
// others while it runs, renewed by its holder only, free again at its
// end, released.
func testLeases(t *testing.T, s store.Store) {
	name := uniq("job")
	t0 := base().Truncate(time.Microsecond)
	const ttl = 10 * time.Second
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	l, err := s.AcquireLease(ctx(t), name, "hub-a", at(0), at(ttl))
	must(t, "AcquireLease", err)
	checkEqual(t, "acquired lease", &store.Lease{Name: name, Holder: "hub-a", Until: at(ttl), Since: at(0)}, l)

	_, err = s.AcquireLease(ctx(t), name, "hub-b", at(ttl-time.Microsecond), at(2*ttl))
	wantErr(t, "AcquireLease by another holder while the lease runs", err, store.ErrConflict)
	_, err = s.RenewLease(ctx(t), name, "hub-b", at(time.Second), at(2*ttl))
	wantErr(t, "RenewLease by a holder that does not hold it", err, store.ErrConflict)

	l, err = s.RenewLease(ctx(t), name, "hub-a", at(3*time.Second), at(3*time.Second+ttl))
	must(t, "RenewLease", err)
	checkEqual(t, "renewed lease", &store.Lease{Name: name, Holder: "hub-a", Until: at(3*time.Second + ttl), Since: at(0)}, l)
	// Acquiring one's own running lease renews it too, keeping Since.
	l, err = s.AcquireLease(ctx(t), name, "hub-a", at(4*time.Second), at(4*time.Second+ttl))
	must(t, "AcquireLease by its holder", err)
	checkEqual(t, "lease acquired again by its holder", &store.Lease{Name: name, Holder: "hub-a", Until: at(4*time.Second + ttl), Since: at(0)}, l)

	// The old end no longer frees it.
	_, err = s.AcquireLease(ctx(t), name, "hub-b", at(ttl), at(2*ttl))
	wantErr(t, "AcquireLease after the first end, before the renewed one", err, store.ErrConflict)

	// hub-a stops renewing; at the lease's end hub-b takes it.
	end := at(4*time.Second + ttl)
	l, err = s.AcquireLease(ctx(t), name, "hub-b", end, end.Add(ttl))
	must(t, "AcquireLease at the end of another's lease", err)
	checkEqual(t, "lease taken over", &store.Lease{Name: name, Holder: "hub-b", Until: end.Add(ttl), Since: end}, l)
	_, err = s.RenewLease(ctx(t), name, "hub-a", end, end.Add(ttl))
	wantErr(t, "RenewLease by the holder it was taken from", err, store.ErrConflict)

	// A lease that ran out is not renewed, even when no one took it.
	_, err = s.RenewLease(ctx(t), name, "hub-b", end.Add(ttl), end.Add(2*ttl))
	wantErr(t, "RenewLease of a lease that ran out", err, store.ErrConflict)
	l, err = s.AcquireLease(ctx(t), name, "hub-b", end.Add(ttl), end.Add(2*ttl))
	must(t, "AcquireLease of one's own lease that ran out", err)
	if !l.Since.Equal(end.Add(ttl)) {
		t.Fatalf("a lease taken again after it ran out keeps Since %v, want %v", l.Since, end.Add(ttl))
	}

	// Release: by someone else, nothing; by the holder, free at once.
	now := end.Add(ttl + time.Second)
	must(t, "ReleaseLease by a non-holder", s.ReleaseLease(ctx(t), name, "hub-a"))
	_, err = s.AcquireLease(ctx(t), name, "hub-a", now, now.Add(ttl))
	wantErr(t, "AcquireLease after a non-holder's release", err, store.ErrConflict)
	must(t, "ReleaseLease", s.ReleaseLease(ctx(t), name, "hub-b"))
	ls, err := s.ListLeases(ctx(t))
	must(t, "ListLeases", err)
	for _, l := range ls {
		if l.Name == name {
			t.Fatalf("a released lease is still listed: %+v", l)
		}
	}
	l, err = s.AcquireLease(ctx(t), name, "hub-a", now, now.Add(ttl))
	must(t, "AcquireLease after release", err)
	if l.Holder != "hub-a" {
		t.Fatalf("holder = %q, want hub-a", l.Holder)
	}

	other := uniq("job")
	_, err = s.AcquireLease(ctx(t), other, "hub-b", now, now.Add(ttl))
	must(t, "AcquireLease of a second job", err)
	ls, err = s.ListLeases(ctx(t))
	must(t, "ListLeases", err)
	got := map[string]string{}
	for _, l := range ls {
		got[l.Name] = l.Holder
	}
	if got[name] != "hub-a" || got[other] != "hub-b" {
		t.Fatalf("ListLeases holders = %v, want %s: hub-a, %s: hub-b", got, name, other)
	}

	for _, tc := range []struct {
		name, holder string
		until        time.Time
	}{
		{"", "hub-a", now.Add(ttl)},
		{name, "", now.Add(ttl)},
		{name, "hub-a", now},
	} {
		_, err := s.AcquireLease(ctx(t), tc.name, tc.holder, now, tc.until)
		wantErr(t, fmt.Sprintf("AcquireLease(%q, %q, until now%+v)", tc.name, tc.holder, tc.until.Sub(now)), err, store.ErrInvalid)
		_, err = s.RenewLease(ctx(t), tc.name, tc.holder, now, tc.until)
		wantErr(t, fmt.Sprintf("RenewLease(%q, %q, until now%+v)", tc.name, tc.holder, tc.until.Sub(now)), err, store.ErrInvalid)
	}
}

// testLeaseRace: many acquirers at once, one holder.
func testLeaseRace(t *testing.T, s store.Store) {
	LeaseRace(t, s)
}

// LeaseRace races 50 acquirers of one free lease over the handles in
// stores (one database, as replicas share it), at one instant and again
// once it ran out: each time exactly one holds it.
func LeaseRace(t *testing.T, stores ...store.Store) {
	name := uniq("job")
	t0 := base().Truncate(time.Microsecond)
	const ttl = 10 * time.Second
	for round, now := range []time.Time{t0, t0.Add(ttl)} {
		const racers = 50
		held := make([]*store.Lease, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			s := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				held[i], errs[i] = s.AcquireLease(ctx(t), name, fmt.Sprintf("hub-%d-%d", round, i), now, now.Add(ttl))
			})
		}
		close(start)
		wg.Wait()
		var winners []string
		for i, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, held[i].Holder)
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: acquirer %d: %v", round, i, err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d acquirers hold the lease (%v), want exactly 1", round, len(winners), winners)
		}
		ls, err := stores[0].ListLeases(ctx(t))
		must(t, "ListLeases", err)
		for _, l := range ls {
			if l.Name == name && l.Holder != winners[0] {
				t.Fatalf("round %d: the store says %s holds the lease, the winner was %s", round, l.Holder, winners[0])
			}
		}
	}
}
