package store

import (
	"context"
	"time"
)

// Change kinds: what a replica may hold a copy of, and so must drop when
// it changes. Change.Key names the row.
const (
	// ChangeClient: a client was updated (not merely its LastUsedAt) or
	// deleted; Key is its id.
	ChangeClient = "client"
	// ChangeUser: a person was updated or deleted; Key is the user id.
	ChangeUser = "user"
	// ChangeResource: a resource or one of its scopes was created, updated
	// or deleted; Key is the resource URI.
	ChangeResource = "resource"
	// ChangeDomain: a metadata-document domain's trust was set or removed;
	// Key is the pattern.
	ChangeDomain = "domain"
	// ChangeSigningKey: a signing key was created (a rotation), retired,
	// re-wrapped or deleted; Key is its kid.
	ChangeSigningKey = "signing_key"
	// ChangePolicy: a policy set version was created, activated,
	// deactivated or deleted; Key is the version.
	ChangePolicy = "policy"
	// ChangeIssuer: a trusted issuer was created, updated or deleted; Key
	// is its id.
	ChangeIssuer = "issuer"
)

// Change is one entry of the change feed: the row Key of Kind in
// TenantID was written by a transaction that committed.
type Change struct {
	// Seq orders the feed: it increases with every change recorded.
	Seq      int64
	TenantID string
	Kind     string
	Key      string
	// At is when the change was recorded.
	At time.Time
}

// ChangeCursor is a reader's position in the change feed. The zero cursor
// reads from the oldest change kept.
type ChangeCursor struct {
	// After: every change with Seq ≤ After has been returned.
	After int64
	// Seen, Reading and Fence are a backend's own (PostgreSQL: the
	// highest seq returned so far, and a reading of the sequence that
	// transactions still running may hold seqs below, not yet settled);
	// zero on SQLite. Callers pass them back untouched.
	Seen    int64
	Reading int64
	Fence   uint64
}

// ChangeBatch is what ReadChanges returns.
type ChangeBatch struct {
	// Changes are the changes after the cursor that were visible, in Seq
	// order. A change may be returned again by the next read (delivery is
	// at least once: invalidations are idempotent); none is ever skipped.
	Changes []Change
	// Next is the cursor to read on from.
	Next ChangeCursor
	// Gap reports that changes after the cursor were pruned before they
	// were read: the reader must treat everything as changed.
	Gap bool
	// More reports that the limit cut the batch short: read again at once.
	More bool
}

// Changes is the change feed (docs/design.md §5, "Change feed"). No method
// records a change: every write of what replicas cache records one in its
// own transaction (the schema's triggers), so a change is in the feed if
// and only if its write committed.
type Changes interface {
	// ReadChanges returns up to limit changes after cur (limit ≤ 0: a
	// default) and the cursor to read on from.
	ReadChanges(ctx context.Context, cur ChangeCursor, limit int) (*ChangeBatch, error)
	// ListenChanges calls wake, which must not block, whenever a change
	// may have been recorded: after a commit through this handle that
	// recorded one and, on PostgreSQL, at a notification from any handle on
	// the database. It returns when ctx ends (nil) or when it cannot
	// listen any more (the connection it listens on broke); the caller
	// reads on a timer meanwhile, and calls it again.
	ListenChanges(ctx context.Context, wake func()) error
	// PruneChanges deletes the changes recorded before before and returns
	// how many; a reader whose cursor is behind them then sees Gap.
	PruneChanges(ctx context.Context, before time.Time) (int64, error)
}
