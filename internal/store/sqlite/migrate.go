package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Migrations are forward only: NNNN_name.sql, applied in order, each in its
// own transaction together with its row in schema_migrations.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded scripts and checks their numbering is
// 1, 2, 3, … without gaps or duplicates.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %q is not named NNNN_name.sql", name)
		}
		b, err := migrationFS.ReadFile("migrations/" + name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q: want version %d", m.name, i+1)
		}
	}
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)`

// SchemaVersion returns the newest applied migration (0 for a new file) and
// the newest this binary embeds.
func (s *Store) SchemaVersion(ctx context.Context) (current, known int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	known = len(ms)
	var exists int
	err = s.read.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&exists)
	if err != nil {
		return 0, known, fmt.Errorf("sqlite: schema version: %w", err)
	}
	if exists == 0 {
		return 0, known, nil
	}
	if err := s.read.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, known, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return current, known, nil
}

// Migrate applies the pending migrations. It runs on the write connection,
// so it is serialised with every other write of this process; a second
// process migrating the same file waits on the database lock (BEGIN
// IMMEDIATE) and then finds nothing left to do.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: migrate: %w", err)
	}
	err = s.w.submit(ctx, &request{ctx: ctx, raw: true, fn: func(tx *wtx) error {
		c := tx.w.conn
		bg := context.Background()
		if _, err := c.ExecContext(bg, createMigrationsTable); err != nil {
			return err
		}
		if err := c.QueryRowContext(bg, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
			return err
		}
		to = from
		if from > len(ms) {
			return store.ErrSchemaTooNew
		}
		for _, m := range ms[from:] {
			if err := applyMigration(bg, tx, m); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			to = m.version
			s.log.InfoContext(ctx, "sqlite: applied migration", "version", m.version, "name", m.name)
		}
		return nil
	}})
	if err != nil {
		return from, to, fmt.Errorf("sqlite: migrate: %w", err)
	}
	return from, to, nil
}

func applyMigration(ctx context.Context, tx *wtx, m migration) (err error) {
	c := tx.w.conn
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.ExecContext(ctx, "ROLLBACK")
		}
	}()
	// Another process may have applied it since we looked.
	var done int
	if err := c.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&done); err != nil {
		return err
	}
	if done > 0 {
		_, err := c.ExecContext(ctx, "COMMIT")
		return err
	}
	if _, err := c.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMicro()); err != nil {
		return err
	}
	_, err = c.ExecContext(ctx, "COMMIT")
	return err
}
