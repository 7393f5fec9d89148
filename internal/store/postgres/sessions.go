package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// CreateSession stores the session (by the hash of its cookie) and ev.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session, ev *store.AuditEvent) error {
	return mapErr("create session", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (hash, tenant_id, user_id, auth_time, expires_at)
			VALUES ($1, $2, $3, $4, $5)`, sess.Hash, sess.TenantID, sess.UserID, sess.AuthTime, sess.ExpiresAt); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// GetSession returns the session, or store.ErrNotFound if it is unknown or
// expired at now.
func (s *Store) GetSession(ctx context.Context, hash []byte, now time.Time) (*store.Session, error) {
	var sess store.Session
	err := s.pool.QueryRow(ctx, `SELECT hash, tenant_id, user_id, auth_time, expires_at FROM sessions
		WHERE hash = $1 AND expires_at > $2`, hash, now).
		Scan(&sess.Hash, &sess.TenantID, &sess.UserID, &sess.AuthTime, &sess.ExpiresAt)
	if err != nil {
		return nil, mapErr("get session", err)
	}
	sess.AuthTime, sess.ExpiresAt = utc(sess.AuthTime), utc(sess.ExpiresAt)
	return &sess, nil
}

// DeleteSession removes the session; deleting an unknown session is not an
// error (logging out twice is harmless).
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash)
	return mapErr("delete session", err)
}
