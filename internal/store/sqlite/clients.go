package sqlite

import (
	"context"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const clientCols = `tenant_id, id, name, secret_hash, secret_expires_at, redirect_uris, grant_types,
	response_types, token_endpoint_auth_method, application_type, scopes, default_resource, jwks,
	jwks_uri, client_uri, logo_uri, tos_uri, policy_uri, contacts, software_id, software_version,
	registration_method, registration_token_hash, created_ip, tags, owner_user_id, disabled,
	created_at, updated_at, requested_scopes, status, last_used_at, software_statement_issuer, federated_issuer`

const (
	qInsertClient = `INSERT INTO clients (` + clientCols + `) VALUES
	(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qUpdateClient = `UPDATE clients SET name = ?, secret_hash = ?, secret_expires_at = ?, redirect_uris = ?,
	grant_types = ?, response_types = ?, token_endpoint_auth_method = ?, application_type = ?,
	scopes = ?, default_resource = ?, jwks = ?, jwks_uri = ?, client_uri = ?, logo_uri = ?,
	tos_uri = ?, policy_uri = ?, contacts = ?, software_id = ?, software_version = ?,
	registration_method = ?, registration_token_hash = ?, created_ip = ?, tags = ?,
	owner_user_id = ?, disabled = ?, created_at = ?, updated_at = ?, requested_scopes = ?,
	status = ?, last_used_at = ?, software_statement_issuer = ?, federated_issuer = ?
	WHERE tenant_id = ? AND id = ? RETURNING ` + clientCols
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE tenant_id = ? AND id = ?`
	qListClients  = `SELECT ` + clientCols + ` FROM clients WHERE tenant_id = ? ORDER BY id`
	qDeleteClient = `DELETE FROM clients WHERE tenant_id = ? AND id = ?`
	// Revocation keeps the first revocation time.
	qRevokeClientRefresh = `UPDATE refresh_tokens SET revoked_at = ?
	WHERE tenant_id = ? AND client_id = ? AND revoked_at IS NULL`
	qRevokeClientAccess = `UPDATE access_tokens SET revoked_at = ?
	WHERE tenant_id = ? AND client_id = ? AND revoked_at IS NULL`
)

// clientValues are the client's columns after tenant_id and id, in order.
// An unknown status is store.ErrInvalid.
func clientValues(c *store.Client) ([]any, error) {
	status, err := c.StoredStatus()
	if err != nil {
		return nil, err
	}
	return []any{
		c.Name, bv(c.SecretHash), tv(c.SecretExpiresAt), listText(c.RedirectURIs), listText(c.GrantTypes),
		listText(c.ResponseTypes), c.TokenEndpointAuthMethod, c.ApplicationType, listText(c.Scopes),
		c.DefaultResource, c.JWKS, c.JWKSURI, c.ClientURI, c.LogoURI, c.TOSURI, c.PolicyURI,
		listText(c.Contacts), c.SoftwareID, c.SoftwareVersion, c.RegistrationMethod,
		bv(c.RegistrationTokenHash), c.CreatedIP, listText(c.Tags), c.OwnerUserID, c.Disabled,
		tv(c.CreatedAt), tv(c.UpdatedAt), listText(c.RequestedScopes),
		status, tv(c.LastUsedAt), c.SoftwareStatementIssuer, c.FederatedIssuer,
	}, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanClient(r scanner) (*store.Client, error) {
	c := new(store.Client)
	err := r.Scan(&c.TenantID, &c.ID, &c.Name, &c.SecretHash, timeCol{&c.SecretExpiresAt},
		listCol{&c.RedirectURIs}, listCol{&c.GrantTypes}, listCol{&c.ResponseTypes},
		&c.TokenEndpointAuthMethod, &c.ApplicationType, listCol{&c.Scopes}, &c.DefaultResource,
		&c.JWKS, &c.JWKSURI, &c.ClientURI, &c.LogoURI, &c.TOSURI, &c.PolicyURI, listCol{&c.Contacts},
		&c.SoftwareID, &c.SoftwareVersion, &c.RegistrationMethod, &c.RegistrationTokenHash,
		&c.CreatedIP, listCol{&c.Tags}, &c.OwnerUserID, &c.Disabled,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt}, listCol{&c.RequestedScopes},
		&c.Status, timeCol{&c.LastUsedAt}, &c.SoftwareStatementIssuer, &c.FederatedIssuer)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// CreateClient implements store.Store.
func (s *Store) CreateClient(ctx context.Context, c *store.Client, ev *store.AuditEvent) error {
	vals, err := clientValues(c)
	if err != nil {
		return wrap("create client", err)
	}
	args := append([]any{c.TenantID, c.ID}, vals...)
	evRow := prepAudit(ev)
	return wrap("create client", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertClient, args...); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// GetClient implements store.Store.
func (s *Store) GetClient(ctx context.Context, tenantID, id string) (*store.Client, error) {
	row, err := s.queryRow(ctx, qGetClient, tenantID, id)
	if err != nil {
		return nil, wrap("get client", err)
	}
	c, err := scanClient(row)
	return c, wrap("get client", err)
}

// ListClients implements store.Store.
func (s *Store) ListClients(ctx context.Context, tenantID string) ([]*store.Client, error) {
	rows, err := s.query(ctx, qListClients, tenantID)
	if err != nil {
		return nil, wrap("list clients", err)
	}
	defer rows.Close()
	var out []*store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap("list clients", err)
		}
		out = append(out, c)
	}
	return out, wrap("list clients", rows.Err())
}

// UpdateClient implements store.Store. The writer is the only writer of
// the file, so reading the client inside its transaction holds it against
// every other update.
func (s *Store) UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error,
	ev *store.AuditEvent) (*store.Client, error) {
	var out *store.Client
	var updateErr error
	err := s.w.do(ctx, func(tx *wtx) error {
		out, updateErr = nil, nil // a batch may run this again
		c, err := scanClient(tx.queryRow(qGetClient, tenantID, id))
		if err != nil {
			return err
		}
		if err := store.ApplyClientUpdate(c, update); err != nil {
			updateErr = err
			return err
		}
		vals, err := clientValues(c)
		if err != nil {
			updateErr = err
			return err
		}
		// RETURNING hands back the client as stored (UTC, microseconds).
		stored, err := scanClient(tx.queryRow(qUpdateClient, append(vals, tenantID, id)...))
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
		return nil, wrap("update client", err)
	}
	return out, nil
}

// DeleteClient implements store.Store. Tokens are revoked, not deleted: the
// access-token records are the denylist until the tokens expire.
func (s *Store) DeleteClient(ctx context.Context, tenantID, id string, now time.Time, ev *store.AuditEvent) error {
	at := tv(now)
	evRow := prepAudit(ev)
	return wrap("delete client", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qDeleteClient, tenantID, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.exec(qRevokeClientRefresh, at, tenantID, id); err != nil {
			return err
		}
		if _, err := tx.exec(qRevokeClientAccess, at, tenantID, id); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}
