package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one forward-only schema step, named NNNN_description.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in version order and checks
// they are numbered 1, 2, 3, … without gaps or duplicates, so that a
// database's version always names exactly the set of steps applied to it.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("postgres: migration %q: name must be NNNN_description.sql", e.Name())
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: migration %q: name must start with a positive number", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("postgres: read migration %q: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migration %q: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrateLockSQL takes the advisory lock that serialises migrations of one
// schema: replicas starting together take turns, and each sees the versions
// the previous one applied.
const migrateLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('agentid.migrate.' || coalesce(current_schema(), ''), 0))`

const createMigrationsTableSQL = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies every pending migration in one transaction under a
// transaction-scoped advisory lock, so concurrent replicas migrating at once
// are safe and a failed step leaves the schema unchanged. It returns the
// version before and after, and store.ErrSchemaTooNew if the database is
// ahead of this binary.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		return 0, 0, err
	}
	known := len(ms)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, migrateLockSQL); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, createMigrationsTableSQL); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
			return fmt.Errorf("read version: %w", err)
		}
		if from > known {
			return fmt.Errorf("postgres: database at version %d, binary knows %d: %w", from, known, store.ErrSchemaTooNew)
		}
		for _, m := range ms[from:] {
			// The simple protocol runs a file of several statements.
			if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("record %s: %w", m.name, err)
			}
			s.log.InfoContext(ctx, "applied migration", "version", m.version, "name", m.name)
		}
		return nil
	})
	if err != nil {
		return from, from, mapErr("migrate", err)
	}
	return from, known, nil
}

// SchemaVersion returns the database's version (0 before the first
// migration) and the newest version this binary knows.
func (s *Store) SchemaVersion(ctx context.Context) (current, known int, err error) {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		return 0, 0, err
	}
	known = len(ms)
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, known, mapErr("schema version", err)
	}
	if !exists {
		return 0, known, nil
	}
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, known, mapErr("schema version", err)
	}
	return current, known, nil
}
