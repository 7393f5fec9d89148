package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// The streaming sinks' cursors (store.AuditSinks).

const (
	sinkCols = `name, cursor_id, holder, lease_until, delivered_at, failures, last_error, last_error_at, dead_letters`
	// sinkHeld: holder ($n) holds the lease at time $n+1.
	sinkHeld = ` AND holder = $%d AND lease_until >= $%d`
)

// sinkRow scans sinkCols (and extra destinations after them).
func scanSink(sc pgx.Row, extra ...any) (*store.AuditSinkState, error) {
	st := new(store.AuditSinkState)
	var lease, delivered, lastErr *time.Time
	dest := append([]any{&st.Name, &st.Cursor, &st.Holder, &lease, &delivered, &st.Failures, &st.LastError, &lastErr,
		&st.DeadLetters}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	st.LeaseUntil, st.DeliveredAt, st.LastErrorAt = fromNull(lease), fromNull(delivered), fromNull(lastErr)
	return st, nil
}

func held(n int) string { return fmt.Sprintf(sinkHeld, n, n+1) }

// SealedAudit implements store.AuditSinks. The mark is read first: the
// sealer moved it only past ids that had committed or never would, so the
// second read sees every event up to it without a common snapshot.
func (s *Store) SealedAudit(ctx context.Context, afterID int64, limit int) ([]*store.AuditLink, int64, error) {
	if limit <= 0 {
		limit = defaultSealLimit
	}
	var through int64
	if err := s.pool.QueryRow(ctx, `SELECT through FROM audit_seal WHERE id = 1`).Scan(&through); err != nil {
		return nil, 0, mapErr("sealed audit", err)
	}
	if through <= afterID {
		return nil, through, nil
	}
	out, err := s.readLinks(ctx, `SELECT `+linkCols+linkFrom+`WHERE e.id > $1 AND e.id <= $2 ORDER BY e.id LIMIT $3`,
		afterID, through, limit)
	if err != nil {
		return nil, 0, mapErr("sealed audit", err)
	}
	return out, through, nil
}

// LeaseAuditSink implements store.AuditSinks.
func (s *Store) LeaseAuditSink(ctx context.Context, name, holder string, now, until time.Time, start int64) (*store.AuditSinkState, error) {
	var st *store.AuditSinkState
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_sinks (name, cursor_id) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			name, start); err != nil {
			return err
		}
		var err error
		st, err = scanSink(tx.QueryRow(ctx, `UPDATE audit_sinks SET holder = $1, lease_until = $2
			WHERE name = $3 AND (holder = $1 OR lease_until IS NULL OR lease_until < $4) RETURNING `+sinkCols,
			holder, until, name, now))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("sink %q is leased by another dispatcher: %w", name, store.ErrConflict)
		}
		return err
	})
	if err != nil {
		return nil, mapErr("lease audit sink", err)
	}
	return st, nil
}

// AdvanceAuditSink implements store.AuditSinks.
func (s *Store) AdvanceAuditSink(ctx context.Context, name, holder string, from, to int64, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE audit_sinks SET cursor_id = $1, failures = 0, delivered_at = $2
		WHERE name = $3 AND cursor_id = $4`+held(5), to, at, name, from, holder, at)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("sink %q moved or is leased by another dispatcher: %w", name, store.ErrConflict)
	}
	return mapErr("advance audit sink", err)
}

// FailAuditSink implements store.AuditSinks.
func (s *Store) FailAuditSink(ctx context.Context, name, holder, msg string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE audit_sinks SET failures = failures + 1, last_error = $1, last_error_at = $2
		WHERE name = $3`+held(4), msg, at, name, holder, at)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("sink %q is leased by another dispatcher: %w", name, store.ErrConflict)
	}
	return mapErr("fail audit sink", err)
}

// DeadLetterAudit implements store.AuditSinks.
func (s *Store) DeadLetterAudit(ctx context.Context, holder string, from int64, dl *store.AuditDeadLetter, ev *store.AuditEvent) error {
	return mapErr("dead-letter audit", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE audit_sinks SET cursor_id = $1, failures = 0, dead_letters = dead_letters + $2
			WHERE name = $3 AND cursor_id = $4`+held(5), dl.LastID, dl.Events, dl.Sink, from, holder, dl.At)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("sink %q moved or is leased by another dispatcher: %w", dl.Sink, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_dead_letters (sink, first_id, last_id, events, attempts, error, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, dl.Sink, dl.FirstID, dl.LastID, dl.Events, dl.Attempts, dl.Error, dl.At); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// ListAuditSinks implements store.AuditSinks.
func (s *Store) ListAuditSinks(ctx context.Context) ([]*store.AuditSinkState, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sinkCols+`,
		(SELECT COUNT(*) FROM audit_events AS e WHERE e.id > audit_sinks.cursor_id),
		(SELECT e.time FROM audit_events AS e WHERE e.id > audit_sinks.cursor_id ORDER BY e.id LIMIT 1)
		FROM audit_sinks ORDER BY name`)
	if err != nil {
		return nil, mapErr("list audit sinks", err)
	}
	defer rows.Close()
	var out []*store.AuditSinkState
	for rows.Next() {
		var oldest *time.Time
		var pending int64
		st, err := scanSink(rows, &pending, &oldest)
		if err != nil {
			return nil, mapErr("list audit sinks", err)
		}
		st.Pending, st.OldestPending = pending, fromNull(oldest)
		out = append(out, st)
	}
	return out, mapErr("list audit sinks", rows.Err())
}

// AuditDeadLetters implements store.AuditSinks.
func (s *Store) AuditDeadLetters(ctx context.Context, sink string, limit int) ([]*store.AuditDeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT sink, first_id, last_id, events, attempts, error, at FROM audit_dead_letters
		WHERE sink = $1 ORDER BY id DESC LIMIT $2`, sink, limit)
	if err != nil {
		return nil, mapErr("audit dead letters", err)
	}
	defer rows.Close()
	var out []*store.AuditDeadLetter
	for rows.Next() {
		dl := new(store.AuditDeadLetter)
		if err := rows.Scan(&dl.Sink, &dl.FirstID, &dl.LastID, &dl.Events, &dl.Attempts, &dl.Error, &dl.At); err != nil {
			return nil, mapErr("audit dead letters", err)
		}
		dl.At = dl.At.UTC()
		out = append(out, dl)
	}
	return out, mapErr("audit dead letters", rows.Err())
}
