package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// UpsertConsents records grants, one row per tenant, user, client, resource
// and scope. An existing row gets the new GrantedAt and ExpiresAt and its
// revocation cleared; its LastUsedAt is kept.
func (s *Store) UpsertConsents(ctx context.Context, grants []*store.ConsentGrant, ev *store.AuditEvent) error {
	return mapErr("upsert consents", s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, g := range grants {
			b.Queue(`INSERT INTO consents (tenant_id, user_id, client_id, resource, scope, granted_at,
				expires_at, last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)
				ON CONFLICT (tenant_id, user_id, client_id, resource, scope) DO UPDATE SET
				granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at, revoked_at = NULL`,
				g.TenantID, g.UserID, g.ClientID, g.Resource, g.Scope, g.GrantedAt,
				nullTime(g.ExpiresAt), nullTime(g.LastUsedAt))
		}
		if b.Len() > 0 {
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// consentWhere builds the WHERE conditions for f (empty fields match
// everything), numbering parameters after those already in args.
func consentWhere(f store.ConsentFilter, args []any) ([]string, []any) {
	var where []string
	add := func(col, v string) {
		if v == "" {
			return
		}
		args = append(args, v)
		where = append(where, col+" = $"+strconv.Itoa(len(args)))
	}
	add("tenant_id", f.TenantID)
	add("user_id", f.UserID)
	add("client_id", f.ClientID)
	add("resource", f.Resource)
	return where, args
}

func and(where []string) string {
	if len(where) == 0 {
		return "TRUE"
	}
	return strings.Join(where, " AND ")
}

// ListConsents returns matching grants, live or not.
func (s *Store) ListConsents(ctx context.Context, f store.ConsentFilter) ([]*store.ConsentGrant, error) {
	where, args := consentWhere(f, nil)
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, user_id, client_id, resource, scope, granted_at,
		expires_at, last_used_at, revoked_at FROM consents WHERE `+and(where)+`
		ORDER BY tenant_id, user_id, client_id, resource, scope`, args...)
	if err != nil {
		return nil, mapErr("list consents", err)
	}
	defer rows.Close()
	var out []*store.ConsentGrant
	for rows.Next() {
		var g store.ConsentGrant
		var exp, used, revoked *time.Time
		if err := rows.Scan(&g.TenantID, &g.UserID, &g.ClientID, &g.Resource, &g.Scope, &g.GrantedAt,
			&exp, &used, &revoked); err != nil {
			return nil, mapErr("list consents", err)
		}
		g.GrantedAt = utc(g.GrantedAt)
		g.ExpiresAt, g.LastUsedAt, g.RevokedAt = fromNull(exp), fromNull(used), fromNull(revoked)
		out = append(out, &g)
	}
	return out, mapErr("list consents", rows.Err())
}

// touchConsents is the statement setting LastUsedAt of the named scopes to
// now, or "" when no scope is named.
func touchConsents(f store.ConsentFilter, scopes []string, now time.Time) (string, []any) {
	if len(scopes) == 0 {
		return "", nil
	}
	where, args := consentWhere(f, []any{now, scopes})
	return `UPDATE consents SET last_used_at = $1 WHERE scope = ANY($2) AND ` + and(where), args
}

// RevokeConsents marks the matching grants revoked (scopes nil: all scopes)
// and, in the same transaction, revokes the refresh tokens and recorded
// access tokens of the same tenant, user, client (and resource, when set)
// that carry a revoked scope (any scope when scopes is nil). Tokens without
// a user (client credentials) never rest on consent and are left alone. ev
// is written only when something was revoked.
func (s *Store) RevokeConsents(ctx context.Context, f store.ConsentFilter, scopes []string, now time.Time, ev *store.AuditEvent) error {
	return mapErr("revoke consents", s.inTx(ctx, func(tx pgx.Tx) error {
		scopeCond := "TRUE"
		base := []any{now}
		if scopes != nil {
			base = append(base, scopes)
			scopeCond = "scope = ANY($2)"
		}
		where, args := consentWhere(f, base)
		tag, err := tx.Exec(ctx, `UPDATE consents SET revoked_at = $1
			WHERE revoked_at IS NULL AND `+scopeCond+` AND `+and(where), args...)
		if err != nil {
			return err
		}
		n, err := revokeConsentTokens(ctx, tx, f, scopes, now)
		if err != nil {
			return err
		}
		if n+tag.RowsAffected() == 0 {
			return nil // nothing revoked: no event
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// revokeConsentTokens is the cascade of a consent revocation: the refresh
// tokens and recorded access tokens of f's tenant, user, client (and
// resource, when set) that carry a scope in scopes (any scope when nil),
// and the access tokens exchanged from them. It returns how many it
// revoked.
func revokeConsentTokens(ctx context.Context, tx pgx.Tx, f store.ConsentFilter, scopes []string, now time.Time) (int64, error) {
	base := []any{now}
	// An access token's scopes are in either of its columns (storedScopes).
	refreshScopeCond, accessScopeCond := "TRUE", "TRUE"
	if scopes != nil {
		base = append(base, scopes)
		refreshScopeCond, accessScopeCond = "scopes && $2::text[]", scopesCol+" && $2::text[]"
	}
	where, args := consentWhere(f, base)
	var n int64
	for _, u := range []struct{ table, cond string }{{"refresh_tokens", refreshScopeCond}, {"access_tokens", accessScopeCond}} {
		tag, err := tx.Exec(ctx, `UPDATE `+u.table+` SET revoked_at = $1
			WHERE revoked_at IS NULL AND user_id <> '' AND `+u.cond+` AND `+and(where), args...)
		if err != nil {
			return n, err
		}
		n += tag.RowsAffected()
	}
	// Tokens exchanged from those (RFC 8693: the same user and grant
	// family, issued to the resource servers that passed the call on)
	// carry the same scopes and rest on the same consent: the families
	// are those of every matching token, revoked now or before.
	tag, err := tx.Exec(ctx, `UPDATE access_tokens SET revoked_at = $1
		WHERE revoked_at IS NULL AND user_id <> '' AND grant_id <> '' AND `+accessScopeCond+`
		AND (tenant_id, grant_id, user_id) IN (
			SELECT tenant_id, grant_id, user_id FROM refresh_tokens
			WHERE user_id <> '' AND grant_id <> '' AND `+refreshScopeCond+` AND `+and(where)+`
			UNION
			SELECT tenant_id, grant_id, user_id FROM access_tokens
			WHERE user_id <> '' AND grant_id <> '' AND `+accessScopeCond+` AND `+and(where)+`)`, args...)
	if err != nil {
		return n, err
	}
	return n + tag.RowsAffected(), nil
}

// ExpireConsents implements store.Consents: one UPDATE picks and revokes
// the grants that ran out, so a second sweep running at the same time
// (another replica) waits for the rows and then finds them revoked.
func (s *Store) ExpireConsents(ctx context.Context, tenantID string, now time.Time, ev func(store.ConsentFilter, []string) *store.AuditEvent) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, `UPDATE consents SET revoked_at = $2
			WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $2
			RETURNING user_id, client_id, resource, scope`, tenantID, now)
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
		if err := rows.Err(); err != nil {
			return err
		}
		exp.Sort()
		for _, k := range exp.Keys {
			scopes := exp.Scopes[k]
			if _, err := revokeConsentTokens(ctx, tx, k, scopes, now); err != nil {
				return err
			}
			n += len(scopes)
			if ev != nil {
				if err := insertEvent(ctx, tx, ev(k, scopes)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, mapErr("expire consents", err)
	}
	return n, nil
}
