package postgres

import (
	"context"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Installations implements store.Store.
func (s *Store) Installations(ctx context.Context, tenantID, userID, clientID string, now time.Time) ([]store.Installation, error) {
	rows, err := s.pool.Query(ctx, `SELECT redirect_uri, MAX(created_at) FROM (
		SELECT redirect_uri, created_at FROM refresh_tokens
		WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3 AND redirect_uri <> ''
		AND revoked_at IS NULL AND rotated_at IS NULL AND expires_at > $4
		UNION ALL
		SELECT redirect_uri, NULL::timestamptz FROM access_tokens
		WHERE tenant_id = $1 AND user_id = $2 AND user_id <> '' AND client_id = $3 AND redirect_uri <> ''
		AND revoked_at IS NULL AND expires_at > $4
	) t GROUP BY redirect_uri ORDER BY redirect_uri COLLATE "C" LIMIT 100`, tenantID, userID, clientID, now)
	if err != nil {
		return nil, mapErr("installations", err)
	}
	defer rows.Close()
	var out []store.Installation
	for rows.Next() {
		var (
			in   store.Installation
			last *time.Time
		)
		if err := rows.Scan(&in.RedirectURI, &last); err != nil {
			return nil, mapErr("installations", err)
		}
		if last != nil {
			in.LastIssuedAt = utc(*last)
		}
		out = append(out, in)
	}
	return out, mapErr("installations", rows.Err())
}
