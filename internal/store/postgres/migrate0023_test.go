package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
)

// TestMigration0023UserIndex: 0023 rebuilds the trail's user index as a
// partial one on a populated version-22 trail; the user filter finds the
// events of before and after it, uses the index (with the planner's
// generic plan too, which cannot see the parameter), and events without a
// person are not in it.
func TestMigration0023UserIndex(t *testing.T) {
	ctx := t.Context()
	s, ms := storeAtVersion(t, 22)
	write := func(from, n int) {
		for i := from; i < from+n; i++ {
			ev := &store.AuditEvent{TenantID: store.DefaultTenant, Time: time.Now(), Type: "token.issued", ClientID: "bot",
				Details: map[string]string{"jti": fmt.Sprint("j", i)}}
			if i%4 == 0 {
				ev.UserID = "u1"
			}
			if from == 0 { // at version 22, as the binary of then wrote it
				if _, err := s.pool.Exec(ctx, `INSERT INTO audit_events (tenant_id, time, type, request_id, client_id, user_id,
					resource, ip, outcome, details) VALUES ($1, $2, $3, '', $4, $5, '', '', '', $6)`,
					ev.TenantID, ev.Time, ev.Type, ev.ClientID, ev.UserID, ev.Details); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := s.AppendAudit(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 40)
	if _, _, err := migrate.Run(ctx, dialect{s}, ms, nil); err != nil {
		t.Fatal(err)
	}
	write(40, 40)

	got, err := s.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, UserID: "u1", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("the user filter found %d events, want 20 (10 before the migration, 10 after)", len(got))
	}
	var entries int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE user_id <> ''`).Scan(&entries); err != nil || entries != 20 {
		t.Fatalf("%d events with a person (%v)", entries, err)
	}
	var pred string
	if err := s.pool.QueryRow(ctx, `SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'audit_events_tenant_user'
		AND c.relnamespace = to_regnamespace(current_schema())`).Scan(&pred); err != nil || !strings.Contains(pred, "user_id <> ''") {
		t.Fatalf("audit_events_tenant_user predicate %q (%v), want user_id <> ''", pred, err)
	}

	q, args := auditQuery(store.AuditFilter{TenantID: store.DefaultTenant, UserID: "u1"})
	planUses(t, s, q, fmt.Sprintf("'%s', '%s', %d", args...), "audit_events_tenant_user")
}

// TestMigration0023RefusesLiveReplicas: 0023 changes how new audit rows
// are stored in a way older binaries cannot read, so it refuses to run
// while a replica holds a live background-job lease (an older hub still
// serving), applies nothing, and runs once the lease has run out.
func TestMigration0023RefusesLiveReplicas(t *testing.T) {
	ctx := t.Context()
	s, ms := storeAtVersion(t, 22)
	if _, err := s.pool.Exec(ctx, `INSERT INTO job_leases (name, holder, lease_until, since)
		VALUES ('audit-sealer', 'old-replica', now() + interval '10 seconds', now())`); err != nil {
		t.Fatal(err)
	}
	from, to, err := migrate.Run(ctx, dialect{s}, ms, nil)
	if err == nil || !strings.Contains(err.Error(), "stop every replica") {
		t.Fatalf("migrating with a live lease: %v, want the refusal", err)
	}
	if from != 22 || to != 22 {
		t.Fatalf("version %d → %d, want 22 → 22", from, to)
	}
	var partial bool
	if err := s.pool.QueryRow(ctx, `SELECT i.indpred IS NOT NULL FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'audit_events_tenant_user'
		AND c.relnamespace = current_schema()::regnamespace`).Scan(&partial); err != nil || partial {
		t.Fatalf("the user index after the refusal: partial=%v (%v), want the old one", partial, err)
	}

	// The old replica is gone: its lease runs out.
	if _, err := s.pool.Exec(ctx, `UPDATE job_leases SET lease_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, to, err := migrate.Run(ctx, dialect{s}, ms, nil); err != nil || to != len(ms) {
		t.Fatalf("migrating after the lease ran out: version %d, %v", to, err)
	}
}
