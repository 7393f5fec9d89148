package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// The change feed (store.Changes). The schema's triggers record the
// changes and NOTIFY channel agentid_changes (migration 0021).
//
// seq comes from a sequence, and transactions commit in another order than
// they took their seqs: a reader that saw seq 12 may not have seen 11 yet.
// So a cursor only moves past a reading once it has settled, by the rule
// of the audit chain (auditchain.go): a reading is the sequence's last
// value followed, in a later statement, by an xid of the reader's own (the
// fence); a writer takes its xid before its seq, so once the horizon (the
// oldest xid still running) is above the fence, every seq up to the
// reading is committed or never will be. Until then every visible change
// after the cursor is returned at every read (a change may be delivered
// twice, never skipped), and the limit counts from the highest seq
// returned so far (cursor.Seen), so that a reading held back by a long
// transaction never stops the feed at one page of changes.

const (
	defaultChangeLimit = 1000
	// changesChannel is the channel the triggers NOTIFY.
	changesChannel = "agentid_changes"
	// ListenApplicationName is the application_name of the connection
	// ListenChanges holds (an operator or a test can find it in
	// pg_stat_activity).
	ListenApplicationName = "agentid-changes"
)

// ReadChanges implements store.Changes: one round trip of four
// statements, run in order — the reading, the fence and horizon, the rows
// after the cursor, the prune mark (after the rows: a prune in between
// shows as a gap rather than hiding one).
func (s *Store) ReadChanges(ctx context.Context, cur store.ChangeCursor, limit int) (*store.ChangeBatch, error) {
	if limit <= 0 {
		limit = defaultChangeLimit
	}
	var (
		reading        *int64
		fence, horizon int64
		pruned         int64
		changes        []store.Change
	)
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_sequence_last_value('changes_seq_seq'::regclass)`).QueryRow(func(r pgx.Row) error { return r.Scan(&reading) })
	b.Queue(readWatermarkSQL).QueryRow(func(r pgx.Row) error { return r.Scan(&fence, &horizon) })
	// The rows up to Seen were returned before; those that have become
	// visible since are among them again. At most Seen-After rows lie
	// there (seqs are distinct), so the limit reaches past Seen.
	seen := max(cur.Seen, cur.After)
	b.Queue(`SELECT seq, tenant_id, kind, key, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`,
		cur.After, int64(limit)+seen-cur.After).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var c store.Change
			if err := rows.Scan(&c.Seq, &c.TenantID, &c.Kind, &c.Key, &c.At); err != nil {
				return err
			}
			c.At = utc(c.At)
			changes = append(changes, c)
		}
		return rows.Err()
	})
	b.Queue(`SELECT through FROM changes_pruned WHERE id = 1`).QueryRow(func(r pgx.Row) error { return r.Scan(&pruned) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, mapErr("read changes", err)
	}
	var last int64
	if len(changes) > 0 {
		last = changes[len(changes)-1].Seq
	}
	out := &store.ChangeBatch{Changes: changes, More: last > seen && len(changes) == limit+int(seen-cur.After)}
	next := store.ChangeCursor{After: cur.After, Seen: max(seen, last), Reading: cur.Reading, Fence: cur.Fence}
	if cur.Fence != 0 && uint64(horizon) > cur.Fence {
		// The pending reading settled before the rows were read: every
		// change up to it was visible to that read, and returned unless
		// the limit cut the batch short of it.
		next.After = max(next.After, cur.Reading)
		if out.More {
			next.After = min(next.After, last)
		}
		next.Reading, next.Fence = 0, 0
	}
	if next.Fence == 0 && reading != nil && *reading > next.After {
		next.Reading, next.Fence = *reading, uint64(fence)
	}
	if pruned > cur.After {
		out.Gap = true
		next.After = max(next.After, pruned)
	}
	next.Seen = max(next.Seen, next.After)
	out.Next = next
	return out, nil
}

// ListenChanges implements store.Changes on a connection of its own (not
// one of the pool's: it is held for as long as ListenChanges runs). It
// wakes once when it starts listening: changes may have been recorded
// while it was not.
func (s *Store) ListenChanges(ctx context.Context, wake func()) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("postgres: listen for changes: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("postgres: listen for changes: %w", err)
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("postgres: listen for changes: %w", err)
		}
		wake()
	}
}

// PruneChanges implements store.Changes. The mark moves to the newest seq
// deleted; a change committed later with a lower seq (by a transaction
// that stayed open longer than the retention) is deleted by the next
// prune without ever being read by a reader already past the mark.
func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var through *int64
		if err := tx.QueryRow(ctx, `WITH gone AS (DELETE FROM changes WHERE at < $1 RETURNING seq)
			SELECT max(seq), count(*) FROM gone`, before).Scan(&through, &n); err != nil {
			return err
		}
		if through == nil {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE changes_pruned SET through = GREATEST(through, $1) WHERE id = 1`, *through)
		return err
	})
	return n, mapErr("prune changes", err)
}
