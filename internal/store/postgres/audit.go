package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// insertEventSQL takes the event's id only after the transaction has an
// xid (pg_current_xact_id assigns one if the transaction wrote nothing
// yet; CASE evaluates its condition first), which is what lets the sealer
// tell when every id below a reading has committed or never will
// (ReadAuditWatermark).
const insertEventSQL = `INSERT INTO audit_events (id, tenant_id, time, type, request_id, client_id,
	user_id, resource, scopes, scope, ip, outcome, details)
	VALUES (` + eventIDExpr + `, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`

// storedScopes splits a list of scopes into its stored forms (migration
// 0025): a list whose scopes are all non-empty and without a space is
// stored as one space-separated text in the scope column, with scopes
// NULL (a text of one scope takes about 25 bytes less than a text[] of
// it); any other list (nil, empty, or one with such a scope) in the text[]
// column scopes, as before, with scope NULL. Reads take whichever is set
// (scopesCol), so rows written before keep being read as they are.
func storedScopes(scopes []string) (list []string, text *string) {
	if len(scopes) == 0 {
		return scopes, nil
	}
	for _, sc := range scopes {
		if sc == "" || strings.Contains(sc, " ") {
			return scopes, nil
		}
	}
	j := strings.Join(scopes, " ")
	return nil, &j
}

// scopesCol reads what storedScopes stored (the columns unqualified, or
// of the table aliased e: scopesColE).
const (
	scopesCol  = `coalesce(scopes, string_to_array(scope, ' '))`
	scopesColE = `coalesce(e.scopes, string_to_array(e.scope, ' '))`
)

// eventIDExpr is the id of a new event: the column's sequence, drawn once
// the transaction has its xid.
const eventIDExpr = `CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('audit_events_id_seq'::regclass) END`

// eventArgs lists ev's fields in insertEventSQL order.
func eventArgs(ev *store.AuditEvent) ([]any, error) {
	d, _ := store.CompactDetails(ev.StoredDetails())
	details, err := jsonMap(d)
	if err != nil {
		return nil, fmt.Errorf("encode audit details: %w", err)
	}
	list, text := storedScopes(ev.Scopes)
	return []any{ev.TenantID, ev.Time, ev.Type, ev.RequestID, ev.ClientID, ev.UserID, ev.Resource,
		list, text, ev.IP, ev.Outcome, details}, nil
}

// insertEvent writes ev (nil writes nothing) through q, which is the
// transaction of the change the event records, and sets ev.ID.
func insertEvent(ctx context.Context, q querier, ev *store.AuditEvent) error {
	if ev == nil {
		return nil
	}
	args, err := eventArgs(ev)
	if err != nil {
		return err
	}
	if err := q.QueryRow(ctx, insertEventSQL, args...).Scan(&ev.ID); err != nil {
		return fmt.Errorf("write audit event: %w", err)
	}
	return nil
}

// AppendAudit writes standalone audit events in one transaction and sets
// their IDs.
func (s *Store) AppendAudit(ctx context.Context, evs ...*store.AuditEvent) error {
	if len(evs) == 1 {
		return mapErr("append audit", insertEvent(ctx, s.pool, evs[0]))
	}
	return mapErr("append audit", s.inTx(ctx, func(tx pgx.Tx) error {
		for _, ev := range evs {
			if err := insertEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	}))
}

// insertEventOnceSQL skips an event the unique index of migration 0015
// (tenant, reporting client, report id) already holds: no row returned.
const insertEventOnceSQL = `INSERT INTO audit_events (id, tenant_id, time, type, request_id, client_id,
	user_id, resource, scopes, scope, ip, outcome, details)
	VALUES (` + eventIDExpr + `, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING RETURNING id`

// AppendAuditOnce implements store.Store.
func (s *Store) AppendAuditOnce(ctx context.Context, evs ...*store.AuditEvent) error {
	return mapErr("append audit", s.inTx(ctx, func(tx pgx.Tx) error {
		for _, ev := range evs {
			if ev == nil {
				continue
			}
			args, err := eventArgs(ev)
			if err != nil {
				return err
			}
			err = tx.QueryRow(ctx, insertEventOnceSQL, args...).Scan(&ev.ID)
			if errors.Is(err, pgx.ErrNoRows) {
				ev.ID = 0
				continue
			}
			if err != nil {
				return fmt.Errorf("write audit event: %w", err)
			}
		}
		return nil
	}))
}

// ListAudit returns matching events, newest first (by id, which increases
// with every write) unless f.Ascending.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEvent, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	q, args := auditQuery(f)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr("list audit", err)
	}
	defer rows.Close()
	var out []*store.AuditEvent
	for rows.Next() {
		var ev store.AuditEvent
		var details []byte
		if err := rows.Scan(&ev.ID, &ev.TenantID, &ev.Time, &ev.Type, &ev.RequestID, &ev.ClientID,
			&ev.UserID, &ev.Resource, &ev.Scopes, &ev.IP, &ev.Outcome, &details); err != nil {
			return nil, mapErr("list audit", err)
		}
		ev.Time = utc(ev.Time)
		if ev.Details, err = scanAuditDetails(details); err != nil {
			return nil, mapErr("list audit", err)
		}
		out = append(out, &ev)
	}
	return out, mapErr("list audit", rows.Err())
}

// auditQuery is the SELECT of ListAudit for f.
func auditQuery(f store.AuditFilter) (string, []any) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.TenantID != "" {
		add("tenant_id = ?", f.TenantID)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.TypePrefix != "" {
		// starts_with compares bytes, whatever the database's collation,
		// and gives LIKE's wildcards no meaning.
		add("starts_with(type, ?)", f.TypePrefix)
	}
	if f.ClientID != "" {
		add("client_id = ?", f.ClientID)
	}
	if f.Agent != "" {
		add("(client_id = ? OR details->>'"+store.DetailAgent+"' = ?)", f.Agent) // one parameter, twice
	}
	if f.UserID != "" {
		// The index holds only events naming a person (migration 0023);
		// the extra clause lets a generic plan use it too.
		add("user_id = ?", f.UserID)
		where = append(where, "user_id <> ''")
	}
	if f.Resource != "" {
		add("resource = ?", f.Resource)
	}
	if f.Provider != "" {
		add("details->>'"+store.DetailProvider+"' = ?", f.Provider)
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		add("time >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		add("time < ?", f.Until)
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
	q := `SELECT id, tenant_id, time, type, request_id, client_id, user_id, resource, ` + scopesCol + `, ip,
		outcome, details FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	order := "DESC"
	if f.Ascending {
		order = "ASC"
	}
	return q + " ORDER BY id " + order + " LIMIT $" + strconv.Itoa(len(args)), args
}
