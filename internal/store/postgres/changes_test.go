package postgres

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestChangesCommitOutOfOrder: a transaction takes a seq and stays open
// while a later one commits; readers get the later change at once, but
// their cursor does not pass the open transaction's seq, so its change is
// read when it commits — never skipped, however many reads came between.
func TestChangesCommitOutOfOrder(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	read := func(cur store.ChangeCursor) ([]string, store.ChangeCursor) {
		t.Helper()
		b, err := s.ReadChanges(ctx, cur, 0)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, c := range b.Changes {
			keys = append(keys, c.Key)
		}
		return keys, b.Next
	}
	_, cur := read(store.ChangeCursor{})
	_, cur = read(cur)

	slow, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	if _, err := slow.Exec(ctx, `SELECT record_change('default', 'client', 'slow')`); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDomain(ctx, &store.Domain{TenantID: store.DefaultTenant, Pattern: "fast.example.com", Trust: store.DomainAllowed,
		CreatedAt: time.Now(), UpdatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 5 {
		keys, cur = read(cur)
		if len(keys) != 1 || keys[0] != "fast.example.com" {
			t.Fatalf("read %d while the slow transaction is open: %v", i, keys)
		}
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	keys, cur = read(cur)
	if len(keys) != 2 || keys[0] != "slow" || keys[1] != "fast.example.com" {
		t.Fatalf("after the slow commit: %v", keys)
	}
	// Now both settle and are not returned again. Settling waits for
	// every transaction that could still commit an earlier seq, on the
	// whole cluster (the fence), so other tests' transactions on a shared
	// cluster may hold it back for a while: until then the changes are
	// returned again (at least once), never fewer.
	deadline := time.Now().Add(20 * time.Second)
	for {
		keys, cur = read(cur)
		if len(keys) == 0 {
			break
		}
		if len(keys) != 2 || keys[0] != "slow" || keys[1] != "fast.example.com" {
			t.Fatalf("before settling: %v, want the two changes again", keys)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the changes never settled: returned again %v (cursor %+v)", keys, cur)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 {
		if keys, cur = read(cur); len(keys) != 0 {
			t.Fatalf("settled changes returned again: %v (cursor %+v)", keys, cur)
		}
	}
}
