package policy

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// openSQLite opens a migrated SQLite store in the test's temporary
// directory.
func openSQLite(t testing.TB) store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func createPolicySet(t testing.TB, st store.Store, files map[string]string) int64 {
	t.Helper()
	ps := &store.PolicySet{TenantID: store.DefaultTenant, Files: files, CreatedBy: "test"}
	if err := st.CreatePolicySet(context.Background(), ps, nil); err != nil {
		t.Fatal(err)
	}
	return ps.Version
}
