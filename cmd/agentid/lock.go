package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/agentid/agentid/internal/config"
)

// lockFileName is the lock file of a data directory, beside the SQLite
// database. It is never deleted: the lock is the open file's flock, which
// the kernel releases when the process exits however it exits; the pid
// written into it only says who holds it.
const lockFileName = "agentid.lock"

// errDataDirInUse: another running agentid holds the data directory.
var errDataDirInUse = errors.New("the data directory is in use")

// dirLock is a held lock on a data directory.
type dirLock struct{ f *os.File }

// lockDataDir takes the lock of the directory holding cfg's SQLite
// database, creating the directory (0700) if needed, so that a second
// serve or demo on the same data cannot change it under the first (the
// demo re-seeds its user and resource at every start). It returns a nil
// lock for PostgreSQL and in-memory stores: replicas sharing one
// PostgreSQL are the scale-out design. A directory held by another process
// is errDataDirInUse, naming that process's pid.
func lockDataDir(cfg *config.Config) (*dirLock, error) {
	if cfg.IsPostgres() {
		return nil, nil
	}
	db := sqliteFilePath(cfg.Store.DSN)
	if db == "" {
		return nil, nil
	}
	dir := filepath.Dir(db)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	p := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock file: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	if !held {
		who := "another process"
		if b, err := config.ReadLimited(p, 64); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				who = fmt.Sprintf("another agentid (pid %d)", pid)
			}
		}
		f.Close()
		return nil, fmt.Errorf("%w: %s is used by %s; stop it first, or give this one another --data-dir", errDataDirInUse, dir, who)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the lock file %s: %w", p, err)
	}
	return &dirLock{f: f}, nil
}

// Release gives the lock up. A nil lock is a no-op.
func (l *dirLock) Release() {
	if l == nil {
		return
	}
	// Closing the file releases its lock.
	l.f.Close()
}
