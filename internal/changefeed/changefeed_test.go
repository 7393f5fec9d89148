package changefeed

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// fakeChanges is a store.Changes whose reads the test scripts.
type fakeChanges struct {
	mu      sync.Mutex
	changes []store.Change
	pruned  int64
	failing bool
	wake    func()
	listen  chan struct{} // closed when ListenChanges runs
}

func newFake() *fakeChanges { return &fakeChanges{listen: make(chan struct{})} }

func (f *fakeChanges) add(kind, key string) {
	f.mu.Lock()
	f.changes = append(f.changes, store.Change{Seq: int64(len(f.changes)) + 1, TenantID: "t", Kind: kind, Key: key})
	f.mu.Unlock()
}

func (f *fakeChanges) ReadChanges(_ context.Context, cur store.ChangeCursor, limit int) (*store.ChangeBatch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return nil, errors.New("database down")
	}
	b := &store.ChangeBatch{Next: cur}
	if limit <= 0 {
		limit = 2 // small pages: the feed must follow More
	}
	for _, c := range f.changes {
		if c.Seq > cur.After && c.Seq > f.pruned && len(b.Changes) < limit {
			b.Changes = append(b.Changes, c)
			b.Next.After = c.Seq
		}
	}
	b.More = len(b.Changes) == limit && b.Next.After < int64(len(f.changes))
	if f.pruned > cur.After {
		b.Gap = true
		b.Next.After = max(b.Next.After, f.pruned)
	}
	return b, nil
}

func (f *fakeChanges) ListenChanges(ctx context.Context, wake func()) error {
	f.mu.Lock()
	f.wake = wake
	f.mu.Unlock()
	close(f.listen)
	<-ctx.Done()
	return nil
}

func (f *fakeChanges) PruneChanges(context.Context, time.Time) (int64, error) { return 0, nil }

// recorder collects a subscriber's events.
type recorder struct {
	mu     sync.Mutex
	keys   []string
	resets int
}

func (r *recorder) on(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Reset {
		r.resets++
	}
	for _, c := range ev.Changes {
		r.keys = append(r.keys, c.Key)
	}
}

func (r *recorder) snapshot() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.keys...), r.resets
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFeed: the feed delivers every change in order across pages, is
// fresh once it has read, stops being fresh when woken until it read
// again, goes stale when reads fail for MaxStale and fresh again when they
// work, and turns a gap into a Reset.
func TestFeed(t *testing.T) {
	st := newFake()
	st.add("client", "a")
	st.add("client", "b")
	st.add("user", "c")
	f := New(st, Options{Poll: 20 * time.Millisecond, MaxStale: 150 * time.Millisecond})
	var rec recorder
	f.Subscribe(rec.on)
	if f.Fresh() {
		t.Fatal("fresh before any read")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "first read", func() bool { return f.Fresh() })
	if keys, _ := rec.snapshot(); len(keys) != 3 || keys[0] != "a" || keys[1] != "b" || keys[2] != "c" {
		t.Fatalf("delivered %v", keys)
	}

	// Sync returns once a read after it delivered.
	st.add("user", "c2")
	if err := f.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if keys, _ := rec.snapshot(); len(keys) != 4 || keys[3] != "c2" {
		t.Fatalf("after Sync: %v", keys)
	}

	// A wake makes the feed not fresh until a read after it completed.
	<-st.listen
	st.mu.Lock()
	wake := st.wake
	st.failing = true
	st.mu.Unlock()
	st.add("client", "d")
	wake()
	if f.Fresh() {
		t.Fatal("fresh right after a wake")
	}
	// Reads fail: still not fresh, however long.
	time.Sleep(200 * time.Millisecond)
	if f.Fresh() {
		t.Fatal("fresh while reads fail")
	}
	st.mu.Lock()
	st.failing = false
	st.mu.Unlock()
	waitFor(t, "fresh again", func() bool { return f.Fresh() })
	if keys, _ := rec.snapshot(); len(keys) != 5 || keys[4] != "d" {
		t.Fatalf("after the outage: %v", keys)
	}

	// Failing reads without a wake: fresh until MaxStale has passed since
	// the last good read started, then stale.
	st.mu.Lock()
	st.failing = true
	st.mu.Unlock()
	waitFor(t, "stale after MaxStale", func() bool { return !f.Fresh() })
	st.mu.Lock()
	st.failing = false
	st.mu.Unlock()

	// A prune past the feed: a Reset.
	// (e and f are recorded and pruned at once, never read.)
	st.mu.Lock()
	for _, k := range []string{"e", "f"} {
		st.changes = append(st.changes, store.Change{Seq: int64(len(st.changes)) + 1, TenantID: "t", Kind: "client", Key: k})
	}
	st.pruned = 7
	st.mu.Unlock()
	st.add("client", "g")
	waitFor(t, "reset", func() bool { _, r := rec.snapshot(); return r == 1 })
	waitFor(t, "after the gap", func() bool { k, _ := rec.snapshot(); return len(k) == 6 && k[5] == "g" })
}
