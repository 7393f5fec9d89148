package sqlite

import (
	"context"
	"database/sql"

	"github.com/agentid/agentid/internal/store"
)

const (
	qInsertResource = `INSERT INTO resources
	(tenant_id, id, uri, name, access_token_ttl_ns, consent_max_ttl_ns, consent_default_ttl_ns, tags, client_id,
	providers, created_at, user_claims)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qInsertScope = `INSERT INTO resource_scopes (tenant_id, resource_uri, position, name, description, sensitive)
	VALUES (?, ?, ?, ?, ?, ?)`
	qUpdateResource = `UPDATE resources SET name = ?, access_token_ttl_ns = ?, consent_max_ttl_ns = ?,
	consent_default_ttl_ns = ?, tags = ?, client_id = ?, providers = ?, user_claims = ? WHERE tenant_id = ? AND uri = ?`
	qDeleteScopes   = `DELETE FROM resource_scopes WHERE tenant_id = ? AND resource_uri = ?`
	qDeleteResource = `DELETE FROM resources WHERE tenant_id = ? AND uri = ?`
	// One statement reads a resource with its scopes: one snapshot, no
	// second round trip.
	qSelectResources = `SELECT r.tenant_id, r.id, r.uri, r.name, r.access_token_ttl_ns, r.consent_max_ttl_ns,
	r.consent_default_ttl_ns, r.tags, r.client_id, r.providers, r.created_at, r.user_claims, s.name, s.description, s.sensitive
	FROM resources r LEFT JOIN resource_scopes s ON s.tenant_id = r.tenant_id AND s.resource_uri = r.uri`
	qGetResource   = qSelectResources + ` WHERE r.tenant_id = ? AND r.uri = ? ORDER BY s.position`
	qListResources = qSelectResources + ` WHERE r.tenant_id = ? ORDER BY r.uri, s.position`
)

func (tx *wtx) insertScopes(tenantID, uri string, scopes []store.Scope) error {
	for i, sc := range scopes {
		if _, err := tx.exec(qInsertScope, tenantID, uri, i, sc.Name, sc.Description, sc.Sensitive); err != nil {
			return err
		}
	}
	return nil
}

// CreateResource implements store.Store.
func (s *Store) CreateResource(ctx context.Context, r *store.Resource, ev *store.AuditEvent) error {
	if err := store.CheckUserClaims(r.UserClaims); err != nil {
		return wrap("create resource", err)
	}
	providers, err := providersText(r.Providers)
	if err != nil {
		return wrap("create resource", err)
	}
	evRow := prepAudit(ev)
	return wrap("create resource", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertResource, r.TenantID, r.ID, r.URI, r.Name, int64(r.AccessTokenTTL),
			int64(r.ConsentMaxTTL), int64(r.ConsentDefaultTTL), listText(r.Tags), r.ClientID, providers,
			tv(r.CreatedAt), mapText(r.UserClaims)); err != nil {
			return err
		}
		if err := tx.insertScopes(r.TenantID, r.URI, r.Scopes); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// scanResources reads rows of qSelectResources, one row per scope.
func scanResources(rows *sql.Rows) ([]*store.Resource, error) {
	defer rows.Close()
	var out []*store.Resource
	var cur *store.Resource
	for rows.Next() {
		var r store.Resource
		var name, desc sql.NullString
		var sensitive sql.NullBool
		if err := rows.Scan(&r.TenantID, &r.ID, &r.URI, &r.Name, durCol{&r.AccessTokenTTL}, durCol{&r.ConsentMaxTTL},
			durCol{&r.ConsentDefaultTTL}, listCol{&r.Tags}, &r.ClientID, providersCol{&r.Providers}, timeCol{&r.CreatedAt}, mapCol{&r.UserClaims}, &name, &desc, &sensitive); err != nil {
			return nil, err
		}
		if cur == nil || cur.URI != r.URI {
			cur = &r
			out = append(out, cur)
		}
		if name.Valid {
			cur.Scopes = append(cur.Scopes, store.Scope{Name: name.String, Description: desc.String, Sensitive: sensitive.Bool})
		}
	}
	return out, rows.Err()
}

// GetResource implements store.Store.
func (s *Store) GetResource(ctx context.Context, tenantID, uri string) (*store.Resource, error) {
	rows, err := s.queryShort(ctx, qGetResource, tenantID, uri)
	if err != nil {
		return nil, wrap("get resource", err)
	}
	list, err := scanResources(rows)
	if err != nil {
		return nil, wrap("get resource", err)
	}
	if len(list) == 0 {
		return nil, wrap("get resource", store.ErrNotFound)
	}
	return list[0], nil
}

// ListResources implements store.Store.
func (s *Store) ListResources(ctx context.Context, tenantID string) ([]*store.Resource, error) {
	rows, err := s.query(ctx, qListResources, tenantID)
	if err != nil {
		return nil, wrap("list resources", err)
	}
	list, err := scanResources(rows)
	return list, wrap("list resources", err)
}

// UpdateResource implements store.Store: it replaces name, lifetimes, tags,
// linked client, scopes and providers of the resource with r's tenant and
// URI.
func (s *Store) UpdateResource(ctx context.Context, r *store.Resource, ev *store.AuditEvent) error {
	if err := store.CheckUserClaims(r.UserClaims); err != nil {
		return wrap("update resource", err)
	}
	providers, err := providersText(r.Providers)
	if err != nil {
		return wrap("update resource", err)
	}
	evRow := prepAudit(ev)
	return wrap("update resource", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUpdateResource, r.Name, int64(r.AccessTokenTTL), int64(r.ConsentMaxTTL),
			int64(r.ConsentDefaultTTL), listText(r.Tags), r.ClientID, providers, mapText(r.UserClaims), r.TenantID, r.URI)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.exec(qDeleteScopes, r.TenantID, r.URI); err != nil {
			return err
		}
		if err := tx.insertScopes(r.TenantID, r.URI, r.Scopes); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// DeleteResource implements store.Store. Its scopes go with it (ON DELETE
// CASCADE).
func (s *Store) DeleteResource(ctx context.Context, tenantID, uri string, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("delete resource", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qDeleteResource, tenantID, uri)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}
