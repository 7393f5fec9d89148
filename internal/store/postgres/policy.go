package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// lockTenantPolicy serialises policy-set writes of one tenant, so version
// numbers are assigned without gaps or races and exactly one set is active.
func lockTenantPolicy(ctx context.Context, tx pgx.Tx, tenantID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('agentid.policy.' || $1::text, 0))`, tenantID)
	return err
}

// CreatePolicySet stores ps as the tenant's newest version, makes it the
// active one and sets ps.Version and ps.Active.
func (s *Store) CreatePolicySet(ctx context.Context, ps *store.PolicySet, ev *store.AuditEvent) error {
	var version int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockTenantPolicy(ctx, tx, ps.TenantID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE policy_sets SET active = FALSE WHERE tenant_id = $1 AND active`, ps.TenantID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO policy_sets (tenant_id, version, comment, created_by, created_at, active)
			SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, TRUE FROM policy_sets WHERE tenant_id = $1
			RETURNING version`, ps.TenantID, ps.Comment, ps.CreatedBy, ps.CreatedAt).Scan(&version); err != nil {
			return err
		}
		if len(ps.Files) > 0 {
			b := &pgx.Batch{}
			for name, content := range ps.Files {
				b.Queue(`INSERT INTO policy_files (tenant_id, version, name, content) VALUES ($1, $2, $3, $4)`,
					ps.TenantID, version, name, content)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return mapErr("create policy set", err)
	}
	ps.Version, ps.Active = version, true
	return nil
}

// policyCols reads a set with its files aggregated into one JSON object,
// so a set is read in one statement.
const policyCols = `p.tenant_id, p.version,
	(SELECT jsonb_object_agg(f.name, f.content) FROM policy_files f
	   WHERE f.tenant_id = p.tenant_id AND f.version = p.version),
	p.comment, p.created_by, p.created_at, p.active`

func scanPolicySet(row pgx.Row) (*store.PolicySet, error) {
	var ps store.PolicySet
	var files []byte
	if err := row.Scan(&ps.TenantID, &ps.Version, &files, &ps.Comment, &ps.CreatedBy, &ps.CreatedAt, &ps.Active); err != nil {
		return nil, err
	}
	ps.CreatedAt = utc(ps.CreatedAt)
	var err error
	if ps.Files, err = scanMap(files); err != nil {
		return nil, err
	}
	return &ps, nil
}

// ActivePolicySet returns the tenant's active set, or store.ErrNotFound.
func (s *Store) ActivePolicySet(ctx context.Context, tenantID string) (*store.PolicySet, error) {
	ps, err := scanPolicySet(s.pool.QueryRow(ctx, `SELECT `+policyCols+` FROM policy_sets p
		WHERE p.tenant_id = $1 AND p.active`, tenantID))
	if err != nil {
		return nil, mapErr("active policy set", err)
	}
	return ps, nil
}

// ListPolicySets returns every version of the tenant, newest first.
func (s *Store) ListPolicySets(ctx context.Context, tenantID string) ([]*store.PolicySet, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+policyCols+` FROM policy_sets p WHERE p.tenant_id = $1
		ORDER BY p.version DESC`, tenantID)
	if err != nil {
		return nil, mapErr("list policy sets", err)
	}
	defer rows.Close()
	var out []*store.PolicySet
	for rows.Next() {
		ps, err := scanPolicySet(rows)
		if err != nil {
			return nil, mapErr("list policy sets", err)
		}
		out = append(out, ps)
	}
	return out, mapErr("list policy sets", rows.Err())
}

// ActivatePolicySet makes an existing version active (rollback); an unknown
// version is store.ErrNotFound and changes nothing.
func (s *Store) ActivatePolicySet(ctx context.Context, tenantID string, version int64, ev *store.AuditEvent) error {
	return mapErr("activate policy set", s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockTenantPolicy(ctx, tx, tenantID); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM policy_sets WHERE tenant_id = $1 AND version = $2)`,
			tenantID, version).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return notFound("activate policy set")
		}
		// Deactivate first: the partial unique index allows one active row.
		if _, err := tx.Exec(ctx, `UPDATE policy_sets SET active = FALSE WHERE tenant_id = $1 AND active AND version <> $2`,
			tenantID, version); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE policy_sets SET active = TRUE WHERE tenant_id = $1 AND version = $2`,
			tenantID, version); err != nil {
			return err
		}
		return insertEvent(ctx, tx, ev)
	}))
}
