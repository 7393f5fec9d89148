package postgres

import (
	"context"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// CreateSigningKey inserts k; a duplicate kid is store.ErrConflict.
func (s *Store) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO signing_keys (kid, algorithm, public_jwk, private_enc,
		activate_at, retired_at, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		k.ID, k.Algorithm, k.PublicJWK, k.PrivateEnc, k.ActivateAt, nullTime(k.RetiredAt),
		nullTime(k.ExpiresAt), k.CreatedAt)
	return mapErr("create signing key", err)
}

// ListSigningKeys returns every key, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT kid, algorithm, public_jwk, private_enc, activate_at,
		retired_at, expires_at, created_at FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, mapErr("list signing keys", err)
	}
	defer rows.Close()
	var out []*store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var retired, expires *time.Time
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PublicJWK, &k.PrivateEnc, &k.ActivateAt,
			&retired, &expires, &k.CreatedAt); err != nil {
			return nil, mapErr("list signing keys", err)
		}
		k.ActivateAt, k.CreatedAt = utc(k.ActivateAt), utc(k.CreatedAt)
		k.RetiredAt, k.ExpiresAt = fromNull(retired), fromNull(expires)
		out = append(out, &k)
	}
	return out, mapErr("list signing keys", rows.Err())
}

// UpdateSigningKey stores RetiredAt and ExpiresAt of the key; an unknown kid
// is store.ErrNotFound.
func (s *Store) UpdateSigningKey(ctx context.Context, k *store.SigningKey) error {
	tag, err := s.pool.Exec(ctx, `UPDATE signing_keys SET retired_at = $2, expires_at = $3 WHERE kid = $1`,
		k.ID, nullTime(k.RetiredAt), nullTime(k.ExpiresAt))
	if err != nil {
		return mapErr("update signing key", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("update signing key")
	}
	return nil
}

// DeleteExpiredSigningKeys removes keys whose ExpiresAt is set and before now.
func (s *Store) DeleteExpiredSigningKeys(ctx context.Context, now time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at < $1`, now)
	return mapErr("delete expired signing keys", err)
}
