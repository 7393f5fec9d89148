package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- the audit hash chain (store.AuditChain) -------------------------------

// sealAll seals everything up to the current watermark, as a sealer with
// no settle time does, and returns the number linked.
func sealAll(t *testing.T, s store.Store) int {
	t.Helper()
	w, err := s.AuditWatermark(ctx(t))
	must(t, "AuditWatermark", err)
	total := 0
	for {
		res, err := s.SealAudit(ctx(t), w, 0)
		must(t, "SealAudit", err)
		total += res.Sealed
		if res.Through >= w {
			return total
		}
	}
}

// checkReadings: with nothing of ours in flight, a watermark reading names
// the highest id w, and a later reading's horizon passes its fence (the
// sealer may seal up to it); horizons do not go down. On PostgreSQL the
// horizon is the cluster's snapshot xmin, which a transaction of another
// test on the same cluster holds back for as long as it runs: the later
// readings are retried for a few seconds, each still checked.
func checkReadings(t *testing.T, s store.Store, w int64) {
	t.Helper()
	r, h1, err := s.ReadAuditWatermark(ctx(t))
	must(t, "ReadAuditWatermark", err)
	if r.ID != w {
		t.Fatalf("reading id %d, want the watermark %d", r.ID, w)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		next, h2, err := s.ReadAuditWatermark(ctx(t))
		must(t, "ReadAuditWatermark", err)
		if h2 < h1 || next.ID != w {
			t.Fatalf("readings %+v (horizon %d) then %+v (horizon %d): want nothing new, no horizon going down", r, h1, next, h2)
		}
		if h2 > r.Fence {
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("readings %+v (horizon %d) then %+v (horizon %d) for %v: want the first settled", r, h1, next, h2, time.Since(start))
		}
		h1 = h2
	}
}

// checkChain walks the tenant's chain and fails t unless every event is
// sealed, links to its predecessor (the genesis for the first), has the
// hash of its content, and the head is the last event. It returns the
// events.
func checkChain(t *testing.T, s store.Store, tenant string) []*store.AuditLink {
	t.Helper()
	var all []*store.AuditLink
	var after int64
	for {
		page, err := s.AuditLinks(ctx(t), tenant, after, 50)
		must(t, "AuditLinks", err)
		all = append(all, page...)
		if len(page) < 50 {
			break
		}
		after = page[len(page)-1].Event.ID
	}
	prev := store.ChainGenesis
	for i, l := range all {
		if l.Event.TenantID != tenant {
			t.Fatalf("AuditLinks(%s) returned an event of tenant %s", tenant, l.Event.TenantID)
		}
		if i > 0 && l.Event.ID <= all[i-1].Event.ID {
			t.Fatalf("AuditLinks not in id order: %d after %d", l.Event.ID, all[i-1].Event.ID)
		}
		if !l.Sealed() {
			t.Fatalf("event %d (%d of %d) not sealed", l.Event.ID, i+1, len(all))
		}
		if !bytes.Equal(l.PrevHash, prev) {
			t.Fatalf("event %d: prev_hash %x, want %x (the chain forked or skipped)", l.Event.ID, l.PrevHash, prev)
		}
		if want := store.ChainHash(prev, l.Event); !bytes.Equal(l.Hash, want) {
			t.Fatalf("event %d: hash %x, want %x", l.Event.ID, l.Hash, want)
		}
		prev = l.Hash
	}
	if len(all) == 0 {
		return nil
	}
	h, err := s.AuditHead(ctx(t), tenant)
	must(t, "AuditHead", err)
	if last := all[len(all)-1]; h.ID != last.Event.ID || !bytes.Equal(h.Hash, last.Hash) {
		t.Fatalf("head = %d %x, want the last event %d %x", h.ID, h.Hash, last.Event.ID, last.Hash)
	}
	return all
}

// testAuditChain: a burst of concurrent writes in two tenants, events of
// issuances and standalone ones, is sealed into one chain per tenant; a
// second seal finds nothing; what is read back hashes as it was sealed.
func testAuditChain(t *testing.T, s store.Store) {
	if _, err := s.AuditHead(ctx(t), store.DefaultTenant); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AuditHead of an empty trail: %v, want ErrNotFound", err)
	}
	if w, err := s.AuditWatermark(ctx(t)); err != nil || w != 0 {
		t.Fatalf("AuditWatermark of an empty trail = %d, %v; want 0", w, err)
	}
	tenants := []string{store.DefaultTenant, "t2"}
	const writers, each = 16, 6
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			tn := tenants[w%2]
			for i := range each {
				ev := event(tn, fmt.Sprintf("burst.%d", i))
				ev.Details = map[string]string{"writer": fmt.Sprint(w), "i": fmt.Sprint(i)}
				if i%2 == 0 {
					at := accessToken(tn, "", "c1", "", "https://mcp.example.com/", "s1")
					errs <- s.IssueTokens(ctx(t), &store.Issuance{AccessToken: at, Events: []*store.AuditEvent{ev}})
				} else {
					errs <- s.AppendAudit(ctx(t), ev)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "write during the burst", err)
	}
	w, err := s.AuditWatermark(ctx(t))
	must(t, "AuditWatermark", err)
	checkReadings(t, s, w)
	if n := sealAll(t, s); n != writers*each {
		t.Fatalf("sealed %d events, want %d", n, writers*each)
	}
	total := 0
	var maxID int64
	for _, tn := range tenants {
		links := checkChain(t, s, tn)
		total += len(links)
		maxID = max(maxID, links[len(links)-1].Event.ID)
	}
	if total != writers*each {
		t.Fatalf("%d events in the chains, want %d", total, writers*each)
	}
	if w < maxID {
		t.Fatalf("watermark %d below the highest id %d", w, maxID)
	}
	res, err := s.SealAudit(ctx(t), w, 0)
	must(t, "SealAudit again", err)
	if res.Sealed != 0 || len(res.Heads) != 0 {
		t.Fatalf("second SealAudit = %+v, want nothing sealed", res)
	}
}

// testAuditSealUpTo: SealAudit stops at upTo and at its limit, moves the
// sealed-through mark as documented, and reports the heads it moved.
func testAuditSealUpTo(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	evs := make([]*store.AuditEvent, 5)
	for i := range evs {
		evs[i] = event(tn, fmt.Sprintf("e%d", i))
		must(t, "AppendAudit", s.AppendAudit(ctx(t), evs[i]))
	}
	sealed := func() []bool {
		links, err := s.AuditLinks(ctx(t), tn, 0, 0)
		must(t, "AuditLinks", err)
		out := make([]bool, len(links))
		for i, l := range links {
			out[i] = l.Sealed()
		}
		return out
	}
	res, err := s.SealAudit(ctx(t), evs[1].ID, 0)
	must(t, "SealAudit", err)
	if res.Sealed != 2 || res.Through != evs[1].ID || len(res.Heads) != 1 || res.Heads[0].ID != evs[1].ID || res.Heads[0].Sealed != 2 {
		t.Fatalf("SealAudit(upTo e1) = %+v, want e0 and e1 sealed, through e1", res)
	}
	checkEqual(t, "sealed after upTo e1", []bool{true, true, false, false, false}, sealed())

	res, err = s.SealAudit(ctx(t), evs[4].ID, 2)
	must(t, "SealAudit", err)
	if res.Sealed != 2 || res.Through != evs[3].ID {
		t.Fatalf("SealAudit(limit 2) = %+v, want e2 and e3 sealed, through e3", res)
	}
	res, err = s.SealAudit(ctx(t), evs[4].ID+1000, 2)
	must(t, "SealAudit", err)
	if res.Sealed != 1 || res.Through != evs[4].ID+1000 {
		t.Fatalf("SealAudit past the last id = %+v, want e4 sealed and the mark at upTo", res)
	}
	links := checkChain(t, s, tn)
	for i, l := range links {
		checkEqual(t, "event read back", evs[i], l.Event)
	}
	// Below the mark nothing is looked at again.
	res, err = s.SealAudit(ctx(t), evs[2].ID, 0)
	must(t, "SealAudit below the mark", err)
	if res.Sealed != 0 || res.Through != evs[4].ID+1000 {
		t.Fatalf("SealAudit below the mark = %+v, want nothing and the mark kept", res)
	}
}

// testPruneAudit: PruneAudit deletes a tenant's events before a sealed
// anchor with the given prev_hash and writes its event in the same
// transaction; a wrong anchor deletes nothing.
func testPruneAudit(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	var evs []*store.AuditEvent
	for i := range 5 {
		ev := event(tn, fmt.Sprintf("e%d", i))
		must(t, "AppendAudit", s.AppendAudit(ctx(t), ev))
		evs = append(evs, ev)
	}
	other := event("t2", "other")
	must(t, "AppendAudit", s.AppendAudit(ctx(t), other))
	sealAll(t, s)
	late := event(tn, "unsealed")
	must(t, "AppendAudit", s.AppendAudit(ctx(t), late))
	links, err := s.AuditLinks(ctx(t), tn, 0, 0)
	must(t, "AuditLinks", err)
	anchor := links[2]

	for _, tc := range []struct {
		name string
		p    store.AuditPrune
	}{
		{"wrong prev_hash", store.AuditPrune{TenantID: tn, Keep: anchor.Event.ID, PrevHash: anchor.Hash}},
		{"unsealed anchor", store.AuditPrune{TenantID: tn, Keep: late.ID, PrevHash: nil}},
		{"anchor of another tenant", store.AuditPrune{TenantID: tn, Keep: other.ID, PrevHash: store.ChainGenesis}},
		{"missing anchor", store.AuditPrune{TenantID: tn, Keep: late.ID + 100, PrevHash: anchor.PrevHash}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.PruneAudit(ctx(t), tc.p, func(int64) *store.AuditEvent { return event(tn, "pruned") })
			wantErr(t, "PruneAudit", err, store.ErrConflict)
			after, err := s.AuditLinks(ctx(t), tn, 0, 0)
			must(t, "AuditLinks", err)
			if len(after) != len(links) {
				t.Fatalf("%d events after a refused prune, want %d", len(after), len(links))
			}
		})
	}

	pruned := event(tn, "pruned")
	var got int64 = -1
	n, err := s.PruneAudit(ctx(t), store.AuditPrune{TenantID: tn, Keep: anchor.Event.ID, PrevHash: anchor.PrevHash},
		func(deleted int64) *store.AuditEvent {
			got = deleted
			return pruned
		})
	must(t, "PruneAudit", err)
	if n != 2 || got != 2 {
		t.Fatalf("PruneAudit deleted %d (event told %d), want 2", n, got)
	}
	if pruned.ID == 0 {
		t.Fatal("PruneAudit did not set its event's ID")
	}
	after, err := s.AuditLinks(ctx(t), tn, 0, 0)
	must(t, "AuditLinks", err)
	var ids []int64
	for _, l := range after {
		ids = append(ids, l.Event.ID)
	}
	checkEqual(t, "ids after the prune", []int64{evs[2].ID, evs[3].ID, evs[4].ID, late.ID, pruned.ID}, ids)
	if o, err := s.AuditLinks(ctx(t), "t2", 0, 0); err != nil || len(o) != 1 {
		t.Fatalf("the other tenant's trail = %d events, %v; want its one event kept", len(o), err)
	}
}

// ChainAcrossStores checks that sealers on two handles of one database,
// as two hub processes run them, never fork the chain: events written
// through both while both seal form one chain per tenant. a and b must be
// migrated and share one empty database.
func ChainAcrossStores(t *testing.T, a, b store.Store) {
	stores := []store.Store{a, b}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var sealErrs [2]error
	var sealers sync.WaitGroup
	for i, s := range stores {
		sealers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Seal up to the current watermark: on PostgreSQL an id
				// still in flight may end up behind the head, which
				// verification reports; here the writers' events are
				// checked only after the final seal below, when none is
				// in flight.
				w, err := s.AuditWatermark(ctx(t))
				if err == nil {
					_, err = s.SealAudit(ctx(t), w, 7)
				}
				// Two sealers spinning without pause can keep moving the
				// chain under each other; SealAudit then answers
				// ErrConflict, and its caller (the Sealer) tries again at
				// its next round, as this loop does.
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					sealErrs[i] = err
					return
				}
			}
		})
	}
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ev := event([]string{store.DefaultTenant, "t2"}[i%2], "across")
				errs <- stores[(w+i)%2].AppendAudit(ctx(t), ev)
			}
		})
	}
	wg.Wait()
	close(stop)
	sealers.Wait()
	close(errs)
	for err := range errs {
		must(t, "AppendAudit", err)
	}
	for _, err := range sealErrs {
		must(t, "SealAudit", err)
	}
	sealAll(t, b)
	total := 0
	for _, tn := range []string{store.DefaultTenant, "t2"} {
		links, err := a.AuditLinks(ctx(t), tn, 0, 0)
		must(t, "AuditLinks", err)
		// Events sealed while a lower id was in flight stay unsealed
		// behind the head (PostgreSQL only); the rest must be one chain.
		prev := store.ChainGenesis
		for _, l := range links {
			if !l.Sealed() {
				continue
			}
			if !bytes.Equal(l.PrevHash, prev) || !bytes.Equal(l.Hash, store.ChainHash(prev, l.Event)) {
				t.Fatalf("tenant %s, event %d: the chain forked", tn, l.Event.ID)
			}
			prev = l.Hash
			total++
		}
		h, err := b.AuditHead(ctx(t), tn)
		must(t, "AuditHead", err)
		if !bytes.Equal(h.Hash, prev) {
			t.Fatalf("tenant %s: head %d is not the chain's last event", tn, h.ID)
		}
	}
	if total == 0 {
		t.Fatal("nothing sealed")
	}
}
