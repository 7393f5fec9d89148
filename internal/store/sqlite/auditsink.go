package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// The streaming sinks' cursors (store.AuditSinks).

const (
	sinkCols = `name, cursor_id, holder, lease_until, delivered_at, failures, last_error, last_error_at, dead_letters`
	// sinkHeld is the condition under which holder (the last argument
	// but one) may write the sink's row at time now (the last).
	sinkHeld = ` AND holder = ? AND lease_until >= ?`
)

func scanSink(sc interface{ Scan(...any) error }) (*store.AuditSinkState, error) {
	st := new(store.AuditSinkState)
	return st, sc.Scan(&st.Name, &st.Cursor, &st.Holder, timeCol{&st.LeaseUntil}, timeCol{&st.DeliveredAt},
		&st.Failures, &st.LastError, timeCol{&st.LastErrorAt}, &st.DeadLetters)
}

// SealedAudit implements store.AuditSinks. The mark is read first: every
// event at or below it has committed already, so the second read needs no
// common snapshot with the first (both are prepared point reads).
func (s *Store) SealedAudit(ctx context.Context, afterID int64, limit int) ([]*store.AuditLink, int64, error) {
	if limit <= 0 {
		limit = defaultSealLimit
	}
	row, err := s.queryRow(ctx, `SELECT through FROM audit_seal WHERE id = 1`)
	if err != nil {
		return nil, 0, wrap("sealed audit", err)
	}
	var through int64
	if err := row.Scan(&through); err != nil {
		return nil, 0, wrap("sealed audit", err)
	}
	if through <= afterID {
		return nil, through, nil
	}
	rows, err := s.query(ctx, `SELECT `+linkCols+linkFrom+`WHERE e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?`,
		afterID, through, limit)
	if err != nil {
		return nil, 0, wrap("sealed audit", err)
	}
	defer rows.Close()
	out := make([]*store.AuditLink, 0, min(limit, 1000))
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, 0, wrap("sealed audit", err)
		}
		out = append(out, l)
	}
	return out, through, wrap("sealed audit", rows.Err())
}

// LeaseAuditSink implements store.AuditSinks.
func (s *Store) LeaseAuditSink(ctx context.Context, name, holder string, now, until time.Time, start int64) (*store.AuditSinkState, error) {
	var st *store.AuditSinkState
	err := s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(`INSERT INTO audit_sinks (name, cursor_id) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, start); err != nil {
			return err
		}
		n, err := tx.execN(`UPDATE audit_sinks SET holder = ?, lease_until = ?
			WHERE name = ? AND (holder = ? OR lease_until IS NULL OR lease_until < ?)`,
			holder, tv(until), name, holder, tv(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("sink %q is leased by another dispatcher: %w", name, store.ErrConflict)
		}
		st, err = scanSink(tx.queryRow(`SELECT `+sinkCols+` FROM audit_sinks WHERE name = ?`, name))
		return err
	})
	if err != nil {
		return nil, wrap("lease audit sink", err)
	}
	return st, nil
}

// AdvanceAuditSink implements store.AuditSinks.
func (s *Store) AdvanceAuditSink(ctx context.Context, name, holder string, from, to int64, at time.Time) error {
	return wrap("advance audit sink", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(`UPDATE audit_sinks SET cursor_id = ?, failures = 0, delivered_at = ?
			WHERE name = ? AND cursor_id = ?`+sinkHeld, to, tv(at), name, from, holder, tv(at))
		if err == nil && n == 0 {
			err = fmt.Errorf("sink %q moved or is leased by another dispatcher: %w", name, store.ErrConflict)
		}
		return err
	}))
}

// FailAuditSink implements store.AuditSinks.
func (s *Store) FailAuditSink(ctx context.Context, name, holder, msg string, at time.Time) error {
	return wrap("fail audit sink", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(`UPDATE audit_sinks SET failures = failures + 1, last_error = ?, last_error_at = ?
			WHERE name = ?`+sinkHeld, msg, tv(at), name, holder, tv(at))
		if err == nil && n == 0 {
			err = fmt.Errorf("sink %q is leased by another dispatcher: %w", name, store.ErrConflict)
		}
		return err
	}))
}

// DeadLetterAudit implements store.AuditSinks.
func (s *Store) DeadLetterAudit(ctx context.Context, holder string, from int64, dl *store.AuditDeadLetter, ev *store.AuditEvent) error {
	a := prepAudit(ev)
	return wrap("dead-letter audit", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(`UPDATE audit_sinks SET cursor_id = ?, failures = 0, dead_letters = dead_letters + ?
			WHERE name = ? AND cursor_id = ?`+sinkHeld, dl.LastID, dl.Events, dl.Sink, from, holder, tv(dl.At))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("sink %q moved or is leased by another dispatcher: %w", dl.Sink, store.ErrConflict)
		}
		if _, err := tx.exec(`INSERT INTO audit_dead_letters (sink, first_id, last_id, events, attempts, error, at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, dl.Sink, dl.FirstID, dl.LastID, dl.Events, dl.Attempts, dl.Error, tv(dl.At)); err != nil {
			return err
		}
		return tx.audit(a)
	}))
}

// ListAuditSinks implements store.AuditSinks.
func (s *Store) ListAuditSinks(ctx context.Context) ([]*store.AuditSinkState, error) {
	rows, err := s.query(ctx, `SELECT `+sinkCols+`,
		(SELECT COUNT(*) FROM audit_events AS e WHERE e.id > audit_sinks.cursor_id),
		(SELECT e.time FROM audit_events AS e WHERE e.id > audit_sinks.cursor_id ORDER BY e.id LIMIT 1)
		FROM audit_sinks ORDER BY name`)
	if err != nil {
		return nil, wrap("list audit sinks", err)
	}
	defer rows.Close()
	var out []*store.AuditSinkState
	for rows.Next() {
		st := new(store.AuditSinkState)
		if err := rows.Scan(&st.Name, &st.Cursor, &st.Holder, timeCol{&st.LeaseUntil}, timeCol{&st.DeliveredAt},
			&st.Failures, &st.LastError, timeCol{&st.LastErrorAt}, &st.DeadLetters,
			&st.Pending, timeCol{&st.OldestPending}); err != nil {
			return nil, wrap("list audit sinks", err)
		}
		out = append(out, st)
	}
	return out, wrap("list audit sinks", rows.Err())
}

// AuditDeadLetters implements store.AuditSinks.
func (s *Store) AuditDeadLetters(ctx context.Context, sink string, limit int) ([]*store.AuditDeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT sink, first_id, last_id, events, attempts, error, at FROM audit_dead_letters
		WHERE sink = ? ORDER BY id DESC LIMIT ?`, sink, limit)
	if err != nil {
		return nil, wrap("audit dead letters", err)
	}
	defer rows.Close()
	var out []*store.AuditDeadLetter
	for rows.Next() {
		dl := new(store.AuditDeadLetter)
		if err := rows.Scan(&dl.Sink, &dl.FirstID, &dl.LastID, &dl.Events, &dl.Attempts, &dl.Error, timeCol{&dl.At}); err != nil {
			return nil, wrap("audit dead letters", err)
		}
		out = append(out, dl)
	}
	return out, wrap("audit dead letters", rows.Err())
}
