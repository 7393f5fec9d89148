package sqlite

import (
	"context"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

const (
	auditCols    = `id, tenant_id, time, type, request_id, client_id, user_id, resource, scopes, ip, outcome, details`
	qInsertAudit = `INSERT INTO audit_events
	(tenant_id, time, type, request_id, client_id, user_id, resource, scopes, ip, outcome, details)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// auditRow is an audit event with its column values, prepared by the caller
// so that the JSON encoding runs in parallel, outside the writer.
type auditRow struct {
	ev   *store.AuditEvent
	args []any
	// coded: the stored details text has short key names, so it is not
	// the JSON a sink writes (store.AuditLink.DetailsJSON).
	coded bool
}

// auditDetailsArg is the index of the details' JSON text in auditRow.args.
const auditDetailsArg = 10

func prepAudit(ev *store.AuditEvent) auditRow {
	if ev == nil {
		return auditRow{}
	}
	details, coded := store.CompactDetails(ev.StoredDetails())
	return auditRow{ev, []any{ev.TenantID, tv(ev.Time), ev.Type, ev.RequestID, ev.ClientID,
		ev.UserID, ev.Resource, listText(ev.Scopes), ev.IP, ev.Outcome, mapText(details)}, coded}
}

// auditDetailsCol scans a stored event's details: the JSON object, its
// short key names expanded (store.ExpandDetails).
type auditDetailsCol struct{ p *map[string]string }

func (c auditDetailsCol) Scan(v any) error {
	var m map[string]string
	if err := (mapCol{&m}).Scan(v); err != nil {
		return err
	}
	m, err := store.ExpandDetails(m)
	if err != nil {
		return err
	}
	*c.p = m
	return nil
}

func prepAudits(evs []*store.AuditEvent) []auditRow {
	rows := make([]auditRow, len(evs))
	for i, ev := range evs {
		rows[i] = prepAudit(ev)
	}
	return rows
}

// audit writes the event (none for a nil event) in the current transaction
// and sets its ID.
func (tx *wtx) audit(a auditRow) error {
	if a.ev == nil {
		return nil
	}
	res, err := tx.exec(qInsertAudit, a.args...)
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	a.ev.ID = id
	tx.kept(a, id)
	return nil
}

// AppendAudit implements store.Store.
func (s *Store) AppendAudit(ctx context.Context, evs ...*store.AuditEvent) error {
	rows := prepAudits(evs)
	return wrap("append audit", s.w.do(ctx, func(tx *wtx) error {
		for _, a := range rows {
			if err := tx.audit(a); err != nil {
				return err
			}
		}
		return nil
	}))
}

// qInsertAuditOnce skips an event the unique index of migration 0015
// (tenant, reporting client, report id) already holds.
const qInsertAuditOnce = qInsertAudit + ` ON CONFLICT DO NOTHING`

// AppendAuditOnce implements store.Store.
func (s *Store) AppendAuditOnce(ctx context.Context, evs ...*store.AuditEvent) error {
	rows := prepAudits(evs)
	return wrap("append audit", s.w.do(ctx, func(tx *wtx) error {
		for _, a := range rows {
			if a.ev == nil {
				continue
			}
			res, err := tx.exec(qInsertAuditOnce, a.args...)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				a.ev.ID = 0
				if err != nil {
					return err
				}
				continue
			}
			if a.ev.ID, err = res.LastInsertId(); err != nil {
				return err
			}
			tx.kept(a, a.ev.ID)
		}
		return nil
	}))
}

// ListAudit implements store.Store. Newest first means highest id first: ids
// follow commit order, which is the order of the trail.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEvent, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	q, args := auditQuery(f)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, wrap("list audit", err)
	}
	defer rows.Close()
	var out []*store.AuditEvent
	for rows.Next() {
		ev := new(store.AuditEvent)
		if err := rows.Scan(&ev.ID, &ev.TenantID, timeCol{&ev.Time}, &ev.Type, &ev.RequestID, &ev.ClientID,
			&ev.UserID, &ev.Resource, listCol{&ev.Scopes}, &ev.IP, &ev.Outcome, auditDetailsCol{&ev.Details}); err != nil {
			return nil, wrap("list audit", err)
		}
		out = append(out, ev)
	}
	return out, wrap("list audit", rows.Err())
}

// auditQuery is the SELECT of ListAudit for f.
func auditQuery(f store.AuditFilter) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, v ...any) {
		where = append(where, cond)
		args = append(args, v...)
	}
	if f.TenantID != "" && f.Agent == "" { // with an agent, its clause holds the tenant
		add("tenant_id = ?", f.TenantID)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.TypePrefix != "" {
		// A range on the BINARY-collated column rather than LIKE, whose
		// wildcards and case folding a prefix must not get, and which
		// uses the (tenant_id, type, id) index.
		if hi, ok := prefixEnd(f.TypePrefix); ok {
			add("type >= ? AND type < ?", f.TypePrefix, hi)
		} else {
			add("type >= ?", f.TypePrefix)
		}
	}
	if f.ClientID != "" {
		add("client_id = ?", f.ClientID)
		where = append(where, "client_id <> ''") // lets SQLite use the partial index
	}
	if f.Agent != "" {
		// Each side of the OR complete for its own index (the tenant
		// repeated), so that SQLite's OR optimisation searches both.
		agentDetail := "json_extract(details, '$." + store.DetailAgent + "') = ?"
		if f.TenantID != "" {
			add("((tenant_id = ? AND client_id = ? AND client_id <> '') OR (tenant_id = ? AND "+agentDetail+"))",
				f.TenantID, f.Agent, f.TenantID, f.Agent)
		} else {
			add("((client_id = ? AND client_id <> '') OR "+agentDetail+")", f.Agent, f.Agent)
		}
	}
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
		where = append(where, "user_id <> ''")
	}
	if f.Resource != "" {
		add("resource = ?", f.Resource)
		where = append(where, "resource <> ''")
	}
	if f.Provider != "" {
		add("json_extract(details, '$."+store.DetailProvider+"') = ?", f.Provider)
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		add("time >= ?", f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		add("time < ?", f.Until.UnixMicro())
	}
	if f.Before > 0 {
		add("id < ?", f.Before)
	}
	if f.After > 0 {
		add("id > ?", f.After)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultAuditLimit
	}
	q := "SELECT " + auditCols + " FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Ascending {
		q += " ORDER BY id ASC LIMIT ?"
	} else {
		q += " ORDER BY id DESC LIMIT ?"
	}
	return q, append(args, limit)
}

// prefixEnd is the least string above every string starting with p, in
// byte order; false when there is none (p is all 0xff bytes).
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
