package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/storetest"
)

// Compile-time check that Store is a store.Store.
var _ store.Store = (*Store)(nil)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "agentid.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newMigrated(t testing.TB) *Store {
	t.Helper()
	s := openTemp(t)
	if _, _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newMigrated(t) })
}

func BenchmarkIssueTokens(b *testing.B) {
	storetest.Bench(b, newMigrated(b))
}

func TestMigrateFresh(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	cur, known, err := s.SchemaVersion(ctx)
	if err != nil || cur != 0 || known < 1 {
		t.Fatalf("SchemaVersion on a new file = %d, %d, %v; want 0, >=1, nil", cur, known, err)
	}
	from, to, err := s.Migrate(ctx)
	if err != nil || from != 0 || to != known {
		t.Fatalf("Migrate = %d→%d, %v; want 0→%d", from, to, err, known)
	}
	_ = errors.New
}
