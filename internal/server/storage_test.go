package server_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// storageGrants is how many client credentials tokens TestStoragePerGrant
// issues: enough that page granularity (4 KiB SQLite pages, 8 KiB
// PostgreSQL pages) is under 1% of the growth.
const storageGrants = 3000

// TestStoragePerGrant pins the bytes a client credentials grant adds to
// the store (issue 15: at most 1 KiB per stored grant): the access token's
// record, its token.issued event and the event's chain link, with every
// index, measured as agentid bench measures STORE B/REQ (the database's
// used pages; on PostgreSQL the schema's relations with their indexes and
// TOAST). The bounds are the measured figures (docs/benchmarks.md,
// "Storage per grant") with a few percent of room: a new index, column or
// detail on this path fails here, and then either pays for itself or is
// taken back out. The hub here registers a shorter resource URI and client
// id than agentid bench's, so its figures are a little lower.
func TestStoragePerGrant(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "agentid.db")
		st, err := sqlite.Open(t.Context(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, _, err := st.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_query_only=1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		size := func() int64 {
			var pages, free, page int64
			for q, v := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &page} {
				if err := db.QueryRow(q).Scan(v); err != nil {
					t.Fatal(err)
				}
			}
			return (pages - free) * page
		}
		perGrant := issueForStorage(t, &hub{servertest.NewOn(t, st)}, size)
		logSQLiteObjects(t, db)
		// 1 KiB is issue 15's target; measured 915 B here (972 B before
		// the short detail keys).
		if perGrant > 950 {
			t.Errorf("a client credentials grant stores %.0f B on SQLite, want at most 950 B", perGrant)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.FreshSchema(t)
		st, err := postgres.Open(t.Context(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, _, err := st.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		size := func() int64 {
			var n int64
			if err := conn.QueryRow(t.Context(), `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm', 'p')`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		perGrant := issueForStorage(t, &hub{servertest.NewOn(t, st)}, size)
		// Issue 15's 1 KiB is not met on PostgreSQL (docs/benchmarks.md,
		// "Storage per grant"); this bound holds what 0023 and the short
		// detail keys reached (measured 1,191–1,196 B here, 1,335–1,360 B
		// before; the same binary's figure moves by about 2%).
		if perGrant > 1250 {
			t.Errorf("a client credentials grant stores %.0f B on PostgreSQL, want at most 1,250 B", perGrant)
		}
	})
}

// issueForStorage issues storageGrants client credentials tokens through
// the token endpoint, 16 at a time, and returns the store's growth per
// token, by size.
func issueForStorage(t *testing.T, h *hub, size func() int64) float64 {
	t.Helper()
	secret := h.AddClient(&store.Client{ID: "storage-bot", GrantTypes: []string{"client_credentials"},
		Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}.Encode()
	handler := h.Server.Handler()
	issue := func() {
		req := httptest.NewRequest(http.MethodPost, h.URL+"/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", "Go-http-client/1.1")
		req.SetBasicAuth("storage-bot", secret)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Errorf("token endpoint: %d %s", w.Code, w.Body)
		}
	}
	// The chain's sealer, as serve runs it: a grant's bytes include its
	// event's link.
	sealer, err := audit.NewSealer(audit.SealerOptions{Store: h.Store, Signer: h.Keys, Issuer: h.URL})
	if err != nil {
		t.Fatal(err)
	}
	seal := func() {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := sealer.Final(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 { // the first pages of every table and index
		issue()
	}
	seal()
	before := size()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < storageGrants; i += 16 {
				issue()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seal()
	perGrant := float64(size()-before) / storageGrants
	t.Logf("%.0f B per client credentials grant", perGrant)
	return perGrant
}

// logSQLiteObjects logs each table's and index's bytes (dbstat), the
// breakdown docs/benchmarks.md records.
func logSQLiteObjects(t *testing.T, db *sql.DB) {
	rows, err := db.Query(`SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 12`)
	if err != nil {
		t.Logf("dbstat: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		t.Logf("  %-34s %9d B", name, n)
	}
}
