package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// The audit chain (store.AuditChain). Ids come from a sequence and commit
// out of order, so the sealer is told how far it may go (upTo, a reading
// of ReadAuditWatermark that has settled); sealers take the audit_seal row
// FOR UPDATE, so two replicas sealing at once run one after the other and
// the second sees what the first linked.
//
// When a reading has settled. A transaction that writes an event first
// makes sure it has a transaction id (xid) and only then takes the event's
// id from the sequence (insertEventSQL). A reading reads the sequence and
// then, in a later statement, takes an xid of its own, N (its fence): a
// transaction holding an id at or below the reading took its xid before
// the reading read the sequence, so its xid is below N. Once the oldest
// transaction still running anywhere (the xmin of a new snapshot, the
// horizon) is above N, every xid up to N has ended, and with it every
// transaction that could still commit such an id. (The snapshot's xmax is
// no such bound: it is one past the newest completed xid, and a
// transaction with a higher xid may have been running already.) Prepared
// transactions keep their xids and so hold the horizon like running ones;
// a long transaction of any kind that has an xid older than the fence
// delays the reading until it ends, and never lets it pass early.

const (
	defaultSealLimit = 1000
	// linkCols and linkFrom read events with their links.
	linkCols = `e.id, e.tenant_id, e.time, e.type, e.request_id, e.client_id, e.user_id, e.resource, ` + scopesColE + `,
		e.ip, e.outcome, e.details, l.prev_hash, l.hash`
	linkFrom = ` FROM audit_events AS e LEFT JOIN audit_links AS l ON l.id = e.id `
)

func scanLink(sc pgx.Row) (*store.AuditLink, error) {
	ev := new(store.AuditEvent)
	l := &store.AuditLink{Event: ev}
	var details []byte
	if err := sc.Scan(&ev.ID, &ev.TenantID, &ev.Time, &ev.Type, &ev.RequestID, &ev.ClientID, &ev.UserID,
		&ev.Resource, &ev.Scopes, &ev.IP, &ev.Outcome, &details, &l.PrevHash, &l.Hash); err != nil {
		return nil, err
	}
	ev.Time = utc(ev.Time)
	var err error
	if ev.Details, err = scanAuditDetails(details); err != nil {
		return nil, err
	}
	return l, nil
}

// runsSQL reads a tenant's runs that may hold an event with an id from $2
// to $3: those that end in [$2, $3), and the first that ends at $3 or
// later (a tenant's runs do not overlap: each round seals ids above the
// last). Both halves are ranges of the primary key.
const runsSQL = `(SELECT first_id, prev_hash, ids, hashes FROM audit_runs
	WHERE tenant_id = $1 AND last_id >= $2 AND last_id < $3 ORDER BY last_id)
	UNION ALL
	(SELECT first_id, prev_hash, ids, hashes FROM audit_runs
	WHERE tenant_id = $1 AND last_id >= $3 ORDER BY last_id LIMIT 1)`

// attachRuns gives the events of links that have no link of their own in
// audit_links (the form before migration 0025) their link from the run
// that holds their id, if one does; an event no run holds stays unsealed.
// links are in id order.
func attachRuns(ctx context.Context, q querier, links []*store.AuditLink) error {
	type span struct{ lo, hi int64 }
	spans := map[string]*span{}
	var order []string
	for _, l := range links {
		if l.Hash != nil {
			continue
		}
		tn := l.Event.TenantID
		if sp := spans[tn]; sp != nil {
			sp.hi = l.Event.ID
		} else {
			spans[tn] = &span{l.Event.ID, l.Event.ID}
			order = append(order, tn)
		}
	}
	if len(order) == 0 {
		return nil
	}
	runs := map[string][]*store.AuditRun{}
	for _, tn := range order {
		sp := spans[tn]
		rows, err := q.Query(ctx, runsSQL, tn, sp.lo, sp.hi)
		if err != nil {
			return err
		}
		for rows.Next() {
			var first int64
			var prev, ids, hashes []byte
			if err := rows.Scan(&first, &prev, &ids, &hashes); err != nil {
				rows.Close()
				return err
			}
			r, err := store.DecodeAuditRun(tn, prev, ids, hashes)
			if err != nil {
				rows.Close()
				return err
			}
			if r.IDs[0] != first {
				rows.Close()
				return fmt.Errorf("audit run of tenant %q from %d starts at %d", tn, first, r.IDs[0])
			}
			runs[tn] = append(runs[tn], r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for _, l := range links {
		if l.Hash != nil {
			continue
		}
		for _, r := range runs[l.Event.TenantID] {
			if i := r.Index(l.Event.ID); i >= 0 {
				l.PrevHash, l.Hash = r.Link(i)
				break
			}
		}
	}
	return nil
}

// lastAuditIDSQL reads the audit id sequence's last value (NULL before the
// first).
const lastAuditIDSQL = `SELECT pg_sequence_last_value('audit_events_id_seq'::regclass)`

// AuditWatermark implements store.AuditChain: the sequence's last value,
// which counts ids handed to transactions still in flight.
func (s *Store) AuditWatermark(ctx context.Context) (int64, error) {
	var id *int64
	err := s.pool.QueryRow(ctx, lastAuditIDSQL).Scan(&id)
	if err != nil {
		return 0, mapErr("audit watermark", err)
	}
	if id == nil { // no id handed out yet
		return 0, nil
	}
	return *id, nil
}

// readWatermarkSQL is the reading's second statement: the fence (an xid
// of the reading's own, assigned here, after the sequence was read) and the
// horizon (the xmin of the statement's snapshot). xid8 values go through
// text: they are 64-bit counters that do not wrap.
const readWatermarkSQL = `SELECT pg_current_xact_id()::text::bigint, pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// ReadAuditWatermark implements store.AuditChain (see the top of this
// file). The two statements go in one batch: one round trip, run in order.
func (s *Store) ReadAuditWatermark(ctx context.Context) (store.AuditReading, uint64, error) {
	var id *int64
	var fence, horizon int64
	b := &pgx.Batch{}
	b.Queue(lastAuditIDSQL).QueryRow(func(r pgx.Row) error { return r.Scan(&id) })
	b.Queue(readWatermarkSQL).QueryRow(func(r pgx.Row) error { return r.Scan(&fence, &horizon) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return store.AuditReading{}, 0, mapErr("audit watermark", err)
	}
	r := store.AuditReading{Fence: uint64(fence)}
	if id != nil {
		r.ID = *id
	}
	return r, uint64(horizon), nil
}

// SealAudit implements store.AuditChain.
func (s *Store) SealAudit(ctx context.Context, upTo int64, limit int) (*store.SealResult, error) {
	if limit <= 0 {
		limit = defaultSealLimit
	}
	res := &store.SealResult{}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var through int64
		if err := tx.QueryRow(ctx, `SELECT through FROM audit_seal WHERE id = 1 FOR UPDATE`).Scan(&through); err != nil {
			return err
		}
		res.Through, res.From = through, through
		if upTo <= through {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+linkCols+linkFrom+`WHERE e.id > $1 AND e.id <= $2 ORDER BY e.id LIMIT $3`,
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
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		heads := map[string]*store.ChainHead{}
		var order []string
		for _, l := range links {
			if heads[l.Event.TenantID] == nil {
				order = append(order, l.Event.TenantID)
				heads[l.Event.TenantID] = &store.ChainHead{TenantID: l.Event.TenantID, Hash: store.ChainGenesis}
			}
		}
		if len(order) > 0 {
			hr, err := tx.Query(ctx, `SELECT tenant_id, head_id, head_hash FROM audit_chain WHERE tenant_id = ANY($1)`, order)
			if err != nil {
				return err
			}
			for hr.Next() {
				var tn string
				var id int64
				var hash []byte
				if err := hr.Scan(&tn, &id, &hash); err != nil {
					hr.Close()
					return err
				}
				heads[tn].ID, heads[tn].Hash = id, hash
			}
			hr.Close()
			if err := hr.Err(); err != nil {
				return err
			}
		}
		// One run per tenant (migration 0025): its events' ids, the
		// prev_hash of its first and every hash, in id order.
		runs := make(map[string]*store.AuditRun, len(order))
		var hasher store.ChainHasher
		for _, l := range links {
			h := heads[l.Event.TenantID]
			r := runs[l.Event.TenantID]
			if r == nil {
				r = &store.AuditRun{TenantID: l.Event.TenantID, PrevHash: h.Hash}
				runs[l.Event.TenantID] = r
			}
			n := len(r.Hashes)
			r.Hashes = hasher.Append(r.Hashes, h.Hash, l.Event)
			r.IDs = append(r.IDs, l.Event.ID)
			l.PrevHash, l.Hash = h.Hash, r.Hashes[n:len(r.Hashes):len(r.Hashes)]
			h.ID, h.Hash = l.Event.ID, l.Hash
			h.Sealed++
		}
		if len(runs) > 0 {
			b := &pgx.Batch{}
			for _, tn := range order {
				r := runs[tn]
				b.Queue(`INSERT INTO audit_runs (tenant_id, last_id, first_id, prev_hash, ids, hashes) VALUES ($1, $2, $3, $4, $5, $6)`,
					tn, r.IDs[len(r.IDs)-1], r.IDs[0], r.PrevHash, store.AppendRunIDs(nil, r.IDs), r.Hashes)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		for _, tn := range order {
			h := heads[tn]
			if _, err := tx.Exec(ctx, `INSERT INTO audit_chain (tenant_id, head_id, head_hash) VALUES ($1, $2, $3)
				ON CONFLICT (tenant_id) DO UPDATE SET head_id = excluded.head_id, head_hash = excluded.head_hash`,
				tn, h.ID, h.Hash); err != nil {
				return err
			}
			res.Heads = append(res.Heads, *h)
		}
		res.Sealed, res.Links = len(links), links
		res.Through = upTo
		if len(links) == limit {
			res.Through = links[len(links)-1].Event.ID
		}
		_, err = tx.Exec(ctx, `UPDATE audit_seal SET through = $1 WHERE id = 1`, res.Through)
		return err
	})
	if err != nil {
		return nil, mapErr("seal audit", err)
	}
	return res, nil
}

// AuditHead implements store.AuditChain.
func (s *Store) AuditHead(ctx context.Context, tenantID string) (*store.ChainHead, error) {
	h := &store.ChainHead{TenantID: tenantID}
	err := s.pool.QueryRow(ctx, `SELECT head_id, head_hash FROM audit_chain WHERE tenant_id = $1`, tenantID).Scan(&h.ID, &h.Hash)
	if err != nil {
		return nil, mapErr("audit head", err)
	}
	return h, nil
}

// AuditLinks implements store.AuditChain.
func (s *Store) AuditLinks(ctx context.Context, tenantID string, afterID int64, limit int) ([]*store.AuditLink, error) {
	if limit <= 0 {
		limit = defaultSealLimit
	}
	out, err := s.readLinks(ctx, `SELECT `+linkCols+linkFrom+`WHERE e.tenant_id = $1 AND e.id > $2 ORDER BY e.id LIMIT $3`,
		tenantID, afterID, limit)
	return out, mapErr("audit links", err)
}

// readLinks reads events with their links (linkCols, linkFrom) and gives
// those without a link row theirs from the runs (attachRuns), both reads
// in one snapshot: a prune that commits between them would otherwise show
// events it deleted, read first, without the links it cut from their run.
func (s *Store) readLinks(ctx context.Context, query string, args ...any) ([]*store.AuditLink, error) {
	var out []*store.AuditLink
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			l, err := scanLink(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if s.betweenLinkReads != nil {
			s.betweenLinkReads()
		}
		return attachRuns(ctx, tx, out)
	})
	return out, err
}

// PruneAudit implements store.AuditChain. The anchor row is locked, so a
// concurrent prune of the same tenant waits and then finds it gone.
func (s *Store) PruneAudit(ctx context.Context, p store.AuditPrune, ev func(deleted int64) *store.AuditEvent) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		anchor, err := scanLink(tx.QueryRow(ctx, `SELECT `+linkCols+linkFrom+`WHERE e.tenant_id = $1 AND e.id = $2 FOR UPDATE OF e`,
			p.TenantID, p.Keep))
		if errors.Is(err, pgx.ErrNoRows) {
			anchor = nil
		} else if err != nil {
			return err
		}
		if anchor != nil {
			if err := attachRuns(ctx, tx, []*store.AuditLink{anchor}); err != nil {
				return err
			}
		}
		if anchor == nil || !anchor.Sealed() || !bytes.Equal(anchor.PrevHash, p.PrevHash) {
			return fmt.Errorf("event %d is not a sealed event with the anchor's prev_hash: %w", p.Keep, store.ErrConflict)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE tenant_id = $1 AND id < $2`, p.TenantID, p.Keep)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM audit_links WHERE tenant_id = $1 AND id < $2`, p.TenantID, p.Keep); err != nil {
			return err
		}
		if err := pruneRuns(ctx, tx, p.TenantID, p.Keep); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		return insertEvent(ctx, tx, ev(n))
	})
	if err != nil {
		return 0, mapErr("prune audit", err)
	}
	return n, nil
}

// pruneRuns deletes the tenant's runs that end before keep and cuts the
// one that holds keep, if it starts before it, down to keep and what
// follows, with keep's prev_hash as its own.
func pruneRuns(ctx context.Context, tx pgx.Tx, tenantID string, keep int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM audit_runs WHERE tenant_id = $1 AND last_id < $2`, tenantID, keep); err != nil {
		return err
	}
	var last, first int64
	var prev, ids, hashes []byte
	err := tx.QueryRow(ctx, `SELECT last_id, first_id, prev_hash, ids, hashes FROM audit_runs
		WHERE tenant_id = $1 AND last_id >= $2 ORDER BY last_id LIMIT 1 FOR UPDATE`, tenantID, keep).
		Scan(&last, &first, &prev, &ids, &hashes)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && first >= keep) {
		return nil
	}
	if err != nil {
		return err
	}
	r, err := store.DecodeAuditRun(tenantID, prev, ids, hashes)
	if err != nil {
		return err
	}
	i, _ := slices.BinarySearch(r.IDs, keep)
	prev, _ = r.Link(i)
	_, err = tx.Exec(ctx, `UPDATE audit_runs SET first_id = $3, prev_hash = $4, ids = $5, hashes = $6
		WHERE tenant_id = $1 AND last_id = $2`,
		tenantID, last, r.IDs[i], prev, store.AppendRunIDs(nil, r.IDs[i:]), r.Hashes[i*store.ChainHashSize:])
	return err
}
