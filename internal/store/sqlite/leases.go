package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const (
	leaseCols = `name, holder, lease_until, since`
	// qAcquireJobLease takes a free or ended lease, or renews the caller's
	// own (keeping since): one statement, so two acquirers never both win.
	qAcquireJobLease = `INSERT INTO job_leases (` + leaseCols + `) VALUES (?, ?, ?, ?)
	ON CONFLICT (name) DO UPDATE SET
		since = CASE WHEN job_leases.holder = excluded.holder AND job_leases.lease_until > excluded.since
			THEN job_leases.since ELSE excluded.since END,
		holder = excluded.holder, lease_until = excluded.lease_until
	WHERE job_leases.holder = excluded.holder OR job_leases.lease_until <= excluded.since
	RETURNING ` + leaseCols
	qRenewJobLease = `UPDATE job_leases SET lease_until = ?
	WHERE name = ? AND holder = ? AND lease_until > ? RETURNING ` + leaseCols
)

func scanLease(sc interface{ Scan(...any) error }) (*store.Lease, error) {
	l := new(store.Lease)
	if err := sc.Scan(&l.Name, &l.Holder, timeCol{&l.Until}, timeCol{&l.Since}); err != nil {
		return nil, err
	}
	return l, nil
}

// leaseRow runs a lease statement that returns the lease when it took
// effect and no row when another holder has it.
func (s *Store) leaseRow(ctx context.Context, op, q, name string, args ...any) (*store.Lease, error) {
	var l *store.Lease
	err := s.w.do(ctx, func(tx *wtx) error {
		var err error
		l, err = scanLease(tx.queryRow(q, args...))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("lease %q is held by another holder: %w", name, store.ErrConflict)
		}
		return err
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	return l, nil
}

// AcquireLease implements store.Leases.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if err := store.CheckLease(name, holder, now, until); err != nil {
		return nil, fmt.Errorf("sqlite: acquire lease: %w", err)
	}
	// since is now: the conflict clause compares the stored end with it.
	return s.leaseRow(ctx, "acquire lease", qAcquireJobLease, name, name, holder, until.UnixMicro(), now.UnixMicro())
}

// RenewLease implements store.Leases.
func (s *Store) RenewLease(ctx context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if err := store.CheckLease(name, holder, now, until); err != nil {
		return nil, fmt.Errorf("sqlite: renew lease: %w", err)
	}
	return s.leaseRow(ctx, "renew lease", qRenewJobLease, name, until.UnixMicro(), name, holder, now.UnixMicro())
}

// ReleaseLease implements store.Leases.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return wrap("release lease", s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM job_leases WHERE name = ? AND holder = ?`, name, holder)
		return err
	}))
}

// ListLeases implements store.Leases.
func (s *Store) ListLeases(ctx context.Context) ([]*store.Lease, error) {
	rows, err := s.queryShort(ctx, `SELECT `+leaseCols+` FROM job_leases ORDER BY name`)
	if err != nil {
		return nil, wrap("list leases", err)
	}
	defer rows.Close()
	var out []*store.Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, wrap("list leases", err)
		}
		out = append(out, l)
	}
	return out, wrap("list leases", rows.Err())
}
