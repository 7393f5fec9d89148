// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the cluster named by AGENTID_TEST_POSTGRES (scripts/postgres.sh
// starts one and prints its DSN), dropped when the test ends. Without that
// variable tests are skipped locally, but in CI (CI=true) a missing
// PostgreSQL is a failure, never a silent skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DSN returns the DSN of the test database from AGENTID_TEST_POSTGRES
// (scripts/postgres.sh prints one). Without it the test is skipped locally,
// but in CI (CI=true) a missing PostgreSQL is a failure, never a silent skip.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("AGENTID_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AGENTID_TEST_POSTGRES is empty in CI: start PostgreSQL with scripts/postgres.sh and export its DSN")
		}
		t.Skip("AGENTID_TEST_POSTGRES not set; run: export AGENTID_TEST_POSTGRES=$(scripts/postgres.sh)")
	}
	return dsn
}

// withSearchPath returns dsn with the server setting search_path=schema, in
// either DSN syntax.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("AGENTID_TEST_POSTGRES is not a valid URL")
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// FreshSchema creates an empty schema for one test, dropped when the test
// ends, and returns a DSN whose connections use it.
func FreshSchema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	schema := "t_" + strings.ToLower(rand.Text()[:16])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, dsn, schema)
}
