package postgres

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
)

// TestMigration0024GrantIndex: 0024 rebuilds access_tokens' grant index as
// a partial one on a populated version-23 table. Client credentials tokens
// (no grant) are not in it; revoking a grant finds its tokens of before
// and after the migration and no other; the revocation's statement uses
// the index with a custom and with a generic plan.
func TestMigration0024GrantIndex(t *testing.T) {
	ctx := t.Context()
	s, ms := storeAtVersion(t, 23)
	const tn = store.DefaultTenant
	exp := time.Now().Add(time.Hour)
	// write issues twelve tokens, a third of them without a grant. Before
	// the migration through version 23's columns in SQL (the store's code
	// writes columns of later versions), after it through the store.
	write := func(raw bool) {
		t.Helper()
		for i := range 12 {
			at := &store.AccessToken{JTI: "j-" + rand.Text(), TenantID: tn, ClientID: "bot", ExpiresAt: exp}
			switch i % 3 {
			case 1:
				at.GrantID, at.UserID = "g1", "u1"
			case 2:
				at.GrantID, at.UserID = "g2", "u1"
			}
			var err error
			if raw {
				_, err = s.pool.Exec(ctx, `INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id,
					user_id, resource, scopes, expires_at, redirect_uri, token_sha256)
					VALUES ($1, $2, $3, $4, $5, '', '{}', $6, '', '')`,
					at.JTI, at.TenantID, at.GrantID, at.ClientID, at.UserID, at.ExpiresAt)
			} else {
				err = s.IssueTokens(ctx, &store.Issuance{AccessToken: at})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	write(true)
	if _, to, err := migrate.Run(ctx, dialect{s}, ms, nil); err != nil || to != len(ms) {
		t.Fatalf("migrate: version %d, %v", to, err)
	}
	write(false)

	var pred string
	if err := s.pool.QueryRow(ctx, `SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'access_tokens_grant'
		AND c.relnamespace = to_regnamespace(current_schema())`).Scan(&pred); err != nil || !strings.Contains(pred, "grant_id <> ''") {
		t.Fatalf("access_tokens_grant predicate %q (%v), want grant_id <> ''", pred, err)
	}
	if err := s.RevokeGrant(ctx, tn, "g1", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT grant_id, count(*) FILTER (WHERE revoked_at IS NOT NULL), count(*)
		FROM access_tokens GROUP BY grant_id ORDER BY grant_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var g string
		var revoked, all int
		if err := rows.Scan(&g, &revoked, &all); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%d/%d", g, revoked, all))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := ":0/8 g1:8/8 g2:0/8"; strings.Join(got, " ") != want {
		t.Fatalf("revoked/all per grant %q, want %q", strings.Join(got, " "), want)
	}

	planUses(t, s, revokeGrantAccessSQL, "'default', 'g2', now()", "access_tokens_grant")
}

// planUses fails t unless the plan of q, prepared as pgx runs it and
// executed with args (SQL literals), uses index, with a custom and with a
// generic plan. A small table favours a sequential scan, so it is turned
// off: the question is whether the index can serve the query at all.
func planUses(t *testing.T, s *Store, q, args, index string) {
	t.Helper()
	ctx := t.Context()
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			tx, err := s.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			defer tx.Exec(ctx, "DEALLOCATE plan_uses")
			for _, set := range []string{"SET LOCAL enable_seqscan = off", "SET LOCAL plan_cache_mode = " + mode} {
				if _, err := tx.Exec(ctx, set); err != nil {
					t.Fatal(err)
				}
			}
			// A prepared statement: EXPLAIN with parameters would plan
			// with their values.
			if _, err := tx.Exec(ctx, "PREPARE plan_uses AS "+q); err != nil {
				t.Fatal(err)
			}
			rows, err := tx.Query(ctx, "EXPLAIN EXECUTE plan_uses("+args+")")
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if text := strings.Join(plan, "\n"); !strings.Contains(text, index) {
				t.Errorf("the plan does not use %s:\n%s", index, text)
			}
		})
	}
}

// TestMigrationFrom23RefusedAsAWhole: upgrading a version-23 database
// while a replica holds a live job lease is refused by 0025, and 0024,
// applied in the same transaction, is not kept either: the database stays
// at 23 with its old grant index (docs/operations.md, "Upgrades and
// migrations"), and the upgrade goes through once the lease has run out.
func TestMigrationFrom23RefusedAsAWhole(t *testing.T) {
	ctx := t.Context()
	s, ms := storeAtVersion(t, 23)
	if _, err := s.pool.Exec(ctx, `INSERT INTO job_leases (name, holder, lease_until, since)
		VALUES ('audit-sealer', 'v23-replica', now() + interval '10 seconds', now())`); err != nil {
		t.Fatal(err)
	}
	grantIndexPartial := func() bool {
		t.Helper()
		var pred *string
		if err := s.pool.QueryRow(ctx, `SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i
			JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'access_tokens_grant'
			AND c.relnamespace = to_regnamespace(current_schema())`).Scan(&pred); err != nil {
			t.Fatal(err)
		}
		return pred != nil
	}
	from, to, err := migrate.Run(ctx, dialect{s}, ms, nil)
	if err == nil || !strings.Contains(err.Error(), "stop every replica") {
		t.Fatalf("migrating from 23 with a live lease: %v, want the refusal", err)
	}
	if from != 23 || to != 23 || grantIndexPartial() {
		t.Fatalf("after the refusal: version %d → %d, partial grant index %v; want 23 → 23 and the old index", from, to, grantIndexPartial())
	}
	if _, err := s.pool.Exec(ctx, `UPDATE job_leases SET lease_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, to, err := migrate.Run(ctx, dialect{s}, ms, nil); err != nil || to != len(ms) || !grantIndexPartial() {
		t.Fatalf("migrating after the lease ran out: version %d, %v", to, err)
	}
}
