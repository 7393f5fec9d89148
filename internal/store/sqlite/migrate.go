package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/agentid/agentid/internal/store/migrate"
)

// Migrations are forward only: NNNN_name.sql, applied in order by the
// shared runner (package migrate).
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// loadMigrations returns the embedded migrations.
func loadMigrations() ([]migrate.Migration, error) {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	return migrate.Load(sub)
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)`

// dialect runs migrations on the write connection, so they are serialised
// with every other write of this process; a second process migrating the
// same file waits on the database lock (BEGIN IMMEDIATE) and then finds
// nothing left to do.
type dialect struct{ s *Store }

func (d dialect) Current(ctx context.Context) (int, error) {
	var exists int
	err := d.s.read.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&exists)
	if err != nil || exists == 0 {
		return 0, err
	}
	var v int
	err = d.s.read.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (d dialect) Transact(ctx context.Context, fn func(migrate.Tx) error) error {
	return d.s.w.submit(ctx, &request{ctx: ctx, raw: true, fn: func(tx *wtx) error {
		c := tx.w.conn
		// The writer does not hand ctx to its statements (see writer.do).
		bg := context.Background()
		if _, err := c.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
		if err := fn(migrationTx{c}); err != nil {
			if _, rerr := c.ExecContext(bg, "ROLLBACK"); rerr != nil {
				d.s.log.Warn("sqlite: rollback of a failed migration", "err", rerr)
			}
			return err
		}
		if _, err := c.ExecContext(bg, "COMMIT"); err != nil {
			c.ExecContext(bg, "ROLLBACK") // if SQLite has not already
			return err
		}
		return nil
	}})
}

type migrationTx struct{ c *sql.Conn }

func (tx migrationTx) Applied(context.Context) (int, error) {
	bg := context.Background()
	if _, err := tx.c.ExecContext(bg, createMigrationsTable); err != nil {
		return 0, err
	}
	var v int
	err := tx.c.QueryRowContext(bg, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (tx migrationTx) Apply(_ context.Context, m migrate.Migration) error {
	bg := context.Background()
	if _, err := tx.c.ExecContext(bg, m.SQL); err != nil {
		return err
	}
	_, err := tx.c.ExecContext(bg, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixMicro())
	return err
}

// SchemaVersion returns the newest applied migration (0 for a new file) and
// the newest this binary embeds.
func (s *Store) SchemaVersion(ctx context.Context) (current, known int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: %w", err)
	}
	current, known, err = migrate.Version(ctx, dialect{s}, ms)
	return current, known, wrap("schema version", err)
}

// Migrate applies the pending migrations in one transaction.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: %w", err)
	}
	from, to, err = migrate.Run(ctx, dialect{s}, ms, s.log)
	return from, to, wrap("migrate", err)
}
