package policy

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// openReplicas opens two stores on one SQLite file, as two replicas of the
// hub would, and an engine on each.
func openReplicas(t *testing.T, opts Options) (applier store.Store, a, b *Engine) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "agentid.db")
	var stores [2]store.Store
	for i := range stores {
		st, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if _, _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		stores[i] = st
	}
	var engines [2]*Engine
	for i, st := range stores {
		o := opts
		o.Store = st
		e, err := New(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		engines[i] = e
	}
	return stores[0], engines[0], engines[1]
}

// TestReplicasPickUpNewVersion: a version applied through one replica's
// store is used by the other replica's engine once its refresh interval
// has passed, without a restart or an explicit reload.
func TestReplicasPickUpNewVersion(t *testing.T) {
	ctx := context.Background()
	t.Run("within the interval", func(t *testing.T) {
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		const interval = 2 * time.Second
		st, _, other := openReplicas(t, Options{Now: clk.Now, RefreshInterval: interval})
		if res := mustDecide(t, other); !res.Decisions[0].Allowed || res.Version != 0 {
			t.Fatalf("before: %+v version %d", res.Decisions[0], res.Version)
		}
		ps := &store.PolicySet{Files: denyReadFiles(), CreatedBy: "replica a"}
		if err := Apply(ctx, st, ps, nil); err != nil {
			t.Fatal(err)
		}
		clk.Add(interval - time.Millisecond)
		if res := mustDecide(t, other); res.Version != 0 {
			t.Fatalf("version %d before the interval passed; the engine reads the store on every decision", res.Version)
		}
		clk.Add(time.Millisecond)
		res := mustDecide(t, other)
		if res.Version != ps.Version || res.Decisions[0].Allowed || res.Decisions[0].PolicyIDs[0] != "no-read" {
			t.Fatalf("after the interval: %+v version %d, want denied by no-read of version %d", res.Decisions[0], res.Version, ps.Version)
		}
	})
	t.Run("real clock", func(t *testing.T) {
		const interval = 100 * time.Millisecond
		st, _, other := openReplicas(t, Options{RefreshInterval: interval})
		mustDecide(t, other)
		ps := &store.PolicySet{Files: denyReadFiles(), CreatedBy: "replica a"}
		if err := Apply(ctx, st, ps, nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// DefaultRefreshInterval is the promise ("within a few seconds");
		// with a 100ms interval the other replica should be far quicker.
		for time.Since(start) < DefaultRefreshInterval {
			if mustDecide(t, other).Version == ps.Version {
				t.Logf("picked up after %v", time.Since(start))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("the other replica still decides with the old version after %v", DefaultRefreshInterval)
	})
}
