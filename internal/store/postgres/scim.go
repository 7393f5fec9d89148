package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// ---- SCIM provisioning state ---------------------------------------------------

const (
	scimGroupCols = `tenant_id, id, display_name, external_id, created_at, updated_at`
	scimUserCols  = `tenant_id, user_id, external_id, deleted, updated_at`
)

func scanSCIMGroup(row pgx.Row) (*store.SCIMGroup, error) {
	g := new(store.SCIMGroup)
	if err := row.Scan(&g.TenantID, &g.ID, &g.DisplayName, &g.ExternalID, &g.CreatedAt, &g.UpdatedAt); err != nil {
		return nil, err
	}
	g.CreatedAt, g.UpdatedAt = utc(g.CreatedAt), utc(g.UpdatedAt)
	return g, nil
}

func scanSCIMUser(row pgx.Row) (*store.SCIMUser, error) {
	u := new(store.SCIMUser)
	if err := row.Scan(&u.TenantID, &u.UserID, &u.ExternalID, &u.Deleted, &u.UpdatedAt); err != nil {
		return nil, err
	}
	u.UpdatedAt = utc(u.UpdatedAt)
	return u, nil
}

// CreateSCIMGroup inserts g and writes ev in the same transaction.
func (s *Store) CreateSCIMGroup(ctx context.Context, g *store.SCIMGroup, ev *store.AuditEvent) error {
	if err := g.Check(); err != nil {
		return mapErr("create scim group", err)
	}
	return mapErr("create scim group", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO scim_groups (`+scimGroupCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			g.TenantID, g.ID, g.DisplayName, g.ExternalID, g.CreatedAt, g.UpdatedAt); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// GetSCIMGroup returns the group or store.ErrNotFound.
func (s *Store) GetSCIMGroup(ctx context.Context, tenantID, id string) (*store.SCIMGroup, error) {
	g, err := scanSCIMGroup(s.pool.QueryRow(ctx, `SELECT `+scimGroupCols+` FROM scim_groups WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr("get scim group", err)
	}
	return g, nil
}

// ListSCIMGroups returns the tenant's groups ordered by id, bytewise.
func (s *Store) ListSCIMGroups(ctx context.Context, tenantID string) ([]*store.SCIMGroup, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+scimGroupCols+` FROM scim_groups WHERE tenant_id = $1 ORDER BY id COLLATE "C"`, tenantID)
	if err != nil {
		return nil, mapErr("list scim groups", err)
	}
	defer rows.Close()
	var out []*store.SCIMGroup
	for rows.Next() {
		g, err := scanSCIMGroup(rows)
		if err != nil {
			return nil, mapErr("list scim groups", err)
		}
		out = append(out, g)
	}
	return out, mapErr("list scim groups", rows.Err())
}

// UpdateSCIMGroup replaces the display name, external id and update time.
func (s *Store) UpdateSCIMGroup(ctx context.Context, g *store.SCIMGroup, ev *store.AuditEvent) error {
	if err := g.Check(); err != nil {
		return mapErr("update scim group", err)
	}
	return mapErr("update scim group", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE scim_groups SET display_name = $3, external_id = $4, updated_at = $5
			WHERE tenant_id = $1 AND id = $2`, g.TenantID, g.ID, g.DisplayName, g.ExternalID, g.UpdatedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("update scim group")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// DeleteSCIMGroup removes the group and writes ev.
func (s *Store) DeleteSCIMGroup(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	return mapErr("delete scim group", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM scim_groups WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete scim group")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// PutSCIMUser creates or replaces the user's SCIM state.
func (s *Store) PutSCIMUser(ctx context.Context, u *store.SCIMUser) error {
	if u.TenantID == "" || u.UserID == "" {
		return mapErr("put scim user", store.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO scim_users (`+scimUserCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, user_id) DO UPDATE SET external_id = $3, deleted = $4, updated_at = $5`,
		u.TenantID, u.UserID, u.ExternalID, u.Deleted, u.UpdatedAt)
	return mapErr("put scim user", err)
}

// GetSCIMUser returns the user's SCIM state or store.ErrNotFound.
func (s *Store) GetSCIMUser(ctx context.Context, tenantID, userID string) (*store.SCIMUser, error) {
	u, err := scanSCIMUser(s.pool.QueryRow(ctx, `SELECT `+scimUserCols+` FROM scim_users WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID))
	if err != nil {
		return nil, mapErr("get scim user", err)
	}
	return u, nil
}

// ListSCIMUsers returns the tenant's SCIM states ordered by user id, bytewise.
func (s *Store) ListSCIMUsers(ctx context.Context, tenantID string) ([]*store.SCIMUser, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+scimUserCols+` FROM scim_users WHERE tenant_id = $1 ORDER BY user_id COLLATE "C"`, tenantID)
	if err != nil {
		return nil, mapErr("list scim users", err)
	}
	defer rows.Close()
	var out []*store.SCIMUser
	for rows.Next() {
		u, err := scanSCIMUser(rows)
		if err != nil {
			return nil, mapErr("list scim users", err)
		}
		out = append(out, u)
	}
	return out, mapErr("list scim users", rows.Err())
}
