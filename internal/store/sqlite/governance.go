package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const (
	// Duplicate candidates of a dynamic registration (index clients_software).
	qClientsBySoftware = `SELECT ` + clientCols + ` FROM clients
	WHERE tenant_id = ? AND software_id = ? AND registration_method = 'dcr' AND NOT disabled
	ORDER BY created_at DESC, id DESC LIMIT 100`
	qClientsByName = `SELECT ` + clientCols + ` FROM clients
	WHERE tenant_id = ? AND software_id = '' AND name = ? AND registration_method = 'dcr' AND NOT disabled
	ORDER BY created_at DESC, id DESC LIMIT 100`

	// qPrunable selects the clients PruneClients removes (never a
	// deprovisioned client, nor a disabled metadata-document client,
	// whose removal would let its URL back in). Its parameters
	// are the tenant, the methods (a JSON list), UnusedSince, Now three
	// times and the limit. A refresh token is live while neither rotated nor
	// revoked and unexpired, an access token while not revoked and
	// unexpired, a consent while not revoked and not expired (expiry is
	// exclusive: live while now is before it).
	qPrunable = `SELECT ` + clientCols + ` FROM clients c
	WHERE c.tenant_id = ?1 AND c.registration_method IN (SELECT value FROM json_each(?2))
	AND coalesce(c.last_used_at, c.created_at) < ?3
	AND c.status <> 'deprovisioned' AND NOT (c.disabled AND c.registration_method = 'cimd')
	AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.tenant_id = c.tenant_id AND r.client_id = c.id
		AND r.rotated_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > ?4)
	AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.tenant_id = c.tenant_id AND a.client_id = c.id
		AND a.revoked_at IS NULL AND a.expires_at > ?4)
	AND NOT EXISTS (SELECT 1 FROM consents g WHERE g.tenant_id = c.tenant_id AND g.client_id = c.id
		AND g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > ?4))
	ORDER BY coalesce(c.last_used_at, c.created_at), c.id LIMIT ?5`

	qPutDomain = `INSERT INTO domains (tenant_id, pattern, trust, allow_text_plain, created_at, updated_at)
	VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant_id, pattern) DO UPDATE SET trust = excluded.trust,
	allow_text_plain = excluded.allow_text_plain, updated_at = excluded.updated_at`
	qListDomains  = `SELECT tenant_id, pattern, trust, allow_text_plain, created_at, updated_at FROM domains WHERE tenant_id = ? ORDER BY pattern`
	qDeleteDomain = `DELETE FROM domains WHERE tenant_id = ? AND pattern = ?`

	// One installation's tokens: the families (grant ids) of the user's
	// tokens of the client with this redirect URI that are not revoked yet.
	qInstallationGrants = `SELECT grant_id FROM refresh_tokens
	WHERE tenant_id = ?1 AND user_id = ?2 AND client_id = ?3 AND redirect_uri = ?4 AND revoked_at IS NULL AND grant_id <> ''
	UNION SELECT grant_id FROM access_tokens
	WHERE tenant_id = ?1 AND user_id = ?2 AND user_id <> '' AND client_id = ?3 AND redirect_uri = ?4 AND revoked_at IS NULL AND grant_id <> ''`
	qRevokeInstallationRefresh = `UPDATE refresh_tokens SET revoked_at = ?5
	WHERE tenant_id = ?1 AND user_id = ?2 AND client_id = ?3 AND redirect_uri = ?4 AND revoked_at IS NULL`
	qRevokeInstallationAccess = `UPDATE access_tokens SET revoked_at = ?5
	WHERE tenant_id = ?1 AND user_id = ?2 AND user_id <> '' AND client_id = ?3 AND redirect_uri = ?4 AND revoked_at IS NULL`
)

// defaultPruneLimit bounds one PruneClients call when the request does not.
const defaultPruneLimit = 1000

// ClientsBySoftware implements store.Store.
func (s *Store) ClientsBySoftware(ctx context.Context, tenantID, softwareID, name string) ([]*store.Client, error) {
	q, key := qClientsBySoftware, softwareID
	if softwareID == "" {
		q, key = qClientsByName, name
	}
	rows, err := s.queryShort(ctx, q, tenantID, key)
	if err != nil {
		return nil, wrap("clients by software", err)
	}
	defer rows.Close()
	var out []*store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap("clients by software", err)
		}
		out = append(out, c)
	}
	return out, wrap("clients by software", rows.Err())
}

// PruneClients implements store.Store. The writer is the only one: the
// selection and the deletion run in one of its transactions, so no token
// or consent lands between them, and an issuance queued behind it finds
// the client gone.
func (s *Store) PruneClients(ctx context.Context, req store.PruneRequest, ev func(*store.Client) *store.AuditEvent) ([]*store.Client, error) {
	if len(req.Methods) == 0 {
		return nil, nil
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultPruneLimit
	}
	args := []any{req.TenantID, listText(req.Methods), req.UnusedSince.UnixMicro(), req.Now.UnixMicro(), limit}
	if req.DryRun {
		out, err := s.prunable(ctx, args)
		return out, wrap("prune clients", err)
	}
	at := tv(req.Now)
	var out []*store.Client
	err := s.w.do(ctx, func(tx *wtx) error {
		out = nil // a batch may run this again
		rows, err := tx.query(qPrunable, args...)
		if err != nil {
			return err
		}
		var found []*store.Client
		for rows.Next() {
			c, err := scanClient(rows)
			if err != nil {
				rows.Close()
				return err
			}
			found = append(found, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range found {
			if _, err := tx.exec(qDeleteClient, c.TenantID, c.ID); err != nil {
				return err
			}
			// What is left is rotated, revoked or expired; revoked as by
			// DeleteClient, so nothing of the client outlives it.
			if _, err := tx.exec(qRevokeClientRefresh, at, c.TenantID, c.ID); err != nil {
				return err
			}
			if _, err := tx.exec(qRevokeClientAccess, at, c.TenantID, c.ID); err != nil {
				return err
			}
			e, err := pruneEvent(ev, c)
			if err != nil {
				return err
			}
			if err := tx.audit(prepAudit(e)); err != nil {
				return err
			}
		}
		out = found
		return nil
	})
	if err != nil {
		return nil, wrap("prune clients", err)
	}
	return out, nil
}

// pruneEvent is ev(c) (nil ev: none), run on the writer: a panic of ev
// becomes the error of the prune instead of ending the process.
func pruneEvent(ev func(*store.Client) *store.AuditEvent, c *store.Client) (e *store.AuditEvent, err error) {
	if ev == nil {
		return nil, nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("prune event panicked: %v", p)
		}
	}()
	return ev(c), nil
}

// prunable runs qPrunable on the read pool (a dry run).
func (s *Store) prunable(ctx context.Context, args []any) ([]*store.Client, error) {
	rows, err := s.query(ctx, qPrunable, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// checkDomain refuses a domain the store cannot hold.
func checkDomain(d *store.Domain) error {
	if d.TenantID == "" || d.Pattern == "" || strings.ToLower(d.Pattern) != d.Pattern {
		return fmt.Errorf("domain %q: %w", d.Pattern, store.ErrInvalid)
	}
	switch d.Trust {
	case store.DomainTrusted, store.DomainAllowed, store.DomainBlocked:
		return nil
	}
	return fmt.Errorf("domain trust %q: %w", d.Trust, store.ErrInvalid)
}

// PutDomain implements store.Store. A replaced domain keeps its CreatedAt.
func (s *Store) PutDomain(ctx context.Context, d *store.Domain, ev *store.AuditEvent) error {
	if err := checkDomain(d); err != nil {
		return wrap("put domain", err)
	}
	evRow := prepAudit(ev)
	return wrap("put domain", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qPutDomain, d.TenantID, d.Pattern, d.Trust, d.AllowTextPlain,
			tv(d.CreatedAt), tv(d.UpdatedAt)); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// ListDomains implements store.Store.
func (s *Store) ListDomains(ctx context.Context, tenantID string) ([]*store.Domain, error) {
	rows, err := s.queryShort(ctx, qListDomains, tenantID)
	if err != nil {
		return nil, wrap("list domains", err)
	}
	defer rows.Close()
	var out []*store.Domain
	for rows.Next() {
		d := new(store.Domain)
		if err := rows.Scan(&d.TenantID, &d.Pattern, &d.Trust, &d.AllowTextPlain,
			timeCol{&d.CreatedAt}, timeCol{&d.UpdatedAt}); err != nil {
			return nil, wrap("list domains", err)
		}
		out = append(out, d)
	}
	return out, wrap("list domains", rows.Err())
}

// DeleteDomain implements store.Store.
func (s *Store) DeleteDomain(ctx context.Context, tenantID, pattern string, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("delete domain", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qDeleteDomain, tenantID, pattern)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// RevokeInstallation implements store.Store. An empty user or redirect URI
// is store.ErrInvalid: it would reach tokens of no installation (client
// credentials, other grants).
func (s *Store) RevokeInstallation(ctx context.Context, tenantID, userID, clientID, redirectURI string, now time.Time, ev *store.AuditEvent) (int, error) {
	if userID == "" || clientID == "" || redirectURI == "" {
		return 0, wrap("revoke installation", store.ErrInvalid)
	}
	evRow := prepAudit(ev)
	var families int
	err := s.w.do(ctx, func(tx *wtx) error {
		families = 0 // a batch may run this again
		rows, err := tx.query(qInstallationGrants, tenantID, userID, clientID, redirectURI)
		if err != nil {
			return err
		}
		var grants []string
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				rows.Close()
				return err
			}
			grants = append(grants, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// Whole families: a member the issuer did not label still goes.
		for _, g := range grants {
			if _, err := tx.revokeGrant(tenantID, g, now); err != nil {
				return err
			}
		}
		var n int64
		for _, q := range []string{qRevokeInstallationRefresh, qRevokeInstallationAccess} {
			m, err := tx.execN(q, tenantID, userID, clientID, redirectURI, now.UnixMicro())
			if err != nil {
				return err
			}
			n += m
		}
		families = len(grants)
		if families == 0 && n == 0 {
			return nil
		}
		return tx.audit(evRow)
	})
	if err != nil {
		return 0, wrap("revoke installation", err)
	}
	return families, nil
}
