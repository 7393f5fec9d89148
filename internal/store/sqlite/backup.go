package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// Online backup and its verification. A backup is an ordinary SQLite file
// written with VACUUM INTO: SQLite reads the source inside one read
// transaction, so the copy is the database exactly as some commit left it,
// however many writes the running hub makes meanwhile (WAL readers never
// block the writer, nor it them). The copy is compacted and holds no WAL.

// ErrNotAgentID: a file is a readable SQLite database but not one that an
// agentid migrated (no schema_migrations, or migrations this binary does
// not know under their numbers).
var ErrNotAgentID = errors.New("not an agentid database")

// ErrCorrupt: PRAGMA integrity_check or foreign_key_check found a problem.
var ErrCorrupt = errors.New("the database is damaged")

// FileInfo describes a verified database file.
type FileInfo struct {
	// SchemaVersion is the newest migration applied to the file.
	SchemaVersion int
	// KnownVersion is the newest migration this binary embeds. A file
	// behind it is migrated by the hub at start (store.auto_migrate) or by
	// agentid migrate.
	KnownVersion int
}

// Backup writes a consistent copy of the database named by dsn (a path or
// a "file:" URI) into dest, which must not exist or be an empty file (an
// os.CreateTemp file, say, to choose its permissions). It works beside a
// running hub, in this process or another: it only reads, on a connection
// of its own. SQLite does not sync the copy; the caller fsyncs dest before
// relying on it (and verifies it with VerifyFile).
func Backup(ctx context.Context, dsn, dest string) error {
	base, err := fileURI(dsn)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", base+fmt.Sprintf("_pragma=busy_timeout(%d)", defaultBusyTimeout.Milliseconds()))
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dest); err != nil {
		return fmt.Errorf("sqlite: backup of %s: %w", redactDSN(dsn), err)
	}
	return nil
}

// VerifyFile checks that the file at path is a whole agentid database this
// binary can use: SQLite's integrity and foreign-key checks pass, its
// schema_migrations table records exactly the migrations this binary
// embeds under the same numbers and names, from 1 without a gap, and none
// newer. It opens the file read-only and changes nothing in it. A file
// with a write-ahead log beside it is a live database, not a backup, and
// is refused: its newest commits may be in the log alone.
func VerifyFile(ctx context.Context, path string) (FileInfo, error) {
	var info FileInfo
	ms, err := loadMigrations()
	if err != nil {
		return info, fmt.Errorf("sqlite: %w", err)
	}
	info.KnownVersion = len(ms)
	st, err := os.Stat(path)
	if err != nil {
		return info, err
	}
	if !st.Mode().IsRegular() {
		return info, fmt.Errorf("%s is not a regular file", path)
	}
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > 0 {
		return info, fmt.Errorf("%s has a write-ahead log beside it (%s-wal): it is a live database, not a backup; copy it with agentid backup", path, path)
	}
	if err := checkHeader(path); err != nil {
		return info, err
	}
	base, err := fileURI(path)
	if err != nil {
		return info, err
	}
	// Read-only and immutable: no -wal or -shm is created beside the file,
	// and no lock is taken (the caller owns the file).
	db, err := sql.Open("sqlite", base+"mode=ro&immutable=1")
	if err != nil {
		return info, fmt.Errorf("sqlite: verify: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	problems, err := pragmaRows(ctx, db, "PRAGMA integrity_check")
	if err != nil {
		return info, fmt.Errorf("%w: integrity_check: %v", ErrCorrupt, err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		return info, fmt.Errorf("%w: integrity_check: %s", ErrCorrupt, summarize(problems))
	}

	var exists int
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&exists); err != nil {
		return info, fmt.Errorf("sqlite: verify: %w", err)
	}
	if exists == 0 {
		return info, fmt.Errorf("%w: it has no schema_migrations table", ErrNotAgentID)
	}
	rows, err := db.QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return info, fmt.Errorf("%w: reading schema_migrations: %v", ErrNotAgentID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			v    int
			name string
		)
		if err := rows.Scan(&v, &name); err != nil {
			return info, fmt.Errorf("%w: reading schema_migrations: %v", ErrNotAgentID, err)
		}
		switch {
		case v != info.SchemaVersion+1:
			return info, fmt.Errorf("%w: schema_migrations jumps from version %d to %d", ErrNotAgentID, info.SchemaVersion, v)
		case v > len(ms):
			return info, fmt.Errorf("%w: the file is at schema version %d or later, but this agentid knows only up to %d; restore it with the agentid that wrote it",
				store.ErrSchemaTooNew, v, len(ms))
		case ms[v-1].Name != name:
			return info, fmt.Errorf("%w: its migration %d is %q, where this agentid's is %q", ErrNotAgentID, v, name, ms[v-1].Name)
		}
		info.SchemaVersion = v
	}
	if err := rows.Err(); err != nil {
		return info, fmt.Errorf("%w: reading schema_migrations: %v", ErrNotAgentID, err)
	}
	if info.SchemaVersion == 0 {
		return info, fmt.Errorf("%w: no migration was ever applied to it", ErrNotAgentID)
	}

	fk, err := pragmaRows(ctx, db, "PRAGMA foreign_key_check")
	if err != nil {
		return info, fmt.Errorf("%w: foreign_key_check: %v", ErrCorrupt, err)
	}
	if len(fk) > 0 {
		return info, fmt.Errorf("%w: foreign_key_check: %d row(s) point at missing rows (first in table %s)", ErrCorrupt, len(fk), fk[0])
	}
	return info, nil
}

// sqliteMagic starts every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// checkHeader refuses a file that is not an SQLite database before SQLite
// reads it (an empty file would open as an empty database).
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, len(sqliteMagic))
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != sqliteMagic {
		return fmt.Errorf("%w: %s is not an SQLite database", ErrNotAgentID, path)
	}
	return nil
}

// pragmaRows returns the first column of every row a pragma answers.
func pragmaRows(ctx context.Context, db *sql.DB, pragma string) ([]string, error) {
	rows, err := db.QueryContext(ctx, pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprint(vals[0]))
	}
	return out, rows.Err()
}

// summarize shortens integrity_check's list of problems for a message.
func summarize(lines []string) string {
	if len(lines) > 3 {
		return strings.Join(lines[:3], "; ") + fmt.Sprintf("; and %d more", len(lines)-3)
	}
	return strings.Join(lines, "; ")
}

// Quiesce folds the write-ahead log of the database file at path into the
// file and removes it, so that the file alone is the whole database and can
// be renamed or replaced. Nothing else may have the database open: it fails
// when a checkpoint cannot complete, or when the log is still there after
// the last connection closed.
func Quiesce(ctx context.Context, path string) error {
	base, err := fileURI(path)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", base+fmt.Sprintf("_pragma=busy_timeout(%d)", defaultBusyTimeout.Milliseconds()))
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	var busy, logPages, done int
	err = db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sqlite: checkpoint of %s: %w", path, err)
	}
	if busy != 0 {
		return fmt.Errorf("sqlite: checkpoint of %s: the database is in use by another process", path)
	}
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() > 0 {
		return fmt.Errorf("sqlite: %s-wal is still there after a checkpoint: the database is in use by another process", path)
	}
	return nil
}
