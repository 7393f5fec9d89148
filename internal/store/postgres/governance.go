package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// defaultPruneLimit bounds one PruneClients call when the request does not.
const defaultPruneLimit = 1000

// ClientsBySoftware returns the duplicate candidates of a dynamic
// registration (index clients_software), newest first.
func (s *Store) ClientsBySoftware(ctx context.Context, tenantID, softwareID, name string) ([]*store.Client, error) {
	q, key := `software_id = $2`, softwareID
	if softwareID == "" {
		q, key = `software_id = '' AND name = $2`, name
	}
	rows, err := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients
		WHERE tenant_id = $1 AND `+q+` AND registration_method = 'dcr' AND NOT disabled
		ORDER BY created_at DESC, id DESC LIMIT 100`, tenantID, key)
	if err != nil {
		return nil, mapErr("clients by software", err)
	}
	return collectClients("clients by software", rows)
}

func collectClients(op string, rows pgx.Rows) ([]*store.Client, error) {
	defer rows.Close()
	var out []*store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, c)
	}
	return out, mapErr(op, rows.Err())
}

// prunableWhere is the condition a client meets to be pruned (never a
// deprovisioned client, nor a disabled metadata-document client, whose
// removal would let its URL back in): $1 the
// tenant, $2 the methods, $3 UnusedSince, $4 Now. A refresh token is live
// while neither rotated nor revoked and unexpired, an access token while
// not revoked and unexpired, a consent while not revoked and not expired
// (expiry is exclusive: live while now is before it).
const prunableWhere = `c.tenant_id = $1 AND c.registration_method = ANY($2)
	AND coalesce(c.last_used_at, c.created_at) < $3
	AND c.status <> 'deprovisioned' AND NOT (c.disabled AND c.registration_method = 'cimd')
	AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.tenant_id = c.tenant_id AND r.client_id = c.id
		AND r.rotated_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > $4)
	AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.tenant_id = c.tenant_id AND a.client_id = c.id
		AND a.revoked_at IS NULL AND a.expires_at > $4)
	AND NOT EXISTS (SELECT 1 FROM consents g WHERE g.tenant_id = c.tenant_id AND g.client_id = c.id
		AND g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > $4))`

// PruneClients removes the clients req selects. In one transaction it
// selects the candidates, takes each one's live lock exclusively (in id
// order; lockClient), which waits for the issuances under way for them to
// commit and makes those that follow wait for this one, and then deletes
// them with a DELETE that checks the whole condition again on its own,
// newer snapshot: a candidate that received a token or consent meanwhile
// stays. The events of the deleted clients are written in the same
// transaction.
func (s *Store) PruneClients(ctx context.Context, req store.PruneRequest, ev func(*store.Client) *store.AuditEvent) ([]*store.Client, error) {
	if len(req.Methods) == 0 {
		return nil, nil
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultPruneLimit
	}
	args := []any{req.TenantID, req.Methods, req.UnusedSince, req.Now}
	if req.DryRun {
		rows, err := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients c WHERE `+prunableWhere+`
			ORDER BY coalesce(c.last_used_at, c.created_at), c.id LIMIT $5`, append(args, limit)...)
		if err != nil {
			return nil, mapErr("prune clients", err)
		}
		return collectClients("prune clients", rows)
	}
	var out []*store.Client
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var ids []string
		rows, err := tx.Query(ctx, `SELECT c.id FROM clients c WHERE `+prunableWhere+`
			ORDER BY coalesce(c.last_used_at, c.created_at), c.id LIMIT $5`, append(args, limit)...)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		slices.Sort(ids)
		if _, err := tx.Exec(ctx, `SELECT agentid_live_lock('client', $1, id, false)
			FROM unnest($2::text[]) AS id`, req.TenantID, ids); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `DELETE FROM clients c WHERE c.id = ANY($5) AND `+prunableWhere+`
			RETURNING `+clientCols, append(args, ids)...)
		if err != nil {
			return err
		}
		deleted, err := collectClients("prune clients", rows)
		if err != nil {
			return err
		}
		if len(deleted) == 0 {
			return nil
		}
		// Oldest use first, as selected.
		slices.SortFunc(deleted, func(a, b *store.Client) int {
			return cmpUse(a, b)
		})
		gone := make([]string, len(deleted))
		for i, c := range deleted {
			gone[i] = c.ID
		}
		// What is left is rotated, revoked or expired; revoked as by
		// DeleteClient, so nothing of the client outlives it.
		for _, table := range []string{"refresh_tokens", "access_tokens"} {
			if _, err := tx.Exec(ctx, `UPDATE `+table+` SET revoked_at = $3
				WHERE tenant_id = $1 AND client_id = ANY($2) AND revoked_at IS NULL`, req.TenantID, gone, req.Now); err != nil {
				return err
			}
		}
		if ev != nil {
			for _, c := range deleted {
				if err := insertEvent(ctx, tx, ev(c)); err != nil {
					return err
				}
			}
		}
		out = deleted
		return nil
	})
	if err != nil {
		return nil, mapErr("prune clients", err)
	}
	return out, nil
}

// cmpUse orders clients by last use (creation when never used), then id.
func cmpUse(a, b *store.Client) int {
	ua, ub := a.LastUsedAt, b.LastUsedAt
	if ua.IsZero() {
		ua = a.CreatedAt
	}
	if ub.IsZero() {
		ub = b.CreatedAt
	}
	if c := ua.Compare(ub); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// checkDomain refuses a domain the store cannot hold.
func checkDomain(d *store.Domain) error {
	if d.TenantID == "" || d.Pattern == "" || strings.ToLower(d.Pattern) != d.Pattern {
		return fmt.Errorf("domain %q: %w", d.Pattern, store.ErrInvalid)
	}
	switch d.Trust {
	case store.DomainTrusted, store.DomainAllowed, store.DomainBlocked:
		return nil
	}
	return fmt.Errorf("domain trust %q: %w", d.Trust, store.ErrInvalid)
}

// PutDomain creates or replaces the domain; a replaced one keeps its
// CreatedAt.
func (s *Store) PutDomain(ctx context.Context, d *store.Domain, ev *store.AuditEvent) error {
	if err := checkDomain(d); err != nil {
		return mapErr("put domain", err)
	}
	return mapErr("put domain", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO domains (tenant_id, pattern, trust, allow_text_plain, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (tenant_id, pattern) DO UPDATE SET trust = EXCLUDED.trust,
			allow_text_plain = EXCLUDED.allow_text_plain, updated_at = EXCLUDED.updated_at`,
			d.TenantID, d.Pattern, d.Trust, d.AllowTextPlain, d.CreatedAt, d.UpdatedAt); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// ListDomains returns the tenant's domains ordered by pattern.
func (s *Store) ListDomains(ctx context.Context, tenantID string) ([]*store.Domain, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, pattern, trust, allow_text_plain, created_at, updated_at
		FROM domains WHERE tenant_id = $1 ORDER BY pattern COLLATE "C"`, tenantID)
	if err != nil {
		return nil, mapErr("list domains", err)
	}
	defer rows.Close()
	var out []*store.Domain
	for rows.Next() {
		d := new(store.Domain)
		if err := rows.Scan(&d.TenantID, &d.Pattern, &d.Trust, &d.AllowTextPlain, &d.CreatedAt, &d.UpdatedAt); err != nil {
			return nil, mapErr("list domains", err)
		}
		d.CreatedAt, d.UpdatedAt = utc(d.CreatedAt), utc(d.UpdatedAt)
		out = append(out, d)
	}
	return out, mapErr("list domains", rows.Err())
}

// DeleteDomain removes the domain; an unknown one is store.ErrNotFound.
func (s *Store) DeleteDomain(ctx context.Context, tenantID, pattern string, ev *store.AuditEvent) error {
	return mapErr("delete domain", s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM domains WHERE tenant_id = $1 AND pattern = $2`, tenantID, pattern)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("delete domain")
		}
		return insertEvent(ctx, tx, ev)
	}))
}

// RevokeInstallation revokes one installation's token families. The user's
// live lock (lockUser) is taken first: an issuance for the user under way
// (a refresh of this installation) commits before the statements below
// read, so they see its tokens; one that follows finds its family revoked.
// An empty user or redirect URI is store.ErrInvalid: it would reach tokens
// of no installation (client credentials, other grants).
func (s *Store) RevokeInstallation(ctx context.Context, tenantID, userID, clientID, redirectURI string, now time.Time, ev *store.AuditEvent) (int, error) {
	if userID == "" || clientID == "" || redirectURI == "" {
		return 0, mapErr("revoke installation", store.ErrInvalid)
	}
	var families int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockUser(ctx, tx, tenantID, userID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT grant_id FROM refresh_tokens
			WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3 AND redirect_uri = $4 AND revoked_at IS NULL AND grant_id <> ''
			UNION SELECT grant_id FROM access_tokens
			WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3 AND redirect_uri = $4 AND revoked_at IS NULL AND grant_id <> ''`,
			tenantID, userID, clientID, redirectURI)
		if err != nil {
			return err
		}
		grants, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		var n int64
		// Whole families (a member the issuer did not label still goes),
		// then anything labelled outside a family. grant_id <> '' (true of
		// every grant selected) lets a generic plan use access_tokens'
		// partial grant index (migration 0024).
		if len(grants) > 0 {
			for _, table := range []string{"refresh_tokens", "access_tokens"} {
				tag, err := tx.Exec(ctx, `UPDATE `+table+` SET revoked_at = $3
					WHERE tenant_id = $1 AND grant_id = ANY($2) AND grant_id <> '' AND revoked_at IS NULL`, tenantID, grants, now)
				if err != nil {
					return err
				}
				n += tag.RowsAffected()
			}
		}
		for _, table := range []string{"refresh_tokens", "access_tokens"} {
			tag, err := tx.Exec(ctx, `UPDATE `+table+` SET revoked_at = $5
				WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3 AND redirect_uri = $4 AND revoked_at IS NULL`,
				tenantID, userID, clientID, redirectURI, now)
			if err != nil {
				return err
			}
			n += tag.RowsAffected()
		}
		families = len(grants)
		if n == 0 {
			return nil
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return 0, mapErr("revoke installation", err)
	}
	return families, nil
}
