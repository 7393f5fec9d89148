package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// errPostgresBackup: backup and restore copy the SQLite file; a PostgreSQL
// store is backed up with PostgreSQL's own tools.
var errPostgresBackup = errors.New("the store is PostgreSQL")

// postgresBackupGuidance is what backup and restore print for a PostgreSQL
// store (docs/operations.md says the same at length).
const postgresBackupGuidance = `agentid backup and restore copy the embedded SQLite database. A PostgreSQL
store is backed up with PostgreSQL's own tools, while the hubs keep serving:

  pg_dump --format=custom --file agentid.dump "$DSN"      # consistent snapshot
  pg_restore --clean --if-exists --dbname "$DSN" agentid.dump

or continuous archiving (WAL archiving, point-in-time recovery). Either way the
key-encryption key is not in the database: keep it apart, it is needed to use
the restored data. See docs/operations.md.
`

func (c *cli) newBackupCmd() *cobra.Command {
	var (
		out    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write a consistent copy of the SQLite store while the hub keeps serving",
		Long: `Write a consistent copy of the SQLite database to FILE, online: the hub keeps
serving meanwhile, and the copy is the database exactly as one commit left it.
The copy is written beside FILE, synced to disk, verified (integrity check,
schema version) and only then renamed to FILE; an existing FILE is never
overwritten. FILE is created readable by its owner only; its directory must
exist (it is not created).

The backup holds signing keys, provider secrets and connection credentials
sealed with the key-encryption key (KEK). The KEK is NOT in the backup: keep it
(kek.file, or the AGENTID_KEK secret) safe and apart; without it the restored
hub cannot sign tokens or open stored credentials.

For a PostgreSQL store it prints the pg_dump guidance and fails.`,
		Example: `  agentid backup --out agentid-backup.db`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, db, err := c.sqliteDatabase(cmd, "--out", out, "back it up with pg_dump")
			if err != nil {
				return err
			}
			if err := requireData(cfg); err != nil {
				return err
			}
			start := time.Now()
			info, err := backupSQLite(cmd, cfg.Store.DSN, out)
			if err != nil {
				return err
			}
			size := int64(0)
			if fi, err := os.Stat(out); err == nil {
				size = fi.Size()
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, struct {
					Database      string  `json:"database"`
					Out           string  `json:"out"`
					Bytes         int64   `json:"bytes"`
					SchemaVersion int     `json:"schema_version"`
					Seconds       float64 `json:"seconds"`
				}{db, out, size, info.SchemaVersion, time.Since(start).Seconds()})
			}
			_, err = fmt.Fprintf(w, "backed up %s to %s (%d bytes, schema version %d, verified)\n"+
				"the KEK (%s) is not in the backup: keep it apart, the backup is useless without it\n",
				db, out, size, info.SchemaVersion, kekWhere(cfg))
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the backup `file` to write (must not exist)")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// sqliteDatabase is the start of backup and restore: flag (--out or
// --from) must be given, and the configured store must be an SQLite file,
// which it returns with the configuration. For a PostgreSQL store it
// prints the guidance and fails with errPostgresBackup, saying what to do
// instead (todo).
func (c *cli) sqliteDatabase(cmd *cobra.Command, flag, value, todo string) (*config.Config, string, error) {
	if value == "" {
		return nil, "", usageErrorf(cmd, "%s needs %s FILE", cmd.CommandPath(), flag)
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, "", err
	}
	if cfg.IsPostgres() {
		fmt.Fprint(cmd.ErrOrStderr(), postgresBackupGuidance)
		return nil, "", fmt.Errorf("%w: %s (see above)", errPostgresBackup, todo)
	}
	db := sqliteFilePath(cfg.Store.DSN)
	if db == "" {
		return nil, "", errors.New("store.dsn names no SQLite database file")
	}
	return cfg, db, nil
}

// kekWhere says where the configured KEK comes from, never what it is.
func kekWhere(cfg *config.Config) string {
	if cfg.KEK.Value != "" {
		return "kek.value / AGENTID_KEK"
	}
	return cfg.KEK.File
}

// backupSQLite writes the backup of dsn to a temporary file beside out,
// syncs and verifies it, and links it to out, which must not exist (a
// hard link, unlike a rename, refuses to replace a file that appeared
// meanwhile). On any failure nothing is left at out.
func backupSQLite(cmd *cobra.Command, dsn, out string) (sqlite.FileInfo, error) {
	var info sqlite.FileInfo
	// Like cp or sqlite3's .backup, a missing directory is a mistake to
	// report, not to paper over: a typo would hide the backup elsewhere.
	dir := filepath.Dir(out)
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("--out %s: the directory %s does not exist; agentid backup does not create directories, make it first", out, dir)
	} else if err != nil {
		return info, fmt.Errorf("--out %s: %w", out, err)
	} else if !fi.IsDir() {
		return info, fmt.Errorf("--out %s: %s is not a directory", out, dir)
	}
	if _, err := os.Lstat(out); err == nil {
		return info, fmt.Errorf("%s exists; agentid backup never overwrites a file, choose another name", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return info, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return info, fmt.Errorf("creating the backup file: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)
	if err := sqlite.Backup(cmd.Context(), dsn, tmpName); err != nil {
		return info, err
	}
	if err := syncFile(tmpName); err != nil {
		return info, fmt.Errorf("syncing the backup: %w", err)
	}
	info, err = sqlite.VerifyFile(cmd.Context(), tmpName)
	if err != nil {
		return info, fmt.Errorf("the copy does not verify, nothing written: %w", err)
	}
	if err := os.Link(tmpName, out); err != nil {
		return info, fmt.Errorf("naming the backup: %w", err)
	}
	if err := syncDir(filepath.Dir(out)); err != nil {
		return info, fmt.Errorf("syncing the backup's directory: %w", err)
	}
	return info, nil
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir fsyncs a directory, so that a rename or link in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some filesystems cannot sync a directory; the file itself is synced.
	if errors.Is(err, os.ErrInvalid) {
		return nil
	}
	return err
}

// copyFile copies src into the new file dst (created 0600), synced.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	outF, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := outF.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(outF, in); err != nil {
		return err
	}
	return outF.Sync()
}
