package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// The change feed (store.Changes). The schema's triggers record the
// changes (migration 0021); SQLite has one writer at a time, so seq order
// is commit order and a cursor is simply the last seq read. Other
// processes on the file are seen by reading; writes through this handle
// also wake its listeners at once: after each commit the writer reads the
// changes table's sequence, and wakes the listeners when it moved
// (writer.go).

const defaultChangeLimit = 1000

// listeners are the wake functions of the running ListenChanges calls.
type listeners struct {
	mu   sync.Mutex
	next int
	m    map[int]func()
}

func (l *listeners) add(f func()) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[int]func())
	}
	l.next++
	l.m[l.next] = f
	return l.next
}

func (l *listeners) remove(id int) {
	l.mu.Lock()
	delete(l.m, id)
	l.mu.Unlock()
}

func (l *listeners) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.m {
		f()
	}
}

// changesWritten is the writer's onChange: a transaction that recorded a
// change has ended.
func (s *Store) changesWritten() { s.listeners.wake() }

// ReadChanges implements store.Changes. The rows are read before the
// prune mark: a prune in between then shows as a gap rather than hiding
// one.
func (s *Store) ReadChanges(ctx context.Context, cur store.ChangeCursor, limit int) (*store.ChangeBatch, error) {
	if limit <= 0 {
		limit = defaultChangeLimit
	}
	rows, err := s.query(ctx, `SELECT seq, tenant_id, kind, key, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, cur.After, limit)
	if err != nil {
		return nil, wrap("read changes", err)
	}
	defer rows.Close()
	b := &store.ChangeBatch{Next: store.ChangeCursor{After: cur.After}}
	for rows.Next() {
		var c store.Change
		if err := rows.Scan(&c.Seq, &c.TenantID, &c.Kind, &c.Key, timeCol{&c.At}); err != nil {
			return nil, wrap("read changes", err)
		}
		b.Changes = append(b.Changes, c)
		b.Next.After = c.Seq
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read changes", err)
	}
	b.More = len(b.Changes) == limit
	row, err := s.queryRow(ctx, `SELECT through FROM changes_pruned WHERE id = 1`)
	if err != nil {
		return nil, wrap("read changes", err)
	}
	var pruned int64
	if err := row.Scan(&pruned); err != nil {
		return nil, wrap("read changes", err)
	}
	if pruned > cur.After {
		b.Gap = true
		b.Next.After = max(b.Next.After, pruned)
	}
	return b, nil
}

// ListenChanges implements store.Changes: this handle's own writes wake
// wake; other processes' are found by reading.
func (s *Store) ListenChanges(ctx context.Context, wake func()) error {
	id := s.listeners.add(wake)
	defer s.listeners.remove(id)
	<-ctx.Done()
	return nil
}

// PruneChanges implements store.Changes.
func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.w.do(ctx, func(tx *wtx) error {
		var through sql.NullInt64
		if err := tx.queryRow(`SELECT max(seq) FROM changes WHERE at < ?`, before.UnixMicro()).Scan(&through); err != nil {
			return err
		}
		if !through.Valid {
			return nil
		}
		var err error
		// Everything up to the newest old change goes: seq order is
		// commit order here, so nothing newer is below it.
		if n, err = tx.execN(`DELETE FROM changes WHERE seq <= ?`, through.Int64); err != nil {
			return err
		}
		_, err = tx.exec(`UPDATE changes_pruned SET through = max(through, ?) WHERE id = 1`, through.Int64)
		return err
	})
	return n, wrap("prune changes", err)
}
