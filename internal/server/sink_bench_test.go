package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit/sink"
)

// BenchmarkClientCredentialsSealedWebhook is BenchmarkClientCredentialsSealed
// with one webhook sink streaming the trail as serve runs it (batches of
// 100, HMAC-signed) to a receiver in the same process. Besides the
// issuance figures it reports all-cpu-µs/op: the process's CPU time from
// the start until the sink has delivered every event of the run (the
// receiver's work included), per token. Its ratio to the cpu-µs/op of
// BenchmarkClientCredentials is the audit path's cost (issue 13: less
// than 15%).
func BenchmarkClientCredentialsSealedWebhook(b *testing.B) {
	h := newHub(b)
	var received atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		received.Add(int64(bytes.Count(body, []byte(`{"id":`))))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	wh, err := sink.NewWebhook(sink.HTTPOptions{URL: recv.URL, Secret: []byte("bench-webhook-key-0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	d, err := sink.New(sink.Options{Store: h.Store, Sinks: []sink.Config{{Name: "bench", Type: "webhook", Sink: wh}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	cpu0 := cpuTime()
	benchClientCredentials(b, h, sealer(b, h, 0))
	// Drain: the sink delivers what the run wrote (the sealer's last
	// round included).
	w, err := h.Store.AuditWatermark(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := h.Store.ListAuditSinks(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(st) == 1 && st[0].Cursor >= w {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the sink did not catch up: %+v, watermark %d", st, w)
		}
		time.Sleep(5 * time.Millisecond)
	}
	all := (cpuTime() - cpu0).Seconds() / float64(b.N)
	cancel()
	wg.Wait()
	if received.Load() < int64(b.N) {
		b.Fatalf("the receiver got %d events for %d tokens", received.Load(), b.N)
	}
	b.ReportMetric(all*1e6, "all-cpu-µs/op")
	b.ReportMetric(2/all, "tokens/s@2cores-with-sink")
}
