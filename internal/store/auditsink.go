package store

import (
	"context"
	"time"
)

// AuditSinkState is a streaming sink's place in the audit trail and its
// health, as the dispatcher (internal/audit/sink) records it.
type AuditSinkState struct {
	// Name is the sink's name in the configuration.
	Name string
	// Cursor is the id of the last event the sink has delivered or
	// dead-lettered: the sink resumes after it.
	Cursor int64
	// Holder and LeaseUntil: the dispatcher that runs the sink, until
	// when, unless it renews its lease. Another dispatcher (a replica on
	// the same database) waits until the lease ran out.
	Holder     string
	LeaseUntil time.Time
	// DeliveredAt is the time of the last successful delivery.
	DeliveredAt time.Time
	// Failures counts the failed attempts since the last success or dead
	// letter; LastError and LastErrorAt describe the newest failure (a
	// short text without secrets, set by the dispatcher).
	Failures    int
	LastError   string
	LastErrorAt time.Time
	// DeadLetters counts the events the sink gave up on, in all.
	DeadLetters int64
	// Pending and OldestPending are set by ListAuditSinks only: how many
	// events of the trail lie after the cursor, and the time of the
	// oldest of them (zero when none).
	Pending       int64
	OldestPending time.Time
}

// AuditDeadLetter is a batch a sink gave up on after its attempts: the
// events FirstID..LastID (Events of them), still in the trail, were not
// delivered to Sink.
type AuditDeadLetter struct {
	Sink            string
	FirstID, LastID int64
	Events          int
	Attempts        int
	Error           string // the last attempt's error, without secrets
	At              time.Time
}

// AuditSinks is the store role of the audit trail's streaming sinks: each
// sink's cursor, lease and health, and its dead letters, so that a sink
// resumes where it stopped across restarts (at-least-once delivery) and
// `agentid audit sinks` can show its lag from any process.
type AuditSinks interface {
	// SealedAudit returns the events of all tenants that the chain's
	// sealer has looked at (id at most the sealed-through mark, see
	// AuditChain.SealAudit) with an id above afterID, in id order, at most
	// limit (0: 1000), with their links, and the mark itself. Every id up
	// to the mark has committed or never will, so a cursor that follows
	// it never skips a late commit.
	SealedAudit(ctx context.Context, afterID int64, limit int) ([]*AuditLink, int64, error)
	// LeaseAuditSink takes or renews the sink's lease for holder until
	// until and returns the sink's state. A sink seen for the first time
	// starts with its cursor at start. ErrConflict when another holder's
	// lease runs past now. An until before now releases the lease.
	LeaseAuditSink(ctx context.Context, name, holder string, now, until time.Time, start int64) (*AuditSinkState, error)
	// AdvanceAuditSink records a delivery: the cursor moves from from to
	// to, the failures are cleared and DeliveredAt is at. ErrConflict,
	// changing nothing, unless holder holds the lease and the cursor is
	// from.
	AdvanceAuditSink(ctx context.Context, name, holder string, from, to int64, at time.Time) error
	// FailAuditSink records a failed attempt of holder's sink: Failures
	// grows by one, LastError and LastErrorAt are set. ErrConflict unless
	// holder holds the lease.
	FailAuditSink(ctx context.Context, name, holder, msg string, at time.Time) error
	// DeadLetterAudit records that the sink gave up on dl's events: in
	// one transaction the dead letter is stored, the cursor moves from
	// from to dl.LastID, DeadLetters grows by dl.Events, the failures are
	// cleared (LastError stays) and ev (the alert event; nil: none) is
	// appended. ErrConflict, changing nothing, unless holder holds the
	// lease and the cursor is from.
	DeadLetterAudit(ctx context.Context, holder string, from int64, dl *AuditDeadLetter, ev *AuditEvent) error
	// ListAuditSinks returns every sink's state, by name, with Pending and
	// OldestPending filled in.
	ListAuditSinks(ctx context.Context) ([]*AuditSinkState, error)
	// AuditDeadLetters returns the sink's dead letters, newest first, at
	// most limit (0: 100).
	AuditDeadLetters(ctx context.Context, sink string, limit int) ([]*AuditDeadLetter, error)
}
