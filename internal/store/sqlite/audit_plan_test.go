package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestAuditQueryPlans: the audit filters an administrator uses most run
// on an index (migration 0012), not a scan of the trail.
func TestAuditQueryPlans(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "plan.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const tn = store.DefaultTenant
	tests := []struct {
		name  string
		f     store.AuditFilter
		index string
	}{
		{"type", store.AuditFilter{TenantID: tn, Type: "token.issued"}, "audit_events_type"},
		{"type prefix", store.AuditFilter{TenantID: tn, TypePrefix: "token."}, "audit_events_type"},
		{"resource", store.AuditFilter{TenantID: tn, Resource: "https://r.example/mcp"}, "audit_events_resource"},
		{"provider", store.AuditFilter{TenantID: tn, Provider: "calendar"}, "audit_events_provider"},
		{"client", store.AuditFilter{TenantID: tn, ClientID: "c", Since: time.Now()}, "audit_events_client"},
		{"agent as client", store.AuditFilter{TenantID: tn, Agent: "a"}, "audit_events_client"},
		{"agent as detail", store.AuditFilter{TenantID: tn, Agent: "a"}, "audit_events_agent"},
		{"tenant page", store.AuditFilter{TenantID: tn, Before: 1000}, "audit_events_tenant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, args := auditQuery(tc.f)
			rows, err := s.read.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			text := strings.Join(plan, "; ")
			if !strings.Contains(text, "INDEX "+tc.index) {
				t.Errorf("plan %q does not use %s", text, tc.index)
			}
		})
	}
}
