package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// resourceSelect reads resources with their scopes aggregated in position
// order, so a resource is read in one statement.
const resourceSelect = `SELECT r.tenant_id, r.id, r.uri, r.name, r.access_token_ttl_ns,
	r.consent_max_ttl_ns, r.consent_default_ttl_ns, r.tags, r.client_id, r.providers, r.created_at, r.user_claims,
	(SELECT jsonb_agg(jsonb_build_object('n', s.name, 'd', s.description, 's', s.sensitive) ORDER BY s.position)
	   FROM resource_scopes s WHERE s.tenant_id = r.tenant_id AND s.resource_uri = r.uri)
	FROM resources r`

type scopeJSON struct {
	Name        string `json:"n"`
	Description string `json:"d"`
	Sensitive   bool   `json:"s"`
}

func scanResource(row pgx.Row) (*store.Resource, error) {
	var r store.Resource
	var ttl, maxTTL, defTTL int64
	var scopes, providers, claims []byte
	if err := row.Scan(&r.TenantID, &r.ID, &r.URI, &r.Name, &ttl, &maxTTL, &defTTL, &r.Tags, &r.ClientID, &providers,
		&r.CreatedAt, &claims, &scopes); err != nil {
		return nil, err
	}
	uc, err := scanStringMap(claims)
	if err != nil {
		return nil, fmt.Errorf("decode user claims: %w", err)
	}
	r.UserClaims = uc
	ps, err := scanProviders(providers)
	if err != nil {
		return nil, err
	}
	r.Providers = ps
	r.AccessTokenTTL, r.ConsentMaxTTL, r.ConsentDefaultTTL = time.Duration(ttl), time.Duration(maxTTL), time.Duration(defTTL)
	r.CreatedAt = utc(r.CreatedAt)
	if scopes != nil {
		var ss []scopeJSON
		if err := json.Unmarshal(scopes, &ss); err != nil {
			return nil, fmt.Errorf("decode scopes: %w", err)
		}
		r.Scopes = make([]store.Scope, len(ss))
		for i, s := range ss {
			r.Scopes[i] = store.Scope{Name: s.Name, Description: s.Description, Sensitive: s.Sensitive}
		}
	}
	return &r, nil
}

// insertScopes writes r's scopes; a scope named twice is store.ErrConflict.
func insertScopes(ctx context.Context, tx pgx.Tx, r *store.Resource) error {
	if len(r.Scopes) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for i, sc := range r.Scopes {
		b.Queue(`INSERT INTO resource_scopes (tenant_id, resource_uri, name, position, description, sensitive)
			VALUES ($1, $2, $3, $4, $5, $6)`, r.TenantID, r.URI, sc.Name, i, sc.Description, sc.Sensitive)
	}
	return tx.SendBatch(ctx, b).Close()
}

// CreateResource inserts r and its scopes and writes ev (nil: none) in the
// same transaction; a duplicate URI or id in the tenant is store.ErrConflict.
func (s *Store) CreateResource(ctx context.Context, r *store.Resource, ev *store.AuditEvent) error {
	if err := store.CheckUserClaims(r.UserClaims); err != nil {
		return mapErr("create resource", err)
	}
	providers, err := providersJSON(r.Providers)
	if err != nil {
		return mapErr("create resource", err)
	}
	return mapErr("create resource", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO resources (tenant_id, id, uri, name, access_token_ttl_ns,
			consent_max_ttl_ns, consent_default_ttl_ns, tags, client_id, providers, created_at, user_claims)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			r.TenantID, r.ID, r.URI, r.Name, int64(r.AccessTokenTTL), int64(r.ConsentMaxTTL),
			int64(r.ConsentDefaultTTL), r.Tags, r.ClientID, providers, r.CreatedAt, stringMapJSON(r.UserClaims)); err != nil {
			return err
		}
		if err := insertScopes(ctx, tx, r); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// GetResource finds a resource by its canonical URI.
func (s *Store) GetResource(ctx context.Context, tenantID, uri string) (*store.Resource, error) {
	r, err := scanResource(s.pool.QueryRow(ctx, resourceSelect+` WHERE r.tenant_id = $1 AND r.uri = $2`, tenantID, uri))
	if err != nil {
		return nil, mapErr("get resource", err)
	}
	return r, nil
}

// ListResources returns the tenant's resources ordered by URI.
func (s *Store) ListResources(ctx context.Context, tenantID string) ([]*store.Resource, error) {
	rows, err := s.pool.Query(ctx, resourceSelect+` WHERE r.tenant_id = $1 ORDER BY r.uri`, tenantID)
	if err != nil {
		return nil, mapErr("list resources", err)
	}
	defer rows.Close()
	var out []*store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, mapErr("list resources", err)
		}
		out = append(out, r)
	}
	return out, mapErr("list resources", rows.Err())
}

// UpdateResource replaces the resource's name, TTLs, tags, linked
// client, scopes and providers and writes ev (nil: none) in the same
// transaction; an unknown resource is store.ErrNotFound.
func (s *Store) UpdateResource(ctx context.Context, r *store.Resource, ev *store.AuditEvent) error {
	if err := store.CheckUserClaims(r.UserClaims); err != nil {
		return mapErr("update resource", err)
	}
	providers, err := providersJSON(r.Providers)
	if err != nil {
		return mapErr("update resource", err)
	}
	return mapErr("update resource", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE resources SET name = $3, access_token_ttl_ns = $4,
			consent_max_ttl_ns = $5, consent_default_ttl_ns = $6, tags = $7, client_id = $8, providers = $9, user_claims = $10
			WHERE tenant_id = $1 AND uri = $2`,
			r.TenantID, r.URI, r.Name, int64(r.AccessTokenTTL), int64(r.ConsentMaxTTL),
			int64(r.ConsentDefaultTTL), r.Tags, r.ClientID, providers, stringMapJSON(r.UserClaims))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("update resource")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM resource_scopes WHERE tenant_id = $1 AND resource_uri = $2`, r.TenantID, r.URI); err != nil {
			return err
		}
		if err := insertScopes(ctx, tx, r); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// DeleteResource removes the resource and its scopes and writes ev (nil:
// none) in the same transaction; an unknown resource is store.ErrNotFound.
func (s *Store) DeleteResource(ctx context.Context, tenantID, uri string, ev *store.AuditEvent) error {
	return mapErr("delete resource", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM resources WHERE tenant_id = $1 AND uri = $2`, tenantID, uri)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete resource")
		}
		return insertEvent(ctx, tx, ev)
	}))
}
