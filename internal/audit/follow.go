package audit

import (
	"context"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Follower delivers the events of a trail as they are written, oldest
// first, by polling the store with an id cursor (`agentid audit tail -f`).
//
// Ids are allocated when an event is inserted, not when its transaction
// commits: on PostgreSQL a transaction that took id 100 may commit after
// one that took 101. So the cursor trails by Settle: each poll reads from
// the highest id delivered more than Settle ago and skips the ids it has
// delivered since, so that a late commit within Settle is still delivered,
// exactly once.
type Follower struct {
	Store  store.AuditTrail
	Filter store.AuditFilter // Before, After, Ascending and Limit are the follower's
	// Interval is the pause between polls that found nothing new
	// (default 1s); Settle how long a delivered id may still have a gap
	// below it (default 10s).
	Interval, Settle time.Duration
	Now              func() time.Time // default time.Now
	// Sleep waits d or until ctx ends (default a timer); tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Delivered are ids above Run's after that the caller has shown
	// already (tail's first lines): they are not delivered again, and
	// ids between them that commit late still are.
	Delivered []int64
}

// followPage is how many events one poll reads at most.
const followPage = 500

// Run delivers every matching event with an id above after to fn, in id
// order within each poll, until ctx ends (Run then returns nil) or fn or
// the store fails.
func (f *Follower) Run(ctx context.Context, after int64, fn func(*store.AuditEvent) error) error {
	interval, settle := f.Interval, f.Settle
	if interval <= 0 {
		interval = time.Second
	}
	if settle <= 0 {
		settle = 10 * time.Second
	}
	now, sleep := f.Now, f.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	floor := after
	recent := map[int64]time.Time{} // delivered above floor → when
	for _, id := range f.Delivered {
		if id > floor {
			recent[id] = now()
		}
	}
	for {
		filter := f.Filter
		// The ids delivered above the floor come back again: read past them.
		limit := followPage + len(recent)
		filter.After, filter.Before, filter.Ascending, filter.Limit = floor, 0, true, limit
		evs, err := f.Store.ListAudit(ctx, filter)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fresh := 0
		for _, ev := range evs {
			if _, done := recent[ev.ID]; done {
				continue
			}
			if err := fn(ev); err != nil {
				return err
			}
			recent[ev.ID] = now()
			fresh++
		}
		// Ids delivered before the settle window can have no gap below
		// them left to fill: the floor moves up to the highest of them
		// that has no younger delivery below it.
		t := now()
		for {
			lowest, ok := lowestID(recent)
			if !ok || t.Sub(recent[lowest]) < settle {
				break
			}
			floor = lowest
			delete(recent, lowest)
		}
		if len(evs) == limit && fresh > 0 {
			continue // more waiting: no pause
		}
		if err := sleep(ctx, interval); err != nil {
			return nil
		}
	}
}

func lowestID(m map[int64]time.Time) (int64, bool) {
	var low int64
	found := false
	for id := range m {
		if !found || id < low {
			low, found = id, true
		}
	}
	return low, found
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
