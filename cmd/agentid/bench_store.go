package main

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/config"
)

// storeKind names the backend for the bench report.
func storeKind(cfg *config.Config) string {
	if cfg.IsPostgres() {
		return "postgres"
	}
	return "sqlite"
}

// storeSizer returns what measures the store's size in bytes, to report
// its growth per request: for SQLite the database's pages in use (the
// WAL's included, free pages not), for PostgreSQL the tables of the
// store's schema with their indexes and TOAST (not the whole database,
// which may hold other schemas, nor the cluster's WAL). Each
// call opens and closes its own connection: it runs between scenarios.
func storeSizer(cfg *config.Config) func(context.Context) (int64, error) {
	if cfg.IsPostgres() {
		return func(ctx context.Context) (int64, error) {
			conn, err := pgx.Connect(ctx, cfg.Store.DSN)
			if err != nil {
				return 0, err
			}
			defer conn.Close(ctx)
			var n int64
			err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm', 'p')`).Scan(&n)
			return n, err
		}
	}
	return func(ctx context.Context) (int64, error) {
		p := sqliteFilePath(cfg.Store.DSN)
		if p == "" {
			return 0, errors.New("no SQLite file")
		}
		// As the store opens it: SQLite URI filenames percent-decode.
		p = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.Clean(p))
		db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(5000)&_query_only=1")
		if err != nil {
			return 0, err
		}
		defer db.Close()
		var pages, free, size int64
		for q, v := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &size} {
			if err := db.QueryRowContext(ctx, q).Scan(v); err != nil {
				return 0, err
			}
		}
		return (pages - free) * size, nil
	}
}
