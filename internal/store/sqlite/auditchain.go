package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"github.com/agentid/agentid/internal/store"
)

// The audit chain (store.AuditChain). SQLite has one writer, so a sealer
// sees every committed event and none in flight; its transaction is one
// more request of the writer, grouped with others like any write.

const (
	defaultSealLimit = 1000
	linkCols         = auditCols + `, prev_hash, hash`
)

// scanLink reads linkCols.
func scanLink(sc interface{ Scan(...any) error }) (*store.AuditLink, error) {
	ev := new(store.AuditEvent)
	l := &store.AuditLink{Event: ev}
	if err := sc.Scan(&ev.ID, &ev.TenantID, timeCol{&ev.Time}, &ev.Type, &ev.RequestID, &ev.ClientID,
		&ev.UserID, &ev.Resource, listCol{&ev.Scopes}, &ev.IP, &ev.Outcome, mapCol{&ev.Details},
		&l.PrevHash, &l.Hash); err != nil {
		return nil, err
	}
	return l, nil
}

// AuditWatermark implements store.AuditChain. Ids are assigned inside the
// writer's transaction, so the highest committed id is the highest there
// is.
func (s *Store) AuditWatermark(ctx context.Context) (int64, error) {
	row, err := s.queryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit_events`)
	if err != nil {
		return 0, wrap("audit watermark", err)
	}
	var id int64
	return id, wrap("audit watermark", row.Scan(&id))
}

// SealAudit implements store.AuditChain.
func (s *Store) SealAudit(ctx context.Context, upTo int64, limit int) (*store.SealResult, error) {
	if limit <= 0 {
		limit = defaultSealLimit
	}
	var res *store.SealResult
	err := s.w.do(ctx, func(tx *wtx) error {
		// The writer may run this twice (a batch retried with
		// savepoints): build the result afresh each time.
		res = &store.SealResult{}
		var through int64
		if err := tx.queryRow(`SELECT through FROM audit_seal WHERE id = 1`).Scan(&through); err != nil {
			return err
		}
		res.Through = through
		if upTo <= through {
			return nil
		}
		rows, err := tx.query(`SELECT `+linkCols+` FROM audit_events WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`,
			through, upTo, limit)
		if err != nil {
			return err
		}
		var links []*store.AuditLink
		for rows.Next() {
			l, err := scanLink(rows)
			if err != nil {
				rows.Close()
				return err
			}
			links = append(links, l)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		heads := map[string]*store.ChainHead{}
		var order []string
		for _, l := range links {
			tn := l.Event.TenantID
			h := heads[tn]
			if h == nil {
				h = &store.ChainHead{TenantID: tn, Hash: store.ChainGenesis}
				var id int64
				var hash []byte
				err := tx.queryRow(`SELECT head_id, head_hash FROM audit_chain WHERE tenant_id = ?`, tn).Scan(&id, &hash)
				switch {
				case err == sql.ErrNoRows:
				case err != nil:
					return err
				default:
					h.ID, h.Hash = id, bytes.Clone(hash)
				}
				heads[tn] = h
				order = append(order, tn)
			}
			hash := store.ChainHash(h.Hash, l.Event)
			if _, err := tx.exec(`UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = ?`, h.Hash, hash, l.Event.ID); err != nil {
				return err
			}
			h.ID, h.Hash = l.Event.ID, hash
			h.Sealed++
		}
		for _, tn := range order {
			h := heads[tn]
			if _, err := tx.exec(`INSERT INTO audit_chain (tenant_id, head_id, head_hash) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id) DO UPDATE SET head_id = excluded.head_id, head_hash = excluded.head_hash`,
				tn, h.ID, h.Hash); err != nil {
				return err
			}
			res.Heads = append(res.Heads, *h)
		}
		res.Sealed = len(links)
		res.Through = upTo
		if len(links) == limit {
			res.Through = links[len(links)-1].Event.ID
		}
		_, err = tx.exec(`UPDATE audit_seal SET through = ? WHERE id = 1`, res.Through)
		return err
	})
	if err != nil {
		return nil, wrap("seal audit", err)
	}
	return res, nil
}

// AuditHead implements store.AuditChain.
func (s *Store) AuditHead(ctx context.Context, tenantID string) (*store.ChainHead, error) {
	row, err := s.queryRow(ctx, `SELECT head_id, head_hash FROM audit_chain WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return nil, wrap("audit head", err)
	}
	h := &store.ChainHead{TenantID: tenantID}
	if err := row.Scan(&h.ID, &h.Hash); err != nil {
		return nil, wrap("audit head", err)
	}
	return h, nil
}

// AuditLinks implements store.AuditChain.
func (s *Store) AuditLinks(ctx context.Context, tenantID string, afterID int64, limit int) ([]*store.AuditLink, error) {
	if limit <= 0 {
		limit = defaultSealLimit
	}
	rows, err := s.query(ctx, `SELECT `+linkCols+` FROM audit_events WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
		tenantID, afterID, limit)
	if err != nil {
		return nil, wrap("audit links", err)
	}
	defer rows.Close()
	var out []*store.AuditLink
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, wrap("audit links", err)
		}
		out = append(out, l)
	}
	return out, wrap("audit links", rows.Err())
}

// PruneAudit implements store.AuditChain.
func (s *Store) PruneAudit(ctx context.Context, p store.AuditPrune, ev func(deleted int64) *store.AuditEvent) (int64, error) {
	var n int64
	err := s.w.do(ctx, func(tx *wtx) error {
		var prev, hash []byte
		err := tx.queryRow(`SELECT prev_hash, hash FROM audit_events WHERE tenant_id = ? AND id = ?`, p.TenantID, p.Keep).Scan(&prev, &hash)
		if err == sql.ErrNoRows || (err == nil && (hash == nil || !bytes.Equal(prev, p.PrevHash))) {
			return fmt.Errorf("event %d is not a sealed event with the anchor's prev_hash: %w", p.Keep, store.ErrConflict)
		}
		if err != nil {
			return err
		}
		if n, err = tx.execN(`DELETE FROM audit_events WHERE tenant_id = ? AND id < ?`, p.TenantID, p.Keep); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return tx.audit(prepAudit(ev(n)))
	})
	if err != nil {
		return 0, wrap("prune audit", err)
	}
	return n, nil
}
