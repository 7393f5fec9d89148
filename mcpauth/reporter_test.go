package mcpauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// fakeReportHub is a hub's /tools/report that records what arrives and can
// be down (503) or stalled (never answers until released).
type fakeReportHub struct {
	t       *testing.T
	srv     *httptest.Server
	mode    atomic.Value // "ok", "down", "stall", "lose" (record, answer 503, then ok)
	release chan struct{}

	mu       sync.Mutex
	batches  [][]map[string]any
	attempts int
	refuse   string // a tool whose reports the hub refuses
}

func newFakeReportHub(t *testing.T) *fakeReportHub {
	h := &fakeReportHub{t: t, release: make(chan struct{})}
	h.mode.Store("ok")
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.unstall()
		h.srv.Close()
	})
	return h
}

func (h *fakeReportHub) unstall() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

func (h *fakeReportHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.attempts++
	h.mu.Unlock()
	switch h.mode.Load() {
	case "down":
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case "stall":
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != "notes-mcp" || secret != "s3cret" || r.URL.Path != "/tools/report" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body struct {
		Reports []map[string]any `json:"reports"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	type result struct {
		Status string `json:"status"`
		Error  string `json:"error,omitempty"`
	}
	var out struct {
		Results []result `json:"results"`
	}
	h.mu.Lock()
	h.batches = append(h.batches, body.Reports)
	for _, rep := range body.Reports {
		if rep["tool"] == h.refuse {
			out.Results = append(out.Results, result{"refused", "unknown_token"})
		} else {
			out.Results = append(out.Results, result{Status: "recorded"})
		}
	}
	h.mu.Unlock()
	if h.mode.CompareAndSwap("lose", "ok") {
		// The batch arrived but the answer is lost on the way back.
		http.Error(w, "lost", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (h *fakeReportHub) received() (batches [][]map[string]any, attempts int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]map[string]any(nil), h.batches...), h.attempts
}

func (h *fakeReportHub) reporter(t *testing.T, mod func(*mcpauth.ReporterConfig)) *mcpauth.Reporter {
	cfg := mcpauth.ReporterConfig{Issuer: h.srv.URL, ClientID: "notes-mcp", ClientSecret: "s3cret", HTTPClient: h.srv.Client(),
		BatchSize: 10, FlushInterval: time.Hour, MaxBackoff: 50 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	r, err := mcpauth.NewReporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = r.Close(ctx)
	})
	return r
}

func toolCall(i int) mcpauth.ToolCall {
	return mcpauth.ToolCall{Tool: "read_notes", Outcome: mcpauth.ToolSuccess, Duration: time.Duration(i) * time.Millisecond, JTI: "jti-" + string(rune('a'+i%26)), ActChain: []string{"mcp-a", "agent"}}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReporterBatches: full batches go out at once without waiting for the
// flush interval, the rest on Close; each report carries the jti, tool,
// outcome, duration, time and chain, authenticated as the server's client.
func TestReporterBatches(t *testing.T) {
	h := newFakeReportHub(t)
	h.refuse = "forged"
	r := h.reporter(t, nil)
	for i := range 24 {
		r.Report(context.Background(), toolCall(i))
	}
	r.Report(context.Background(), mcpauth.ToolCall{Tool: "forged", Outcome: mcpauth.ToolError, JTI: "x"})
	waitFor(t, "two full batches", func() bool { b, _ := h.received(); return len(b) == 2 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close = %v", err)
	}
	batches, _ := h.received()
	if len(batches) != 3 || len(batches[0]) != 10 || len(batches[1]) != 10 || len(batches[2]) != 5 {
		t.Fatalf("batch sizes = %d batches, want 10+10+5", len(batches))
	}
	first := batches[0][3]
	if first["jti"] != "jti-d" || first["tool"] != "read_notes" || first["outcome"] != "success" || first["duration_ms"] != 3.0 || first["time"] == "" {
		t.Errorf("report = %v", first)
	}
	if chain, _ := first["act_chain"].([]any); len(chain) != 2 || chain[0] != "mcp-a" {
		t.Errorf("act_chain = %v", first["act_chain"])
	}
	for k := range first {
		if strings.Contains(k, "token") && k != "jti" {
			t.Errorf("a report carries %q", k)
		}
	}
	st := r.Stats()
	if st.Recorded != 24 || st.Refused != 1 || st.DroppedFull != 0 || st.Queued != 0 {
		t.Errorf("stats = %+v, want 24 recorded, 1 refused", st)
	}
	// After Close, reports are dropped and counted, never sent.
	r.Report(context.Background(), toolCall(0))
	if st := r.Stats(); st.DroppedFull != 1 {
		t.Errorf("after Close: stats = %+v, want 1 dropped", st)
	}
}

// TestReporterFlushInterval: a lone report goes out after the interval.
func TestReporterFlushInterval(t *testing.T) {
	h := newFakeReportHub(t)
	r := h.reporter(t, func(c *mcpauth.ReporterConfig) { c.FlushInterval = 20 * time.Millisecond })
	r.Report(context.Background(), toolCall(1))
	waitFor(t, "the interval's flush", func() bool { return r.Stats().Recorded == 1 })
}

// TestReporterNeverBlocks: with the hub stalled, Report returns at once
// for every call; what exceeds the queue is dropped and counted, and a
// Close bounded by its context gives up and counts the rest.
func TestReporterNeverBlocks(t *testing.T) {
	h := newFakeReportHub(t)
	h.mode.Store("stall")
	r := h.reporter(t, func(c *mcpauth.ReporterConfig) { c.MaxQueue = 100 })
	start := time.Now()
	const n = 5000
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range n / 4 {
				r.Report(context.Background(), toolCall(g+i))
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("%d reports took %v against a stalled hub", n, d)
	}
	st := r.Stats()
	// At most the queue and one batch in flight are held.
	if st.DroppedFull < n-100-10 || int(st.DroppedFull)+st.Queued > n {
		t.Errorf("stats = %+v, want about %d dropped", st, n-110)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close against a stalled hub = %v, want deadline exceeded", err)
	}
	st = r.Stats()
	if st.Queued != 0 || st.Recorded != 0 || int(st.DroppedFull) != n {
		t.Errorf("after Close: stats = %+v, want all %d dropped", st, n)
	}
}

// TestReporterRetriesUntilTheHubReturns: reports wait in the queue while
// the hub answers 503 and arrive, once each, when it is back.
func TestReporterRetriesUntilTheHubReturns(t *testing.T) {
	h := newFakeReportHub(t)
	h.mode.Store("down")
	r := h.reporter(t, func(c *mcpauth.ReporterConfig) { c.FlushInterval = 10 * time.Millisecond })
	for i := range 5 {
		r.Report(context.Background(), toolCall(i))
	}
	waitFor(t, "three failed attempts", func() bool { _, n := h.received(); return n >= 3 })
	if st := r.Stats(); st.Queued != 5 && st.Queued != 0 || st.Recorded != 0 {
		t.Fatalf("while down: stats = %+v", st)
	}
	h.mode.Store("ok")
	waitFor(t, "delivery", func() bool { return r.Stats().Recorded == 5 })
	batches, _ := h.received()
	total := 0
	for _, b := range batches {
		total += len(b)
	}
	if total != 5 {
		t.Errorf("hub received %d reports, want 5", total)
	}
}

// TestReporterDropsStaleReports: reports older than MaxRetryAge are
// dropped and counted, never sent; fresh ones still go.
func TestReporterDropsStaleReports(t *testing.T) {
	h := newFakeReportHub(t)
	h.mode.Store("down")
	r := h.reporter(t, func(c *mcpauth.ReporterConfig) {
		c.FlushInterval = 10 * time.Millisecond
		c.MaxRetryAge = 150 * time.Millisecond
	})
	old := toolCall(1)
	old.Time = time.Now().Add(-time.Hour)
	r.Report(context.Background(), old)
	r.Report(context.Background(), toolCall(2))
	waitFor(t, "the fresh report to age out while the hub is down", func() bool { return r.Stats().DroppedStale == 2 })
	h.mode.Store("ok")
	r.Report(context.Background(), toolCall(3))
	waitFor(t, "the new report", func() bool { return r.Stats().Recorded == 1 })
	if st := r.Stats(); st.DroppedStale != 2 || st.DroppedFull != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestReporterConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  mcpauth.ReporterConfig
		ok   bool
	}{
		{"complete", mcpauth.ReporterConfig{Issuer: "https://hub.example", ClientID: "a", ClientSecret: "b"}, true},
		{"loopback http", mcpauth.ReporterConfig{Issuer: "http://127.0.0.1:8080", ClientID: "a", ClientSecret: "b"}, true},
		{"plain http", mcpauth.ReporterConfig{Issuer: "http://hub.example", ClientID: "a", ClientSecret: "b"}, false},
		{"no secret", mcpauth.ReporterConfig{Issuer: "https://hub.example", ClientID: "a"}, false},
		{"batch too large", mcpauth.ReporterConfig{Issuer: "https://hub.example", ClientID: "a", ClientSecret: "b", BatchSize: 501}, false},
		{"negative queue", mcpauth.ReporterConfig{Issuer: "https://hub.example", ClientID: "a", ClientSecret: "b", MaxQueue: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestReporterResendsWithTheSameIDs: every report carries an id, and a
// batch sent again because its answer was lost carries the same ids, so
// that the hub can recognise it (it keeps one event per id).
func TestReporterResendsWithTheSameIDs(t *testing.T) {
	h := newFakeReportHub(t)
	h.mode.Store("lose")
	r := h.reporter(t, func(c *mcpauth.ReporterConfig) { c.FlushInterval = 10 * time.Millisecond })
	r.Report(context.Background(), toolCall(0))
	r.Report(context.Background(), toolCall(1))
	waitFor(t, "delivery", func() bool { return r.Stats().Recorded == 2 })
	batches, _ := h.received()
	if len(batches) != 2 {
		t.Fatalf("%d batches, want the lost one and its resend", len(batches))
	}
	ids := func(b []map[string]any) []string {
		var out []string
		for _, rep := range b {
			id, _ := rep["id"].(string)
			out = append(out, id)
		}
		return out
	}
	first, again := ids(batches[0]), ids(batches[1])
	if len(first) != 2 || first[0] == "" || first[0] == first[1] || len(first[0]) != 22 {
		t.Fatalf("ids %q: want two distinct 22-character ids", first)
	}
	if strings.Join(first, " ") != strings.Join(again, " ") {
		t.Errorf("resent ids %q, first sent %q", again, first)
	}
}

// TestMiddlewareReportsRefusedCalls: with a Reporter, the calls Middleware
// refuses itself are reported as denied under the token's jti — a tool
// lacking its scopes (403) and, in introspection mode, a token the hub
// reports inactive (401) — while requests with no verified token, and
// refused requests that call no tool, report nothing.
func TestMiddlewareReportsRefusedCalls(t *testing.T) {
	tests := []struct {
		name     string
		token    mcpauthtest.TokenOptions
		revoke   bool
		body     string
		wantCode int
		want     []string // tools reported denied
	}{
		{name: "insufficient scope", token: mcpauthtest.TokenOptions{JTI: "j-scope", Scopes: []string{"notes:read"}},
			body: call("write_notes"), wantCode: http.StatusForbidden, want: []string{"write_notes"}},
		{name: "insufficient scope, batch", token: mcpauthtest.TokenOptions{JTI: "j-batch", Scopes: []string{"notes:read"}},
			body: "[" + call("read_notes") + "," + call("delete_notes") + "]", wantCode: http.StatusForbidden, want: []string{"read_notes", "delete_notes"}},
		{name: "revoked token", token: mcpauthtest.TokenOptions{JTI: "j-revoked", Scopes: []string{"notes:read"}}, revoke: true,
			body: call("read_notes"), wantCode: http.StatusUnauthorized, want: []string{"read_notes"}},
		{name: "revoked token, no tool call", token: mcpauthtest.TokenOptions{JTI: "j-list", Scopes: []string{"notes:read"}}, revoke: true,
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, wantCode: http.StatusUnauthorized},
		{name: "wrong audience", token: mcpauthtest.TokenOptions{JTI: "j-aud", Audience: []string{"https://other.example/mcp"}, Scopes: []string{"notes:read"}},
			body: call("read_notes"), wantCode: http.StatusUnauthorized},
		{name: "granted", token: mcpauthtest.TokenOptions{JTI: "j-ok", Scopes: []string{"notes:read"}},
			body: call("read_notes"), wantCode: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, introspection(-1))
			rh := newFakeReportHub(t)
			rep := rh.reporter(t, nil)
			mw := mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{ToolScopes: noteTools, Reporter: rep})
			if tt.token.Audience == nil {
				tt.token.Audience = []string{resource}
			}
			tok := f.hub.TokenWith(tt.token)
			if tt.revoke {
				f.hub.Revoke(tt.token.JTI)
			}
			rec, _ := serve(t, mw, request("POST", tok, tt.body))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.wantCode, rec.Body)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := rep.Close(ctx); err != nil {
				t.Fatal(err)
			}
			batches, _ := rh.received()
			var got []string
			for _, b := range batches {
				for _, r := range b {
					if r["outcome"] != mcpauth.ToolDenied || r["jti"] != tt.token.JTI {
						t.Errorf("report %v: want outcome denied and jti %s", r, tt.token.JTI)
					}
					got = append(got, r["tool"].(string))
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("reported %q, want %q", got, tt.want)
			}
		})
	}
}
