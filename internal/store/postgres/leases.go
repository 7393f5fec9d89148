package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

const (
	leaseCols = `name, holder, lease_until, since`
	// qAcquireJobLease takes a free or ended lease, or renews the caller's
	// own (keeping since): one statement, so two acquirers never both win
	// (a concurrent insert of the same name waits for the first and then
	// sees its row in the conflict clause).
	qAcquireJobLease = `INSERT INTO job_leases (` + leaseCols + `) VALUES ($1, $2, $3, $4)
	ON CONFLICT (name) DO UPDATE SET
		since = CASE WHEN job_leases.holder = EXCLUDED.holder AND job_leases.lease_until > $4
			THEN job_leases.since ELSE EXCLUDED.since END,
		holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until
	WHERE job_leases.holder = EXCLUDED.holder OR job_leases.lease_until <= $4
	RETURNING ` + leaseCols
	qRenewJobLease = `UPDATE job_leases SET lease_until = $4
	WHERE name = $1 AND holder = $2 AND lease_until > $3 RETURNING ` + leaseCols
)

func scanLease(sc pgx.Row) (*store.Lease, error) {
	l := new(store.Lease)
	if err := sc.Scan(&l.Name, &l.Holder, &l.Until, &l.Since); err != nil {
		return nil, err
	}
	l.Until, l.Since = utc(l.Until), utc(l.Since)
	return l, nil
}

// leaseRow runs a lease statement that returns the lease when it took
// effect and no row when another holder has it.
func (s *Store) leaseRow(ctx context.Context, op, q, name string, args ...any) (*store.Lease, error) {
	l, err := scanLease(s.pool.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("lease %q is held by another holder: %w", name, store.ErrConflict)
	}
	if err != nil {
		return nil, mapErr(op, err)
	}
	return l, nil
}

// AcquireLease implements store.Leases.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if err := store.CheckLease(name, holder, now, until); err != nil {
		return nil, fmt.Errorf("postgres: acquire lease: %w", err)
	}
	return s.leaseRow(ctx, "acquire lease", qAcquireJobLease, name, name, holder, until, now)
}

// RenewLease implements store.Leases.
func (s *Store) RenewLease(ctx context.Context, name, holder string, now, until time.Time) (*store.Lease, error) {
	if err := store.CheckLease(name, holder, now, until); err != nil {
		return nil, fmt.Errorf("postgres: renew lease: %w", err)
	}
	return s.leaseRow(ctx, "renew lease", qRenewJobLease, name, name, holder, now, until)
}

// ReleaseLease implements store.Leases.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM job_leases WHERE name = $1 AND holder = $2`, name, holder)
	return mapErr("release lease", err)
}

// ListLeases implements store.Leases.
func (s *Store) ListLeases(ctx context.Context) ([]*store.Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+leaseCols+` FROM job_leases ORDER BY name`)
	if err != nil {
		return nil, mapErr("list leases", err)
	}
	defer rows.Close()
	var out []*store.Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, mapErr("list leases", err)
		}
		out = append(out, l)
	}
	return out, mapErr("list leases", rows.Err())
}
