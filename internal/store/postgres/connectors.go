package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentid/agentid/internal/store"
)

// ---- connectors ----------------------------------------------------------------

const (
	connectorCols = `id, tenant_id, type, name, issuer, client_id, client_secret_file, client_secret_sealed, scopes,
	username_claim, email_claim, name_claim, groups_claim, roles_claim, attribute_claims, disabled, created_at, updated_at,
	saml_metadata`
	// The email domains ride along, ordered bytewise as SQLite orders them.
	selectConnectors = `SELECT ` + connectorCols + `, (SELECT array_agg(domain ORDER BY domain COLLATE "C")
	FROM connector_domains WHERE connector_id = c.id) FROM connectors c`
)

// connectorArgs lists c's fields in connectorCols order.
func connectorArgs(c *store.Connector) ([]any, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	var attrs map[string]string
	if len(c.Claims.Attributes) > 0 {
		attrs = c.Claims.Attributes
	}
	attrJSON, err := jsonMap(attrs)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	if len(c.ClientSecretSealed) > 0 {
		sealed = c.ClientSecretSealed
	}
	var scopes []string
	if len(c.Scopes) > 0 {
		scopes = c.Scopes
	}
	return []any{c.ID, c.TenantID, c.Type, c.Name, c.Issuer, c.ClientID, c.ClientSecretFile, sealed, scopes,
		c.Claims.Username, c.Claims.Email, c.Claims.Name, c.Claims.Groups, c.Claims.Roles, attrJSON, c.Disabled,
		c.CreatedAt, c.UpdatedAt, c.SAMLMetadata}, nil
}

func scanConnector(row pgx.Row) (*store.Connector, error) {
	var c store.Connector
	var attrs []byte
	if err := row.Scan(&c.ID, &c.TenantID, &c.Type, &c.Name, &c.Issuer, &c.ClientID, &c.ClientSecretFile,
		&c.ClientSecretSealed, &c.Scopes, &c.Claims.Username, &c.Claims.Email, &c.Claims.Name, &c.Claims.Groups,
		&c.Claims.Roles, &attrs, &c.Disabled, &c.CreatedAt, &c.UpdatedAt, &c.SAMLMetadata, &c.EmailDomains); err != nil {
		return nil, err
	}
	var err error
	if c.Claims.Attributes, err = scanMap(attrs); err != nil {
		return nil, err
	}
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return &c, nil
}

// putDomains replaces the connector's email domains; a domain another
// connector holds is a unique violation (store.ErrConflict).
func putDomains(ctx context.Context, tx pgx.Tx, c *store.Connector) error {
	if _, err := tx.Exec(ctx, `DELETE FROM connector_domains WHERE connector_id = $1`, c.ID); err != nil {
		return err
	}
	for _, d := range c.EmailDomains {
		if _, err := tx.Exec(ctx, `INSERT INTO connector_domains (domain, connector_id) VALUES ($1, $2)`, d, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// CreateConnector inserts c with its email domains and writes ev in the
// same transaction.
func (s *Store) CreateConnector(ctx context.Context, c *store.Connector, ev *store.AuditEvent) error {
	args, err := connectorArgs(c)
	if err != nil {
		return mapErr("create connector", err)
	}
	return mapErr("create connector", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO connectors (`+connectorCols+`) VALUES
			($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`, args...); err != nil {
			return err
		}
		if err := putDomains(ctx, tx, c); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// GetConnector returns the connector or store.ErrNotFound.
func (s *Store) GetConnector(ctx context.Context, id string) (*store.Connector, error) {
	c, err := scanConnector(s.pool.QueryRow(ctx, selectConnectors+` WHERE id = $1`, id))
	if err != nil {
		return nil, mapErr("get connector", err)
	}
	return c, nil
}

// ListConnectors returns the tenant's connectors ("": all) ordered by id.
func (s *Store) ListConnectors(ctx context.Context, tenantID string) ([]*store.Connector, error) {
	rows, err := s.pool.Query(ctx, selectConnectors+` WHERE $1 = '' OR tenant_id = $1 ORDER BY id COLLATE "C"`, tenantID)
	if err != nil {
		return nil, mapErr("list connectors", err)
	}
	defer rows.Close()
	var out []*store.Connector
	for rows.Next() {
		c, err := scanConnector(rows)
		if err != nil {
			return nil, mapErr("list connectors", err)
		}
		out = append(out, c)
	}
	return out, mapErr("list connectors", rows.Err())
}

// UpdateConnector replaces everything but id, tenant and CreatedAt and
// writes ev in the same transaction.
func (s *Store) UpdateConnector(ctx context.Context, c *store.Connector, ev *store.AuditEvent) error {
	args, err := connectorArgs(c)
	if err != nil {
		return mapErr("update connector", err)
	}
	args = append(args[:16], args[17:]...) // all but created_at
	return mapErr("update connector", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE connectors SET type = $3, name = $4, issuer = $5, client_id = $6,
			client_secret_file = $7, client_secret_sealed = $8, scopes = $9, username_claim = $10, email_claim = $11,
			name_claim = $12, groups_claim = $13, roles_claim = $14, attribute_claims = $15, disabled = $16,
			updated_at = $17, saml_metadata = $18 WHERE id = $1 AND tenant_id = $2`, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if err := putDomains(ctx, tx, c); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// SignInConnectorUser finds (locking it) or creates the user of u's
// connector and subject, refreshes its profile, groups and roles, stores
// the session and writes the events, in one transaction. Two first
// sign-ins of one person at once: the second finds its insert a unique
// violation and runs once more, finding the user the first created.
func (s *Store) SignInConnectorUser(ctx context.Context, u *store.User, sess *store.Session,
	events func(stored *store.User, created bool) []*store.AuditEvent) (*store.User, bool, error) {
	if err := store.CheckUserAccess(u); err != nil {
		return nil, false, mapErr("sign in connector user", err)
	}
	for attempt := 0; ; attempt++ {
		stored, created, err := s.signInConnectorUser(ctx, u, sess, events)
		var pe *pgconn.PgError
		// (A concurrent first sign-in may also meet the username check,
		// store.UsernameFree, before the unique index: the run once more
		// finds the person too, while another account's name conflicts
		// again.)
		if attempt == 0 && (errors.As(err, &pe) && pe.Code == sqlstateUniqueViolation && pe.ConstraintName == "users_external" ||
			errors.Is(err, store.ErrConflict)) {
			continue
		}
		if err != nil {
			return nil, false, mapErr("sign in connector user", err)
		}
		return stored, created, nil
	}
}

func (s *Store) signInConnectorUser(ctx context.Context, u *store.User, sess *store.Session,
	events func(stored *store.User, created bool) []*store.AuditEvent) (stored *store.User, created bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		stored, created = nil, false
		found, err := scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users
			WHERE tenant_id = $1 AND connector_id = $2 AND external_subject = $3 FOR UPDATE`,
			u.TenantID, u.ConnectorID, u.ExternalSubject))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if err := insertUser(ctx, tx, u); err != nil {
				return err
			}
			created = true
			if stored, err = scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND id = $2`,
				u.TenantID, u.ID)); err != nil {
				return err
			}
		case err != nil:
			return err
		case found.Disabled:
			stored = found
			return nil
		default:
			// A nil list keeps the stored one; an empty one clears it.
			if stored, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET name = $1, email = $2, email_verified = $3,
				updated_at = $4, group_names = CASE WHEN $5::boolean THEN group_names ELSE $6 END,
				roles = CASE WHEN $7::boolean THEN roles ELSE $8 END,
				attributes = CASE WHEN $9::boolean THEN attributes ELSE $10::jsonb END
				WHERE tenant_id = $11 AND id = $12 RETURNING `+userCols,
				u.Name, u.Email, u.EmailVerified, u.UpdatedAt, u.Groups == nil, u.Groups, u.Roles == nil, u.Roles,
				u.Attributes == nil, stringMapJSON(u.Attributes), found.TenantID, found.ID)); err != nil {
				return err
			}
		}
		sess.TenantID, sess.UserID = stored.TenantID, stored.ID
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (hash, tenant_id, user_id, auth_time, expires_at)
			VALUES ($1, $2, $3, $4, $5)`, sess.Hash, sess.TenantID, sess.UserID, sess.AuthTime, sess.ExpiresAt); err != nil {
			return err
		}
		for _, ev := range events(stored, created) {
			if err := insertEvent(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	return stored, created, err
}
