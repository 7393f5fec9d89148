package sqlite

import (
	"context"
	"database/sql"

	"github.com/agentid/agentid/internal/store"
)

const (
	qNextPolicyVersion = `SELECT coalesce(max(version), 0) + 1 FROM policy_sets WHERE tenant_id = ?`
	// Deactivate before activating: the partial unique index admits one
	// active version per tenant at every step.
	qDeactivatePolicies = `UPDATE policy_sets SET active = 0 WHERE tenant_id = ? AND active = 1 AND version <> ?`
	qActivatePolicy     = `UPDATE policy_sets SET active = 1 WHERE tenant_id = ? AND version = ?`
	qInsertPolicySet    = `INSERT INTO policy_sets (tenant_id, version, comment, created_by, created_at, active)
	VALUES (?, ?, ?, ?, ?, 1)`
	qInsertPolicyFile = `INSERT INTO policy_files (tenant_id, version, name, content) VALUES (?, ?, ?, ?)`
	qPolicyExists     = `SELECT count(*) FROM policy_sets WHERE tenant_id = ? AND version = ?`
	qSelectPolicies   = `SELECT p.tenant_id, p.version, p.comment, p.created_by, p.created_at, p.active, f.name, f.content
	FROM policy_sets p LEFT JOIN policy_files f ON f.tenant_id = p.tenant_id AND f.version = p.version`
	qActivePolicySet = qSelectPolicies + ` WHERE p.tenant_id = ? AND p.active = 1`
	qListPolicySets  = qSelectPolicies + ` WHERE p.tenant_id = ? ORDER BY p.version DESC`
)

// CreatePolicySet implements store.Store.
func (s *Store) CreatePolicySet(ctx context.Context, ps *store.PolicySet, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("create policy set", s.w.do(ctx, func(tx *wtx) error {
		var v int64
		if err := tx.queryRow(qNextPolicyVersion, ps.TenantID).Scan(&v); err != nil {
			return err
		}
		if _, err := tx.exec(qDeactivatePolicies, ps.TenantID, v); err != nil {
			return err
		}
		if _, err := tx.exec(qInsertPolicySet, ps.TenantID, v, ps.Comment, ps.CreatedBy, tv(ps.CreatedAt)); err != nil {
			return err
		}
		for name, content := range ps.Files {
			if _, err := tx.exec(qInsertPolicyFile, ps.TenantID, v, name, content); err != nil {
				return err
			}
		}
		if err := tx.audit(evRow); err != nil {
			return err
		}
		ps.Version, ps.Active = v, true
		return nil
	}))
}

func scanPolicySets(rows *sql.Rows) ([]*store.PolicySet, error) {
	defer rows.Close()
	var out []*store.PolicySet
	var cur *store.PolicySet
	for rows.Next() {
		var ps store.PolicySet
		var name, content sql.NullString
		if err := rows.Scan(&ps.TenantID, &ps.Version, &ps.Comment, &ps.CreatedBy, timeCol{&ps.CreatedAt},
			&ps.Active, &name, &content); err != nil {
			return nil, err
		}
		if cur == nil || cur.Version != ps.Version {
			cur = &ps
			cur.Files = make(map[string]string)
			out = append(out, cur)
		}
		if name.Valid {
			cur.Files[name.String] = content.String
		}
	}
	return out, rows.Err()
}

// ActivePolicySet implements store.Store.
func (s *Store) ActivePolicySet(ctx context.Context, tenantID string) (*store.PolicySet, error) {
	rows, err := s.queryShort(ctx, qActivePolicySet, tenantID)
	if err != nil {
		return nil, wrap("active policy set", err)
	}
	list, err := scanPolicySets(rows)
	if err != nil {
		return nil, wrap("active policy set", err)
	}
	if len(list) == 0 {
		return nil, wrap("active policy set", store.ErrNotFound)
	}
	return list[0], nil
}

// ListPolicySets implements store.Store.
func (s *Store) ListPolicySets(ctx context.Context, tenantID string) ([]*store.PolicySet, error) {
	rows, err := s.query(ctx, qListPolicySets, tenantID)
	if err != nil {
		return nil, wrap("list policy sets", err)
	}
	list, err := scanPolicySets(rows)
	return list, wrap("list policy sets", err)
}

// ActivatePolicySet implements store.Store.
func (s *Store) ActivatePolicySet(ctx context.Context, tenantID string, version int64, ev *store.AuditEvent) error {
	evRow := prepAudit(ev)
	return wrap("activate policy set", s.w.do(ctx, func(tx *wtx) error {
		var n int
		if err := tx.queryRow(qPolicyExists, tenantID, version).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.exec(qDeactivatePolicies, tenantID, version); err != nil {
			return err
		}
		if _, err := tx.exec(qActivatePolicy, tenantID, version); err != nil {
			return err
		}
		return tx.audit(evRow)
	}))
}
