package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- providers ---------------------------------------------------------------

const (
	providerCols = `tenant_id, id, name, kind, issuer, authorization_endpoint, token_endpoint,
	revocation_endpoint, client_id, client_secret, token_auth_method, scopes, disable_pkce, auth_params,
	key_header, key_query, key_format, key_hint, key_overlap_ns, disabled, created_at, updated_at`
	qInsertProvider = `INSERT INTO providers (` + providerCols + `) VALUES
	(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetProvider   = `SELECT ` + providerCols + ` FROM providers WHERE tenant_id = ? AND id = ?`
	qListProviders = `SELECT ` + providerCols + ` FROM providers WHERE tenant_id = ? ORDER BY id`
	// Everything but the key, the kind and the creation time.
	qUpdateProvider = `UPDATE providers SET name = ?, issuer = ?, authorization_endpoint = ?,
	token_endpoint = ?, revocation_endpoint = ?, client_id = ?, client_secret = ?, token_auth_method = ?,
	scopes = ?, disable_pkce = ?, auth_params = ?, key_header = ?, key_query = ?, key_format = ?,
	key_hint = ?, key_overlap_ns = ?, disabled = ?, updated_at = ?
	WHERE tenant_id = ? AND id = ?`
	qDeleteProviderConnections = `DELETE FROM connections WHERE tenant_id = ? AND provider_id = ?`
	qDeleteProvider            = `DELETE FROM providers WHERE tenant_id = ? AND id = ?`
	qProviderExists            = `SELECT count(*) FROM providers WHERE tenant_id = ? AND id = ?`
)

// providerValues are p's columns from name to updated_at without
// created_at, in qUpdateProvider order.
func providerValues(p *store.Provider) []any {
	return []any{p.Name, p.Issuer, p.AuthorizationEndpoint, p.TokenEndpoint, p.RevocationEndpoint,
		p.ClientID, bv(p.ClientSecret), p.TokenAuthMethod, listText(p.Scopes), p.DisablePKCE,
		mapText(p.AuthParams), p.KeyHeader, p.KeyQuery, p.KeyFormat, p.KeyHint, int64(p.KeyOverlap),
		p.Disabled, tv(p.UpdatedAt)}
}

func scanProvider(r scanner) (*store.Provider, error) {
	p := new(store.Provider)
	if err := r.Scan(&p.TenantID, &p.ID, &p.Name, &p.Kind, &p.Issuer, &p.AuthorizationEndpoint,
		&p.TokenEndpoint, &p.RevocationEndpoint, &p.ClientID, &p.ClientSecret, &p.TokenAuthMethod,
		listCol{&p.Scopes}, &p.DisablePKCE, mapCol{&p.AuthParams}, &p.KeyHeader, &p.KeyQuery,
		&p.KeyFormat, &p.KeyHint, durCol{&p.KeyOverlap}, &p.Disabled, timeCol{&p.CreatedAt},
		timeCol{&p.UpdatedAt}); err != nil {
		return nil, err
	}
	return p, nil
}

// CreateProvider implements store.Store.
func (s *Store) CreateProvider(ctx context.Context, p *store.Provider, ev *store.AuditEvent) error {
	if err := store.CheckProvider(p); err != nil {
		return wrap("create provider", err)
	}
	v := providerValues(p)
	// INSERT order: kind after name, created_at before updated_at.
	args := []any{p.TenantID, p.ID, v[0], p.Kind}
	args = append(args, v[1:len(v)-1]...)
	args = append(args, tv(p.CreatedAt), tv(p.UpdatedAt))
	evRow := prepAudit(ev)
	return wrap("create provider", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertProvider, args...); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// GetProvider implements store.Store.
func (s *Store) GetProvider(ctx context.Context, tenantID, id string) (*store.Provider, error) {
	row, err := s.queryRow(ctx, qGetProvider, tenantID, id)
	if err != nil {
		return nil, wrap("get provider", err)
	}
	p, err := scanProvider(row)
	if err != nil {
		return nil, wrap("get provider", err)
	}
	return p, nil
}

// ListProviders implements store.Store.
func (s *Store) ListProviders(ctx context.Context, tenantID string) ([]*store.Provider, error) {
	rows, err := s.queryShort(ctx, qListProviders, tenantID)
	if err != nil {
		return nil, wrap("list providers", err)
	}
	defer rows.Close()
	var out []*store.Provider
	for rows.Next() {
		p, err := scanProvider(rows)
		if err != nil {
			return nil, wrap("list providers", err)
		}
		out = append(out, p)
	}
	return out, wrap("list providers", rows.Err())
}

// UpdateProvider implements store.Store.
func (s *Store) UpdateProvider(ctx context.Context, p *store.Provider, ev *store.AuditEvent) error {
	if p.KeyOverlap < 0 {
		return wrap("update provider", fmt.Errorf("provider %q: negative key overlap: %w", p.ID, store.ErrInvalid))
	}
	args := append(providerValues(p), p.TenantID, p.ID)
	evRow := prepAudit(ev)
	return wrap("update provider", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUpdateProvider, args...)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// DeleteProvider implements store.Store. The connections go first, in the
// same transaction (the foreign key's ON DELETE CASCADE would take them
// too; deleting them by name keeps the rule visible here).
func (s *Store) DeleteProvider(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("delete provider", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qDeleteProviderConnections, tenantID, id); err != nil {
			return err
		}
		n, err := tx.execN(qDeleteProvider, tenantID, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// ---- connections ---------------------------------------------------------------

const (
	connCols = `tenant_id, id, provider_id, owner_kind, owner_id, label, status, scopes, data_key,
	kek_id, secret, previous_secret, previous_until, expires_at, last_refreshed_at, last_used_at,
	refresh_holder, refresh_lease_until, failures, next_attempt_at, created_at, updated_at`
	qInsertConnection = `INSERT INTO connections (` + connCols + `) VALUES
	(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetConnection = `SELECT ` + connCols + ` FROM connections WHERE tenant_id = ? AND id = ?`
	// Everything but the key, the owner and the creation time.
	qUpdateConnection = `UPDATE connections SET label = ?, status = ?, scopes = ?, data_key = ?,
	kek_id = ?, secret = ?, previous_secret = ?, previous_until = ?, expires_at = ?,
	last_refreshed_at = ?, last_used_at = ?, refresh_holder = ?, refresh_lease_until = ?,
	failures = ?, next_attempt_at = ?, updated_at = ?
	WHERE tenant_id = ? AND id = ? RETURNING ` + connCols
	// The lease goes to holder when nobody holds it, when it expired at now,
	// or when holder already has it (a renewal): one statement decides.
	qAcquireLease = `UPDATE connections SET refresh_holder = ?1, refresh_lease_until = ?2
	WHERE tenant_id = ?3 AND id = ?4
	  AND (refresh_holder = '' OR refresh_lease_until IS NULL OR refresh_lease_until <= ?5 OR refresh_holder = ?1)
	RETURNING ` + connCols
	qTouchConnection  = `UPDATE connections SET last_used_at = ? WHERE tenant_id = ? AND id = ?`
	qDeleteConnection = `DELETE FROM connections WHERE tenant_id = ? AND id = ?`
)

// connectionValues are c's columns from label to updated_at without
// created_at, in qUpdateConnection order.
func connectionValues(c *store.Connection) []any {
	return []any{c.Label, c.Status, listText(c.Scopes), bv(c.DataKey), c.KEKID, bv(c.Secret),
		bv(c.PreviousSecret), tv(c.PreviousUntil), tv(c.ExpiresAt), tv(c.LastRefreshedAt),
		tv(c.LastUsedAt), c.RefreshHolder, tv(c.RefreshLeaseUntil), c.Failures, tv(c.NextAttemptAt),
		tv(c.UpdatedAt)}
}

func scanConnection(r scanner) (*store.Connection, error) {
	c := new(store.Connection)
	if err := r.Scan(&c.TenantID, &c.ID, &c.ProviderID, &c.OwnerKind, &c.OwnerID, &c.Label, &c.Status,
		listCol{&c.Scopes}, &c.DataKey, &c.KEKID, &c.Secret, &c.PreviousSecret, timeCol{&c.PreviousUntil},
		timeCol{&c.ExpiresAt}, timeCol{&c.LastRefreshedAt}, timeCol{&c.LastUsedAt}, &c.RefreshHolder,
		timeCol{&c.RefreshLeaseUntil}, &c.Failures, timeCol{&c.NextAttemptAt}, timeCol{&c.CreatedAt},
		timeCol{&c.UpdatedAt}); err != nil {
		return nil, err
	}
	return c, nil
}

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c *store.Connection, ev *store.AuditEvent) error {
	if err := store.CheckConnection(c); err != nil {
		return wrap("create connection", err)
	}
	v := connectionValues(c)
	args := []any{c.TenantID, c.ID, c.ProviderID, c.OwnerKind, c.OwnerID}
	args = append(args, v[:len(v)-1]...)
	args = append(args, tv(c.CreatedAt), tv(c.UpdatedAt))
	evRow := prepAudit(ev)
	return wrap("create connection", s.w.do(ctx, func(tx *wtx) error {
		var n int
		if err := tx.queryRow(qProviderExists, c.TenantID, c.ProviderID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("provider %q: %w", c.ProviderID, store.ErrNotFound)
		}
		if _, err := tx.exec(qInsertConnection, args...); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, tenantID, id string) (*store.Connection, error) {
	row, err := s.queryRow(ctx, qGetConnection, tenantID, id)
	if err != nil {
		return nil, wrap("get connection", err)
	}
	c, err := scanConnection(row)
	if err != nil {
		return nil, wrap("get connection", err)
	}
	return c, nil
}

// ListConnections implements store.Store. Statuses travel as one JSON
// array, so each combination of filters is one prepared statement.
func (s *Store) ListConnections(ctx context.Context, f store.ConnectionFilter) ([]*store.Connection, error) {
	if f.TenantID == "" {
		return nil, wrap("list connections", fmt.Errorf("tenant is required: %w", store.ErrInvalid))
	}
	where := []string{"tenant_id = ?"}
	args := []any{f.TenantID}
	add := func(cond string, v ...any) {
		where = append(where, cond)
		args = append(args, v...)
	}
	if f.ProviderID != "" {
		add("provider_id = ?", f.ProviderID)
	}
	if f.OwnerKind != "" {
		add("owner_kind = ?", f.OwnerKind)
	}
	if f.OwnerID != "" {
		add("owner_id = ?", f.OwnerID)
	}
	if len(f.Statuses) > 0 {
		add("status IN (SELECT value FROM json_each(?))", listText(f.Statuses))
	}
	if f.NotKEK != "" {
		add("kek_id <> ?", f.NotKEK)
	}
	switch exp, ref := !f.ExpiresBefore.IsZero(), !f.RefreshedBefore.IsZero(); {
	case exp && ref:
		add("((expires_at IS NOT NULL AND expires_at < ?) OR coalesce(last_refreshed_at, created_at) < ?)",
			f.ExpiresBefore.UnixMicro(), f.RefreshedBefore.UnixMicro())
	case exp:
		add("expires_at IS NOT NULL AND expires_at < ?", f.ExpiresBefore.UnixMicro())
	case ref:
		add("coalesce(last_refreshed_at, created_at) < ?", f.RefreshedBefore.UnixMicro())
	}
	if f.After != "" {
		add("id > ?", f.After)
	}
	q := "SELECT " + connCols + " FROM connections WHERE " + strings.Join(where, " AND ") + " ORDER BY id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, wrap("list connections", err)
	}
	defer rows.Close()
	var out []*store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, wrap("list connections", err)
		}
		out = append(out, c)
	}
	return out, wrap("list connections", rows.Err())
}

// UpdateConnection implements store.Store. The writer is the only writer
// of the file, so reading the connection inside its transaction holds it
// against every other update.
func (s *Store) UpdateConnection(ctx context.Context, tenantID, id string, update func(*store.Connection) error,
	ev *store.AuditEvent) (*store.Connection, error) {
	var out *store.Connection
	var updateErr error
	err := s.w.do(ctx, func(tx *wtx) error {
		out, updateErr = nil, nil // a batch may run this again
		c, err := scanConnection(tx.queryRow(qGetConnection, tenantID, id))
		if err != nil {
			return err
		}
		if err := store.ApplyConnectionUpdate(c, update); err != nil {
			updateErr = err
			return err
		}
		// RETURNING hands back the connection as stored (UTC, microseconds).
		stored, err := scanConnection(tx.queryRow(qUpdateConnection, append(connectionValues(c), tenantID, id)...))
		if err != nil {
			return err
		}
		if err := tx.audit(prepAudit(ev)); err != nil {
			return err
		}
		out = stored
		return nil
	})
	if updateErr != nil {
		return nil, updateErr
	}
	if err != nil {
		return nil, wrap("update connection", err)
	}
	return out, nil
}

// AcquireRefreshLease implements store.Store. A lease held by another is
// not a failed write (nothing was attempted), so it does not cost the
// writer's batch a rollback: the outcome leaves the transaction as a flag.
func (s *Store) AcquireRefreshLease(ctx context.Context, tenantID, id, holder string, now, until time.Time) (*store.Connection, error) {
	if holder == "" {
		return nil, wrap("acquire refresh lease", fmt.Errorf("empty holder: %w", store.ErrInvalid))
	}
	var out *store.Connection
	var held bool
	err := s.w.do(ctx, func(tx *wtx) error {
		out, held = nil, false // a batch may run this again
		c, err := scanConnection(tx.queryRow(qAcquireLease, holder, tv(until), tenantID, id, now.UnixMicro()))
		if err == nil {
			out = c
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Not taken: the connection is unknown or someone else holds it.
		c, err = scanConnection(tx.queryRow(qGetConnection, tenantID, id))
		if err != nil {
			return err
		}
		out, held = c, true
		return nil
	})
	if err != nil {
		return nil, wrap("acquire refresh lease", err)
	}
	if held {
		return out, wrap("acquire refresh lease", fmt.Errorf("held by another until %s: %w",
			out.RefreshLeaseUntil.Format(time.RFC3339Nano), store.ErrConflict))
	}
	return out, nil
}

// TouchConnection implements store.Store.
func (s *Store) TouchConnection(ctx context.Context, tenantID, id string, at time.Time, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("touch connection", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qTouchConnection, tv(at), tenantID, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// DeleteConnection implements store.Store.
func (s *Store) DeleteConnection(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("delete connection", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qDeleteConnection, tenantID, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// ---- signing keys: KEK rotation ---------------------------------------------------

const (
	qResealKey = `UPDATE signing_keys SET private_enc = ? WHERE kid = ? AND private_enc = ?`
	qKeyExists = `SELECT count(*) FROM signing_keys WHERE kid = ?`
)

// ResealSigningKey implements store.Store.
func (s *Store) ResealSigningKey(ctx context.Context, kid string, from, to []byte) error {
	if len(from) == 0 || len(to) == 0 {
		return wrap("reseal signing key", fmt.Errorf("empty ciphertext: %w", store.ErrInvalid))
	}
	return wrap("reseal signing key", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qResealKey, to, kid, from)
		if err != nil || n > 0 {
			return err
		}
		var exists int
		if err := tx.queryRow(qKeyExists, kid).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return store.ErrNotFound
		}
		return store.ErrConflict
	}))
}

// ---- resource providers --------------------------------------------------------------

// providerLink is the stored form of a store.ResourceProvider.
type providerLink struct {
	Provider string              `json:"provider"`
	Scopes   map[string][]string `json:"scopes,omitempty"`
}

// providersText encodes a resource's providers as JSON text; none is "[]".
func providersText(ps []store.ResourceProvider) (string, error) {
	if len(ps) == 0 {
		return "[]", nil
	}
	links := make([]providerLink, len(ps))
	for i, p := range ps {
		links[i] = providerLink{p.ProviderID, p.Scopes}
	}
	b, err := json.Marshal(links)
	if err != nil {
		return "", fmt.Errorf("encode resource providers: %w", err)
	}
	return string(b), nil
}

// providersCol scans JSON text into a resource's providers; none scans as nil.
type providersCol struct{ p *[]store.ResourceProvider }

func (c providersCol) Scan(v any) error {
	b, err := textOf(v)
	if err != nil || b == "" || b == "[]" || b == "null" {
		*c.p = nil
		return err
	}
	var links []providerLink
	if err := json.Unmarshal([]byte(b), &links); err != nil {
		return fmt.Errorf("resource providers column: %w", err)
	}
	out := make([]store.ResourceProvider, len(links))
	for i, l := range links {
		out[i] = store.ResourceProvider{ProviderID: l.Provider, Scopes: l.Scopes}
	}
	*c.p = out
	return nil
}
