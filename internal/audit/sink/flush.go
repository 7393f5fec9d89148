package sink

import (
	"context"
	"fmt"
	"math"
	"time"
)

// flushPoll is how often Flush looks at the sinks' cursors.
const flushPoll = 50 * time.Millisecond

// Flush waits, while Run runs, until every sink whose lease this
// dispatcher holds has delivered (or dead-lettered) the trail up to the
// sealed-through mark as it stands when Flush is called, or until ctx
// ends (then it says which sinks are behind). A hub shutting down calls
// it after the sealer's last seal, so the events of its last requests
// reach the sinks before it exits. A sink another replica runs is that
// replica's to deliver and is not waited for.
func (d *Dispatcher) Flush(ctx context.Context) error {
	_, mark, err := d.opts.Store.SealedAudit(ctx, math.MaxInt64, 1)
	if err != nil {
		return fmt.Errorf("audit sinks: reading the sealed mark: %w", err)
	}
	ours := make(map[string]bool, len(d.sinks))
	for _, r := range d.sinks {
		ours[r.c.Name] = true
	}
	t := time.NewTicker(flushPoll)
	defer t.Stop()
	for {
		states, err := d.opts.Store.ListAuditSinks(ctx)
		if err != nil {
			return fmt.Errorf("audit sinks: reading their cursors: %w", err)
		}
		var behind []string
		now := d.opts.Now()
		for _, s := range states {
			if ours[s.Name] && s.Holder == d.opts.Holder && s.LeaseUntil.After(now) && s.Cursor < mark {
				behind = append(behind, s.Name)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("audit sinks %v did not deliver up to event %d in time: %w", behind, mark, ctx.Err())
		case <-t.C:
		}
	}
}
