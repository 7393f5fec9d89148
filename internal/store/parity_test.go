package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// column is what the parity test compares of one column: its name, a
// coarse type class and its place in the primary key (0: not in it).
type column struct {
	class string
	pk    int
}

// schema maps table → column → column facts.
type schema map[string]map[string]column

// TestSchemaParity migrates an empty database on each backend and compares
// their shapes: the same tables, the same columns, the same primary keys,
// and each column of the same coarse type class. The class is how SQLite
// stores the value (integer, text, blob): PostgreSQL's timestamptz,
// boolean and integer types are integers there, its text[] and jsonb are
// JSON text. A new migration on one backend without its twin fails here.
// Without PostgreSQL the test is skipped locally and fails in CI (pgtest).
func TestSchemaParity(t *testing.T) {
	ctx := t.Context()
	pg := postgresSchema(ctx, t, pgtest.FreshSchema(t))
	lite := sqliteSchema(ctx, t, filepath.Join(t.TempDir(), "parity.db"))
	if len(lite) < 10 {
		t.Fatalf("SQLite schema has only %d tables", len(lite))
	}
	var diffs []string
	for _, table := range slices.Sorted(maps.Keys(union(lite, pg))) {
		l, inL := lite[table]
		p, inP := pg[table]
		switch {
		case !inL:
			diffs = append(diffs, fmt.Sprintf("table %s: only in PostgreSQL", table))
			continue
		case !inP:
			diffs = append(diffs, fmt.Sprintf("table %s: only in SQLite", table))
			continue
		}
		for _, col := range slices.Sorted(maps.Keys(union(l, p))) {
			lc, inL := l[col]
			pc, inP := p[col]
			switch {
			case !inL:
				diffs = append(diffs, fmt.Sprintf("%s.%s: only in PostgreSQL", table, col))
			case !inP:
				diffs = append(diffs, fmt.Sprintf("%s.%s: only in SQLite", table, col))
			case lc.class != pc.class:
				diffs = append(diffs, fmt.Sprintf("%s.%s: %s in SQLite, %s in PostgreSQL", table, col, lc.class, pc.class))
			case lc.pk != pc.pk:
				diffs = append(diffs, fmt.Sprintf("%s.%s: primary-key position %d in SQLite, %d in PostgreSQL", table, col, lc.pk, pc.pk))
			}
		}
	}
	if len(diffs) > 0 {
		t.Errorf("the schemas of the backends differ; add a migration on each so they agree:\n  %s", strings.Join(diffs, "\n  "))
	}
}

func union[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func sqliteSchema(ctx context.Context, t *testing.T, path string) schema {
	t.Helper()
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT m.name, p.name, p.type, p.pk
		FROM sqlite_schema m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := schema{}
	for rows.Next() {
		var table, col, typ string
		var pk int
		if err := rows.Scan(&table, &col, &typ, &pk); err != nil {
			t.Fatal(err)
		}
		typ = strings.ToUpper(typ)
		class := "other: " + typ
		switch {
		case strings.Contains(typ, "INT"):
			class = "integer"
		case strings.Contains(typ, "TEXT"):
			class = "text"
		case strings.Contains(typ, "BLOB"):
			class = "blob"
		}
		add(out, table, col, column{class, pk})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func postgresSchema(ctx context.Context, t *testing.T, dsn string) schema {
	t.Helper()
	s, err := postgres.Open(ctx, dsn, postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT c.table_name, c.column_name, c.udt_name,
		coalesce((SELECT k.ordinal_position FROM information_schema.table_constraints tc
			JOIN information_schema.key_column_usage k ON k.constraint_schema = tc.constraint_schema
				AND k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name
			WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema
				AND tc.table_name = c.table_name AND k.column_name = c.column_name), 0)
		FROM information_schema.columns c JOIN information_schema.tables t
			ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := schema{}
	for rows.Next() {
		var table, col, udt string
		var pk int
		if err := rows.Scan(&table, &col, &udt, &pk); err != nil {
			t.Fatal(err)
		}
		class := "other: " + udt
		switch udt {
		case "int2", "int4", "int8", "bool", "timestamptz":
			class = "integer"
		case "text", "_text", "jsonb":
			class = "text"
		case "bytea":
			class = "blob"
		}
		add(out, table, col, column{class, pk})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func add(s schema, table, col string, c column) {
	if s[table] == nil {
		s[table] = map[string]column{}
	}
	s[table][col] = c
}
