package audit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// memTrail is a trail whose events become visible when committed, in any
// id order, as on PostgreSQL.
type memTrail struct {
	mu      sync.Mutex
	visible []*store.AuditEvent
	filters []store.AuditFilter
}

func (m *memTrail) commit(ids ...int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.visible = append(m.visible, &store.AuditEvent{ID: id, TenantID: "t1", Type: "token.issued", Time: at, Outcome: audit.Success})
	}
	slices.SortFunc(m.visible, func(a, b *store.AuditEvent) int { return int(a.ID - b.ID) })
}

func (m *memTrail) AppendAudit(context.Context, ...*store.AuditEvent) error { panic("not used") }

func (m *memTrail) AppendAuditOnce(context.Context, ...*store.AuditEvent) error { panic("not used") }

func (m *memTrail) ListAudit(_ context.Context, f store.AuditFilter) ([]*store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filters = append(m.filters, f)
	var out []*store.AuditEvent
	for _, ev := range m.visible {
		if ev.ID > f.After && (f.Type == "" || ev.Type == f.Type) && len(out) < f.Limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func TestFollowerLateCommit(t *testing.T) {
	trail := &memTrail{}
	trail.commit(1, 2)
	clock := at
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Between polls: what commits, and how far the clock moves.
	steps := []struct {
		commit []int64
		pass   time.Duration
	}{
		{[]int64{4}, time.Second}, // 3 is allocated but not committed yet
		{[]int64{3}, time.Second}, // 3 commits late, within the settle time
		{nil, 20 * time.Second},   // everything settles
		{[]int64{5}, time.Second},
	}
	poll := 0
	f := &audit.Follower{
		Store: trail, Settle: 10 * time.Second, Interval: time.Second,
		Now: func() time.Time { return clock },
		Sleep: func(context.Context, time.Duration) error {
			if poll == len(steps) {
				cancel()
				return context.Canceled
			}
			trail.commit(steps[poll].commit...)
			clock = clock.Add(steps[poll].pass)
			poll++
			return nil
		},
	}
	var got []int64
	if err := f.Run(ctx, 0, func(ev *store.AuditEvent) error { got = append(got, ev.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 2, 4, 3, 5}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v (each once, the late one too)", got, want)
	}
	last := trail.filters[len(trail.filters)-1]
	if last.After != 4 || !last.Ascending {
		t.Errorf("last poll after %d ascending %v, want the cursor settled at 4", last.After, last.Ascending)
	}
}

func TestFollowerBurst(t *testing.T) {
	trail := &memTrail{}
	var ids []int64
	for i := range int64(1234) {
		ids = append(ids, i+1)
	}
	trail.commit(ids...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sleeps := 0
	f := &audit.Follower{Store: trail, Filter: store.AuditFilter{Type: "token.issued"}, Sleep: func(context.Context, time.Duration) error {
		sleeps++
		cancel()
		return context.Canceled
	}}
	var got []int64
	if err := f.Run(ctx, 0, func(ev *store.AuditEvent) error { got = append(got, ev.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) || sleeps != 1 {
		t.Errorf("delivered %d events in order %v, slept %d times; want all %d before the first pause", len(got), slices.IsSorted(got), sleeps, len(ids))
	}
	for _, fl := range trail.filters {
		if fl.Type != "token.issued" {
			t.Errorf("poll dropped the filter: %+v", fl)
		}
	}
}

// TestFollowerDelivered: ids the caller has shown are not delivered again;
// one among them that commits late still is.
func TestFollowerDelivered(t *testing.T) {
	trail := &memTrail{}
	trail.commit(8, 10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	polls := 0
	f := &audit.Follower{Store: trail, Delivered: []int64{8, 10}, Sleep: func(context.Context, time.Duration) error {
		polls++
		if polls == 1 {
			trail.commit(9, 11)
			return nil
		}
		cancel()
		return context.Canceled
	}}
	var got []int64
	if err := f.Run(ctx, 7, func(ev *store.AuditEvent) error { got = append(got, ev.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int64{9, 11}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}
