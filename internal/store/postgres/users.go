package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

const userCols = `tenant_id, id, username, password_hash, roles, group_names, disabled, created_at, updated_at, name, email, email_verified, attributes,
	connector_id, external_subject`

func scanUser(row pgx.Row) (*store.User, error) {
	var u store.User
	var attrs []byte
	if err := row.Scan(&u.TenantID, &u.ID, &u.Username, &u.PasswordHash, &u.Roles, &u.Groups,
		&u.Disabled, &u.CreatedAt, &u.UpdatedAt, &u.Name, &u.Email, &u.EmailVerified, &attrs,
		&u.ConnectorID, &u.ExternalSubject); err != nil {
		return nil, err
	}
	m, err := scanStringMap(attrs)
	if err != nil {
		return nil, fmt.Errorf("decode user attributes: %w", err)
	}
	u.Attributes = m
	u.CreatedAt, u.UpdatedAt = utc(u.CreatedAt), utc(u.UpdatedAt)
	return &u, nil
}

// stringMapJSON encodes a string map for a jsonb column; empty is {}.
func stringMapJSON(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // map[string]string always marshals
	}
	return b
}

// scanStringMap decodes a jsonb string map; empty is nil.
func scanStringMap(b []byte) (map[string]string, error) {
	var m map[string]string
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// CreateUser inserts u and writes ev (nil: none) in the same transaction; a
// duplicate id or username in the tenant is store.ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u *store.User, ev *store.AuditEvent) error {
	if err := store.CheckUserAccess(u); err != nil {
		return mapErr("create user", err)
	}
	return mapErr("create user", s.inTx(ctx, func(tx pgx.Tx) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

func insertUser(ctx context.Context, tx pgx.Tx, u *store.User) error {
	if err := usernameFree(ctx, tx, u); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		u.TenantID, u.ID, u.Username, u.PasswordHash, u.Roles, u.Groups, u.Disabled, u.CreatedAt, u.UpdatedAt,
		u.Name, u.Email, u.EmailVerified, stringMapJSON(u.Attributes), u.ConnectorID, u.ExternalSubject)
	return err
}

// GetUser returns the user or store.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, tenantID, id string) (*store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, mapErr("get user", err)
	}
	return u, nil
}

// GetUserByUsername returns the user or store.ErrNotFound.
func (s *Store) GetUserByUsername(ctx context.Context, tenantID, username string) (*store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND username = $2`, tenantID, username))
	if err != nil {
		return nil, mapErr("get user", err)
	}
	return u, nil
}

// ListUsers returns the tenant's users ordered by username.
func (s *Store) ListUsers(ctx context.Context, tenantID string) ([]*store.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 ORDER BY username`, tenantID)
	if err != nil {
		return nil, mapErr("list users", err)
	}
	defer rows.Close()
	var out []*store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, mapErr("list users", err)
		}
		out = append(out, u)
	}
	return out, mapErr("list users", rows.Err())
}

// UpdateUser replaces the password hash, disabled flag, profile (name,
// email, email verified), roles, groups, attributes and UpdatedAt and writes ev (nil: none) in the
// same transaction; an unknown user is store.ErrNotFound. The user's live lock (lockUser) is taken first: an
// update that disables the user waits for issuances under way and is seen
// by those that follow.
func (s *Store) UpdateUser(ctx context.Context, u *store.User, ev *store.AuditEvent) error {
	if err := store.CheckUserAccess(u); err != nil {
		return mapErr("update user", err)
	}
	return mapErr("update user", s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, u.TenantID, u.ID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE users SET password_hash = $3, disabled = $4, updated_at = $5,
			name = $6, email = $7, email_verified = $8, roles = $9, group_names = $10, attributes = $11
			WHERE tenant_id = $1 AND id = $2`, u.TenantID, u.ID, u.PasswordHash, u.Disabled, u.UpdatedAt,
			u.Name, u.Email, u.EmailVerified, u.Roles, u.Groups, stringMapJSON(u.Attributes))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("update user")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// usernameFree refuses u when another user of its tenant has its
// username under store.UsernameKey. The tenant's advisory lock, held to
// the end of the transaction, keeps two inserts from both passing the
// check.
func usernameFree(ctx context.Context, tx pgx.Tx, u *store.User) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('agentid.username.' || $1::text, 0))`, u.TenantID); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT username FROM users WHERE tenant_id = $1`, u.TenantID)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	return store.UsernameFree(u.Username, names)
}
