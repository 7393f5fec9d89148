package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// memLeases is store.Leases in memory, with the contract's semantics
// (storetest checks the real backends): the runner's tests run it on a
// fake clock.
type memLeases struct {
	mu sync.Mutex
	m  map[string]store.Lease
}

func newMemLeases() *memLeases { return &memLeases{m: map[string]store.Lease{}} }

func (s *memLeases) AcquireLease(_ context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if err := store.CheckLease(name, holder, now, until); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[name]
	switch {
	case !ok || !now.Before(l.Until):
		l = store.Lease{Name: name, Holder: holder, Since: now}
	case l.Holder != holder:
		return nil, store.ErrConflict
	}
	l.Until = until
	s.m[name] = l
	return &l, nil
}

func (s *memLeases) RenewLease(_ context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if err := store.CheckLease(name, holder, now, until); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[name]
	if !ok || l.Holder != holder || !now.Before(l.Until) {
		return nil, store.ErrConflict
	}
	l.Until = until
	s.m[name] = l
	return &l, nil
}

func (s *memLeases) ReleaseLease(_ context.Context, name, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[name].Holder == holder {
		delete(s.m, name)
	}
	return nil
}

func (s *memLeases) get(name string) store.Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

func (s *memLeases) ListLeases(context.Context) ([]*store.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Lease
	for _, l := range s.m {
		out = append(out, &l)
	}
	return out, nil
}

// cutOff is a replica's view of the store that can be cut: once down,
// every call fails as if the database were unreachable (a partition) or
// the process gone (it neither renews nor releases).
type cutOff struct {
	store.Leases
	down atomic.Bool
}

var errUnreachable = errors.New("database unreachable")

func (c *cutOff) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if c.down.Load() {
		return nil, errUnreachable
	}
	return c.Leases.AcquireLease(ctx, name, holder, now, until)
}

func (c *cutOff) RenewLease(ctx context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if c.down.Load() {
		return nil, errUnreachable
	}
	return c.Leases.RenewLease(ctx, name, holder, now, until)
}

func (c *cutOff) ReleaseLease(ctx context.Context, name, holder string) error {
	if c.down.Load() {
		return errUnreachable
	}
	return c.Leases.ReleaseLease(ctx, name, holder)
}

// tracker is a job that records who runs it, when, and whether two ran
// at once.
type tracker struct {
	mu      sync.Mutex
	running map[string]bool
	starts  []start
	overlap []string
	stopped map[string]time.Time // when each holder's job last returned
	// wind is how long the job takes to return once stopped.
	wind time.Duration
}

type start struct {
	holder string
	at     time.Time
}

func newTracker() *tracker {
	return &tracker{running: map[string]bool{}, stopped: map[string]time.Time{}}
}

func (tr *tracker) stoppedAt(holder string) time.Time {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.stopped[holder]
}

func (tr *tracker) job(holder string) Job {
	return Job{Name: "sweep", Run: func(ctx context.Context) error {
		tr.mu.Lock()
		if len(tr.running) > 0 {
			tr.overlap = append(tr.overlap, fmt.Sprintf("%s started at %v while %v ran", holder, time.Now(), tr.running))
		}
		tr.running[holder] = true
		tr.starts = append(tr.starts, start{holder, time.Now()})
		tr.mu.Unlock()
		<-ctx.Done()
		time.Sleep(tr.wind)
		tr.mu.Lock()
		delete(tr.running, holder)
		tr.stopped[holder] = time.Now()
		tr.mu.Unlock()
		return nil
	}}
}

func (tr *tracker) snapshot() (running []string, starts []start, overlap []string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for h := range tr.running {
		running = append(running, h)
	}
	return running, append([]start(nil), tr.starts...), append([]string(nil), tr.overlap...)
}

// replica is one runner with its own view of the store and its own
// lifetime.
type replica struct {
	name   string
	view   *cutOff
	cancel context.CancelFunc
	done   chan struct{}
}

// startReplicas starts a runner per name, the i-th on stores[i] (or
// stores[0] for all when there is one), each running a job per tracker
// under the tracker's name, and stops them when the test ends.
func startReplicas(t *testing.T, stores []store.Leases, ttl time.Duration, jobs map[string]*tracker, names ...string) map[string]*replica {
	t.Helper()
	out := map[string]*replica{}
	for i, n := range names {
		st := stores[0]
		if len(stores) > 1 {
			st = stores[i]
		}
		rp := &replica{name: n, view: &cutOff{Leases: st}, done: make(chan struct{})}
		r, err := New(Options{Store: rp.view, Holder: n, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		var js []Job
		for name, tr := range jobs {
			j := tr.job(n)
			j.Name = name
			js = append(js, j)
		}
		var ctx context.Context
		ctx, rp.cancel = context.WithCancel(t.Context())
		go func() {
			defer close(rp.done)
			r.Run(ctx, js...)
		}()
		out[n] = rp
	}
	t.Cleanup(func() {
		for _, rp := range out {
			rp.cancel()
			<-rp.done
		}
	})
	return out
}

// TestOneHolderAtATime: three replicas run one job; one runs it and keeps
// it while it renews; cut off from the database it stops the job before
// its lease ends, and another replica starts the job once the lease ran
// out, within the lease's length and one retry; killed outright
// (no release), the same. Never do two run it at once.
func TestOneHolderAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 9 * time.Second
		st := newMemLeases()
		tr := newTracker()
		rs := startReplicas(t, []store.Leases{st}, ttl, map[string]*tracker{"sweep": tr}, "a", "b", "c")

		time.Sleep(time.Minute)
		synctest.Wait()
		running, starts, _ := tr.snapshot()
		if len(running) != 1 || len(starts) != 1 {
			t.Fatalf("after a minute: running %v, %d starts; want one replica, started once", running, len(starts))
		}
		first := running[0]

		// A partition: the leader can reach nothing. Its lease was
		// renewed at most ttl/3 ago.
		cut := time.Now()
		rs[first].view.down.Store(true)
		var last time.Time
		if l := st.get("sweep"); l.Holder == first {
			last = l.Until
		}
		deadline := cut.Add(ttl + ttl/3 + time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			if running, _, _ := tr.snapshot(); len(running) == 1 && running[0] != first {
				break
			}
		}
		running, starts, _ = tr.snapshot()
		if len(running) != 1 || running[0] == first {
			t.Fatalf("%v after the leader was cut off: running %v; want another replica", time.Since(cut), running)
		}
		second := starts[len(starts)-1]
		if second.at.Before(last) {
			t.Fatalf("%s took over at %v, before the cut-off leader's lease ended at %v", second.holder, second.at, last)
		}
		if stop := tr.stoppedAt(first); last.Sub(stop) < ttl/5 {
			t.Fatalf("the cut-off leader stopped its job %v before its lease ended, want at least %v", last.Sub(stop), ttl/5)
		}
		t.Logf("cut off at %v; lease ended %v later; %s took over %v after the cut", cut, last.Sub(cut), second.holder, second.at.Sub(cut))

		// The cut-off replica comes back: it does not take the job back.
		rs[first].view.down.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if running, _, _ := tr.snapshot(); len(running) != 1 || running[0] != second.holder {
			t.Fatalf("after the old leader came back: running %v, want %s alone", running, second.holder)
		}

		// Kill the new leader: no release, its job gone at once.
		killed := time.Now()
		rs[second.holder].view.down.Store(true)
		rs[second.holder].cancel()
		<-rs[second.holder].done
		time.Sleep(ttl + ttl/3 + time.Second)
		synctest.Wait()
		running, starts, overlap := tr.snapshot()
		if len(running) != 1 || running[0] == second.holder {
			t.Fatalf("after the leader was killed: running %v", running)
		}
		third := starts[len(starts)-1]
		if took := third.at.Sub(killed); took > ttl+ttl/3 {
			t.Fatalf("%s took over %v after the kill, want within %v", third.holder, took, ttl+ttl/3)
		}
		if len(overlap) > 0 {
			t.Fatalf("two replicas ran the job at once: %v", overlap)
		}
	})
}

// TestShutdownHandsOver: a replica that stops cleanly keeps its lease
// until its job has finished, then releases it: the next replica starts
// the job well before the lease would have run out, and only after the
// first finished.
func TestShutdownHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 30 * time.Second
		st := newMemLeases()
		tr := newTracker()
		tr.wind = 20 * time.Second // longer than a renewal period
		rs := startReplicas(t, []store.Leases{st}, ttl, map[string]*tracker{"sweep": tr}, "a", "b")
		time.Sleep(time.Second)
		synctest.Wait()
		running, _, _ := tr.snapshot()
		if len(running) != 1 {
			t.Fatalf("running %v", running)
		}
		first := running[0]
		stopped := time.Now()
		rs[first].cancel()
		<-rs[first].done
		if wound := time.Since(stopped); wound < tr.wind {
			t.Fatalf("the runner returned %v after the stop, before its job (%v)", wound, tr.wind)
		}
		time.Sleep(ttl / 3)
		synctest.Wait()
		running, starts, overlap := tr.snapshot()
		if len(running) != 1 || running[0] == first {
			t.Fatalf("after %s stopped: running %v", first, running)
		}
		if took := starts[len(starts)-1].at.Sub(stopped); took > tr.wind+ttl/3 {
			t.Fatalf("handed over %v after the stop, want within the wind-down and one retry (%v)", took, tr.wind+ttl/3)
		}
		if len(overlap) > 0 {
			t.Fatalf("two replicas ran the job at once: %v", overlap)
		}
	})
}

// TestLeaseTakenStopsJob: a holder whose renewal is refused (its lease
// went to another, say after a pause longer than the lease) stops its
// job at that renewal.
func TestLeaseTakenStopsJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = 9 * time.Second
		st := newMemLeases()
		tr := newTracker()
		rs := startReplicas(t, []store.Leases{st}, ttl, map[string]*tracker{"sweep": tr}, "a")
		time.Sleep(time.Second)
		synctest.Wait()
		st.mu.Lock()
		st.m["sweep"] = store.Lease{Name: "sweep", Holder: "elsewhere", Since: time.Now(), Until: time.Now().Add(time.Hour)}
		st.mu.Unlock()
		time.Sleep(ttl / 3)
		synctest.Wait()
		if running, _, _ := tr.snapshot(); len(running) != 0 {
			t.Fatalf("the job still runs after its lease was taken: %v", running)
		}
		rs["a"].cancel()
		<-rs["a"].done
		if l := st.get("sweep"); l.Holder != "elsewhere" {
			t.Fatalf("stopping released another holder's lease: %+v", l)
		}
	})
}

// TestPeriodicJob: a job with Every runs every interval while this
// replica leads (the first time one interval after it took the lease),
// logs failures, and stops with the runner.
func TestPeriodicJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var mu sync.Mutex
		log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), nil))
		r, err := New(Options{Store: newMemLeases(), Holder: "a", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		var runs atomic.Int32
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx, Job{Name: "cleanup", Every: time.Minute, Run: func(context.Context) error {
				if runs.Add(1) == 2 {
					return errors.New("database is locked")
				}
				return nil
			}})
		}()
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if runs.Load() != 0 {
			t.Fatalf("ran %d times before its first interval", runs.Load())
		}
		time.Sleep(3*time.Minute - 59*time.Second + time.Second)
		synctest.Wait()
		if runs.Load() != 3 {
			t.Fatalf("ran %d times in 3m, want 3", runs.Load())
		}
		cancel()
		<-done
		n := runs.Load()
		time.Sleep(time.Hour)
		synctest.Wait()
		if runs.Load() != n {
			t.Fatal("ran after the runner stopped")
		}
		mu.Lock()
		defer mu.Unlock()
		if s := logs.String(); !strings.Contains(s, "job=cleanup") || !strings.Contains(s, "database is locked") {
			t.Fatalf("the failure is not logged: %s", s)
		}
	})
}

// TestStoppedAtOnce: a runner whose context has already ended still
// gives a free job its stop (the sealer's last seal runs), and releases
// the lease after; a job another holds does not run.
func TestStoppedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemLeases()
		if _, err := st.AcquireLease(t.Context(), "held", "elsewhere", time.Now(), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		r, err := New(Options{Store: st, Holder: "a"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var final, held atomic.Int32
		r.Run(ctx,
			Job{Name: "seal", Run: func(ctx context.Context) error {
				<-ctx.Done()
				final.Add(1)
				return nil
			}},
			Job{Name: "held", Run: func(context.Context) error { held.Add(1); return nil }})
		if final.Load() != 1 || held.Load() != 0 {
			t.Fatalf("free job stopped %d times, held job ran %d times; want 1 and 0", final.Load(), held.Load())
		}
		if l := st.get("seal"); l.Holder != "" {
			t.Fatalf("lease left behind: %+v", l)
		}
	})
}

// TestClearLeases: leases a dead process left are cleared, and the
// runner takes the jobs at once rather than after the leases ran out.
func TestClearLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemLeases()
		for _, n := range []string{"sweep", "seal"} {
			if _, err := st.AcquireLease(t.Context(), n, "dead", time.Now(), time.Now().Add(DefaultTTL)); err != nil {
				t.Fatal(err)
			}
		}
		r, err := New(Options{Store: st, Holder: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.ClearLeases(t.Context()); err != nil {
			t.Fatal(err)
		}
		if ls, _ := st.ListLeases(t.Context()); len(ls) != 0 {
			t.Fatalf("leases after ClearLeases: %v", ls)
		}
		tr := newTracker()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx, tr.job("a"))
		}()
		synctest.Wait()
		if running, _, _ := tr.snapshot(); len(running) != 1 {
			t.Fatalf("right after the clear: running %v, want a", running)
		}
		cancel()
		<-done
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestNewChecks(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := New(Options{Store: newMemLeases(), TTL: 500 * time.Millisecond}); err == nil {
		t.Error("New with a sub-second lease succeeded")
	}
	r, err := New(Options{Store: newMemLeases()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Holder() == "" || r.ttl != DefaultTTL {
		t.Fatalf("defaults: holder %q, ttl %v", r.Holder(), r.ttl)
	}
	if r2, _ := New(Options{Store: newMemLeases()}); r2.Holder() == r.Holder() {
		t.Fatal("two runners of one process share a holder id")
	}
}
