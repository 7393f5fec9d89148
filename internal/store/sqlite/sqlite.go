// Package sqlite is the embedded store backend: a single SQLite file in WAL
// mode, driven by the pure-Go modernc.org/sqlite driver.
//
// SQLite admits one writer at a time, so the backend has exactly one write
// connection, owned by one goroutine (see writer.go), and a pool of read-only
// connections. Writes never contend for the database lock and so never fail
// with SQLITE_BUSY; concurrent writes are grouped into one commit (group
// commit, with per-request savepoints when one of them fails), which is what
// lets a small machine sustain thousands of token issuances per second. A
// background goroutine checkpoints the WAL on its own connection, off the
// writer's path (checkpoint.go). Reads run in parallel on the pool and see
// the last committed state (WAL snapshot isolation).
//
// Open does not migrate; Migrate does, forward only, from the numbered
// scripts embedded under migrations/.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Options configures Open. The zero value means the defaults.
type Options struct {
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// BusyTimeout is how long a connection waits for a lock held by another
	// process (a backup tool, a second agentid on the same file) before it
	// gives up. Zero means 5 seconds.
	BusyTimeout time.Duration
}

const defaultBusyTimeout = 5 * time.Second

// Store is the SQLite implementation of store.Store.
type Store struct {
	log   *slog.Logger
	read  *sql.DB // read-only pool
	wdb   *sql.DB // holds the one write connection
	w     *writer
	ckpt  *checkpointer
	rstmt stmtCache // statements prepared on the read pool
	// listeners are the wake functions of ListenChanges (changes.go).
	listeners listeners

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database file named by dsn, a file
// path or a "file:" URI. It does not migrate: call Migrate, or check
// SchemaVersion, before use. In-memory databases are refused because the
// read pool and the writer must share one database.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	return open(ctx, dsn, opts, defaultMaxBatch)
}

// open is Open with the group-commit batch size (1: a transaction per
// write, for comparison in benchmarks).
func open(ctx context.Context, dsn string, opts Options, maxBatch int) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = defaultBusyTimeout
	}
	base, err := fileURI(dsn)
	if err != nil {
		return nil, err
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)", busy.Milliseconds())

	// The write connection: WAL (persistent in the file, so readers inherit
	// it) and BEGIN IMMEDIATE, so a transaction takes the write lock up front
	// instead of failing to upgrade a read lock later.
	wdb, err := sql.Open("sqlite", base+common+fmt.Sprintf("&_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(%d)&_pragma=journal_size_limit(%d)&_txlock=immediate",
		walSafetyPages, walSizeLimit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	conn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", redactDSN(dsn), err)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open: journal mode is %q, WAL is required", mode)
	}

	read, err := sql.Open("sqlite", base+common+"&_query_only=1")
	if err != nil {
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	read.SetConnMaxLifetime(0)
	read.SetConnMaxIdleTime(0)
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	ckdb, err := sql.Open("sqlite", base+common)
	if err != nil {
		read.Close()
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	ckdb.SetMaxOpenConns(1)

	s := &Store{log: log, read: read, wdb: wdb, ckpt: startCheckpointer(ckdb, log)}
	s.rstmt.init(read)
	s.w = newWriter(conn, log, maxBatch, s.changesWritten)
	return s, nil
}

// fileURI turns a path or "file:" URI into a "file:" URI ready for query
// parameters (it ends in '?' or '&').
func fileURI(dsn string) (string, error) {
	switch {
	case dsn == "":
		return "", errors.New("sqlite: empty database path")
	case dsn == ":memory:" || strings.Contains(dsn, "mode=memory"):
		return "", errors.New("sqlite: in-memory databases are not supported; use a file")
	case strings.HasPrefix(dsn, "file:"):
		if strings.Contains(dsn, "?") {
			return dsn + "&", nil
		}
		return dsn + "?", nil
	}
	// SQLite URI filenames percent-decode the path; escape what would
	// otherwise be read as a query, fragment or escape.
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.Clean(dsn))
	return "file:" + p + "?", nil
}

// redactDSN keeps only the path of a DSN for error messages: query
// parameters could carry a key (for example of an encrypting VFS).
func redactDSN(dsn string) string {
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		return dsn[:i]
	}
	return dsn
}

// Close stops the writer (after the writes already queued) and closes every
// connection. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		errs = append(errs, s.ckpt.stop())
		s.w.close()
		errs = append(errs, s.rstmt.close())
		errs = append(errs, s.read.Close())
		errs = append(errs, s.wdb.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Ping checks that the read pool and the writer both answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.w.do(ctx, func(*wtx) error { return nil }); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	return nil
}
