package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

func TestSQLiteFilePath(t *testing.T) {
	tests := []struct{ name, dsn, want string }{
		{"path", "agentid-data/agentid.db", "agentid-data/agentid.db"},
		{"absolute", "/var/lib/agentid/agentid.db", "/var/lib/agentid/agentid.db"},
		{"file URI", "file:/var/lib/agentid/agentid.db?_pragma=x", "/var/lib/agentid/agentid.db"},
		{"file URI with authority", "file:///var/lib/a.db", "/var/lib/a.db"},
		{"memory", ":memory:", ""},
		{"file memory", "file::memory:?cache=shared", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sqliteFilePath(tt.dsn); got != tt.want {
				t.Errorf("sqliteFilePath(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}

func TestPrepareSchema(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	open := func(t *testing.T) store.Store {
		t.Helper()
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	t.Run("fresh without auto_migrate is refused", func(t *testing.T) {
		st := open(t)
		err := prepareSchema(ctx, st, false, log)
		if !errors.Is(err, errMigrationNeeded) || !strings.Contains(err.Error(), "agentid migrate") {
			t.Fatalf("err = %v", err)
		}
		if cur, _, _ := st.SchemaVersion(ctx); cur != 0 {
			t.Fatalf("migrated anyway to %d", cur)
		}
	})
	t.Run("fresh with auto_migrate is migrated", func(t *testing.T) {
		st := open(t)
		if err := prepareSchema(ctx, st, true, log); err != nil {
			t.Fatal(err)
		}
		cur, known, err := st.SchemaVersion(ctx)
		if err != nil || cur != known || cur == 0 {
			t.Fatalf("schema %d/%d, %v", cur, known, err)
		}
		// Current: nothing to do either way.
		if err := prepareSchema(ctx, st, false, log); err != nil {
			t.Fatal(err)
		}
	})
}
