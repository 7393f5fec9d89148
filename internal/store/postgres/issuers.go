package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// ---- trusted issuers ---------------------------------------------------------

const issuerCols = `tenant_id, id, issuer, jwks_uri, jwks, audiences, algorithms, uses, max_lifetime_ns,
	user_claim, rules, disabled, created_at, updated_at`

// issuerArgs lists iss's fields in issuerCols order.
func issuerArgs(iss *store.Issuer) ([]any, error) {
	if err := iss.Check(); err != nil {
		return nil, err
	}
	var rules []byte // none: SQL NULL
	if len(iss.Rules) > 0 {
		var err error
		if rules, err = json.Marshal(iss.Rules); err != nil {
			return nil, fmt.Errorf("issuer %q rules: %w", iss.ID, err)
		}
	}
	return []any{iss.TenantID, iss.ID, iss.Issuer, iss.JWKSURI, iss.JWKS, iss.Audiences, iss.Algorithms,
		iss.Uses, int64(iss.MaxLifetime), iss.UserClaim, rules, iss.Disabled, iss.CreatedAt, iss.UpdatedAt}, nil
}

func scanIssuer(row pgx.Row) (*store.Issuer, error) {
	var iss store.Issuer
	var maxLifetime int64
	var rules []byte
	if err := row.Scan(&iss.TenantID, &iss.ID, &iss.Issuer, &iss.JWKSURI, &iss.JWKS, &iss.Audiences,
		&iss.Algorithms, &iss.Uses, &maxLifetime, &iss.UserClaim, &rules, &iss.Disabled,
		&iss.CreatedAt, &iss.UpdatedAt); err != nil {
		return nil, err
	}
	if len(rules) > 0 {
		if err := json.Unmarshal(rules, &iss.Rules); err != nil {
			return nil, fmt.Errorf("issuer %q rules: %w", iss.ID, err)
		}
	}
	iss.MaxLifetime = time.Duration(maxLifetime)
	iss.CreatedAt, iss.UpdatedAt = utc(iss.CreatedAt), utc(iss.UpdatedAt)
	return &iss, nil
}

// CreateIssuer inserts iss and writes ev in the same transaction; a
// duplicate id or issuer URL in the tenant is store.ErrConflict.
func (s *Store) CreateIssuer(ctx context.Context, iss *store.Issuer, ev *store.AuditEvent) error {
	args, err := issuerArgs(iss)
	if err != nil {
		return mapErr("create issuer", err)
	}
	return mapErr("create issuer", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO issuers (`+issuerCols+`) VALUES
			($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, args...); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// GetIssuer returns the issuer or store.ErrNotFound.
func (s *Store) GetIssuer(ctx context.Context, tenantID, id string) (*store.Issuer, error) {
	iss, err := scanIssuer(s.pool.QueryRow(ctx, `SELECT `+issuerCols+` FROM issuers WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr("get issuer", err)
	}
	return iss, nil
}

// ListIssuers returns the tenant's issuers ordered by id (bytewise, as
// SQLite orders them).
func (s *Store) ListIssuers(ctx context.Context, tenantID string) ([]*store.Issuer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+issuerCols+` FROM issuers WHERE tenant_id = $1 ORDER BY id COLLATE "C"`, tenantID)
	if err != nil {
		return nil, mapErr("list issuers", err)
	}
	defer rows.Close()
	var out []*store.Issuer
	for rows.Next() {
		iss, err := scanIssuer(rows)
		if err != nil {
			return nil, mapErr("list issuers", err)
		}
		out = append(out, iss)
	}
	return out, mapErr("list issuers", rows.Err())
}

// UpdateIssuer replaces every field but the key and CreatedAt and writes
// ev in the same transaction; an unknown issuer is store.ErrNotFound, an
// issuer URL another issuer of the tenant has store.ErrConflict.
func (s *Store) UpdateIssuer(ctx context.Context, iss *store.Issuer, ev *store.AuditEvent) error {
	args, err := issuerArgs(iss)
	if err != nil {
		return mapErr("update issuer", err)
	}
	// CreatedAt ($13 of issuerArgs) stays as created.
	args = append(args[:12:12], args[13])
	return mapErr("update issuer", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE issuers SET issuer = $3, jwks_uri = $4, jwks = $5, audiences = $6,
			algorithms = $7, uses = $8, max_lifetime_ns = $9, user_claim = $10, rules = $11, disabled = $12,
			updated_at = $13
			WHERE tenant_id = $1 AND id = $2`, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("update issuer")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// DeleteIssuer removes the issuer and writes ev in the same transaction;
// an unknown issuer is store.ErrNotFound.
func (s *Store) DeleteIssuer(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	return mapErr("delete issuer", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM issuers WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete issuer")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// ---- access-token records ------------------------------------------------------

// GetAccessToken returns the recorded access token, revoked or not, or
// store.ErrNotFound.
func (s *Store) GetAccessToken(ctx context.Context, jti string) (*store.AccessToken, error) {
	var at store.AccessToken
	var revokedAt *time.Time
	err := s.pool.QueryRow(ctx, `SELECT jti, tenant_id, grant_id, client_id, user_id, resource, `+scopesCol+`,
		redirect_uri, expires_at, revoked_at, token_sha256 FROM access_tokens WHERE jti = $1`, jti).Scan(&at.JTI,
		&at.TenantID, &at.GrantID, &at.ClientID, &at.UserID, &at.Resource, &at.Scopes, &at.RedirectURI,
		&at.ExpiresAt, &revokedAt, &at.Digest)
	if err != nil {
		return nil, mapErr("get access token", err)
	}
	at.ExpiresAt, at.RevokedAt = utc(at.ExpiresAt), fromNull(revokedAt)
	return &at, nil
}

// AccessTokenStanding returns the recorded access token's revocation and
// digest with the standing of its client and user, read in one
// statement, or store.ErrNotFound.
func (s *Store) AccessTokenStanding(ctx context.Context, jti string) (*store.TokenStanding, error) {
	var ts store.TokenStanding
	var revokedAt *time.Time
	var cDisabled, uDisabled *bool
	var cStatus, cMethod *string
	err := s.pool.QueryRow(ctx, `SELECT a.jti, a.tenant_id, a.client_id, a.user_id, a.revoked_at, a.token_sha256,
		c.disabled, c.status, c.registration_method, u.disabled
		FROM access_tokens a
		LEFT JOIN clients c ON c.tenant_id = a.tenant_id AND c.id = a.client_id
		LEFT JOIN users u ON a.user_id <> '' AND u.tenant_id = a.tenant_id AND u.id = a.user_id
		WHERE a.jti = $1`, jti).Scan(&ts.JTI, &ts.TenantID, &ts.ClientID, &ts.UserID, &revokedAt, &ts.Digest,
		&cDisabled, &cStatus, &cMethod, &uDisabled)
	if err != nil {
		return nil, mapErr("access token standing", err)
	}
	ts.RevokedAt = fromNull(revokedAt)
	if cDisabled != nil && cStatus != nil && cMethod != nil { // a client joined: all three are NOT NULL
		ts.Client = store.Standing{Found: true, Disabled: *cDisabled, Status: *cStatus, RegistrationMethod: *cMethod}
	}
	if uDisabled != nil {
		ts.User = store.Standing{Found: true, Disabled: *uDisabled}
	}
	return &ts, nil
}
