package sqlite

import (
	"context"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- users -------------------------------------------------------------------

const (
	userCols = `tenant_id, id, username, password_hash, roles, group_names, disabled, created_at, updated_at, name, email, email_verified, attributes,
	connector_id, external_subject`
	qInsertUser = `INSERT INTO users (` + userCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetUser    = `SELECT ` + userCols + ` FROM users WHERE tenant_id = ? AND id = ?`
	qGetUserBy  = `SELECT ` + userCols + ` FROM users WHERE tenant_id = ? AND username = ?`
	qListUsers  = `SELECT ` + userCols + ` FROM users WHERE tenant_id = ? ORDER BY id`
	// A zero UpdatedAt leaves the stored one.
	qUpdateUser = `UPDATE users SET password_hash = ?, disabled = ?, updated_at = coalesce(?, updated_at),
	name = ?, email = ?, email_verified = ?, roles = ?, group_names = ?, attributes = ?
	WHERE tenant_id = ? AND id = ?`
)

func scanUser(r scanner) (*store.User, error) {
	u := new(store.User)
	if err := r.Scan(&u.TenantID, &u.ID, &u.Username, &u.PasswordHash, listCol{&u.Roles}, listCol{&u.Groups},
		&u.Disabled, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt}, &u.Name, &u.Email, &u.EmailVerified, mapCol{&u.Attributes},
		&u.ConnectorID, &u.ExternalSubject); err != nil {
		return nil, err
	}
	return u, nil
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u *store.User, ev *store.AuditEvent) error {
	if err := store.CheckUserAccess(u); err != nil {
		return wrap("create user", err)
	}
	evRow := prepAudit(ev)
	return wrap("create user", s.w.do(ctx, func(tx *wtx) error {
		if err := tx.insertUser(u); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

func (tx *wtx) insertUser(u *store.User) error {
	if err := tx.usernameFree(u); err != nil {
		return err
	}
	_, err := tx.exec(qInsertUser, u.TenantID, u.ID, u.Username, u.PasswordHash, listText(u.Roles),
		listText(u.Groups), u.Disabled, tv(u.CreatedAt), tv(u.UpdatedAt), u.Name, u.Email, u.EmailVerified,
		mapText(u.Attributes), u.ConnectorID, u.ExternalSubject)
	return err
}

func (s *Store) getUser(ctx context.Context, q, tenantID, key string) (*store.User, error) {
	row, err := s.queryRow(ctx, q, tenantID, key)
	if err != nil {
		return nil, wrap("get user", err)
	}
	u, err := scanUser(row)
	return u, wrap("get user", err)
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, tenantID, id string) (*store.User, error) {
	return s.getUser(ctx, qGetUser, tenantID, id)
}

// GetUserByUsername implements store.Store.
func (s *Store) GetUserByUsername(ctx context.Context, tenantID, username string) (*store.User, error) {
	return s.getUser(ctx, qGetUserBy, tenantID, username)
}

// ListUsers implements store.Store.
func (s *Store) ListUsers(ctx context.Context, tenantID string) ([]*store.User, error) {
	rows, err := s.query(ctx, qListUsers, tenantID)
	if err != nil {
		return nil, wrap("list users", err)
	}
	defer rows.Close()
	var out []*store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap("list users", err)
		}
		out = append(out, u)
	}
	return out, wrap("list users", rows.Err())
}

// UpdateUser implements store.Store: password hash, disabled flag, profile
// (name, email, email verified), roles, groups, attributes and UpdatedAt
// (when set).
func (s *Store) UpdateUser(ctx context.Context, u *store.User, ev *store.AuditEvent) error {
	if err := store.CheckUserAccess(u); err != nil {
		return wrap("update user", err)
	}
	evRow := prepAudit(ev)
	return wrap("update user", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUpdateUser, u.PasswordHash, u.Disabled, tv(u.UpdatedAt), u.Name, u.Email, u.EmailVerified,
			listText(u.Roles), listText(u.Groups), mapText(u.Attributes), u.TenantID, u.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return tx.audit(evRow)
	}))
}

// ---- signing keys --------------------------------------------------------------

const (
	keyCols    = `kid, algorithm, public_jwk, private_enc, activate_at, retired_at, expires_at, created_at`
	qInsertKey = `INSERT INTO signing_keys (` + keyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qListKeys  = `SELECT ` + keyCols + ` FROM signing_keys ORDER BY created_at, kid`
	qUpdateKey = `UPDATE signing_keys SET retired_at = ?, expires_at = ? WHERE kid = ?`
	qDeleteKey = `DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at < ?`
)

// CreateSigningKey implements store.Store.
func (s *Store) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	return wrap("create signing key", s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(qInsertKey, k.ID, k.Algorithm, k.PublicJWK, bv(k.PrivateEnc), tv(k.ActivateAt),
			tv(k.RetiredAt), tv(k.ExpiresAt), tv(k.CreatedAt))
		return err
	}))
}

// ListSigningKeys implements store.Store.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := s.queryShort(ctx, qListKeys)
	if err != nil {
		return nil, wrap("list signing keys", err)
	}
	defer rows.Close()
	var out []*store.SigningKey
	for rows.Next() {
		k := new(store.SigningKey)
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PublicJWK, &k.PrivateEnc, timeCol{&k.ActivateAt},
			timeCol{&k.RetiredAt}, timeCol{&k.ExpiresAt}, timeCol{&k.CreatedAt}); err != nil {
			return nil, wrap("list signing keys", err)
		}
		out = append(out, k)
	}
	return out, wrap("list signing keys", rows.Err())
}

// UpdateSigningKey implements store.Store.
func (s *Store) UpdateSigningKey(ctx context.Context, k *store.SigningKey) error {
	return wrap("update signing key", s.w.do(ctx, func(tx *wtx) error {
		n, err := tx.execN(qUpdateKey, tv(k.RetiredAt), tv(k.ExpiresAt), k.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	}))
}

// DeleteExpiredSigningKeys implements store.Store.
func (s *Store) DeleteExpiredSigningKeys(ctx context.Context, now time.Time) error {
	return wrap("delete expired signing keys", s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(qDeleteKey, now.UnixMicro())
		return err
	}))
}

// ---- sessions --------------------------------------------------------------------

const (
	qInsertSession = `INSERT INTO sessions (hash, tenant_id, user_id, auth_time, expires_at) VALUES (?, ?, ?, ?, ?)`
	// A session is live while now is before its expiry.
	qGetSession    = `SELECT hash, tenant_id, user_id, auth_time, expires_at FROM sessions WHERE hash = ? AND expires_at > ?`
	qDeleteSession = `DELETE FROM sessions WHERE hash = ?`
)

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("create session", s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.exec(qInsertSession, sess.Hash, sess.TenantID, sess.UserID, tv(sess.AuthTime), tv(sess.ExpiresAt)); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}

// GetSession implements store.Store.
func (s *Store) GetSession(ctx context.Context, hash []byte, now time.Time) (*store.Session, error) {
	row, err := s.queryRow(ctx, qGetSession, hash, now.UnixMicro())
	if err != nil {
		return nil, wrap("get session", err)
	}
	sess := new(store.Session)
	if err := row.Scan(&sess.Hash, &sess.TenantID, &sess.UserID, timeCol{&sess.AuthTime}, timeCol{&sess.ExpiresAt}); err != nil {
		return nil, wrap("get session", err)
	}
	return sess, nil
}

// DeleteSession implements store.Store. Deleting an unknown session is not
// an error (logout is idempotent).
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	return wrap("delete session", s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(qDeleteSession, hash)
		return err
	}))
}

// usernameFree refuses u when another user of its tenant has its
// username under store.UsernameKey (the writer runs one transaction at a
// time, so no other insert comes between the check and the insert).
func (tx *wtx) usernameFree(u *store.User) error {
	rows, err := tx.query(`SELECT username FROM users WHERE tenant_id = ?`, u.TenantID)
	if err != nil {
		return err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return store.UsernameFree(u.Username, names)
}
