package store

import (
	"context"
	"time"
)

// Lease is a named job lease: while Until is after now, Holder runs the
// job and no one else does.
type Lease struct {
	Name   string
	Holder string
	// Until is when the lease ends unless its holder renews it; the job
	// is free from that instant on.
	Until time.Time
	// Since is when Holder took the lease (renewals keep it).
	Since time.Time
}

// Leases are the leases of the hub's background jobs (internal/jobs):
// replicas on one database each try to take a job's lease, the one that
// does runs the job and renews the lease, and another takes over once a
// lease ran out unrenewed (its holder died or lost the database). Each
// method is one compare-and-set statement, so concurrent callers on any
// number of handles agree on one holder. A lease is held while now is
// before Until; it can be taken at Until. Times are the callers' clocks:
// replicas must agree on the time to well within a lease's length.
type Leases interface {
	// AcquireLease takes the lease name for holder until until when it
	// is free at now (never taken, released, or ended at or before now),
	// or renews it when holder holds it already, and returns it.
	// ErrConflict when another holder's lease runs past now; ErrInvalid
	// for an empty name or holder or an until not after now.
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (*Lease, error)
	// RenewLease moves the end of holder's lease to until. ErrConflict,
	// changing nothing, unless holder holds the lease at now: a lease
	// that ran out is not renewed even if no one took it since (its
	// holder must have stopped the job at its end); ErrInvalid as
	// AcquireLease.
	RenewLease(ctx context.Context, name, holder string, now, until time.Time) (*Lease, error)
	// ReleaseLease ends holder's lease so that another can take it at
	// once. Releasing a lease holder does not hold is not an error and
	// changes nothing.
	ReleaseLease(ctx context.Context, name, holder string) error
	// ListLeases returns every lease ever taken and not released, by
	// name, ended ones included.
	ListLeases(ctx context.Context) ([]*Lease, error)
}

// CheckLease reports ErrInvalid for the arguments AcquireLease and
// RenewLease refuse.
func CheckLease(name, holder string, now, until time.Time) error {
	if name == "" || holder == "" || !until.After(now) {
		return ErrInvalid
	}
	return nil
}
