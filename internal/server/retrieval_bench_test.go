package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRetrieval measures credential retrieval without a cache in the
// MCP server: every call is a hub round trip through the whole HTTP
// handler on SQLite — client authentication of the MCP server, the subject
// token (signature, record, chain), person and agent read from the store,
// the consent ledger, the provider and its link, the connect policy
// decision, the vault's Find and Credential (the provider's access token
// is warm: no refresh) and the durable TouchConnection with its
// connection.retrieved event. It reports retrievals/s, the CPU time per
// retrieval, the rate that implies on two idle cores, and the 99th
// percentile latency of one retrieval.
//
// distinct-subjects presents a different subject token every time (a
// signature check each); same-subject one token over and over, as an MCP
// server serving one tool call that reads the provider several times.
func BenchmarkRetrieval(b *testing.B) {
	b.Run("distinct-subjects", func(b *testing.B) { benchRetrieval(b, 20000) })
	b.Run("same-subject", func(b *testing.B) { benchRetrieval(b, 1) })
}

func benchRetrieval(b *testing.B, subjects int) {
	h := newRetrievalHub(b, "")
	h.connect("calendar.read", "calendar.write")
	bodies := make([]string, subjects)
	// The first subject token comes from a real code flow (which records
	// the person's consent); the others are minted and recorded the same
	// way, for the same person and agent.
	bodies[0] = retrievalBody(h, h.userToken("notes.read", "notes.write"))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 1 + w; i < subjects; i += 8 {
				bodies[i] = retrievalBody(h, mintSubject(b, h.hub))
			}
		})
	}
	wg.Wait()
	// The credential is warm: one retrieval first, so every timed one
	// finds the provider's token fresh.
	if r := h.retrieve("mcp-a", h.userToken("notes.read"), "calendar"); r.status != http.StatusOK {
		b.Fatalf("warm-up: %d %v", r.status, r.body)
	}
	handler := h.Server.Handler()
	secret := h.secrets["mcp-a"]

	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			body := bodies[int(next.Add(1)-1)%len(bodies)]
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("mcp-a", secret)
			req.RemoteAddr = "127.0.0.1:1234"
			w := &discardWriter{h: http.Header{}}
			start := time.Now()
			handler.ServeHTTP(w, req)
			mine = append(mine, time.Since(start))
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "retrievals/s")
	cpuPerOp := (cpuTime() - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(cpuPerOp*1e6, "cpu-µs/op")
	b.ReportMetric(2/cpuPerOp, "retrievals/s@2cores")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

func retrievalBody(h *retrievalHub, subject string) string {
	return url.Values{
		"grant_type": {grantExchange}, "subject_token": {subject}, "subject_token_type": {typeAccess},
		"resource": {h.providerURI("calendar")}, "scope": {"calendar.read"},
	}.Encode()
}
