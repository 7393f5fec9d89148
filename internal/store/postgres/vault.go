package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentid/agentid/internal/store"
)

// ---- providers ---------------------------------------------------------------

const providerCols = `tenant_id, id, name, kind, issuer, authorization_endpoint, token_endpoint,
	revocation_endpoint, client_id, client_secret, token_auth_method, scopes, disable_pkce, auth_params,
	key_header, key_query, key_format, key_hint, key_overlap_ns, disabled, created_at, updated_at`

// providerArgs lists p's fields in providerCols order.
func providerArgs(p *store.Provider) ([]any, error) {
	params, err := jsonMap(p.AuthParams)
	if err != nil {
		return nil, fmt.Errorf("provider %q auth params: %w", p.ID, err)
	}
	return []any{p.TenantID, p.ID, p.Name, p.Kind, p.Issuer, p.AuthorizationEndpoint, p.TokenEndpoint,
		p.RevocationEndpoint, p.ClientID, p.ClientSecret, p.TokenAuthMethod, p.Scopes, p.DisablePKCE, params,
		p.KeyHeader, p.KeyQuery, p.KeyFormat, p.KeyHint, int64(p.KeyOverlap), p.Disabled, p.CreatedAt,
		p.UpdatedAt}, nil
}

func scanProvider(row pgx.Row) (*store.Provider, error) {
	var p store.Provider
	var params []byte
	var overlap int64
	if err := row.Scan(&p.TenantID, &p.ID, &p.Name, &p.Kind, &p.Issuer, &p.AuthorizationEndpoint,
		&p.TokenEndpoint, &p.RevocationEndpoint, &p.ClientID, &p.ClientSecret, &p.TokenAuthMethod, &p.Scopes,
		&p.DisablePKCE, &params, &p.KeyHeader, &p.KeyQuery, &p.KeyFormat, &p.KeyHint, &overlap, &p.Disabled,
		&p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	m, err := scanMap(params)
	if err != nil {
		return nil, fmt.Errorf("provider %q auth params: %w", p.ID, err)
	}
	p.AuthParams, p.KeyOverlap = m, time.Duration(overlap)
	p.CreatedAt, p.UpdatedAt = utc(p.CreatedAt), utc(p.UpdatedAt)
	return &p, nil
}

// CreateProvider inserts p and writes ev in the same transaction; a
// duplicate (tenant, id) is store.ErrConflict.
func (s *Store) CreateProvider(ctx context.Context, p *store.Provider, ev *store.AuditEvent) error {
	if err := store.CheckProvider(p); err != nil {
		return mapErr("create provider", err)
	}
	args, err := providerArgs(p)
	if err != nil {
		return mapErr("create provider", err)
	}
	return mapErr("create provider", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO providers (`+providerCols+`) VALUES ($1, $2, $3, $4, $5,
			$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`, args...); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// GetProvider returns the provider or store.ErrNotFound.
func (s *Store) GetProvider(ctx context.Context, tenantID, id string) (*store.Provider, error) {
	p, err := scanProvider(s.pool.QueryRow(ctx, `SELECT `+providerCols+` FROM providers
		WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr("get provider", err)
	}
	return p, nil
}

// ListProviders returns the tenant's providers ordered by id.
func (s *Store) ListProviders(ctx context.Context, tenantID string) ([]*store.Provider, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+providerCols+` FROM providers WHERE tenant_id = $1 ORDER BY id`, tenantID)
	if err != nil {
		return nil, mapErr("list providers", err)
	}
	defer rows.Close()
	var out []*store.Provider
	for rows.Next() {
		p, err := scanProvider(rows)
		if err != nil {
			return nil, mapErr("list providers", err)
		}
		out = append(out, p)
	}
	return out, mapErr("list providers", rows.Err())
}

// UpdateProvider replaces every field but the key, the kind and the
// creation time, and writes ev in the same transaction.
func (s *Store) UpdateProvider(ctx context.Context, p *store.Provider, ev *store.AuditEvent) error {
	if p.KeyOverlap < 0 {
		return mapErr("update provider", fmt.Errorf("provider %q: negative key overlap: %w", p.ID, store.ErrInvalid))
	}
	args, err := providerArgs(p)
	if err != nil {
		return mapErr("update provider", err)
	}
	// Without the kind (args[3]) and the creation time (args[20]).
	args = append(append(args[:3:3], args[4:20]...), args[21])
	return mapErr("update provider", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE providers SET name = $3, issuer = $4, authorization_endpoint = $5,
			token_endpoint = $6, revocation_endpoint = $7, client_id = $8, client_secret = $9,
			token_auth_method = $10, scopes = $11, disable_pkce = $12, auth_params = $13, key_header = $14,
			key_query = $15, key_format = $16, key_hint = $17, key_overlap_ns = $18, disabled = $19,
			updated_at = $20
			WHERE tenant_id = $1 AND id = $2`, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("update provider")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// DeleteProvider removes the provider and its connections and writes ev,
// in one transaction. The connections are deleted by name first; the
// foreign key's ON DELETE CASCADE also takes one a concurrent
// CreateConnection inserted meanwhile (its key share lock on the provider
// makes this delete wait for it).
func (s *Store) DeleteProvider(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	return mapErr("delete provider", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM connections WHERE tenant_id = $1 AND provider_id = $2`, tenantID, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM providers WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete provider")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// ---- connections ---------------------------------------------------------------

const connCols = `tenant_id, id, provider_id, owner_kind, owner_id, label, status, scopes, data_key,
	kek_id, secret, previous_secret, previous_until, expires_at, last_refreshed_at, last_used_at,
	refresh_holder, refresh_lease_until, failures, next_attempt_at, created_at, updated_at`

// connArgs lists c's fields in connCols order.
func connArgs(c *store.Connection) []any {
	return []any{c.TenantID, c.ID, c.ProviderID, c.OwnerKind, c.OwnerID, c.Label, c.Status, c.Scopes,
		c.DataKey, c.KEKID, c.Secret, c.PreviousSecret, nullTime(c.PreviousUntil), nullTime(c.ExpiresAt),
		nullTime(c.LastRefreshedAt), nullTime(c.LastUsedAt), c.RefreshHolder, nullTime(c.RefreshLeaseUntil),
		c.Failures, nullTime(c.NextAttemptAt), c.CreatedAt, c.UpdatedAt}
}

func scanConnection(row pgx.Row) (*store.Connection, error) {
	var c store.Connection
	var prevUntil, expires, refreshed, used, leaseUntil, nextAttempt *time.Time
	if err := row.Scan(&c.TenantID, &c.ID, &c.ProviderID, &c.OwnerKind, &c.OwnerID, &c.Label, &c.Status,
		&c.Scopes, &c.DataKey, &c.KEKID, &c.Secret, &c.PreviousSecret, &prevUntil, &expires, &refreshed,
		&used, &c.RefreshHolder, &leaseUntil, &c.Failures, &nextAttempt, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return nil, err
	}
	c.PreviousUntil, c.ExpiresAt, c.LastRefreshedAt = fromNull(prevUntil), fromNull(expires), fromNull(refreshed)
	c.LastUsedAt, c.RefreshLeaseUntil, c.NextAttemptAt = fromNull(used), fromNull(leaseUntil), fromNull(nextAttempt)
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return &c, nil
}

// sqlstateForeignKeyViolation: an insert names a row that does not exist.
const sqlstateForeignKeyViolation = "23503"

// CreateConnection inserts c and writes ev in the same transaction. The
// foreign key finds the provider (and holds it against a concurrent
// DeleteProvider until the commit); its absence is store.ErrNotFound.
func (s *Store) CreateConnection(ctx context.Context, c *store.Connection, ev *store.AuditEvent) error {
	if err := store.CheckConnection(c); err != nil {
		return mapErr("create connection", err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO connections (`+connCols+`) VALUES ($1, $2, $3, $4, $5, $6,
			$7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`, connArgs(c)...); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == sqlstateForeignKeyViolation {
		return fmt.Errorf("postgres: create connection: provider %q: %w", c.ProviderID, store.ErrNotFound)
	}
	return mapErr("create connection", err)
}

// GetConnection returns the connection or store.ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, tenantID, id string) (*store.Connection, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connCols+` FROM connections
		WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr("get connection", err)
	}
	return c, nil
}

// ListConnections returns the connections f selects, ordered by id.
func (s *Store) ListConnections(ctx context.Context, f store.ConnectionFilter) ([]*store.Connection, error) {
	if f.TenantID == "" {
		return nil, mapErr("list connections", fmt.Errorf("tenant is required: %w", store.ErrInvalid))
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where = append(where, "tenant_id = "+arg(f.TenantID))
	if f.ProviderID != "" {
		where = append(where, "provider_id = "+arg(f.ProviderID))
	}
	if f.OwnerKind != "" {
		where = append(where, "owner_kind = "+arg(f.OwnerKind))
	}
	if f.OwnerID != "" {
		where = append(where, "owner_id = "+arg(f.OwnerID))
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status = ANY("+arg(f.Statuses)+")")
	}
	if f.NotKEK != "" {
		where = append(where, "kek_id <> "+arg(f.NotKEK))
	}
	expires, refreshed := "", ""
	if !f.ExpiresBefore.IsZero() {
		expires = "(expires_at IS NOT NULL AND expires_at < " + arg(f.ExpiresBefore) + ")"
	}
	if !f.RefreshedBefore.IsZero() {
		refreshed = "coalesce(last_refreshed_at, created_at) < " + arg(f.RefreshedBefore)
	}
	switch {
	case expires != "" && refreshed != "":
		where = append(where, "("+expires+" OR "+refreshed+")")
	case expires != "":
		where = append(where, expires)
	case refreshed != "":
		where = append(where, refreshed)
	}
	if f.After != "" {
		where = append(where, "id > "+arg(f.After))
	}
	q := `SELECT ` + connCols + ` FROM connections WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id`
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr("list connections", err)
	}
	defer rows.Close()
	var out []*store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, mapErr("list connections", err)
		}
		out = append(out, c)
	}
	return out, mapErr("list connections", rows.Err())
}

// UpdateConnection implements store.Store: SELECT … FOR UPDATE holds the
// row until the commit, so a concurrent update, on this replica or
// another, reads the connection only after this one is stored.
func (s *Store) UpdateConnection(ctx context.Context, tenantID, id string, update func(*store.Connection) error,
	ev *store.AuditEvent) (*store.Connection, error) {
	var out *store.Connection
	var updateErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := scanConnection(tx.QueryRow(ctx, `SELECT `+connCols+` FROM connections
			WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenantID, id))
		if err != nil {
			return err
		}
		if err := store.ApplyConnectionUpdate(c, update); err != nil {
			updateErr = err
			return err
		}
		// The key, the owner and created_at (args 2–4, 20) are not stored;
		// RETURNING hands back the connection as stored (UTC, microseconds).
		args := connArgs(c)
		args = append(append(args[:2:2], args[5:20]...), args[21])
		out, err = scanConnection(tx.QueryRow(ctx, `UPDATE connections SET label = $3, status = $4,
			scopes = $5, data_key = $6, kek_id = $7, secret = $8, previous_secret = $9,
			previous_until = $10, expires_at = $11, last_refreshed_at = $12, last_used_at = $13,
			refresh_holder = $14, refresh_lease_until = $15, failures = $16, next_attempt_at = $17,
			updated_at = $18
			WHERE tenant_id = $1 AND id = $2
			RETURNING `+connCols, args...))
		if err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	})
	if updateErr != nil {
		return nil, updateErr
	}
	if err != nil {
		return nil, mapErr("update connection", err)
	}
	return out, nil
}

// AcquireRefreshLease implements store.Store with one conditional UPDATE:
// concurrent callers queue on the row lock and each re-checks the
// condition against the row the one before it left, so one wins. The
// connection a loser is handed is read afterwards (a fresh snapshot).
func (s *Store) AcquireRefreshLease(ctx context.Context, tenantID, id, holder string, now, until time.Time) (*store.Connection, error) {
	if holder == "" {
		return nil, mapErr("acquire refresh lease", fmt.Errorf("empty holder: %w", store.ErrInvalid))
	}
	c, err := scanConnection(s.pool.QueryRow(ctx, `UPDATE connections
		SET refresh_holder = $3, refresh_lease_until = $4
		WHERE tenant_id = $1 AND id = $2
		  AND (refresh_holder = '' OR refresh_lease_until IS NULL OR refresh_lease_until <= $5 OR refresh_holder = $3)
		RETURNING `+connCols, tenantID, id, holder, until, now))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, mapErr("acquire refresh lease", err)
	}
	c, err = s.GetConnection(ctx, tenantID, id)
	if err != nil {
		return nil, mapErr("acquire refresh lease", err)
	}
	return c, fmt.Errorf("postgres: acquire refresh lease: held by another until %s: %w",
		c.RefreshLeaseUntil.Format(time.RFC3339Nano), store.ErrConflict)
}

// TouchConnection records a use and writes ev in the same transaction.
func (s *Store) TouchConnection(ctx context.Context, tenantID, id string, at time.Time, ev *store.AuditEvent) error {
	return mapErr("touch connection", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE connections SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2`,
			tenantID, id, nullTime(at))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("touch connection")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// DeleteConnection removes the connection and writes ev in the same
// transaction.
func (s *Store) DeleteConnection(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	return mapErr("delete connection", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM connections WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete connection")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// ---- signing keys: KEK rotation ---------------------------------------------------

// ResealSigningKey replaces the key's ciphertext if it is still from: one
// conditional UPDATE; only when it changed nothing is the key looked up,
// to tell an unknown kid from a lost race.
func (s *Store) ResealSigningKey(ctx context.Context, kid string, from, to []byte) error {
	if len(from) == 0 || len(to) == 0 {
		return mapErr("reseal signing key", fmt.Errorf("empty ciphertext: %w", store.ErrInvalid))
	}
	tag, err := s.pool.Exec(ctx, `UPDATE signing_keys SET private_enc = $3 WHERE kid = $1 AND private_enc = $2`, kid, from, to)
	if err != nil {
		return mapErr("reseal signing key", err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM signing_keys WHERE kid = $1)`, kid).Scan(&exists); err != nil {
		return mapErr("reseal signing key", err)
	}
	if !exists {
		return notFound("reseal signing key")
	}
	return fmt.Errorf("postgres: reseal signing key: ciphertext changed: %w", store.ErrConflict)
}

// ---- resource providers --------------------------------------------------------------

// providerLink is the stored form of a store.ResourceProvider.
type providerLink struct {
	Provider string              `json:"provider"`
	Scopes   map[string][]string `json:"scopes,omitempty"`
}

// providersJSON encodes a resource's providers for the jsonb column; none
// is "[]".
func providersJSON(ps []store.ResourceProvider) ([]byte, error) {
	links := make([]providerLink, len(ps))
	for i, p := range ps {
		links[i] = providerLink{p.ProviderID, p.Scopes}
	}
	b, err := json.Marshal(links)
	if err != nil {
		return nil, fmt.Errorf("encode resource providers: %w", err)
	}
	return b, nil
}

// scanProviders decodes the jsonb column; none is nil.
func scanProviders(b []byte) ([]store.ResourceProvider, error) {
	var links []providerLink
	if len(b) > 0 {
		if err := json.Unmarshal(b, &links); err != nil {
			return nil, fmt.Errorf("decode resource providers: %w", err)
		}
	}
	if len(links) == 0 {
		return nil, nil
	}
	out := make([]store.ResourceProvider, len(links))
	for i, l := range links {
		out[i] = store.ResourceProvider{ProviderID: l.Provider, Scopes: l.Scopes}
	}
	return out, nil
}
