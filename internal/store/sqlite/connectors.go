package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// ---- connectors ----------------------------------------------------------------

const (
	connectorCols = `id, tenant_id, type, name, issuer, client_id, client_secret_file, client_secret_sealed, scopes,
	username_claim, email_claim, name_claim, groups_claim, roles_claim, attribute_claims, saml_metadata, disabled, created_at, updated_at`
	qInsertConnector  = `INSERT INTO connectors (` + connectorCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qConnectorDomains = `SELECT group_concat(domain, ' ') FROM (SELECT domain FROM connector_domains
	WHERE connector_id = c.id ORDER BY domain)`
	qSelectConnectors = `SELECT ` + connectorCols + `, coalesce((` + qConnectorDomains + `), '') FROM connectors c`
	qGetConnector     = qSelectConnectors + ` WHERE id = ?`
	qListConnectors   = qSelectConnectors + ` WHERE ? = '' OR tenant_id = ? ORDER BY id`
	// Everything but the key, the tenant and the creation time.
	qUpdateConnector = `UPDATE connectors SET type = ?, name = ?, issuer = ?, client_id = ?, client_secret_file = ?,
	client_secret_sealed = ?, scopes = ?, username_claim = ?, email_claim = ?, name_claim = ?, groups_claim = ?,
	roles_claim = ?, attribute_claims = ?, saml_metadata = ?, disabled = ?, updated_at = ? WHERE id = ? AND tenant_id = ?`
	qDeleteConnectorDomains = `DELETE FROM connector_domains WHERE connector_id = ?`
	qInsertConnectorDomain  = `INSERT INTO connector_domains (domain, connector_id) VALUES (?, ?)`
	qFindExternalUser       = `SELECT ` + userCols + ` FROM users WHERE tenant_id = ? AND connector_id = ? AND external_subject = ?`
	qSignInUpdateUser       = `UPDATE users SET name = ?, email = ?, email_verified = ?, updated_at = coalesce(?, updated_at),
	group_names = coalesce(?, group_names), roles = coalesce(?, roles), attributes = coalesce(?, attributes)
	WHERE tenant_id = ? AND id = ?`
)

// connectorValues are c's columns after id and tenant_id up to
// disabled, in connectorCols order.
func connectorValues(c *store.Connector) ([]any, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	return []any{c.Type, c.Name, c.Issuer, c.ClientID, c.ClientSecretFile, bv(c.ClientSecretSealed), listText(c.Scopes),
		c.Claims.Username, c.Claims.Email, c.Claims.Name, c.Claims.Groups, c.Claims.Roles, mapText(c.Claims.Attributes), c.SAMLMetadata, c.Disabled}, nil
}

func scanConnector(r scanner) (*store.Connector, error) {
	c := new(store.Connector)
	var domains string
	if err := r.Scan(&c.ID, &c.TenantID, &c.Type, &c.Name, &c.Issuer, &c.ClientID, &c.ClientSecretFile,
		&c.ClientSecretSealed, listCol{&c.Scopes}, &c.Claims.Username, &c.Claims.Email, &c.Claims.Name,
		&c.Claims.Groups, &c.Claims.Roles, mapCol{&c.Claims.Attributes}, &c.SAMLMetadata, &c.Disabled, timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt},
		&domains); err != nil {
		return nil, err
	}
	if len(c.ClientSecretSealed) == 0 {
		c.ClientSecretSealed = nil
	}
	if domains != "" {
		c.EmailDomains = strings.Fields(domains)
	}
	return c, nil
}

// putDomains replaces the connector's email domains; a domain another
// connector holds is a unique-key violation (ErrConflict).
func (tx *wtx) putDomains(c *store.Connector) error {
	if _, err := tx.exec(qDeleteConnectorDomains, c.ID); err != nil {
		return err
	}
	for _, d := range c.EmailDomains {
		if _, err := tx.exec(qInsertConnectorDomain, d, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// CreateConnector implements store.Store.
func (s *Store) CreateConnector(ctx context.Context, c *store.Connector, ev *store.AuditEvent) error {
	vals, err := connectorValues(c)
	if err != nil {
		return wrap("create connector", err)
	}
	args := append([]any{c.ID, c.TenantID}, vals...)
	args = append(args, tv(c.CreatedAt), tv(c.UpdatedAt))
	evRow := prepAudit(ev)
	return wrap("create connector", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertConnector, args...); err != nil {
			return err
		}
		if err := tx.putDomains(c); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// GetConnector implements store.Store.
func (s *Store) GetConnector(ctx context.Context, id string) (*store.Connector, error) {
	row, err := s.queryRow(ctx, qGetConnector, id)
	if err != nil {
		return nil, wrap("get connector", err)
	}
	c, err := scanConnector(row)
	return c, wrap("get connector", err)
}

// ListConnectors implements store.Store.
func (s *Store) ListConnectors(ctx context.Context, tenantID string) ([]*store.Connector, error) {
	rows, err := s.queryShort(ctx, qListConnectors, tenantID, tenantID)
	if err != nil {
		return nil, wrap("list connectors", err)
	}
	defer rows.Close()
	var out []*store.Connector
	for rows.Next() {
		c, err := scanConnector(rows)
		if err != nil {
			return nil, wrap("list connectors", err)
		}
		out = append(out, c)
	}
	return out, wrap("list connectors", rows.Err())
}

// UpdateConnector implements store.Store.
func (s *Store) UpdateConnector(ctx context.Context, c *store.Connector, ev *store.AuditEvent) error {
	vals, err := connectorValues(c)
	if err != nil {
		return wrap("update connector", err)
	}
	args := append(vals, tv(c.UpdatedAt), c.ID, c.TenantID)
	evRow := prepAudit(ev)
	return wrap("update connector", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUpdateConnector, args...)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if err := tx.putDomains(c); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// nullableList stores a nil list as NULL (keep the column), any other as
// JSON text.
func nullableList(l []string) any {
	if l == nil {
		return nil
	}
	return listText(l)
}

// SignInConnectorUser implements store.Store.
func (s *Store) SignInConnectorUser(ctx context.Context, u *store.User, sess *store.Session,
	events func(stored *store.User, created bool) []*store.AuditEvent) (*store.User, bool, error) {
	if err := store.CheckUserAccess(u); err != nil {
		return nil, false, wrap("sign in connector user", err)
	}
	var attrs any // nil keeps the stored attributes
	if u.Attributes != nil {
		attrs = mapText(u.Attributes)
	}
	var stored *store.User
	var created bool
	err := s.w.do(ctx, func(tx *wtx) error {
		stored, created = nil, false
		found, err := scanUser(tx.queryRow(qFindExternalUser, u.TenantID, u.ConnectorID, u.ExternalSubject))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := tx.insertUser(u); err != nil {
				return err
			}
			created = true
			if stored, err = scanUser(tx.queryRow(qGetUser, u.TenantID, u.ID)); err != nil {
				return err
			}
		case err != nil:
			return err
		case found.Disabled:
			stored = found
			return nil
		default:
			if _, err := tx.exec(qSignInUpdateUser, u.Name, u.Email, u.EmailVerified, tv(u.UpdatedAt),
				nullableList(u.Groups), nullableList(u.Roles), attrs, found.TenantID, found.ID); err != nil {
				return err
			}
			if stored, err = scanUser(tx.queryRow(qGetUser, found.TenantID, found.ID)); err != nil {
				return err
			}
		}
		sess.TenantID, sess.UserID = stored.TenantID, stored.ID
		if _, err := tx.exec(qInsertSession, sess.Hash, sess.TenantID, sess.UserID, tv(sess.AuthTime), tv(sess.ExpiresAt)); err != nil {
			return err
		}
		for _, row := range prepAudits(events(stored, created)) {
			if err := tx.audit(row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, wrap("sign in connector user", err)
	}
	return stored, created, nil
}
