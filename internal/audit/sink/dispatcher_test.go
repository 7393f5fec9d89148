package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// trail is a migrated SQLite store with a sealer.
type trail struct {
	st     store.Store
	sealer *audit.Sealer
}

// template is a migrated, closed database that each test copies:
// migrating takes a second under the race detector.
var template struct {
	once sync.Once
	db   []byte
	err  error
}

func migrated(t *testing.T) []byte {
	template.once.Do(func() {
		dir, err := os.MkdirTemp("", "sink-template")
		if err != nil {
			template.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "agentid.db")
		st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			template.err = err
			return
		}
		if _, _, err := st.Migrate(context.Background()); err != nil {
			st.Close()
			template.err = err
			return
		}
		if template.err = st.Close(); template.err == nil {
			template.db, template.err = os.ReadFile(path)
		}
	})
	if template.err != nil {
		t.Fatal(template.err)
	}
	return template.db
}

func newTrail(t *testing.T) *trail {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agentid.db")
	if err := os.WriteFile(path, migrated(t), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := audit.NewSealer(audit.SealerOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return &trail{st: st, sealer: s}
}

// write appends n events and seals them, returning their ids.
func (tr *trail) write(t *testing.T, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		ev := audit.NewTokenIssued(audit.Meta{IP: "203.0.113.7", Time: time.Unix(1_800_000_000+int64(i), 0)},
			audit.TokenIssuedFields{ClientID: "agent", UserID: "alice@example.com", Resource: "https://mcp.example.com", JTI: fmt.Sprintf("jti-%d", i), GrantType: "client_credentials"})
		if err := tr.st.AppendAudit(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	if _, err := tr.sealer.Seal(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ids
}

// clock is a moving fake clock: Sleep moves it forward at once (and
// yields, so an idle dispatcher does not spin).
type clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *clock { return &clock{now: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
		return nil
	}
}

// receiver is a webhook endpoint that verifies signatures and can fail.
type receiver struct {
	t     *testing.T
	key   []byte
	clock *clock

	mu       sync.Mutex
	got      map[int64]int // event id → times received
	failNext int           // answer the next requests 503
	down     bool          // answer every request 500
	requests int
	badSigs  int
	batches  map[string]bool
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	// The hubs' backoff sleeps move the shared fake clock in jumps, and
	// one may land between a request's signing and this check: the
	// window is a day here, so what is checked is the signature (the
	// window itself is TestWebhookSignature's).
	if err := sink.Verify(rc.key, r.Header, body, rc.clock.Now(), 24*time.Hour); err != nil {
		rc.badSigs++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rc.down {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if rc.failNext > 0 {
		rc.failNext--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var b struct {
		Events []struct {
			ID       int64  `json:"id"`
			Type     string `json:"type"`
			Hash     string `json:"hash"`
			PrevHash string `json:"prev_hash"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		rc.t.Errorf("webhook body: %v", err)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	for _, ev := range b.Events {
		if ev.Hash == "" || ev.PrevHash == "" {
			rc.t.Errorf("event %d arrived without its chain link", ev.ID)
		}
		rc.got[ev.ID]++
	}
	rc.batches[r.Header.Get(sink.HeaderBatch)] = true
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func (rc *receiver) set(f func(rc *receiver)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f(rc)
}

// waitFor polls cond (real time, bounded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hub runs a dispatcher with one webhook sink until stop is called.
func hub(t *testing.T, tr *trail, clk *clock, holder, url string, key []byte, maxAttempts int) (stop func()) {
	t.Helper()
	wh, err := sink.NewWebhook(sink.HTTPOptions{URL: url, Secret: key, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := sink.New(sink.Options{
		Store: tr.st, Holder: holder, Now: clk.Now, Sleep: clk.Sleep, Rand: func() float64 { return 0.5 },
		Sinks: []sink.Config{{Name: "siem", Type: "webhook", Sink: wh, BatchSize: 40, MaxAttempts: maxAttempts}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// TestWebhookAcrossRestart: the receiver fails the first attempts, then
// goes down while the hub restarts (a second dispatcher, to which the
// first released the sink) and comes back: every event arrives, every
// request's signature verifies, and the cursor ends at the last event.
func TestWebhookAcrossRestart(t *testing.T) {
	tr := newTrail(t)
	clk := newClock()
	key := []byte("0123456789abcdef0123456789abcdef")
	rc := &receiver{t: t, key: key, clock: clk, got: map[int64]int{}, failNext: 3, batches: map[string]bool{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()

	ids := tr.write(t, 150)
	stop := hub(t, tr, clk, "hub-1", srv.URL, key, 1000)
	waitFor(t, "the first events", func() bool { return rc.count() >= 80 })
	rc.set(func(rc *receiver) { rc.down = true })
	stop()

	// Written while the first hub is gone and the receiver is down.
	ids = append(ids, tr.write(t, 90)...)
	stop = hub(t, tr, clk, "hub-2", srv.URL, key, 1000)
	defer func() { stop() }()
	waitFor(t, "the second hub to try", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.requests > 12
	})
	rc.set(func(rc *receiver) { rc.down = false })
	waitFor(t, "every event", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, id := range ids {
			if rc.got[id] == 0 {
				return false
			}
		}
		return true
	})
	// The hub records the delivery after the receiver answered.
	waitFor(t, "the cursor", func() bool {
		sinks, err := tr.st.ListAuditSinks(t.Context())
		return err == nil && len(sinks) == 1 && sinks[0].Cursor == ids[len(ids)-1]
	})
	stop()
	stop = func() {}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.badSigs != 0 {
		t.Errorf("%d requests failed signature verification", rc.badSigs)
	}
	dups := 0
	for _, n := range rc.got {
		dups += n - 1
	}
	if dups > 40 { // at most the batch in flight when the first hub stopped
		t.Errorf("%d duplicate deliveries, want at most one batch", dups)
	}
	sinks, err := tr.st.ListAuditSinks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(sinks) != 1 || sinks[0].Cursor != ids[len(ids)-1] || sinks[0].Holder != "hub-2" || sinks[0].Pending != 0 || sinks[0].DeadLetters != 0 {
		t.Fatalf("sink state = %+v, want cursor %d held by hub-2, nothing pending", sinks[0], ids[len(ids)-1])
	}
	if sinks[0].LastError == "" || sinks[0].Failures != 0 {
		t.Errorf("sink health = failures %d, last error %q; want the last error kept and failures cleared", sinks[0].Failures, sinks[0].LastError)
	}
}

// TestDeadLetter: a batch that fails MaxAttempts times is dead-lettered:
// the cursor moves past it, the dead letter is recorded, an
// audit.sink_dead_lettered event enters the trail, and the waits between
// attempts doubled with jitter.
func TestDeadLetter(t *testing.T) {
	tr := newTrail(t)
	clk := newClock()
	key := []byte("0123456789abcdef0123456789abcdef")
	rc := &receiver{t: t, key: key, clock: clk, got: map[int64]int{}, down: true, batches: map[string]bool{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ids := tr.write(t, 5)
	stop := hub(t, tr, clk, "hub-1", srv.URL, key, 4)
	waitFor(t, "the dead letter", func() bool {
		dls, err := tr.st.AuditDeadLetters(t.Context(), "siem", 0)
		return err == nil && len(dls) > 0
	})
	stop()

	dls, err := tr.st.AuditDeadLetters(t.Context(), "siem", 0)
	if err != nil {
		t.Fatal(err)
	}
	dl := dls[len(dls)-1]
	if dl.FirstID != ids[0] || dl.LastID != ids[4] || dl.Events != 5 || dl.Attempts != 4 || dl.Error == "" {
		t.Fatalf("dead letter = %+v, want events %d..%d after 4 attempts", dl, ids[0], ids[4])
	}
	evs, err := tr.st.ListAudit(t.Context(), store.AuditFilter{Type: audit.AuditSinkDeadLettered})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 {
		t.Fatal("no audit.sink_dead_lettered event")
	}
	ev := evs[len(evs)-1]
	want := map[string]string{"sink": "siem", "sink_type": "webhook", "first_id": fmt.Sprint(ids[0]), "last_id": fmt.Sprint(ids[4]),
		"dead_events": "5", "attempts": "4", "sink_error": "POST " + srv.URL + ": status 500"}
	for k, v := range want {
		if ev.Details[k] != v {
			t.Errorf("alert detail %s = %q, want %q", k, ev.Details[k], v)
		}
	}
	if ev.Outcome != audit.Failure {
		t.Errorf("alert outcome %q", ev.Outcome)
	}
	st, err := tr.st.ListAuditSinks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Cursor < ids[4] || st[0].DeadLetters < 5 {
		t.Fatalf("sink state = %+v, want the cursor past the dead letter", st[0])
	}
	// The waits: 1s, 2s and 4s, each drawn between half and all of it
	// (Rand 0.5: three quarters).
	clk.mu.Lock()
	var backoffs []time.Duration
	for _, d := range clk.sleeps {
		if d != time.Second { // the idle polls
			backoffs = append(backoffs, d)
		}
	}
	clk.mu.Unlock()
	if len(backoffs) < 3 || backoffs[0] != 750*time.Millisecond || backoffs[1] != 1500*time.Millisecond || backoffs[2] != 3*time.Second {
		t.Errorf("waits between attempts = %v, want 750ms, 1.5s, 3s", backoffs)
	}
}

// countingStore counts the events SealedAudit reads back; once blind,
// it reads nothing new.
type countingStore struct {
	store.Store
	read  atomic.Int64
	blind atomic.Bool
}

func (c *countingStore) SealedAudit(ctx context.Context, after int64, limit int) ([]*store.AuditLink, int64, error) {
	if c.blind.Load() {
		return nil, after, nil
	}
	links, mark, err := c.Store.SealedAudit(ctx, after, limit)
	c.read.Add(int64(len(links)))
	return links, mark, err
}

// lockedBuffer is an io.Writer the test reads while a sink writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) ids(t *testing.T) []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int64
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec audit.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, rec.ID)
	}
	return out
}

// TestOffer: what was sealed before the hand-over (or by another
// process) is read from the store; events the hub's sealer hands over
// reach a sink that keeps up without being read back (the store shows it
// nothing new). Either way each event is delivered once, in order.
func TestOffer(t *testing.T) {
	tr := newTrail(t)
	cs := &countingStore{Store: tr.st}
	before := tr.write(t, 10) // sealed by a sealer that offers nothing
	var out lockedBuffer
	clk := newClock()
	d, err := sink.New(sink.Options{Store: cs, Now: clk.Now, Sleep: clk.Sleep,
		Sinks: []sink.Config{{Name: "out", Type: "stdout", Sink: sink.NewWriter(&out), BatchSize: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the events sealed before", func() bool { return len(out.ids(t)) == len(before) })
	if n := cs.read.Load(); n != int64(len(before)) {
		t.Fatalf("%d events read back, want the %d sealed before", n, len(before))
	}

	offering, err := audit.NewSealer(audit.SealerOptions{Store: tr.st, Sealed: d.Offer})
	if err != nil {
		t.Fatal(err)
	}
	tr.sealer = offering
	// From here the store reads nothing new: what arrives was offered.
	cs.blind.Store(true)
	later := tr.write(t, 25)
	all := append(append([]int64(nil), before...), later...)
	waitFor(t, "the offered events", func() bool { return len(out.ids(t)) >= len(all) })
	if got := out.ids(t); !slices.Equal(got, all) {
		t.Fatalf("delivered %v, want %v", got, all)
	}
}
