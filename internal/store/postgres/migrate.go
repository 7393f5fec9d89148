package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"

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

// migrateLockSQL takes the advisory lock that serialises migrations of one
// schema: replicas starting together take turns, and each sees the versions
// the previous one applied.
const migrateLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('agentid.migrate.' || coalesce(current_schema(), ''), 0))`

const createMigrationsTableSQL = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// dialect runs migrations in one transaction under a transaction-scoped
// advisory lock, so concurrent replicas migrating at once are safe.
type dialect struct{ s *Store }

func (d dialect) Current(ctx context.Context) (int, error) {
	var exists bool
	if err := d.s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := d.s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (d dialect) Transact(ctx context.Context, fn func(migrate.Tx) error) error {
	return d.s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, migrateLockSQL); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		return fn(migrationTx{tx})
	})
}

type migrationTx struct{ tx pgx.Tx }

func (m migrationTx) Applied(ctx context.Context) (int, error) {
	if _, err := m.tx.Exec(ctx, createMigrationsTableSQL); err != nil {
		return 0, err
	}
	var v int
	err := m.tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (m migrationTx) Apply(ctx context.Context, mg migrate.Migration) error {
	// The simple protocol runs a script of several statements.
	if _, err := m.tx.Exec(ctx, mg.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	_, err := m.tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, mg.Version, mg.Name)
	return err
}

// Migrate applies every pending migration in one transaction and returns
// the version before and after, and store.ErrSchemaTooNew if the database
// is ahead of this binary.
func (s *Store) Migrate(ctx context.Context) (from, to int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: %w", err)
	}
	from, to, err = migrate.Run(ctx, dialect{s}, ms, s.log)
	return from, to, mapErr("migrate", err)
}

// SchemaVersion returns the database's version (0 before the first
// migration) and the newest version this binary knows.
func (s *Store) SchemaVersion(ctx context.Context) (current, known int, err error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: %w", err)
	}
	current, known, err = migrate.Version(ctx, dialect{s}, ms)
	return current, known, mapErr("schema version", err)
}
