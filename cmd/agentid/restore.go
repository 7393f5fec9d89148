package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store/sqlite"
)

func (c *cli) newRestoreCmd() *cobra.Command {
	var (
		from   string
		force  bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "restore --from FILE",
		Short: "Replace the SQLite store with a backup (the hub must be stopped)",
		Long: `Replace the SQLite database with the backup FILE written by agentid backup.

The hub must be stopped: restore takes the data directory's lock, as serve
does, and refuses while a hub holds it. FILE is first copied beside the
database, synced, and verified (SQLite's integrity and foreign-key checks; it
is an agentid database; its schema version is one this agentid knows — an
older one is migrated by the next serve or agentid migrate). Only then does it
replace the database, in one rename.

A restore replaces the whole database — clients, signing keys, tokens,
consents, connections, the audit trail — with the backup's: what changed
after the backup was taken is no longer served (tokens issued since are
unknown to the restored hub).

An existing database is kept: without --force restore refuses to replace it;
with --force the previous database stays beside it as agentid.db.TIMESTAMP.bak
(its write-ahead log folded in first), and is never deleted by agentid.

The backup's signing keys and credentials are sealed with the key-encryption
key (KEK) of the hub that wrote it, which is not in the backup: configure that
KEK (kek.file or AGENTID_KEK) before serve. restore warns when the configured
KEK cannot open what the backup holds.`,
		Example: `  agentid restore --from agentid-backup.db --force`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, db, err := c.sqliteDatabase(cmd, "--from", from, "restore it with pg_restore")
			if err != nil {
				return err
			}
			lock, err := lockDataDir(cfg)
			if err != nil {
				return fmt.Errorf("not restoring: %w", err)
			}
			defer lock.Release()
			res, err := restoreSQLite(cmd.Context(), from, db, force, time.Now())
			if err != nil {
				return err
			}
			kekProblem := checkRestoredKEK(cmd, cfg)
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, struct {
					Database      string `json:"database"`
					From          string `json:"from"`
					Previous      string `json:"previous,omitempty"`
					SchemaVersion int    `json:"schema_version"`
					KnownVersion  int    `json:"known_version"`
					KEKProblem    string `json:"kek_problem,omitempty"`
				}{db, from, res.previous, res.info.SchemaVersion, res.info.KnownVersion, kekProblem})
			}
			fmt.Fprintf(w, "restored %s from %s (schema version %d, verified)\n", db, from, res.info.SchemaVersion)
			if res.previous != "" {
				fmt.Fprintf(w, "the previous database is kept as %s\n", res.previous)
			}
			if res.info.SchemaVersion < res.info.KnownVersion {
				fmt.Fprintf(w, "its schema is behind this agentid (%d < %d): serve migrates it (store.auto_migrate), or run agentid migrate\n",
					res.info.SchemaVersion, res.info.KnownVersion)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&from, "from", "f", "", "the backup `file` written by agentid backup")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing database, keeping it as agentid.db.TIMESTAMP.bak")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// restoreResult is what restoreSQLite did.
type restoreResult struct {
	info     sqlite.FileInfo
	previous string // where the replaced database went; "" if there was none
}

// restoreSQLite replaces the database file db with the backup from. The
// caller holds the data directory's lock. The backup is copied into db's
// directory and verified there (the copy, not the source, is what goes
// live); an existing db is refused unless force, and then hard-linked to
// db.TIMESTAMP.bak after its write-ahead log is folded in, and replaced by
// one rename, so db is at every moment either the old or the new database.
func restoreSQLite(ctx context.Context, from, db string, force bool, now time.Time) (restoreResult, error) {
	var res restoreResult
	if same, err := sameFile(from, db); err != nil {
		return res, err
	} else if same {
		return res, fmt.Errorf("%s is the database itself, not a backup of it", from)
	}
	// Refuse what would be refused anyway before copying anything.
	if _, err := sqlite.VerifyFile(ctx, from); err != nil {
		return res, fmt.Errorf("not restoring %s: %w", from, err)
	}
	exists := false
	if _, err := os.Lstat(db); err == nil {
		exists = true
		if !force {
			return res, fmt.Errorf("not restoring: a database exists at %s; a restore replaces all of it (clients, signing keys, tokens, consents, connections, the audit trail) with the backup's, and what changed after the backup was taken is no longer served; with the hub stopped, --force does that, keeping the current database as %s.TIMESTAMP.bak", db, db)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	dir := filepath.Dir(db)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("creating the data directory: %w", err)
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.restore-%d", filepath.Base(db), now.UnixNano()))
	if err := copyFile(from, tmp); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("copying the backup: %w", err)
	}
	defer os.Remove(tmp) // after the rename, a no-op
	info, err := sqlite.VerifyFile(ctx, tmp)
	if err != nil {
		return res, fmt.Errorf("not restoring: the copy of %s does not verify: %w", from, err)
	}
	res.info = info
	if exists {
		if err := sqlite.Quiesce(ctx, db); err != nil {
			return res, fmt.Errorf("not restoring: %w", err)
		}
		bak := fmt.Sprintf("%s.%s.bak", db, now.UTC().Format("20060102T150405Z"))
		if err := os.Link(db, bak); err != nil {
			return res, fmt.Errorf("keeping the previous database: %w", err)
		}
		res.previous = bak
	}
	// The old database's -wal is empty or gone (Quiesce); a -wal without
	// a database (deleted by hand) is another database's log, which SQLite
	// would replay onto the new file at its next open; a -shm indexes such
	// a log. Neither may meet the new file.
	for _, side := range []string{db + "-wal", db + "-shm"} {
		if err := os.Remove(side); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("not restoring: removing %s: %w", side, err)
		}
	}
	if err := os.Rename(tmp, db); err != nil {
		return res, fmt.Errorf("replacing the database: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return res, fmt.Errorf("syncing the data directory: %w", err)
	}
	return res, nil
}

// sameFile reports whether a and b are one file (b may not exist).
func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

// checkRestoredKEK opens the restored store and says, on stderr, when the
// configured KEK cannot open what it holds: no KEK configured yet (serve
// would refuse to start, startKeyring), or rows sealed by a KEK that is
// not configured.
// It returns the problem ("" when there is none); the restore itself stands.
func checkRestoredKEK(cmd *cobra.Command, cfg *config.Config) string {
	problem := ""
	k, err := readKeyring(cfg)
	if err != nil {
		problem = fmt.Sprintf("no usable KEK is configured (%v)", err)
	} else {
		st, err := openStore(cmd.Context(), cfg, adminLogger(cmd))
		if err != nil {
			problem = fmt.Sprintf("cannot open the restored store to check the KEK: %v", err)
		} else {
			defer st.Close()
			counts, err := countByKEK(cmd.Context(), st, k)
			if err != nil {
				problem = fmt.Sprintf("cannot check the KEK: %v", err)
			}
			for _, n := range counts {
				if n.State == kekMissing && n.total() > 0 && problem == "" {
					problem = fmt.Sprintf("KEK %s seals %d row(s) of the backup but is not configured", n.KEK, n.total())
				}
			}
		}
	}
	if problem != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s; configure the KEK of the hub that wrote the backup (kek.file, AGENTID_KEK or kek.previous_files) before serve, see agentid kek status\n", problem)
	}
	return problem
}
