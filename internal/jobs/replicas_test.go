package jobs

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// TestReplicasOnPostgres: three runners, each on its own pool of one
// PostgreSQL database as three hub replicas are, run two jobs on the
// real clock.
func TestReplicasOnPostgres(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	replicasTakeTurns(t, open3(t, func() (leaseStore, error) {
		return postgres.Open(t.Context(), dsn, postgres.Options{MaxConns: 4})
	}))
}

// TestReplicasOnSQLite: the same with three handles on one SQLite file
// (processes sharing a data directory; serve itself refuses that, but
// the leases must hold anyway).
func TestReplicasOnSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	replicasTakeTurns(t, open3(t, func() (leaseStore, error) {
		return sqlite.Open(t.Context(), path, sqlite.Options{})
	}))
}

// leaseStore is what the replicas need of a backend.
type leaseStore interface {
	store.Leases
	store.Database
}

// open3 opens three handles with open, migrating through the first, and
// closes them when the test ends.
func open3(t *testing.T, open func() (leaseStore, error)) []store.Leases {
	var handles []store.Leases
	for i := range 3 {
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if i == 0 {
			if _, _, err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		handles = append(handles, s)
	}
	return handles
}

// replicasTakeTurns runs a runner on each handle, two jobs each: every
// job runs on one replica at a time; killing its replica (no release)
// moves it to another within the lease and one retry; cutting a
// replica off the database does too, and the cut-off one stops first.
func replicasTakeTurns(t *testing.T, handles []store.Leases) {
	const ttl = 3 * time.Second // a margin of 600 ms for the stopped job on a busy machine
	names := []string{"a", "b", "c"}
	jobs := map[string]*tracker{"sweep": newTracker(), "seal": newTracker()}
	reps := startReplicas(t, handles, ttl, jobs, names...)
	// waitLeader waits until tr's job runs on exactly one replica other
	// than not, and returns it with the time it started.
	waitLeader := func(tr *tracker, not string, within time.Duration) (string, time.Duration) {
		t.Helper()
		from := time.Now()
		for time.Since(from) < within {
			if running, _, _ := tr.snapshot(); len(running) == 1 && running[0] != not {
				return running[0], time.Since(from)
			}
			time.Sleep(10 * time.Millisecond)
		}
		running, _, _ := tr.snapshot()
		t.Fatalf("no single leader other than %q within %v: running %v", not, within, running)
		return "", 0
	}
	takeover := ttl + ttl/3 + time.Second // the lease, one retry, and slack for a busy machine

	sweep := jobs["sweep"]
	leader, _ := waitLeader(sweep, "", takeover)
	time.Sleep(2 * ttl) // several renewals
	if running, starts, _ := sweep.snapshot(); len(running) != 1 || running[0] != leader || len(starts) != 1 {
		t.Fatalf("after %v: running %v, %d starts; want %s alone, started once", 2*ttl, running, len(starts), leader)
	}

	// kill -9: no release, no renewal.
	reps[leader].view.down.Store(true)
	reps[leader].cancel()
	<-reps[leader].done
	next, took := waitLeader(sweep, leader, takeover)
	t.Logf("sweep: %s killed, %s took over after %v (lease %v)", leader, next, took, ttl)

	// A partition: the new leader is cut off but keeps running until it
	// must stop; the last replica takes over after that.
	reps[next].view.down.Store(true)
	last, took := waitLeader(sweep, next, takeover)
	t.Logf("sweep: %s cut off, %s took over after %v", next, last, took)

	// The other job ran somewhere all along and ends on the last replica
	// standing: within the same window, since its lease is its own and
	// may move a little after the sweep's.
	seal := jobs["seal"]
	for from := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		running, _, _ := seal.snapshot()
		if len(running) == 1 && running[0] == last {
			break
		}
		if time.Since(from) > takeover {
			t.Errorf("seal runs on %v %v after the sweep moved, want %s", running, takeover, last)
			break
		}
	}
	for name, tr := range jobs {
		if _, _, overlap := tr.snapshot(); len(overlap) > 0 {
			t.Errorf("%s ran on two replicas at once: %v", name, overlap)
		}
	}
}
