package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// loadConfig reads the effective configuration: defaults, the --config
// file, the environment, and last the flags that set a setting
// (--data-dir, serve's --listen).
func (c *cli) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(c.configPath, func(k string) (string, bool) {
		if v, ok := c.flagSettings[k]; ok {
			return v, true
		}
		return c.env(k)
	})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// errNoData: a command that needs existing records found no store.
var errNoData = errors.New("no agentid data")

// dataCreators are the admin commands that may create the store when there
// is none yet: those that add records. Every other admin command only
// reads or changes existing records, so an absent store means it looks in
// the wrong place (the demo keeps its data elsewhere), and it says so
// instead of creating an empty one.
var dataCreators = []string{
	"agentid clients add",
	"agentid resources add",
	"agentid users add",
	"agentid policy apply",
	"agentid keys rotate",
	"agentid domains add",
	"agentid issuers add",
	"agentid connectors add",
	"agentid providers add",
}

// requireData is errNoData, saying where the command looked, unless the
// configured SQLite database file exists. It creates nothing.
func requireData(cfg *config.Config) error {
	if cfg.IsPostgres() {
		return nil // checked by schema version once connected
	}
	p := sqliteFilePath(cfg.Store.DSN)
	if p == "" {
		return nil // in-memory
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("opening the SQLite store %s: %w", p, err)
	}
	return noDataError(cfg)
}

// noDataError is errNoData naming where the data was looked for.
func noDataError(cfg *config.Config) error {
	switch {
	case cfg.IsPostgres():
		return fmt.Errorf("%w in the PostgreSQL database of store.dsn (it has no agentid schema; `agentid migrate` creates one)", errNoData)
	case cfg.DataDir != "" && cfg.Store.DSN == filepath.Join(cfg.DataDir, "agentid.db"):
		hint := "use --data-dir to point at another directory"
		if filepath.Clean(cfg.DataDir) != filepath.Clean(demoDataDir) {
			hint += "; the demo keeps its data in " + demoDataDir
		}
		return fmt.Errorf("%w in %s (%s)", errNoData, cfg.DataDir, hint)
	default:
		return fmt.Errorf("%w: no database at %s (store.dsn)", errNoData, sqliteFilePath(cfg.Store.DSN))
	}
}

// openStore opens the configured backend without touching its schema. For
// SQLite it first creates the database's directory, readable by its owner
// only (0700): it holds the database and, by default, the KEK file.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	if cfg.IsPostgres() {
		st, err := postgres.Open(ctx, cfg.Store.DSN, postgres.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("opening the PostgreSQL store: %w", err)
		}
		return st, nil
	}
	if p := sqliteFilePath(cfg.Store.DSN); p != "" {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, fmt.Errorf("creating the data directory: %w", err)
		}
	}
	st, err := sqlite.Open(ctx, cfg.Store.DSN, sqlite.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("opening the SQLite store %s: %w", cfg.Store.DSN, err)
	}
	return st, nil
}

// sqliteFilePath returns the file an SQLite DSN (a path or a "file:" URI)
// names, or "" when it names none.
func sqliteFilePath(dsn string) string {
	if rest, ok := strings.CutPrefix(dsn, "file:"); ok {
		rest, _, _ = strings.Cut(rest, "?")
		rest = strings.TrimPrefix(rest, "//")
		if rest == "" || rest == ":memory:" {
			return ""
		}
		return rest
	}
	if dsn == ":memory:" {
		return ""
	}
	return dsn
}

// errMigrationNeeded: the database is behind this binary and the
// configuration forbids migrating at start.
var errMigrationNeeded = errors.New("the database schema needs migrating")

// prepareSchema checks the database's schema version against this binary:
// a newer schema is refused (store.ErrSchemaTooNew, this binary would
// misread it); an older one is migrated when autoMigrate, else refused with
// the command that fixes it.
func prepareSchema(ctx context.Context, st store.Store, autoMigrate bool, log *slog.Logger) error {
	current, known, err := st.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	switch {
	case current > known:
		return fmt.Errorf("%w: the database is at schema version %d, but this agentid knows only up to %d; "+
			"it was migrated by a newer agentid, so run that version (or restore a backup taken before the upgrade)",
			store.ErrSchemaTooNew, current, known)
	case current < known && !autoMigrate:
		return fmt.Errorf("%w: the database is at schema version %d and this agentid needs %d; "+
			"run `agentid migrate` (store.auto_migrate is false)", errMigrationNeeded, current, known)
	case current < known:
		from, to, err := st.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("migrating the database schema: %w", err)
		}
		log.InfoContext(ctx, "migrated database schema", "from", from, "to", to)
	}
	return nil
}

// loadKeyring returns the keyring of the configured KEKs: the current one
// from kek.value when set (AGENTID_KEK), else the key file, created 0600 on
// first start; and the previous ones (kek.previous, kek.previous_files),
// which open what they sealed until agentid kek rotate has re-wrapped it.
// Errors never contain key material.
func loadKeyring(cfg *config.Config) (*keyring.Keyring, error) {
	var (
		kek keyring.KEK
		err error
	)
	if cfg.KEK.Value != "" {
		kek, err = keyring.ParseKEK(cfg.KEK.Value)
		if err != nil {
			return nil, fmt.Errorf("kek.value: %w", err)
		}
	} else {
		kek, err = keyring.LoadOrCreateKEKFile(cfg.KEK.File, nil)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key file %s: %w", cfg.KEK.File, err)
		}
	}
	previous, err := previousKEKs(cfg.KEK)
	if err != nil {
		return nil, err
	}
	ring, err := keyring.NewKeyring(kek, previous...)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	return ring, nil
}

// previousKEKs reads the previous KEKs: kek.previous holds keys in the
// text format separated by commas or newlines (blank items and '#'
// comment lines skipped), kek.previous_files names key files.
func previousKEKs(kc config.KEKConfig) ([]keyring.KEK, error) {
	var out []keyring.KEK
	n := 0
	for line := range strings.SplitSeq(kc.Previous, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for item := range strings.SplitSeq(line, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			n++
			k, err := keyring.ParseKEK(item)
			if err != nil {
				return nil, fmt.Errorf("kek.previous, key %d: %w", n, err)
			}
			out = append(out, k)
		}
	}
	for _, f := range kc.PreviousFiles {
		k, err := keyring.ReadKEKFile(f)
		if err != nil {
			return nil, fmt.Errorf("kek.previous_files: %w", err)
		}
		out = append(out, k)
	}
	return out, nil
}

// adminLogger is the logger of admin commands: the store's operational
// messages go to stderr as text, warnings and above only, so that stdout
// stays the command's output.
func adminLogger(cmd *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// withStore runs fn against the configured store, opened for this command
// only, its schema checked (and migrated if store.auto_migrate allows).
// Unless cmd is one of dataCreators it creates nothing: without a store it
// fails with errNoData, saying where it looked.
func (c *cli) withStore(cmd *cobra.Command, fn func(ctx context.Context, cfg *config.Config, st store.Store) error) (err error) {
	ctx := cmd.Context()
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	mayCreate := slices.Contains(dataCreators, cmd.CommandPath())
	if !mayCreate {
		if err := requireData(cfg); err != nil {
			return err
		}
	}
	log := adminLogger(cmd)
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the store: %w", cerr)
		}
	}()
	if !mayCreate {
		// An empty database (a PostgreSQL schema never migrated, an
		// SQLite file left by a failed start) holds no data either.
		// (Without auto_migrate, prepareSchema refuses it with the
		// command that creates the schema.)
		if current, _, err := st.SchemaVersion(ctx); err != nil {
			return fmt.Errorf("reading the schema version: %w", err)
		} else if current == 0 && cfg.Store.AutoMigrate {
			return noDataError(cfg)
		}
	}
	if err := prepareSchema(ctx, st, cfg.Store.AutoMigrate, log); err != nil {
		return err
	}
	return fn(ctx, cfg, st)
}
