package sqlite

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
)

// TestMigration0004KeepsData upgrades a version-3 database holding
// resources with scopes in the old shape (keyed by id, durations without a
// unit) and checks every row reads back, the scopes in their order, and
// that scopes still follow their resource on delete.
func TestMigration0004KeepsData(t *testing.T) {
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "v3.db"), defaultMaxBatch)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := migrate.Run(ctx, dialect{s}, ms[:3], nil); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	err = s.w.do(ctx, func(tx *wtx) error {
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO resources (tenant_id, id, uri, name, access_token_ttl, consent_max_ttl, consent_default_ttl, tags, created_at)
			  VALUES ('default', 'notes', 'https://notes.example/mcp', 'Notes', ?, ?, ?, '["beta"]', ?)`,
				[]any{int64(5 * time.Minute), int64(24 * time.Hour), int64(time.Hour), created.UnixMicro()}},
			{`INSERT INTO resources (tenant_id, id, uri, name, created_at) VALUES ('default', 'bare', 'https://bare.example/', 'Bare', ?)`,
				[]any{created.UnixMicro()}},
			{`INSERT INTO resource_scopes (tenant_id, resource_id, position, name, description, sensitive)
			  VALUES ('default', 'notes', 1, 'notes.write', 'Write', 1), ('default', 'notes', 0, 'notes.read', 'Read', 0)`, nil},
		} {
			if _, err := tx.exec(q.sql, q.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	from, to, err := s.Migrate(ctx)
	if err != nil || from != 3 || to < 4 {
		t.Fatalf("Migrate = %d→%d, %v; want 3→≥4", from, to, err)
	}
	list, err := s.ListResources(ctx, store.DefaultTenant)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListResources = %d resources, %v; want 2", len(list), err)
	}
	r, err := s.GetResource(ctx, store.DefaultTenant, "https://notes.example/mcp")
	if err != nil {
		t.Fatal(err)
	}
	wantScopes := []store.Scope{{Name: "notes.read", Description: "Read"}, {Name: "notes.write", Description: "Write", Sensitive: true}}
	if r.ID != "notes" || r.Name != "Notes" || !slices.Equal(r.Scopes, wantScopes) || !slices.Equal(r.Tags, []string{"beta"}) ||
		r.AccessTokenTTL != 5*time.Minute || r.ConsentMaxTTL != 24*time.Hour || r.ConsentDefaultTTL != time.Hour ||
		!r.CreatedAt.Equal(created) {
		t.Fatalf("resource after migration = %+v", r)
	}
	if err := s.DeleteResource(ctx, store.DefaultTenant, r.URI, nil); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM resource_scopes`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("scopes left after deleting their resource: %d, %v", left, err)
	}
	var fkProblems int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fkProblems); err != nil || fkProblems != 0 {
		t.Fatalf("foreign key check: %d problems, %v", fkProblems, err)
	}
}
