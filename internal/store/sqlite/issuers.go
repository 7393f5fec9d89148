package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- trusted issuers ---------------------------------------------------------

const (
	issuerCols = `tenant_id, id, issuer, jwks_uri, jwks, audiences, algorithms, uses, max_lifetime_ns,
	user_claim, rules, disabled, created_at, updated_at`
	qInsertIssuer = `INSERT INTO issuers (` + issuerCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetIssuer    = `SELECT ` + issuerCols + ` FROM issuers WHERE tenant_id = ? AND id = ?`
	qListIssuers  = `SELECT ` + issuerCols + ` FROM issuers WHERE tenant_id = ? ORDER BY id`
	// Everything but the key and the creation time.
	qUpdateIssuer = `UPDATE issuers SET issuer = ?, jwks_uri = ?, jwks = ?, audiences = ?, algorithms = ?,
	uses = ?, max_lifetime_ns = ?, user_claim = ?, rules = ?, disabled = ?, updated_at = ?
	WHERE tenant_id = ? AND id = ?`
	qDeleteIssuer = `DELETE FROM issuers WHERE tenant_id = ? AND id = ?`
)

// rulesText encodes issuer rules as JSON text; none is "[]".
func rulesText(rules []store.IssuerRule) (string, error) {
	if len(rules) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(rules)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// rulesCol scans JSON text into issuer rules; none scans as nil.
type rulesCol struct{ p *[]store.IssuerRule }

func (c rulesCol) Scan(v any) error {
	b, err := textOf(v)
	if err != nil || b == "" || b == "[]" || b == "null" {
		*c.p = nil
		return err
	}
	var rules []store.IssuerRule
	if err := json.Unmarshal([]byte(b), &rules); err != nil {
		return fmt.Errorf("issuer rules column: %w", err)
	}
	*c.p = rules
	return nil
}

// issuerValues are the issuer's columns after tenant_id and id, in
// issuerCols order but without created_at, which comes first.
func issuerValues(iss *store.Issuer) ([]any, error) {
	if err := iss.Check(); err != nil {
		return nil, err
	}
	rules, err := rulesText(iss.Rules)
	if err != nil {
		return nil, fmt.Errorf("issuer %q rules: %w", iss.ID, err)
	}
	return []any{iss.Issuer, iss.JWKSURI, iss.JWKS, listText(iss.Audiences), listText(iss.Algorithms),
		listText(iss.Uses), int64(iss.MaxLifetime), iss.UserClaim, rules, iss.Disabled}, nil
}

func scanIssuer(r scanner) (*store.Issuer, error) {
	iss := new(store.Issuer)
	var maxLifetime int64
	if err := r.Scan(&iss.TenantID, &iss.ID, &iss.Issuer, &iss.JWKSURI, &iss.JWKS, listCol{&iss.Audiences},
		listCol{&iss.Algorithms}, listCol{&iss.Uses}, &maxLifetime, &iss.UserClaim, rulesCol{&iss.Rules},
		&iss.Disabled, timeCol{&iss.CreatedAt}, timeCol{&iss.UpdatedAt}); err != nil {
		return nil, err
	}
	iss.MaxLifetime = time.Duration(maxLifetime)
	return iss, nil
}

// CreateIssuer implements store.Store.
func (s *Store) CreateIssuer(ctx context.Context, iss *store.Issuer, ev *store.AuditEvent) error {
	vals, err := issuerValues(iss)
	if err != nil {
		return wrap("create issuer", err)
	}
	args := append([]any{iss.TenantID, iss.ID}, vals...)
	args = append(args, tv(iss.CreatedAt), tv(iss.UpdatedAt))
	evRow := prepAudit(ev)
	return wrap("create issuer", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertIssuer, args...); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// GetIssuer implements store.Store.
func (s *Store) GetIssuer(ctx context.Context, tenantID, id string) (*store.Issuer, error) {
	row, err := s.queryRow(ctx, qGetIssuer, tenantID, id)
	if err != nil {
		return nil, wrap("get issuer", err)
	}
	iss, err := scanIssuer(row)
	if err != nil {
		return nil, wrap("get issuer", err)
	}
	return iss, nil
}

// ListIssuers implements store.Store.
func (s *Store) ListIssuers(ctx context.Context, tenantID string) ([]*store.Issuer, error) {
	rows, err := s.queryShort(ctx, qListIssuers, tenantID)
	if err != nil {
		return nil, wrap("list issuers", err)
	}
	defer rows.Close()
	var out []*store.Issuer
	for rows.Next() {
		iss, err := scanIssuer(rows)
		if err != nil {
			return nil, wrap("list issuers", err)
		}
		out = append(out, iss)
	}
	return out, wrap("list issuers", rows.Err())
}

// UpdateIssuer implements store.Store.
func (s *Store) UpdateIssuer(ctx context.Context, iss *store.Issuer, ev *store.AuditEvent) error {
	vals, err := issuerValues(iss)
	if err != nil {
		return wrap("update issuer", err)
	}
	args := append(vals, tv(iss.UpdatedAt), iss.TenantID, iss.ID)
	evRow := prepAudit(ev)
	return wrap("update issuer", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUpdateIssuer, args...)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// DeleteIssuer implements store.Store.
func (s *Store) DeleteIssuer(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("delete issuer", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qDeleteIssuer, tenantID, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// ---- access-token records ------------------------------------------------------

const qGetAccess = `SELECT jti, tenant_id, grant_id, client_id, user_id, resource, scopes, redirect_uri,
	expires_at, revoked_at, token_sha256 FROM access_tokens WHERE jti = ?`

// GetAccessToken implements store.Store.
func (s *Store) GetAccessToken(ctx context.Context, jti string) (*store.AccessToken, error) {
	row, err := s.queryRow(ctx, qGetAccess, jti)
	if err != nil {
		return nil, wrap("get access token", err)
	}
	at := new(store.AccessToken)
	if err := row.Scan(&at.JTI, &at.TenantID, &at.GrantID, &at.ClientID, &at.UserID, &at.Resource,
		listCol{&at.Scopes}, &at.RedirectURI, timeCol{&at.ExpiresAt}, timeCol{&at.RevokedAt}, &at.Digest); err != nil {
		return nil, wrap("get access token", err)
	}
	return at, nil
}

// qAccessStanding reads what introspection needs of an access token's
// record with the standing of its client and user: one snapshot. A token
// without a user joins no user.
const qAccessStanding = `SELECT a.jti, a.tenant_id, a.client_id, a.user_id, a.revoked_at, a.token_sha256,
	c.disabled, c.status, c.registration_method, u.disabled
	FROM access_tokens a
	LEFT JOIN clients c ON c.tenant_id = a.tenant_id AND c.id = a.client_id
	LEFT JOIN users u ON a.user_id <> '' AND u.tenant_id = a.tenant_id AND u.id = a.user_id
	WHERE a.jti = ?`

// AccessTokenStanding implements store.Store.
func (s *Store) AccessTokenStanding(ctx context.Context, jti string) (*store.TokenStanding, error) {
	row, err := s.queryRow(ctx, qAccessStanding, jti)
	if err != nil {
		return nil, wrap("access token standing", err)
	}
	ts := new(store.TokenStanding)
	var cDisabled, uDisabled sql.NullBool
	var cStatus, cMethod sql.NullString
	if err := row.Scan(&ts.JTI, &ts.TenantID, &ts.ClientID, &ts.UserID, timeCol{&ts.RevokedAt}, &ts.Digest,
		&cDisabled, &cStatus, &cMethod, &uDisabled); err != nil {
		return nil, wrap("access token standing", err)
	}
	ts.Client = store.Standing{Found: cDisabled.Valid, Disabled: cDisabled.Bool, Status: cStatus.String, RegistrationMethod: cMethod.String}
	ts.User = store.Standing{Found: uDisabled.Valid, Disabled: uDisabled.Bool}
	return ts, nil
}
