// Package migrate is the forward-only schema migration runner that every
// store backend shares: it reads numbered SQL scripts (NNNN_name.sql) from
// an fs.FS, checks they are numbered 1, 2, 3, … without gaps or duplicates,
// and applies the pending ones through a small Dialect that knows how its
// database locks, runs a script and records a version.
//
// Every pending migration is applied in one transaction that holds the
// backend's migration lock: concurrent migrators (replicas starting
// together, two processes on one SQLite file) take turns and the later ones
// find nothing left to do, and a failing script leaves the schema as it was.
// A script therefore cannot hold statements that refuse to run inside a
// transaction (SQLite's PRAGMA foreign_keys or VACUUM, PostgreSQL's CREATE
// INDEX CONCURRENTLY).
package migrate

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// Migration is one forward-only schema step.
type Migration struct {
	Version int    // the file's number: 1, 2, 3, …
	Name    string // the file name, recorded beside the version
	SQL     string // the script; it may hold several statements
}

// Load reads the *.sql files at the root of fsys (other files are ignored)
// in version order. A file whose name is not NNNN_name.sql with a positive
// NNNN, a gap or a duplicate version is an error, so that a database's
// version always names exactly the steps applied to it.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || rest == ".sql" {
			return nil, fmt.Errorf("migrate: migration %q is not named NNNN_name.sql with NNNN > 0", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migrate: read migration %q: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrate: migration %q: want version %d", m.Name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("migrate: no migrations")
	}
	return ms, nil
}

// Dialect is what the runner needs of a backend.
type Dialect interface {
	// Current returns the newest recorded version without writing
	// anything: 0 when the version table does not exist yet.
	Current(ctx context.Context) (int, error)
	// Transact runs fn in one transaction that holds the lock serialising
	// migrations of this database; it commits when fn returns nil and rolls
	// back otherwise.
	Transact(ctx context.Context, fn func(Tx) error) error
}

// Tx is one open migration transaction.
type Tx interface {
	// Applied creates the version table if it is missing and returns the
	// newest recorded version (0 for none).
	Applied(ctx context.Context) (int, error)
	// Apply runs m's script and records its version and name.
	Apply(ctx context.Context, m Migration) error
}

// Run applies the migrations of ms that d has not recorded yet, all in one
// transaction, and returns the version before and after. A database whose
// version is beyond ms is store.ErrSchemaTooNew and is left alone. On error
// nothing is applied and to equals from. log (nil: none) gets one line per
// applied migration.
func Run(ctx context.Context, d Dialect, ms []Migration, log *slog.Logger) (from, to int, err error) {
	known := len(ms)
	err = d.Transact(ctx, func(tx Tx) error {
		v, err := tx.Applied(ctx)
		if err != nil {
			return fmt.Errorf("read version: %w", err)
		}
		from = v
		if from > known {
			return fmt.Errorf("database at version %d, this binary knows %d: %w", from, known, store.ErrSchemaTooNew)
		}
		for _, m := range ms[from:] {
			if err := tx.Apply(ctx, m); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return from, from, fmt.Errorf("migrate: %w", err)
	}
	if log != nil {
		for _, m := range ms[from:] {
			log.InfoContext(ctx, "applied migration", "version", m.Version, "name", m.Name)
		}
	}
	return from, known, nil
}

// Version returns d's current version and the newest in ms.
func Version(ctx context.Context, d Dialect, ms []Migration) (current, known int, err error) {
	current, err = d.Current(ctx)
	if err != nil {
		return 0, len(ms), fmt.Errorf("migrate: schema version: %w", err)
	}
	return current, len(ms), nil
}
