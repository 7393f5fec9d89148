package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

const clientCols = `tenant_id, id, name, secret_hash, secret_expires_at, redirect_uris, grant_types,
	response_types, token_endpoint_auth_method, application_type, scopes, default_resource, jwks,
	jwks_uri, client_uri, logo_uri, tos_uri, policy_uri, contacts, software_id, software_version,
	registration_method, registration_token_hash, created_ip, tags, owner_user_id, disabled,
	created_at, updated_at, requested_scopes, status, last_used_at, software_statement_issuer, federated_issuer`

// clientParams are the placeholders of clientCols.
const clientParams = `$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
	$21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34`

// clientArgs lists c's fields in clientCols order. An unknown status is
// store.ErrInvalid.
func clientArgs(c *store.Client) ([]any, error) {
	status, err := c.StoredStatus()
	if err != nil {
		return nil, err
	}
	return []any{c.TenantID, c.ID, c.Name, c.SecretHash, nullTime(c.SecretExpiresAt), c.RedirectURIs,
		c.GrantTypes, c.ResponseTypes, c.TokenEndpointAuthMethod, c.ApplicationType, c.Scopes,
		c.DefaultResource, c.JWKS, c.JWKSURI, c.ClientURI, c.LogoURI, c.TOSURI, c.PolicyURI,
		c.Contacts, c.SoftwareID, c.SoftwareVersion, c.RegistrationMethod, c.RegistrationTokenHash,
		c.CreatedIP, c.Tags, c.OwnerUserID, c.Disabled, c.CreatedAt, c.UpdatedAt, c.RequestedScopes,
		status, nullTime(c.LastUsedAt), c.SoftwareStatementIssuer, c.FederatedIssuer}, nil
}

func scanClient(row pgx.Row) (*store.Client, error) {
	var c store.Client
	var secretExp, lastUsed *time.Time
	err := row.Scan(&c.TenantID, &c.ID, &c.Name, &c.SecretHash, &secretExp, &c.RedirectURIs,
		&c.GrantTypes, &c.ResponseTypes, &c.TokenEndpointAuthMethod, &c.ApplicationType, &c.Scopes,
		&c.DefaultResource, &c.JWKS, &c.JWKSURI, &c.ClientURI, &c.LogoURI, &c.TOSURI, &c.PolicyURI,
		&c.Contacts, &c.SoftwareID, &c.SoftwareVersion, &c.RegistrationMethod, &c.RegistrationTokenHash,
		&c.CreatedIP, &c.Tags, &c.OwnerUserID, &c.Disabled, &c.CreatedAt, &c.UpdatedAt, &c.RequestedScopes,
		&c.Status, &lastUsed, &c.SoftwareStatementIssuer, &c.FederatedIssuer)
	if err != nil {
		return nil, err
	}
	c.SecretExpiresAt, c.LastUsedAt = fromNull(secretExp), fromNull(lastUsed)
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return &c, nil
}

// CreateClient inserts c; a duplicate (tenant, id) is store.ErrConflict.
func (s *Store) CreateClient(ctx context.Context, c *store.Client, ev *store.AuditEvent) error {
	args, err := clientArgs(c)
	if err != nil {
		return mapErr("create client", err)
	}
	return mapErr("create client", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO clients (`+clientCols+`) VALUES (`+clientParams+`)`, args...); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// GetClient returns the client or store.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, tenantID, id string) (*store.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr("get client", err)
	}
	return c, nil
}

// ListClients returns the tenant's clients ordered by id.
func (s *Store) ListClients(ctx context.Context, tenantID string) ([]*store.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients WHERE tenant_id = $1 ORDER BY id`, tenantID)
	if err != nil {
		return nil, mapErr("list clients", err)
	}
	defer rows.Close()
	var out []*store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, mapErr("list clients", err)
		}
		out = append(out, c)
	}
	return out, mapErr("list clients", rows.Err())
}

// UpdateClient implements store.Store: SELECT … FOR UPDATE holds the row
// until the commit, so a concurrent update, on this replica or another,
// reads the client only after this one is stored. The client's live lock
// (lockClient) is taken first, whatever the update: one that disables the
// client waits for issuances under way and is seen by those that follow.
func (s *Store) UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error,
	ev *store.AuditEvent) (*store.Client, error) {
	var out *store.Client
	var updateErr error
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockClient(ctx, tx, tenantID, id); err != nil {
			return err
		}
		c, err := scanClient(tx.QueryRow(ctx, `SELECT `+clientCols+` FROM clients
			WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenantID, id))
		if err != nil {
			return err
		}
		if err := store.ApplyClientUpdate(c, update); err != nil {
			updateErr = err
			return err
		}
		args, err := clientArgs(c)
		if err != nil {
			updateErr = err
			return err
		}
		// RETURNING hands back the client as stored (UTC, microseconds).
		out, err = scanClient(tx.QueryRow(ctx, `UPDATE clients SET (`+clientCols+`) = (`+clientParams+`)
			WHERE tenant_id = $1 AND id = $2 RETURNING `+clientCols, args...))
		if err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	})
	if updateErr != nil {
		return nil, updateErr
	}
	if err != nil {
		return nil, mapErr("update client", err)
	}
	return out, nil
}

// DeleteClient removes the client and revokes, in the same transaction,
// every refresh token and recorded access token issued to it, under the
// client's live lock (lockClient).
func (s *Store) DeleteClient(ctx context.Context, tenantID, id string, now time.Time, ev *store.AuditEvent) error {
	return mapErr("delete client", s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockClient(ctx, tx, tenantID, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM clients WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete client")
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $3
			WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL`, tenantID, id, now); err != nil {
			return fmt.Errorf("revoke refresh tokens: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE access_tokens SET revoked_at = $3
			WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL`, tenantID, id, now); err != nil {
			return fmt.Errorf("revoke access tokens: %w", err)
		}
		return insertEvent(ctx, tx, ev)
	}))
}
