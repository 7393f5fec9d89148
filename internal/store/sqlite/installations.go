package sqlite

import (
	"context"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// qInstallations: the installations with a live token of one client for
// one user (parameters: tenant, user, client, now).
const qInstallations = `SELECT redirect_uri, MAX(created_at) FROM (
	SELECT redirect_uri, created_at FROM refresh_tokens
	WHERE tenant_id = ?1 AND user_id = ?2 AND client_id = ?3 AND redirect_uri <> ''
	AND revoked_at IS NULL AND rotated_at IS NULL AND expires_at > ?4
	UNION ALL
	SELECT redirect_uri, NULL FROM access_tokens
	WHERE tenant_id = ?1 AND user_id = ?2 AND user_id <> '' AND client_id = ?3 AND redirect_uri <> ''
	AND revoked_at IS NULL AND expires_at > ?4
) GROUP BY redirect_uri ORDER BY redirect_uri LIMIT 100`

// Installations implements store.Store.
func (s *Store) Installations(ctx context.Context, tenantID, userID, clientID string, now time.Time) ([]store.Installation, error) {
	rows, err := s.queryShort(ctx, qInstallations, tenantID, userID, clientID, now.UnixMicro())
	if err != nil {
		return nil, wrap("installations", err)
	}
	defer rows.Close()
	var out []store.Installation
	for rows.Next() {
		var in store.Installation
		if err := rows.Scan(&in.RedirectURI, timeCol{&in.LastIssuedAt}); err != nil {
			return nil, wrap("installations", err)
		}
		out = append(out, in)
	}
	return out, wrap("installations", rows.Err())
}
