package server_test

import (
	"context"
	"database/sql"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
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
// record, its token.issued event and the event's chain link (the sealer
// runs), with every index, measured as agentid bench measures STORE B/REQ
// (SQLite: the database's used pages; PostgreSQL: the schema's tables with
// their indexes and TOAST), except for the empty pages PostgreSQL adds to a
// table ahead of its rows (below). It logs each table's and index's share. The
// bounds are the measured figures (docs/benchmarks.md, "Storage per
// grant") with a few percent of room: a new index, column or detail on
// this path fails here, and then either pays for itself or is taken back
// out. The hub here registers a shorter resource URI and client id than
// agentid bench's, so its figures are a little lower.
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
		// dbstat counts every page of each table and index; the sum is
		// the used pages (free pages belong to none).
		perGrant := issueForStorage(t, &hub{servertest.NewOn(t, st)}, func() map[string]int64 {
			return sizes(t, func() (rows, error) {
				return db.QueryContext(t.Context(), `SELECT name, sum(pgsize) FROM dbstat GROUP BY name`)
			})
		})
		// 1 KiB is issue 15's target; measured 777 B here with the
		// compact policy decisions (833–834 B before them, 972 B before
		// the short detail names).
		if perGrant > 810 {
			t.Errorf("a client credentials grant stores %.0f B on SQLite, want at most 810 B", perGrant)
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
		// Each table (with its TOAST) and index, every fork: together
		// what pg_total_relation_size of the tables counts, except that a
		// table's main fork counts the pages that hold a row, as SQLite's
		// figure counts used pages. When writers queue to extend a table,
		// PostgreSQL adds many empty pages at once, which the next rows
		// fill; right after a burst of 16 writers they were up to 55 B of
		// a grant (20 of 182 pages of audit_events) and changed with the
		// machine's load, not with what a grant stores.
		perGrant := issueForStorage(t, &hub{servertest.NewOn(t, st)}, func() map[string]int64 {
			m := sizes(t, func() (rows, error) {
				r, err := conn.Query(t.Context(), `SELECT c.relname, pg_table_size(c.oid)
					- CASE WHEN c.relkind = 'r' THEN pg_relation_size(c.oid, 'main') ELSE 0 END
					FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm', 'p', 'i')`)
				return pgxRows{r}, err
			})
			var tables []string
			r, err := conn.Query(t.Context(), `SELECT c.relname FROM pg_class c
				JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = current_schema() AND c.relkind = 'r'`)
			if err != nil {
				t.Fatal(err)
			}
			if tables, err = pgx.CollectRows(r, pgx.RowTo[string]); err != nil {
				t.Fatal(err)
			}
			for _, tb := range tables {
				var used int64
				if err := conn.QueryRow(t.Context(), `SELECT count(DISTINCT (ctid::text::point)[0])::bigint
					* current_setting('block_size')::bigint FROM `+pgx.Identifier{tb}.Sanitize()).Scan(&used); err != nil {
					t.Fatal(err)
				}
				m[tb] += used
			}
			return m
		})
		// Issue 15's 1 KiB is 1,024 B; with the chain's links per sealed
		// run and well-formed scopes as text (migration 0025), the partial
		// grant index (0024) and the compact policy decisions: measured
		// 920 B here with a table's empty pages left out (978–983 B before
		// the compact decisions; 1,136–1,147 B before 0025, 1,335–1,360 B
		// before 0023, both with the empty pages).
		if perGrant > 960 {
			t.Errorf("a client credentials grant stores %.0f B on PostgreSQL, want at most 960 B", perGrant)
		}
	})
}

// rows is what sizes reads: name and bytes.
type rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}

type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() error { r.Rows.Close(); return nil }

// sizes reads a (name, bytes) query.
func sizes(t *testing.T, query func() (rows, error)) map[string]int64 {
	t.Helper()
	rs, err := query()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	m := map[string]int64{}
	for rs.Next() {
		var name string
		var n int64
		if err := rs.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		m[name] = n
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// issueForStorage issues storageGrants client credentials tokens through
// the token endpoint, 16 at a time, and returns the store's growth per
// token: the growth of the sum of sizes (bytes per table and index), each
// one's share logged.
func issueForStorage(t *testing.T, h *hub, sizes func() map[string]int64) float64 {
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
	before := sizes()
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
	after := sizes()
	var total int64
	for _, name := range slices.Sorted(maps.Keys(after)) {
		d := after[name] - before[name]
		total += d
		if d != 0 {
			t.Logf("  %-34s %6.1f B", name, float64(d)/storageGrants)
		}
	}
	perGrant := float64(total) / storageGrants
	t.Logf("%.0f B per client credentials grant", perGrant)
	return perGrant
}
