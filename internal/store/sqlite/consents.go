package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const (
	consentCols    = `tenant_id, user_id, client_id, resource, scope, granted_at, expires_at, last_used_at, revoked_at`
	qUpsertConsent = `INSERT INTO consents (` + consentCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant_id, user_id, client_id, resource, scope) DO UPDATE SET
	granted_at = excluded.granted_at, expires_at = excluded.expires_at, revoked_at = NULL`
)

// consentWhere builds the WHERE clause of a filter; empty fields match
// everything. With scopes, only those scopes match; the list is passed as one
// JSON array parameter so the statement text (and its prepared form) does
// not depend on how many there are.
func consentWhere(f store.ConsentFilter, scopes []string, withScopes bool) (string, []any) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{
		{"tenant_id", f.TenantID}, {"user_id", f.UserID}, {"client_id", f.ClientID}, {"resource", f.Resource},
	} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if withScopes {
		where = append(where, "scope IN (SELECT value FROM json_each(?))")
		args = append(args, listText(scopes))
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// UpsertConsents implements store.Store.
func (s *Store) UpsertConsents(ctx context.Context, grants []*store.ConsentGrant, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("upsert consents", s.w.do(ctx, func(tx *wtx) error {
		for _, g := range grants {
			if _, err := tx.exec(qUpsertConsent, g.TenantID, g.UserID, g.ClientID, g.Resource, g.Scope,
				tv(g.GrantedAt), tv(g.ExpiresAt), tv(g.LastUsedAt), tv(g.RevokedAt)); err != nil {
				return err
			}
		}
		return tx.audit(evRow)
	}))
}

// ListConsents implements store.Store.
func (s *Store) ListConsents(ctx context.Context, f store.ConsentFilter) ([]*store.ConsentGrant, error) {
	where, args := consentWhere(f, nil, false)
	rows, err := s.queryShort(ctx, `SELECT `+consentCols+` FROM consents`+where+
		` ORDER BY tenant_id, user_id, client_id, resource, scope`, args...)
	if err != nil {
		return nil, wrap("list consents", err)
	}
	defer rows.Close()
	var out []*store.ConsentGrant
	for rows.Next() {
		g := new(store.ConsentGrant)
		if err := rows.Scan(&g.TenantID, &g.UserID, &g.ClientID, &g.Resource, &g.Scope, timeCol{&g.GrantedAt},
			timeCol{&g.ExpiresAt}, timeCol{&g.LastUsedAt}, timeCol{&g.RevokedAt}); err != nil {
			return nil, wrap("list consents", err)
		}
		out = append(out, g)
	}
	return out, wrap("list consents", rows.Err())
}

// touchConsents is the statement setting LastUsedAt of the named scopes to
// now, or "" when no scope is named.
func touchConsents(f store.ConsentFilter, scopes []string, now time.Time) (string, []any) {
	if len(scopes) == 0 {
		return "", nil
	}
	where, args := consentWhere(f, scopes, true)
	return `UPDATE consents SET last_used_at = ?` + where, append([]any{now.UnixMicro()}, args...)
}

// cascadeKey groups revoked consents by whose tokens they cover: user and
// client, and resource when the filter names one.
type cascadeKey struct{ tenant, user, client, resource string }

// RevokeConsents implements store.Store. Token scopes are JSON lists, so the
// cascade selects the candidate tokens of each user and client by indexed
// columns and decides in Go which of them carry a revoked scope.
func (s *Store) RevokeConsents(ctx context.Context, f store.ConsentFilter, scopes []string, now time.Time, ev *store.AuditEvent) error {
	where, args := consentWhere(f, scopes, scopes != nil)
	qSelect := `SELECT tenant_id, user_id, client_id, resource, scope FROM consents` + where
	qRevoke := `UPDATE consents SET revoked_at = ?` + where
	if where == "" {
		qRevoke += ` WHERE revoked_at IS NULL`
	} else {
		qRevoke += ` AND revoked_at IS NULL`
	}
	at := now.UnixMicro()
	evRow := prepAudit(ev)
	return wrap("revoke consents", s.w.do(ctx, func(tx *wtx) error {
		rows, err := tx.query(qSelect, args...)
		if err != nil {
			return err
		}
		revoked := make(map[cascadeKey]map[string]bool)
		for rows.Next() {
			var k cascadeKey
			var scope string
			if err := rows.Scan(&k.tenant, &k.user, &k.client, &k.resource, &scope); err != nil {
				rows.Close()
				return err
			}
			if f.Resource == "" {
				k.resource = ""
			}
			if revoked[k] == nil {
				revoked[k] = make(map[string]bool)
			}
			revoked[k][scope] = true
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		n, err := tx.execN(qRevoke, append([]any{at}, args...)...)
		if err != nil {
			return err
		}
		for k, sc := range revoked {
			hit, err := tx.cascade(k, sc, at)
			if err != nil {
				return err
			}
			n += hit
		}
		if n == 0 {
			return nil // nothing revoked: no event
		}
		return tx.audit(evRow)
	}))
}

// cascade revokes the refresh tokens and access-token records of k that
// carry any scope in revoked and returns how many it revoked. Tokens
// exchanged from those (RFC 8693: the same user and grant family, issued
// to the resource servers that passed the call on) carry the same scopes
// and are revoked with them: the consent they rest on is the same.
func (tx *wtx) cascade(k cascadeKey, revoked map[string]bool, at int64) (int64, error) {
	var n int64
	families := make(map[string]bool)
	for _, t := range []struct {
		sel, upd string
	}{
		{
			`SELECT hash, scopes, grant_id FROM refresh_tokens WHERE tenant_id = ? AND user_id = ? AND client_id = ?
			AND revoked_at IS NULL AND (? = '' OR resource = ?)`,
			`UPDATE refresh_tokens SET revoked_at = ? WHERE hash = ?`,
		},
		{
			`SELECT jti, scopes, grant_id FROM access_tokens WHERE tenant_id = ? AND user_id = ? AND user_id <> ''
			AND client_id = ? AND revoked_at IS NULL AND (? = '' OR resource = ?)`,
			`UPDATE access_tokens SET revoked_at = ? WHERE jti = ?`,
		},
	} {
		rows, err := tx.query(t.sel, k.tenant, k.user, k.client, k.resource, k.resource)
		if err != nil {
			return n, err
		}
		hit, err := scopeHits(rows, revoked, nil)
		if err != nil {
			return n, err
		}
		for _, id := range hit {
			if _, err := tx.exec(t.upd, at, id); err != nil {
				return n, err
			}
		}
		n += int64(len(hit))
	}
	// The families: of every token of k that carries a revoked scope,
	// revoked now or before (an agent may have revoked its own token).
	for _, q := range []string{
		`SELECT hash, scopes, grant_id FROM refresh_tokens WHERE tenant_id = ? AND user_id = ? AND client_id = ?
		AND grant_id <> '' AND (? = '' OR resource = ?)`,
		`SELECT jti, scopes, grant_id FROM access_tokens WHERE tenant_id = ? AND user_id = ? AND user_id <> ''
		AND client_id = ? AND grant_id <> '' AND (? = '' OR resource = ?)`,
	} {
		rows, err := tx.query(q, k.tenant, k.user, k.client, k.resource, k.resource)
		if err != nil {
			return n, err
		}
		if _, err := scopeHits(rows, revoked, families); err != nil {
			return n, err
		}
	}
	for grant := range families {
		rows, err := tx.query(`SELECT jti, scopes, grant_id FROM access_tokens WHERE tenant_id = ? AND grant_id = ?
			AND grant_id <> '' AND user_id = ? AND revoked_at IS NULL`, k.tenant, grant, k.user)
		if err != nil {
			return n, err
		}
		hit, err := scopeHits(rows, revoked, nil)
		if err != nil {
			return n, err
		}
		for _, id := range hit {
			if _, err := tx.exec(`UPDATE access_tokens SET revoked_at = ? WHERE jti = ?`, at, id); err != nil {
				return n, err
			}
		}
		n += int64(len(hit))
	}
	return n, nil
}

// scopeHits reads rows of (id, scopes, grant_id) and returns the ids of
// those carrying a scope in revoked, adding their grant ids to families
// (when not nil). It closes rows.
func scopeHits(rows *sql.Rows, revoked, families map[string]bool) ([]any, error) {
	defer rows.Close()
	var hit []any
	for rows.Next() {
		var id any
		var text, grant string
		if err := rows.Scan(&id, &text, &grant); err != nil {
			return nil, err
		}
		var have []string
		if err := json.Unmarshal([]byte(text), &have); err != nil {
			return nil, err
		}
		for _, sc := range have {
			if revoked[sc] {
				hit = append(hit, id)
				if families != nil && grant != "" {
					families[grant] = true
				}
				break
			}
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return hit, rows.Err()
}

// ExpireConsents implements store.Consents. The UPDATE that revokes the
// grants that ran out is what selects them; the writer runs one
// transaction at a time, so a second sweep (another handle on the file)
// finds them revoked.
func (s *Store) ExpireConsents(ctx context.Context, tenantID string, now time.Time, ev func(store.ConsentFilter, []string) *store.AuditEvent) (int, error) {
	at := now.UnixMicro()
	n := 0
	err := s.w.do(ctx, func(tx *wtx) error {
		n = 0
		rows, err := tx.query(`UPDATE consents SET revoked_at = ?
			WHERE tenant_id = ? AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?
			RETURNING user_id, client_id, resource, scope`, at, tenantID, at)
		if err != nil {
			return err
		}
		var exp store.ExpiredGrants
		for rows.Next() {
			k := store.ConsentFilter{TenantID: tenantID}
			var scope string
			if err := rows.Scan(&k.UserID, &k.ClientID, &k.Resource, &scope); err != nil {
				rows.Close()
				return err
			}
			exp.Add(k, scope)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		exp.Sort()
		for _, k := range exp.Keys {
			scopes := exp.Scopes[k]
			set := make(map[string]bool, len(scopes))
			for _, sc := range scopes {
				set[sc] = true
			}
			if _, err := tx.cascade(cascadeKey{tenant: k.TenantID, user: k.UserID, client: k.ClientID, resource: k.Resource}, set, at); err != nil {
				return err
			}
			n += len(scopes)
			if ev != nil {
				if err := tx.audit(prepAudit(ev(k, scopes))); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, wrap("expire consents", err)
	}
	return n, nil
}
