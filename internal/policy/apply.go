package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Apply validates ps.Files against the schema and stores them as the
// tenant's newest version, which becomes active (the store assigns
// ps.Version), with its policy.applied event (the set's files, policy
// count and digest; metadata m, nil for none) in the same transaction. An
// invalid set is a *ValidationError and nothing is stored: the active
// version stays. Engines pick the new version up at their next refresh;
// callers then recompute the clients' ceilings (Engine.RecomputeCeilings).
func Apply(ctx context.Context, st store.Policies, ps *store.PolicySet, m *audit.Meta) error {
	set, err := Compile(ps.Files)
	if err != nil {
		return err
	}
	if ps.TenantID == "" {
		ps.TenantID = store.DefaultTenant
	}
	var ev *store.AuditEvent
	if m != nil {
		f := describeSet(set)
		f.Operation, f.Comment = audit.PolicyOpApply, ps.Comment
		ev = audit.NewPolicyApplied(*m, f)
	}
	if err := st.CreatePolicySet(ctx, ps, ev); err != nil {
		return fmt.Errorf("policy: apply: %w", err)
	}
	return nil
}

// Rollback makes a stored version of the tenant's policy set active again,
// with its policy.applied event (metadata m, nil for none) in the same
// transaction. The version must still
// validate against this binary's schema (a *ValidationError otherwise, and
// nothing changes); an unknown version is store.ErrNotFound.
func Rollback(ctx context.Context, st store.Policies, tenantID string, version int64, m *audit.Meta) (*store.PolicySet, error) {
	if tenantID == "" {
		tenantID = store.DefaultTenant
	}
	ps, err := StoredVersion(ctx, st, tenantID, version)
	if err != nil {
		return nil, err
	}
	set, err := Compile(ps.Files)
	if err != nil {
		return nil, err
	}
	var ev *store.AuditEvent
	if m != nil {
		f := describeSet(set)
		f.Operation, f.Version = audit.PolicyOpRollback, version
		ev = audit.NewPolicyApplied(*m, f)
	}
	if err := st.ActivatePolicySet(ctx, tenantID, version, ev); err != nil {
		return nil, fmt.Errorf("policy: rollback: %w", err)
	}
	ps.Active = true
	return ps, nil
}

// StoredVersion returns one stored version of the tenant's policy set, or
// store.ErrNotFound.
func StoredVersion(ctx context.Context, st store.Policies, tenantID string, version int64) (*store.PolicySet, error) {
	sets, err := st.ListPolicySets(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("policy: list policy sets: %w", err)
	}
	i := slices.IndexFunc(sets, func(ps *store.PolicySet) bool { return ps.Version == version })
	if i < 0 {
		return nil, fmt.Errorf("policy: version %d: %w", version, store.ErrNotFound)
	}
	return sets[i], nil
}

// describeSet is what identifies a policy set in an audit event: its
// files, how many policies, and a digest of the whole text.
func describeSet(s *Set) audit.PolicyAppliedFields {
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return audit.PolicyAppliedFields{Files: names, Policies: len(s.Policies()), SHA256: Digest(s.files)}
}

// Digest is a SHA-256 over a policy set's file names and contents, so that
// two copies of one set can be recognised (hex).
func Digest(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		// Lengths first, so that no two different sets share an encoding.
		fmt.Fprintf(h, "%d:%s%d:%s", len(n), n, len(files[n]), files[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}
