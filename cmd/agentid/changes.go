package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/agentid/agentid/internal/changefeed"
	"github.com/agentid/agentid/internal/store"
)

const (
	// changeRetention is how long the change feed keeps a change: a
	// replica that has not read for longer drops everything it caches
	// (a gap) instead of catching up.
	changeRetention = 10 * time.Minute
	// policyBackstop is how often the policy engine re-reads the active
	// set on its own; the change feed reloads it at once when a replica
	// activates another version.
	policyBackstop = time.Minute
)

// newChangeFeed is the hub's reader of the store's change feed: the
// server's caches, the signing keys and the policy engine follow it
// (docs/design.md §5, "Change feed"); runBackground runs it.
func newChangeFeed(st store.Store, log *slog.Logger) *changefeed.Feed {
	return changefeed.New(st, changefeed.Options{Logger: log})
}

// pruneChanges deletes the changes older than changeRetention.
func pruneChanges(st store.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := st.PruneChanges(ctx, time.Now().Add(-changeRetention))
		return err
	}
}
