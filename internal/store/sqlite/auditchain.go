package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// The audit chain (store.AuditChain). SQLite has one writer, so a sealer
// sees every committed event and none in flight; its transaction is one
// more request of the writer, grouped with others like any write.

const (
	defaultSealLimit = 1000
	// linkCols and linkFrom read events with their links.
	linkCols = `e.id, e.tenant_id, e.time, e.type, e.request_id, e.client_id, e.user_id, e.resource, e.scopes,
		e.ip, e.outcome, e.details, l.prev_hash, l.hash`
	linkFrom = ` FROM audit_events AS e LEFT JOIN audit_links AS l ON l.id = e.id `
)

// scanLink reads linkCols.
func scanLink(sc interface{ Scan(...any) error }) (*store.AuditLink, error) {
	l := &store.AuditLink{Event: new(store.AuditEvent)}
	return l, scanLinkInto(sc, l)
}

// scanLinkInto reads linkCols into l, whose Event is set.
func scanLinkInto(sc interface{ Scan(...any) error }, l *store.AuditLink) error {
	ev := l.Event
	if err := sc.Scan(&ev.ID, &ev.TenantID, timeCol{&ev.Time}, &ev.Type, &ev.RequestID, &ev.ClientID,
		&ev.UserID, &ev.Resource, listCol{&ev.Scopes}, &ev.IP, &ev.Outcome, auditDetailsCol{&ev.Details},
		&l.PrevHash, &l.Hash); err != nil {
		return err
	}
	return nil
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

// ReadAuditWatermark implements store.AuditChain. SQLite has one writer:
// an id is handed out inside the write transaction that commits it, and
// no other write transaction runs until that one ends, so ids commit in id
// order and a reader sees none in flight. The highest committed id is safe
// to seal up to at once (fence 0, horizon 1).
func (s *Store) ReadAuditWatermark(ctx context.Context) (store.AuditReading, uint64, error) {
	id, err := s.AuditWatermark(ctx)
	return store.AuditReading{ID: id}, 1, err
}

// SealAudit implements store.AuditChain. The events are read and hashed
// on the read pool, outside the writer, from one snapshot; the writer then
// only checks that no other sealer (another process on the file) moved the
// mark or a head meanwhile and writes the links in one statement, so the
// chain costs the single writer little time that issuances wait for.
func (s *Store) SealAudit(ctx context.Context, upTo int64, limit int) (*store.SealResult, error) {
	if limit <= 0 {
		limit = defaultSealLimit
	}
	s.w.tail.on.Store(true) // from now on the writer keeps what it commits for the next calls
	for range 5 {
		plan, err := s.planSeal(ctx, upTo, limit)
		if err != nil {
			return nil, wrap("seal audit", err)
		}
		if plan.res.Through >= upTo && plan.res.Sealed == 0 && plan.through == plan.res.Through {
			return plan.res, nil // nothing to do
		}
		stale := false
		err = s.w.do(ctx, func(tx *wtx) error {
			stale = false
			ok, err := plan.current(tx)
			if err != nil || !ok {
				stale = !ok
				return err
			}
			if err := setLinks(tx, plan.links); err != nil {
				return err
			}
			for _, h := range plan.res.Heads {
				if _, err := tx.exec(`INSERT INTO audit_chain (tenant_id, head_id, head_hash) VALUES (?, ?, ?)
					ON CONFLICT (tenant_id) DO UPDATE SET head_id = excluded.head_id, head_hash = excluded.head_hash`,
					h.TenantID, h.ID, h.Hash); err != nil {
					return err
				}
			}
			_, err = tx.exec(`UPDATE audit_seal SET through = ? WHERE id = 1`, plan.res.Through)
			return err
		})
		if err != nil {
			return nil, wrap("seal audit", err)
		}
		if !stale {
			s.w.tail.drop(plan.res.Through)
			return plan.res, nil
		}
	}
	return nil, fmt.Errorf("sqlite: seal audit: other sealers keep moving the chain: %w", store.ErrConflict)
}

// linkChunk is how many events one INSERT links; qLinks[n] links n.
const linkChunk = 64

// qLinks[n] inserts the links of n consecutive events of one tenant, each
// one's prev_hash being the hash before it, with the tenant and each hash
// bound once: ?1 the tenant, ?2 the first prev_hash, then each event's id
// and hash (?3, ?4, ?5, ?6, …), event k's prev_hash being ?(2+2k).
var qLinks = func() map[int]string {
	m := map[int]string{}
	for _, n := range []int{linkChunk, 8, 1} {
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_links (id, tenant_id, prev_hash, hash) VALUES `)
		for k := range n {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "(?%d, ?1, ?%d, ?%d)", 3+2*k, 2+2*k, 4+2*k)
		}
		m[n] = b.String()
	}
	return m
}()

// setLinks writes the links, in as few statements as the prepared sizes
// allow: a statement covers a run of one tenant's consecutive events.
func setLinks(tx *wtx, links []*store.AuditLink) error {
	args := make([]any, 0, 2+2*linkChunk)
	for len(links) > 0 {
		run := 1
		for run < min(len(links), linkChunk) && links[run].Event.TenantID == links[0].Event.TenantID &&
			bytes.Equal(links[run].PrevHash, links[run-1].Hash) {
			run++
		}
		n := linkChunk
		for n > run {
			n = map[int]int{linkChunk: 8, 8: 1}[n]
		}
		args = append(args[:0], links[0].Event.TenantID, links[0].PrevHash)
		for _, l := range links[:n] {
			args = append(args, l.Event.ID, l.Hash)
		}
		if _, err := tx.exec(qLinks[n], args...); err != nil {
			return err
		}
		links = links[n:]
	}
	return nil
}

// sealPlan is a seal computed from one read snapshot.
type sealPlan struct {
	through int64 // the mark the plan starts from
	before  map[string]*store.ChainHead
	links   []*store.AuditLink
	res     *store.SealResult
}

// planSeal reads the mark, the events after it up to upTo and the heads of
// their tenants in one snapshot, and links them. The events come from the
// writer's tail when they are all the range's events there are.
func (s *Store) planSeal(ctx context.Context, upTo int64, limit int) (*sealPlan, error) {
	rtx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer rtx.Rollback()
	p := &sealPlan{res: &store.SealResult{}, before: map[string]*store.ChainHead{}}
	if err := s.txQueryRow(ctx, rtx, `SELECT through FROM audit_seal WHERE id = 1`).Scan(&p.through); err != nil {
		return nil, err
	}
	p.res.Through, p.res.From = p.through, p.through
	if upTo <= p.through {
		return p, nil
	}
	kept, err := s.fromTail(ctx, rtx, p.through, upTo, limit)
	if err != nil {
		return nil, err
	}
	if kept != nil {
		p.links = kept
	} else if p.links, err = s.readSealRange(ctx, rtx, p.through, upTo, limit); err != nil {
		return nil, err
	}
	heads := map[string]*store.ChainHead{}
	var order []string
	var hasher store.ChainHasher
	hashes := make([]byte, 0, sha256.Size*len(p.links))
	for _, l := range p.links {
		tn := l.Event.TenantID
		h := heads[tn]
		if h == nil {
			h = &store.ChainHead{TenantID: tn, Hash: store.ChainGenesis}
			var id int64
			var hash []byte
			err := s.txQueryRow(ctx, rtx, `SELECT head_id, head_hash FROM audit_chain WHERE tenant_id = ?`, tn).Scan(&id, &hash)
			switch {
			case err == sql.ErrNoRows:
			case err != nil:
				return nil, err
			default:
				h.ID, h.Hash = id, hash
			}
			p.before[tn] = &store.ChainHead{TenantID: tn, ID: h.ID, Hash: h.Hash}
			heads[tn] = h
			order = append(order, tn)
		}
		hashes = hasher.Append(hashes, h.Hash, l.Event)
		hash := hashes[len(hashes)-sha256.Size : len(hashes) : len(hashes)]
		l.PrevHash, l.Hash = h.Hash, hash
		h.ID, h.Hash = l.Event.ID, hash
		h.Sealed++
	}
	for _, tn := range order {
		p.res.Heads = append(p.res.Heads, *heads[tn])
	}
	p.res.Sealed, p.res.Links = len(p.links), p.links
	p.res.Through = upTo
	if len(p.links) == limit {
		p.res.Through = p.links[len(p.links)-1].Event.ID
	}
	return p, nil
}

// txQueryRow runs a point read in the read transaction rtx with the read
// pool's prepared statement (a sealer's round would otherwise prepare its
// statements anew).
func (s *Store) txQueryRow(ctx context.Context, rtx *sql.Tx, q string, args ...any) *sql.Row {
	st, err := s.rstmt.get(ctx, q)
	if err != nil {
		return rtx.QueryRowContext(ctx, q, args...) // the error surfaces on Scan
	}
	return rtx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

// fromTail returns the events with an id in (after, upTo], at most limit,
// from the writer's tail, or nil when the tail does not hold every event
// of that range that the snapshot rtx holds. The tail must hold every id
// of the range (one writer hands ids out in sequence, so it does unless
// another process wrote or an event was not kept) and the snapshot as
// many rows: then the rows are exactly the kept events. Equal counts
// alone are not enough: a kept event deleted behind the store's back and
// another process's event in the same range would make the chain link
// the deleted one and never the other.
func (s *Store) fromTail(ctx context.Context, rtx *sql.Tx, after, upTo int64, limit int) ([]*store.AuditLink, error) {
	evs := s.w.tail.take(after, upTo, limit)
	if len(evs) == 0 {
		return nil, nil
	}
	last := upTo
	if len(evs) == limit {
		last = evs[len(evs)-1].ID
	}
	if last-after != int64(len(evs)) { // ids increase: a gap in the range
		return nil, nil
	}
	var n int
	if err := s.txQueryRow(ctx, rtx, `SELECT COUNT(*) FROM audit_events WHERE id > ? AND id <= ?`, after, last).Scan(&n); err != nil {
		return nil, err
	}
	if n != len(evs) {
		return nil, nil
	}
	links := make([]store.AuditLink, len(evs))
	out := make([]*store.AuditLink, len(evs))
	for i, ev := range evs {
		links[i].Event, links[i].DetailsJSON = ev.AuditEvent, ev.details
		out[i] = &links[i]
	}
	return out, nil
}

// readSealRange reads the events with an id in (after, upTo], at most
// limit, with their links.
func (s *Store) readSealRange(ctx context.Context, rtx *sql.Tx, after, upTo int64, limit int) ([]*store.AuditLink, error) {
	st, err := s.rstmt.get(ctx, `SELECT `+linkCols+linkFrom+`WHERE e.id > ? AND e.id <= ? ORDER BY e.id LIMIT ?`)
	if err != nil {
		return nil, err
	}
	rows, err := rtx.StmtContext(ctx, st).QueryContext(ctx, after, upTo, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// The events and their links are allocated together, a batch at a
	// time: the sealer reads every event of the trail.
	n := int(min(int64(limit), upTo-after))
	evs, links := make([]store.AuditEvent, n), make([]store.AuditLink, n)
	var out []*store.AuditLink
	for i := 0; rows.Next(); i++ {
		if i == n { // more rows than ids in the range: not SQLite's
			return nil, fmt.Errorf("more than %d events with an id in (%d, %d]", n, after, upTo)
		}
		l := &links[i]
		l.Event = &evs[i]
		if err := scanLinkInto(rows, l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return out, rows.Err()
}

// current reports whether the plan still starts where the chain is: the
// same mark and, for each tenant it extends, the same head.
func (p *sealPlan) current(tx *wtx) (bool, error) {
	var through int64
	if err := tx.queryRow(`SELECT through FROM audit_seal WHERE id = 1`).Scan(&through); err != nil {
		return false, err
	}
	if through != p.through {
		return false, nil
	}
	for tn, b := range p.before {
		var id int64
		var hash []byte
		err := tx.queryRow(`SELECT head_id, head_hash FROM audit_chain WHERE tenant_id = ?`, tn).Scan(&id, &hash)
		switch {
		case err == sql.ErrNoRows:
			if b.ID != 0 {
				return false, nil
			}
		case err != nil:
			return false, err
		case id != b.ID || !bytes.Equal(hash, b.Hash):
			return false, nil
		}
	}
	return true, nil
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
	rows, err := s.query(ctx, `SELECT `+linkCols+linkFrom+`WHERE e.tenant_id = ? AND e.id > ? ORDER BY e.id LIMIT ?`,
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
		err := tx.queryRow(`SELECT l.prev_hash, l.hash`+linkFrom+`WHERE e.tenant_id = ? AND e.id = ?`, p.TenantID, p.Keep).Scan(&prev, &hash)
		if err == sql.ErrNoRows || (err == nil && (hash == nil || !bytes.Equal(prev, p.PrevHash))) {
			return fmt.Errorf("event %d is not a sealed event with the anchor's prev_hash: %w", p.Keep, store.ErrConflict)
		}
		if err != nil {
			return err
		}
		if n, err = tx.execN(`DELETE FROM audit_events WHERE tenant_id = ? AND id < ?`, p.TenantID, p.Keep); err != nil {
			return err
		}
		if _, err := tx.exec(`DELETE FROM audit_links WHERE tenant_id = ? AND id < ?`, p.TenantID, p.Keep); err != nil {
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
