package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/storetest"
)

// Compile-time check that Store is a store.Store.
var _ store.Store = (*Store)(nil)

func openAt(t testing.TB, path string, maxBatch int) *Store {
	t.Helper()
	s, err := open(context.Background(), path, Options{}, maxBatch)
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

func openTemp(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "agentid.db"), defaultMaxBatch)
}

func migrateStore(t testing.TB, s *Store) {
	t.Helper()
	if _, _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTemp(t)
		migrateStore(t, s)
		return s
	})
}

// TestConformanceNoGroupCommit runs the suite with one transaction per
// write, the writer's path when a request arrives alone.
func TestConformanceNoGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openAt(t, filepath.Join(t.TempDir(), "agentid.db"), 1)
		migrateStore(t, s)
		return s
	})
}

// BenchmarkIssueTokens: go test -bench IssueTokens -run '^$' ./internal/store/sqlite
func BenchmarkIssueTokens(b *testing.B) {
	s := openTemp(b)
	migrateStore(b, s)
	storetest.Bench(b, s)
}

// BenchmarkIssueTokensNoGroupCommit is the baseline: a transaction per call.
func BenchmarkIssueTokensNoGroupCommit(b *testing.B) {
	s := openAt(b, filepath.Join(b.TempDir(), "agentid.db"), 1)
	migrateStore(b, s)
	storetest.Bench(b, s)
}

func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	s := openAt(t, path, defaultMaxBatch)
	ctx := t.Context()
	cur, known, err := s.SchemaVersion(ctx)
	if err != nil || cur != 0 || known < 1 {
		t.Fatalf("SchemaVersion on a new file = %d, %d, %v; want 0, >=1, nil", cur, known, err)
	}
	steps := []struct {
		name     string
		from, to int
	}{
		{"fresh", 0, known},
		{"again", known, known},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			from, to, err := s.Migrate(ctx)
			if err != nil || from != st.from || to != st.to {
				t.Fatalf("Migrate = %d→%d, %v; want %d→%d", from, to, err, st.from, st.to)
			}
		})
	}
	t.Run("reopen", func(t *testing.T) {
		s2 := openAt(t, path, defaultMaxBatch)
		cur, known2, err := s2.SchemaVersion(ctx)
		if err != nil || cur != known || known2 != known {
			t.Fatalf("SchemaVersion after reopen = %d, %d, %v", cur, known2, err)
		}
	})
	t.Run("too new", func(t *testing.T) {
		w := s.w
		err := w.do(ctx, func(tx *wtx) error {
			_, err := tx.exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)`, known+1)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		cur, _, err := s.SchemaVersion(ctx)
		if err != nil || cur != known+1 {
			t.Fatalf("SchemaVersion = %d, %v; want %d", cur, err, known+1)
		}
		if _, _, err := s.Migrate(ctx); !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Migrate of a newer schema: %v, want ErrSchemaTooNew", err)
		}
	})
}

func TestConcurrentMigrate(t *testing.T) {
	// Two processes (here: two Stores) migrating one file: both succeed and
	// the schema is applied once.
	path := filepath.Join(t.TempDir(), "agentid.db")
	a, b := openAt(t, path, defaultMaxBatch), openAt(t, path, defaultMaxBatch)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*Store{a, b} {
		wg.Go(func() { _, _, errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate %d: %v", i, err)
		}
	}
	if err := a.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDSN(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		dsn     string
		wantErr bool
		file    string // created file, if any
	}{
		{"plain path", filepath.Join(dir, "a.db"), false, "a.db"},
		{"path with query characters", filepath.Join(dir, "b?c#d%.db"), false, "b?c#d%.db"},
		{"file uri", "file:" + filepath.Join(dir, "e.db"), false, "e.db"},
		{"file uri with query", "file:" + filepath.Join(dir, "f.db") + "?cache=private", false, "f.db"},
		{"empty", "", true, ""},
		{"memory", ":memory:", true, ""},
		{"memory uri", "file:x?mode=memory", true, ""},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "g.db"), true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.dsn, Options{BusyTimeout: time.Second})
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, _, err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
				t.Fatalf("database file: %v", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "agentid.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	migrateStore(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.AppendAudit(t.Context(), &store.AuditEvent{TenantID: "default", Type: "x"}); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

func TestCanceledContext(t *testing.T) {
	s := openTemp(t)
	migrateStore(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ev := &store.AuditEvent{TenantID: "default", Type: "canceled", RequestID: "r1"}
	if err := s.AppendAudit(ctx, ev); !errors.Is(err, context.Canceled) {
		t.Fatalf("AppendAudit with a canceled context: %v", err)
	}
	list, err := s.ListAudit(t.Context(), store.AuditFilter{Type: "canceled"})
	if err != nil || len(list) != 0 {
		t.Fatalf("canceled write was stored: %d events, %v", len(list), err)
	}
}

// TestReadersDuringWrites checks that reads proceed while the writer is
// busy, and see only committed state.
func TestReadersDuringWrites(t *testing.T) {
	s := openTemp(t)
	migrateStore(t, s)
	ctx := t.Context()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.ListAudit(ctx, store.AuditFilter{Limit: 10}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 200 {
		if err := s.AppendAudit(ctx, &store.AuditEvent{TenantID: "default", Type: "w", Time: time.Now()}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	list, err := s.ListAudit(ctx, store.AuditFilter{Type: "w", Limit: 1000})
	if err != nil || len(list) != 200 {
		t.Fatalf("ListAudit = %d events, %v", len(list), err)
	}
}

// BenchmarkGetClient measures the read every token request makes (client
// authentication), from parallel goroutines on the read pool.
func BenchmarkGetClient(b *testing.B) {
	s := openTemp(b)
	migrateStore(b, s)
	c := &store.Client{TenantID: store.DefaultTenant, ID: "bench", Name: "bench", SecretHash: make([]byte, 32),
		GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_basic",
		Scopes: []string{"files:read", "files:write"}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := s.CreateClient(b.Context(), c, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetClient(b.Context(), store.DefaultTenant, "bench"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSealAudit: the sealer's cost per event (reading it back,
// hashing, linking), with token.issued-sized events.
//
//	go test -bench SealAudit -run '^$' ./internal/store/sqlite
func BenchmarkSealAudit(b *testing.B) {
	s := openTemp(b)
	migrateStore(b, s)
	storetest.BenchSeal(b, s)
}
