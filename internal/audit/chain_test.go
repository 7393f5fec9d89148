package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
	"github.com/agentid/agentid/internal/token"
)

// chainDB is a migrated store with what an attacker with database access
// has: plain SQL on the same tables.
type chainDB struct {
	st store.Store
	// exec runs q with ? placeholders.
	exec func(t *testing.T, q string, args ...any)
	// details replaces the stored details of an event.
	details func(t *testing.T, id int64, d map[string]string)
	// links edits the stored links in the backend's form.
	links linkEditor
}

// linkEditor is what an attacker can do to stored links: SQLite keeps a
// row per link (audit_links), PostgreSQL a row per sealed run
// (audit_runs, where an event's prev_hash is the hash before it in its
// run, not stored apart).
type linkEditor interface {
	// set gives event id the link (prev, hash); where prev_hash is not
	// stored apart, prev must be the hash the event follows.
	set(t *testing.T, id int64, prev, hash []byte)
	// swap trades the links of two events.
	swap(t *testing.T, a, b int64)
	// copyHash gives event to the hash of event from.
	copyHash(t *testing.T, from, to int64)
	// drop deletes an event's link.
	drop(t *testing.T, id int64)
	// move puts an event's link into another tenant's chain.
	move(t *testing.T, id int64, tenant string)
	// storedPrev reports whether a link's prev_hash is stored apart, so
	// that a reordering shows as one rather than as changed content.
	storedPrev() bool
}

// rowLinks edits audit_links.
type rowLinks struct{ db *chainDB }

func (r rowLinks) set(t *testing.T, id int64, prev, hash []byte) {
	r.db.exec(t, `UPDATE audit_links SET prev_hash = ?, hash = ? WHERE id = ?`, prev, hash, id)
}
func (r rowLinks) swap(t *testing.T, a, b int64) {
	r.db.exec(t, `UPDATE audit_links SET id = -1 WHERE id = ?`, a)
	r.db.exec(t, `UPDATE audit_links SET id = ? WHERE id = ?`, a, b)
	r.db.exec(t, `UPDATE audit_links SET id = ? WHERE id = -1`, b)
}
func (r rowLinks) copyHash(t *testing.T, from, to int64) {
	r.db.exec(t, `UPDATE audit_links SET hash = (SELECT hash FROM audit_links WHERE id = ?) WHERE id = ?`, from, to)
}
func (r rowLinks) drop(t *testing.T, id int64) {
	r.db.exec(t, `DELETE FROM audit_links WHERE id = ?`, id)
}
func (r rowLinks) move(t *testing.T, id int64, tenant string) {
	r.db.exec(t, `UPDATE audit_links SET tenant_id = ? WHERE id = ?`, tenant, id)
}
func (rowLinks) storedPrev() bool { return true }

// runLinks edits audit_runs: it reads the run that holds an event, changes
// it and writes it back.
type runLinks struct{ conn *pgx.Conn }

type storedRun struct {
	*store.AuditRun
	last int64 // the key it was read under
}

func (r runLinks) find(t *testing.T, id int64) (*storedRun, int) {
	t.Helper()
	rows, err := r.conn.Query(t.Context(), `SELECT tenant_id, last_id, prev_hash, ids, hashes FROM audit_runs
		WHERE first_id <= $1 AND last_id >= $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var tn string
		var last int64
		var prev, ids, hashes []byte
		if err := rows.Scan(&tn, &last, &prev, &ids, &hashes); err != nil {
			t.Fatal(err)
		}
		run, err := store.DecodeAuditRun(tn, prev, ids, hashes)
		if err != nil {
			t.Fatal(err)
		}
		if i := run.Index(id); i >= 0 {
			return &storedRun{run, last}, i
		}
	}
	t.Fatalf("no run holds event %d", id)
	return nil, 0
}

func (r runLinks) save(t *testing.T, run *storedRun) {
	t.Helper()
	ctx := t.Context()
	if _, err := r.conn.Exec(ctx, `DELETE FROM audit_runs WHERE tenant_id = $1 AND last_id = $2`, run.TenantID, run.last); err != nil {
		t.Fatal(err)
	}
	if len(run.IDs) == 0 {
		return
	}
	if _, err := r.conn.Exec(ctx, `INSERT INTO audit_runs (tenant_id, last_id, first_id, prev_hash, ids, hashes) VALUES ($1, $2, $3, $4, $5, $6)`,
		run.TenantID, run.IDs[len(run.IDs)-1], run.IDs[0], run.PrevHash, store.AppendRunIDs(nil, run.IDs), run.Hashes); err != nil {
		t.Fatal(err)
	}
}

func slot(run *store.AuditRun, i int) []byte {
	return run.Hashes[i*store.ChainHashSize : (i+1)*store.ChainHashSize]
}

func (r runLinks) set(t *testing.T, id int64, prev, hash []byte) {
	run, i := r.find(t, id)
	if i == 0 {
		run.PrevHash = prev
	}
	copy(slot(run.AuditRun, i), hash)
	r.save(t, run)
}
func (r runLinks) swap(t *testing.T, a, b int64) {
	ra, i := r.find(t, a)
	rb, j := r.find(t, b)
	if ra.last != rb.last {
		t.Fatal("swap: the events are in different runs")
	}
	ha := bytes.Clone(slot(ra.AuditRun, i))
	copy(slot(ra.AuditRun, i), slot(ra.AuditRun, j))
	copy(slot(ra.AuditRun, j), ha)
	r.save(t, ra)
}
func (r runLinks) copyHash(t *testing.T, from, to int64) {
	rf, i := r.find(t, from)
	h := bytes.Clone(slot(rf.AuditRun, i))
	rt, j := r.find(t, to)
	copy(slot(rt.AuditRun, j), h)
	r.save(t, rt)
}
func (r runLinks) drop(t *testing.T, id int64) {
	run, i := r.find(t, id)
	if i == 0 { // the next event still follows the dropped one's hash
		run.PrevHash = bytes.Clone(slot(run.AuditRun, 0))
	}
	run.IDs = append(run.IDs[:i:i], run.IDs[i+1:]...)
	run.Hashes = append(run.Hashes[:i*store.ChainHashSize:i*store.ChainHashSize], run.Hashes[(i+1)*store.ChainHashSize:]...)
	r.save(t, run)
}
func (r runLinks) move(t *testing.T, id int64, tenant string) {
	run, i := r.find(t, id)
	prev, hash := run.Link(i)
	moved := &storedRun{&store.AuditRun{TenantID: tenant, PrevHash: bytes.Clone(prev), IDs: []int64{id}, Hashes: bytes.Clone(hash)}, -1}
	r.drop(t, id)
	r.save(t, moved)
}
func (runLinks) storedPrev() bool { return false }

// chainBackends opens a fresh database on each backend (PostgreSQL when
// AGENTID_TEST_POSTGRES is set; see pgtest).
var chainBackends = map[string]func(t *testing.T) *chainDB{
	"sqlite": func(t *testing.T) *chainDB {
		path := filepath.Join(t.TempDir(), "agentid.db")
		st, err := sqlite.Open(t.Context(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, _, err := st.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		db := &chainDB{st: st}
		db.exec = func(t *testing.T, q string, args ...any) {
			t.Helper()
			if _, err := raw.Exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db.details = func(t *testing.T, id int64, d map[string]string) {
			b, _ := json.Marshal(d)
			db.exec(t, `UPDATE audit_events SET details = ? WHERE id = ?`, string(b), id)
		}
		db.links = rowLinks{db}
		return db
	},
	"postgres": func(t *testing.T) *chainDB {
		dsn := pgtest.FreshSchema(t)
		st, err := postgres.Open(t.Context(), dsn, postgres.Options{MaxConns: 8})
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
		db := &chainDB{st: st}
		db.exec = func(t *testing.T, q string, args ...any) {
			t.Helper()
			for i := 1; strings.Contains(q, "?"); i++ {
				q = strings.Replace(q, "?", "$"+strconv.Itoa(i), 1)
			}
			if _, err := conn.Exec(context.Background(), q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db.details = func(t *testing.T, id int64, d map[string]string) {
			b, _ := json.Marshal(d)
			db.exec(t, `UPDATE audit_events SET details = ?::jsonb WHERE id = ?`, string(b), id)
		}
		db.links = runLinks{conn}
		return db
	},
}

func eachBackend(t *testing.T, fn func(t *testing.T, db *chainDB)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { fn(t, chainBackends[name](t)) })
	}
}

// clock is a moving test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newKeys(t *testing.T, st store.Store) *token.Keys {
	t.Helper()
	kr, err := keyring.NewKeyring(keyring.KEK{ID: "test", Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	k, err := token.NewKeys(t.Context(), token.Options{Store: st, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// verifier checks checkpoints against the store's keys, as the CLI does.
func verifier(t *testing.T, st store.Store) audit.CheckpointVerifier {
	keys, err := st.ListSigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return func(jws string) ([]byte, error) {
		p, _, err := token.VerifyCheckpoint(jws, keys)
		if errors.Is(err, token.ErrCheckpointKeyUnknown) {
			return nil, fmt.Errorf("%w: %v", audit.ErrUnknownKey, err)
		}
		return p, err
	}
}

func verify(t *testing.T, db *chainDB) *audit.Report {
	t.Helper()
	r, err := audit.Verify(t.Context(), audit.VerifyOptions{Store: db.st, Verifier: verifier(t, db.st)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var t0 = time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC) // before the real clock, which dates checkpoints

// fill writes n events of varied shape, a minute apart from t0.
func fill(t *testing.T, st store.Store, n int) []*store.AuditEvent {
	t.Helper()
	var out []*store.AuditEvent
	for i := range n {
		m := audit.Meta{TenantID: store.DefaultTenant, Time: t0.Add(time.Duration(i) * time.Minute), RequestID: fmt.Sprint("req-", i), IP: "192.0.2.7"}
		var ev *store.AuditEvent
		if i%2 == 0 {
			ev = audit.NewClientTokensRevoked(m, fmt.Sprint("client-", i), "disabled")
		} else {
			ev = audit.NewConsentRevoked(m, audit.ConsentRevokedFields{ConsentKey: audit.ConsentKey{ClientID: "client-1", UserID: "user-1", Resource: "https://mcp.example.com/"}, Scopes: []string{"files:read", "files:write"}, By: "user"})
		}
		if err := st.AppendAudit(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func newSealer(t *testing.T, st store.Store, keys *token.Keys, clk *clock, every int) *audit.Sealer {
	t.Helper()
	opts := audit.SealerOptions{Store: st, Signer: keys, Issuer: "https://id.example.com", CheckpointEvery: every}
	if clk != nil {
		opts.Now = clk.Now
	}
	s, err := audit.NewSealer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seal(t *testing.T, s *audit.Sealer) int {
	t.Helper()
	n, err := s.Seal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sealedTrail writes 12 events with checkpoints after every 4 and seals
// everything; it returns the events and the checkpoints' ids.
func sealedTrail(t *testing.T, db *chainDB) ([]*store.AuditEvent, []int64) {
	t.Helper()
	s := newSealer(t, db.st, newKeys(t, db.st), nil, 4)
	var evs []*store.AuditEvent
	for range 3 {
		evs = append(evs, fill(t, db.st, 4)...)
		seal(t, s) // seals the four and writes a checkpoint
	}
	seal(t, s) // seals the last checkpoint
	cps, err := db.st.ListAudit(t.Context(), store.AuditFilter{Type: audit.AuditCheckpoint})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, c := range cps {
		ids = append([]int64{c.ID}, ids...)
	}
	if len(ids) != 3 {
		t.Fatalf("%d checkpoints, want 3", len(ids))
	}
	return evs, ids
}

// rehash recomputes every link of the default tenant's chain from the
// stored rows, as an attacker who knows the algorithm would after
// changing them, and moves the head accordingly.
func rehash(t *testing.T, db *chainDB) {
	t.Helper()
	links, err := db.st.AuditLinks(t.Context(), store.DefaultTenant, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := store.ChainGenesis
	for _, l := range links {
		if !l.Sealed() {
			continue
		}
		h := store.ChainHash(prev, l.Event)
		db.links.set(t, l.Event.ID, prev, h)
		db.exec(t, `UPDATE audit_chain SET head_id = ?, head_hash = ? WHERE tenant_id = ?`, l.Event.ID, h, store.DefaultTenant)
		prev = h
	}
}

func detailsOf(t *testing.T, st store.Store, id int64) map[string]string {
	t.Helper()
	links, err := st.AuditLinks(t.Context(), store.DefaultTenant, id-1, 1)
	if err != nil || len(links) == 0 || links[0].Event.ID != id {
		t.Fatalf("event %d not found: %v", id, err)
	}
	return links[0].Event.Details
}

// TestVerifyFindsTheFirstBreak: a sealed, checkpointed trail verifies;
// each change an attacker with database access could make is reported at
// the event where it shows.
func TestVerifyFindsTheFirstBreak(t *testing.T) {
	type tamper struct {
		name string
		// do changes the trail and returns the event the break must name
		// and a word its reason must contain.
		do func(t *testing.T, db *chainDB, evs []*store.AuditEvent, cps []int64) (int64, string)
	}
	tests := []tamper{
		{"details changed", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			db.details(t, evs[5].ID, map[string]string{"reason": "forged"})
			return evs[5].ID, "content"
		}},
		{"outcome changed", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			db.exec(t, `UPDATE audit_events SET outcome = 'failure' WHERE id = ?`, evs[3].ID)
			return evs[3].ID, "content"
		}},
		{"time changed", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			db.exec(t, `UPDATE audit_events SET time = (SELECT time FROM audit_events WHERE id = ?) WHERE id = ?`, evs[0].ID, evs[6].ID)
			return evs[6].ID, "content"
		}},
		{"scopes changed", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			// Both stored forms (PostgreSQL keeps well-formed scopes as text
			// in scope; SQLite's scope stays empty).
			db.exec(t, `UPDATE audit_events SET scopes = (SELECT scopes FROM audit_events WHERE id = ?),
				scope = (SELECT scope FROM audit_events WHERE id = ?) WHERE id = ?`, evs[0].ID, evs[0].ID, evs[1].ID)
			return evs[1].ID, "content"
		}},
		{"row deleted in the middle", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			db.exec(t, `DELETE FROM audit_events WHERE id = ?`, evs[2].ID)
			return evs[3].ID, "deleted"
		}},
		{"rows reordered", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			// Two events trade places, each with its link.
			a, b := evs[6].ID, evs[7].ID
			db.exec(t, `UPDATE audit_events SET id = -1 WHERE id = ?`, a)
			db.exec(t, `UPDATE audit_events SET id = ? WHERE id = ?`, a, b)
			db.exec(t, `UPDATE audit_events SET id = ? WHERE id = -1`, b)
			db.links.swap(t, a, b)
			if !db.links.storedPrev() {
				// The hash before a is the one its run holds there: the
				// event that took a's place does not match it.
				return a, "content"
			}
			return a, "reordered"
		}},
		{"hashes swapped", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			db.links.copyHash(t, evs[9].ID, evs[8].ID)
			return evs[8].ID, "content"
		}},
		{"first rows deleted", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			db.exec(t, `DELETE FROM audit_events WHERE id <= ?`, evs[1].ID)
			return evs[2].ID, "deleted"
		}},
		{"last rows deleted", func(t *testing.T, db *chainDB, _ []*store.AuditEvent, cps []int64) (int64, string) {
			db.exec(t, `DELETE FROM audit_events WHERE id = ?`, cps[2])
			return cps[2], "head"
		}},
		{"link deleted behind the head", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, _ []int64) (int64, string) {
			db.links.drop(t, evs[4].ID)
			return evs[4].ID, "not sealed"
		}},
		{"changed and rehashed", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, cps []int64) (int64, string) {
			// Event 5 lies between checkpoints 1 and 2: the second signed a
			// head after it, whose hash the rehash changes.
			db.exec(t, `UPDATE audit_events SET outcome = 'failure' WHERE id = ?`, evs[5].ID)
			rehash(t, db)
			return cps[1], "signed"
		}},
		{"checkpoint signature flipped and rehashed", func(t *testing.T, db *chainDB, _ []*store.AuditEvent, cps []int64) (int64, string) {
			d := detailsOf(t, db.st, cps[0])
			sig := []byte(d["signature"])
			i := len(sig) - 5
			sig[i] ^= 0x01
			d["signature"] = string(sig)
			db.details(t, cps[0], d)
			rehash(t, db)
			return cps[0], "does not verify"
		}},
		{"checkpoint details forged and rehashed", func(t *testing.T, db *chainDB, evs []*store.AuditEvent, cps []int64) (int64, string) {
			d := detailsOf(t, db.st, cps[1])
			d["head_id"] = strconv.FormatInt(evs[2].ID, 10)
			db.details(t, cps[1], d)
			rehash(t, db)
			return cps[1], "differ"
		}},
		{"checkpoint signed by a stranger's key", func(t *testing.T, db *chainDB, _ []*store.AuditEvent, cps []int64) (int64, string) {
			// A key of the same kid, made in another database: the
			// signature does not verify under the hub's key.
			other := chainBackends["sqlite"](t)
			keys, err := db.st.ListSigningKeys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			strange := newKeys(t, other.st)
			d := detailsOf(t, db.st, cps[2])
			payload, err := json.Marshal(audit.CheckpointClaims{TenantID: store.DefaultTenant, HeadID: mustInt(d["head_id"]), HeadHash: d["head_hash"]})
			if err != nil {
				t.Fatal(err)
			}
			jws, err := strange.SignCheckpoint(payload)
			if err != nil {
				t.Fatal(err)
			}
			// Put the hub's kid into the stranger's header.
			parts := strings.SplitN(jws, ".", 3)
			hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": keys[0].ID, "typ": token.TypCheckpoint})
			parts[0] = b64(hdr)
			d["signature"] = strings.Join(parts, ".")
			db.details(t, cps[2], d)
			rehash(t, db)
			return cps[2], "does not verify"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db *chainDB) {
				evs, cps := sealedTrail(t, db)
				r := verify(t, db)
				if r.Break != nil || r.Events != 15 || r.Checkpoints != 3 || r.Unsealed != 0 || r.SignedThrough != cps[2]-1 {
					t.Fatalf("untouched trail: %+v (break %v), want 15 events, 3 checkpoints, signed through %d", r, r.Break, cps[2]-1)
				}
				id, word := tc.do(t, db, evs, cps)
				r = verify(t, db)
				if r.Break == nil {
					t.Fatalf("Verify passed a tampered trail: %+v", r)
				}
				if r.Break.EventID != id || !strings.Contains(r.Break.Reason, word) {
					t.Errorf("break = %v, want event %d and a reason saying %q", r.Break, id, word)
				}
			})
		})
	}
}

func mustInt(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

// TestPrunedTrailVerifies: after a prune the kept trail verifies from its
// signed anchor, with the prune's event in the chain; deleting past the
// anchor afterwards, or a forged anchor, is a break.
func TestPrunedTrailVerifies(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *chainDB) {
		evs, _ := sealedTrail(t, db)
		keys := newKeys(t, db.st)
		// Events 0-11 are a minute apart from t0; checkpoints are now.
		res, err := audit.Prune(t.Context(), audit.PruneOptions{
			Store: db.st, Signer: keys, Before: t0.Add(5 * time.Minute),
			Meta: audit.Meta{Time: time.Now(), Actor: audit.ActorCLI},
		})
		if err != nil {
			t.Fatal(err)
		}
		// The checkpoint after the first four events is "now", so the
		// prune stops there: events 0-3 go.
		if res.Deleted != 4 || res.AnchorID != evs[3].ID+1 || res.Event == nil || res.Event.Details["deleted"] != "4" {
			t.Fatalf("Prune = %+v, want 4 deleted and the first checkpoint kept", res)
		}
		if r := verify(t, db); r.Break != nil || r.AnchorID != res.AnchorID || r.Unsealed != 1 {
			t.Fatalf("pruned, unsealed: %+v (break %v), want a whole chain from the anchor", r, r.Break)
		}
		seal(t, newSealer(t, db.st, keys, nil, 0))
		r := verify(t, db)
		if r.Break != nil || r.AnchorID != res.AnchorID || r.Unsealed != 0 {
			t.Fatalf("pruned, sealed: %+v (break %v)", r, r.Break)
		}

		// A second prune keeps working from the first one's anchor.
		res2, err := audit.Prune(t.Context(), audit.PruneOptions{Store: db.st, Signer: keys, Before: t0.Add(7 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if res2.AnchorID != res.AnchorID {
			// The checkpoint, dated now, is the first kept event again:
			// nothing older than it may go without breaking the prefix.
			t.Fatalf("second prune anchored at %d, want %d", res2.AnchorID, res.AnchorID)
		}
		if r := verify(t, db); r.Break != nil {
			t.Fatalf("after a second prune: %v", r.Break)
		}

		// Deleting the anchor by hand: the trail now starts where no
		// signed prune says it may.
		db.exec(t, `DELETE FROM audit_events WHERE id = ?`, res.AnchorID)
		r = verify(t, db)
		if r.Break == nil || r.Break.EventID != evs[4].ID || !strings.Contains(r.Break.Reason, "deleted") {
			t.Fatalf("anchor deleted: break = %v, want event %d", r.Break, evs[4].ID)
		}
	})
}

// TestPruneKeepsTheHead: a prune before a time after every event keeps
// the chain head, so the trail always has an anchored start.
func TestPruneKeepsTheHead(t *testing.T) {
	db := chainBackends["sqlite"](t)
	keys := newKeys(t, db.st)
	fill(t, db.st, 5)
	seal(t, newSealer(t, db.st, nil, nil, 0))
	res, err := audit.Prune(t.Context(), audit.PruneOptions{Store: db.st, Signer: keys, Before: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 4 {
		t.Fatalf("deleted %d, want 4 (the head stays)", res.Deleted)
	}
	if r := verify(t, db); r.Break != nil || r.Events != 1 {
		t.Fatalf("after pruning to the head: %+v, %v", r, r.Break)
	}
}

// TestSealerSettles: with a settle time (an optional floor) the sealer
// links only ids handed out at least that long ago, by its own (moving)
// clock.
func TestSealerSettles(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *chainDB) {
		clk := &clock{t: t0}
		s, err := audit.NewSealer(audit.SealerOptions{Store: db.st, Settle: 2 * time.Second, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		unsealed := func() int64 { return verify(t, db).Unsealed }
		first := fill(t, db.st, 2)
		if n := seal(t, s); n != 0 {
			t.Fatalf("sealed %d at once, want 0", n)
		}
		clk.Add(1500 * time.Millisecond)
		second := fill(t, db.st, 1)
		if n := seal(t, s); n != 0 {
			t.Fatalf("sealed %d after 1.5 s, want 0", n)
		}
		clk.Add(600 * time.Millisecond) // 2.1 s after the first two
		if n := seal(t, s); n != len(first) {
			t.Fatalf("sealed %d after 2.1 s, want the first %d", n, len(first))
		}
		if u := unsealed(); u != 1 {
			t.Fatalf("%d unsealed, want the later one", u)
		}
		clk.Add(2 * time.Second)
		if n := seal(t, s); n != len(second) {
			t.Fatalf("sealed %d, want the later one", n)
		}
		if r := verify(t, db); r.Break != nil || r.Unsealed != 0 || r.Events != 3 {
			t.Fatalf("after settling: %+v %v", r, r.Break)
		}
	})
}

// TestVerifyWhileSealing: Verify run while events are written and sealed
// never reports a break that is not there (the head moving under it, an
// event sealed just after Verify passed it).
func TestVerifyWhileSealing(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			db := chainBackends[name](t)
			// No settle time: on PostgreSQL, where ids commit out of order,
			// the store's horizon says when a reading is safe.
			s, err := audit.NewSealer(audit.SealerOptions{Store: db.st, Signer: newKeys(t, db.st), CheckpointEvery: 7})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for ctx.Err() == nil {
						ev := audit.NewClientDeleted(audit.Meta{Time: time.Now()}, "c")
						if err := db.st.AppendAudit(context.Background(), ev); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Go(func() { s.Run(ctx, 5*time.Millisecond) })
			deadline := time.Now().Add(1500 * time.Millisecond)
			runs := 0
			for time.Now().Before(deadline) {
				r := verify(t, db)
				if r.Break != nil {
					cancel()
					wg.Wait()
					t.Fatalf("verify during sealing: %v", r.Break)
				}
				runs++
			}
			cancel()
			wg.Wait()
			if r := verify(t, db); r.Break != nil || r.Events == 0 || r.Checkpoints == 0 {
				t.Fatalf("after sealing: %+v %v", r, r.Break)
			}
			t.Logf("%d verifications while sealing", runs)
		})
	}
}

// TestCheckpointCadence: a checkpoint once CheckpointEvery events are
// sealed, or after CheckpointInterval with any; none while the trail is
// idle; Final signs and seals what is left.
func TestCheckpointCadence(t *testing.T) {
	db := chainBackends["sqlite"](t)
	clk := &clock{t: t0}
	s := newSealer(t, db.st, newKeys(t, db.st), clk, 3)
	checkpoints := func() int {
		cps, err := db.st.ListAudit(t.Context(), store.AuditFilter{Type: audit.AuditCheckpoint})
		if err != nil {
			t.Fatal(err)
		}
		return len(cps)
	}
	fill(t, db.st, 2)
	seal(t, s)
	if n := checkpoints(); n != 0 {
		t.Fatalf("%d checkpoints after 2 events, want 0", n)
	}
	clk.Add(audit.DefaultCheckpointInterval)
	seal(t, s)
	if n := checkpoints(); n != 1 {
		t.Fatalf("%d checkpoints after the interval, want 1", n)
	}
	for range 3 { // idle: the checkpoint itself is sealed, no new one
		clk.Add(2 * audit.DefaultCheckpointInterval)
		seal(t, s)
	}
	if n := checkpoints(); n != 1 {
		t.Fatalf("%d checkpoints while idle, want 1", n)
	}
	fill(t, db.st, 3)
	seal(t, s)
	if n := checkpoints(); n != 2 {
		t.Fatalf("%d checkpoints after 3 more events, want 2", n)
	}
	fill(t, db.st, 1)
	if err := s.Final(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := checkpoints(); n != 3 {
		t.Fatalf("%d checkpoints after Final, want 3", n)
	}
	r := verify(t, db)
	if r.Break != nil || r.Unsealed != 0 || r.Checkpoints != 3 {
		t.Fatalf("after Final: %+v %v", r, r.Break)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
