package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// fencedStore hands out readings with increasing fences and a horizon the
// test sets, as PostgreSQL does while a transaction stays open.
type fencedStore struct {
	store.Store
	mu      sync.Mutex
	fence   uint64
	horizon uint64
	taken   []store.AuditReading
}

func (f *fencedStore) ReadAuditWatermark(ctx context.Context) (store.AuditReading, uint64, error) {
	id, err := f.AuditWatermark(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fence++
	r := store.AuditReading{ID: id, Fence: f.fence}
	f.taken = append(f.taken, r)
	return r, f.horizon, err
}

// release moves the horizon past every reading taken so far but the
// ones from index keep on (keep < 0: all).
func (f *fencedStore) release(keep int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if keep < 0 || keep >= len(f.taken) {
		f.horizon = f.fence + 1
		return
	}
	f.horizon = f.taken[keep].Fence
}

// TestSealerWaitsForTheHorizon: the sealer seals up to a reading only
// once the store's horizon passes its fence, however much time passes;
// it seals up to the newest reading that did; while the horizon stands
// still it keeps a bounded number of readings and the newest keeps
// moving, so that once the horizon moves everything is sealed.
func TestSealerWaitsForTheHorizon(t *testing.T) {
	db := chainBackends["sqlite"](t)
	fs := &fencedStore{Store: db.st, horizon: 1}
	clk := &clock{t: t0}
	s, err := audit.NewSealer(audit.SealerOptions{Store: fs, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	round := func() int {
		clk.Add(time.Second)
		return seal(t, s)
	}
	first := fill(t, db.st, 3)
	for i := range 10 {
		if n := round(); n != 0 {
			t.Fatalf("round %d sealed %d with the horizon standing still, want 0", i, n)
		}
	}
	fs.mu.Lock()
	taken := len(fs.taken)
	fs.mu.Unlock()
	second := fill(t, db.st, 2)
	round()           // a reading naming the second batch
	fs.release(taken) // the readings before the second batch settle, not the later ones
	if n := round(); n != len(first) {
		t.Fatalf("sealed %d once the first readings settled, want %d", n, len(first))
	}
	// Many more rounds with new ids each and the horizon still: more
	// readings than the sealer keeps (it replaces its newest past the
	// cap), and still nothing is skipped or left behind.
	var rest []*store.AuditEvent
	for range 200 {
		rest = append(rest, fill(t, db.st, 1)...)
		if n := round(); n != 0 {
			t.Fatalf("sealed %d with the horizon still, want 0", n)
		}
	}
	fs.release(-1)
	if n := round(); n != len(second)+len(rest) {
		t.Fatalf("sealed %d once the horizon moved, want %d", n, len(second)+len(rest))
	}
	if r := verify(t, db); r.Break != nil || r.Unsealed != 0 {
		t.Fatalf("after the horizon moved: %+v %v", r, r.Break)
	}
}
