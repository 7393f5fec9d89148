package sqlite

import (
	"context"

	"github.com/agentid/agentid/internal/store"
)

// ---- SCIM provisioning state ---------------------------------------------------

const (
	scimGroupCols    = `tenant_id, id, display_name, external_id, created_at, updated_at`
	qInsertSCIMGroup = `INSERT INTO scim_groups (` + scimGroupCols + `) VALUES (?, ?, ?, ?, ?, ?)`
	qGetSCIMGroup    = `SELECT ` + scimGroupCols + ` FROM scim_groups WHERE tenant_id = ? AND id = ?`
	qListSCIMGroups  = `SELECT ` + scimGroupCols + ` FROM scim_groups WHERE tenant_id = ? ORDER BY id`
	qUpdateSCIMGroup = `UPDATE scim_groups SET display_name = ?, external_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`
	qDeleteSCIMGroup = `DELETE FROM scim_groups WHERE tenant_id = ? AND id = ?`
	scimUserCols     = `tenant_id, user_id, external_id, deleted, updated_at`
	qPutSCIMUser     = `INSERT OR REPLACE INTO scim_users (` + scimUserCols + `) VALUES (?, ?, ?, ?, ?)`
	qGetSCIMUser     = `SELECT ` + scimUserCols + ` FROM scim_users WHERE tenant_id = ? AND user_id = ?`
	qListSCIMUsers   = `SELECT ` + scimUserCols + ` FROM scim_users WHERE tenant_id = ? ORDER BY user_id`
)

func scanSCIMGroup(r scanner) (*store.SCIMGroup, error) {
	g := new(store.SCIMGroup)
	if err := r.Scan(&g.TenantID, &g.ID, &g.DisplayName, &g.ExternalID, timeCol{&g.CreatedAt}, timeCol{&g.UpdatedAt}); err != nil {
		return nil, err
	}
	return g, nil
}

func scanSCIMUser(r scanner) (*store.SCIMUser, error) {
	u := new(store.SCIMUser)
	if err := r.Scan(&u.TenantID, &u.UserID, &u.ExternalID, &u.Deleted, timeCol{&u.UpdatedAt}); err != nil {
		return nil, err
	}
	return u, nil
}

// CreateSCIMGroup implements store.Store.
func (s *Store) CreateSCIMGroup(ctx context.Context, g *store.SCIMGroup, ev *store.AuditEvent) error {
	if err := g.Check(); err != nil {
		return wrap("create scim group", err)
	}
	evRow := prepAudit(ev)
	return wrap("create scim group", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertSCIMGroup, g.TenantID, g.ID, g.DisplayName, g.ExternalID, tv(g.CreatedAt), tv(g.UpdatedAt)); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// GetSCIMGroup implements store.Store.
func (s *Store) GetSCIMGroup(ctx context.Context, tenantID, id string) (*store.SCIMGroup, error) {
	row, err := s.queryRow(ctx, qGetSCIMGroup, tenantID, id)
	if err != nil {
		return nil, wrap("get scim group", err)
	}
	g, err := scanSCIMGroup(row)
	return g, wrap("get scim group", err)
}

// ListSCIMGroups implements store.Store.
func (s *Store) ListSCIMGroups(ctx context.Context, tenantID string) ([]*store.SCIMGroup, error) {
	rows, err := s.queryShort(ctx, qListSCIMGroups, tenantID)
	if err != nil {
		return nil, wrap("list scim groups", err)
	}
	defer rows.Close()
	var out []*store.SCIMGroup
	for rows.Next() {
		g, err := scanSCIMGroup(rows)
		if err != nil {
			return nil, wrap("list scim groups", err)
		}
		out = append(out, g)
	}
	return out, wrap("list scim groups", rows.Err())
}

// UpdateSCIMGroup implements store.Store.
func (s *Store) UpdateSCIMGroup(ctx context.Context, g *store.SCIMGroup, ev *store.AuditEvent) error {
	if err := g.Check(); err != nil {
		return wrap("update scim group", err)
	}
	evRow := prepAudit(ev)
	return wrap("update scim group", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUpdateSCIMGroup, g.DisplayName, g.ExternalID, tv(g.UpdatedAt), g.TenantID, g.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// DeleteSCIMGroup implements store.Store.
func (s *Store) DeleteSCIMGroup(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("delete scim group", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qDeleteSCIMGroup, tenantID, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// PutSCIMUser implements store.Store.
func (s *Store) PutSCIMUser(ctx context.Context, u *store.SCIMUser) error {
	if u.TenantID == "" || u.UserID == "" {
		return wrap("put scim user", store.ErrInvalid)
	}
	return wrap("put scim user", s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(qPutSCIMUser, u.TenantID, u.UserID, u.ExternalID, u.Deleted, tv(u.UpdatedAt))
		return err
	}))
}

// GetSCIMUser implements store.Store.
func (s *Store) GetSCIMUser(ctx context.Context, tenantID, userID string) (*store.SCIMUser, error) {
	row, err := s.queryRow(ctx, qGetSCIMUser, tenantID, userID)
	if err != nil {
		return nil, wrap("get scim user", err)
	}
	u, err := scanSCIMUser(row)
	return u, wrap("get scim user", err)
}

// ListSCIMUsers implements store.Store.
func (s *Store) ListSCIMUsers(ctx context.Context, tenantID string) ([]*store.SCIMUser, error) {
	rows, err := s.queryShort(ctx, qListSCIMUsers, tenantID)
	if err != nil {
		return nil, wrap("list scim users", err)
	}
	defer rows.Close()
	var out []*store.SCIMUser
	for rows.Next() {
		u, err := scanSCIMUser(rows)
		if err != nil {
			return nil, wrap("list scim users", err)
		}
		out = append(out, u)
	}
	return out, wrap("list scim users", rows.Err())
}
