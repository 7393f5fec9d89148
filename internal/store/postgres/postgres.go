// Package postgres is the PostgreSQL backend of store.Store, for running any
// number of stateless agentid replicas against one database.
//
// Every method is one transaction. The single-use operations
// (ConsumeAuthCode, RotateRefresh, UseJTI) are made exactly-once across
// replicas by the database itself: a conditional UPDATE … RETURNING, a
// SELECT … FOR UPDATE row lock, or INSERT … ON CONFLICT, so two replicas
// racing on the same code, refresh token or JWT id cannot both win. The
// schema is created by forward-only numbered migrations embedded in the
// binary (see Migrate); Open never changes the schema.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentid/agentid/internal/jsontext"
	"github.com/agentid/agentid/internal/store"
)

// Options configure Open. The zero value means defaults.
type Options struct {
	// Logger receives migration progress; nil discards.
	Logger *slog.Logger
	// MaxConns caps the connection pool; zero keeps the pool's default
	// (the larger of 4 and the number of CPUs) or pool_max_conns from the DSN.
	MaxConns int32
}

// Store is a store.Store backed by a PostgreSQL connection pool.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// group sends concurrent client-credentials issuances in one
	// transaction (group.go).
	group *group
	// betweenLinkReads, when set (by a test), runs in readLinks between
	// the read of the events and the read of their runs.
	betweenLinkReads func()
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value connection string; pgx pool settings such as pool_max_conns and
// server settings such as search_path are accepted) and checks that it
// answers. It does not migrate: call Migrate.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error carries the DSN with its password redacted.
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, log: log, group: newGroup(pool, groupWorkers(cfg.MaxConns, runtime.GOMAXPROCS(0)))}, nil
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.group.close()
	s.pool.Close()
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// inTx runs fn in one transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SQLSTATE codes we map to store sentinels.
const sqlstateUniqueViolation = "23505"

// mapErr turns driver errors into the store's sentinels: no rows is
// store.ErrNotFound and a unique violation is store.ErrConflict. Only the
// constraint name is kept from a violation: its detail would quote key
// values.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrAlreadyUsed) || errors.Is(err, store.ErrSchemaTooNew) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == sqlstateUniqueViolation {
		return fmt.Errorf("postgres: %s: %w (%s)", op, store.ErrConflict, pe.ConstraintName)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// notFound reports a missing row for op.
func notFound(op string) error {
	return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
}

// nullTime maps the zero time to SQL NULL: optional times are NULL when unset.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromNull maps a scanned nullable timestamptz back to a time, zero for NULL.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// utc normalises a scanned time, so that callers see one location whatever
// the session time zone.
func utc(t time.Time) time.Time { return t.UTC() }

// jsonMap encodes a string map for a jsonb column; nil stays SQL NULL so that
// it reads back as nil.
func jsonMap(m map[string]string) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	return jsontext.AppendObject(make([]byte, 0, 256), m), nil
}

// scanAuditDetails decodes an event's stored details, their short key
// names expanded (store.ExpandDetails).
func scanAuditDetails(b []byte) (map[string]string, error) {
	m, err := scanMap(b)
	if err != nil {
		return nil, err
	}
	return store.ExpandDetails(m)
}

// scanMap decodes a jsonb column read as bytes.
func scanMap(b []byte) (map[string]string, error) {
	if b == nil {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	return m, nil
}
