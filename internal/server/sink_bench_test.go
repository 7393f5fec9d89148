package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/internal/store"
)

// BenchmarkClientCredentialsSealedWebhook is BenchmarkClientCredentials
// with the audit path on as serve runs it: the chain's sealer (every
// second, signing checkpoints, handing what it linked to the sinks) and
// one webhook sink (HMAC-signed batches) streaming to a receiver in this
// process. Its tokens/s against BenchmarkClientCredentials's is the
// throughput with the audit path on and off; all-cpu-µs/op counts the
// process's CPU until the sink has delivered every event of the run (the
// receiver's work included).
func BenchmarkClientCredentialsSealedWebhook(b *testing.B) {
	h := newHub(b)
	hook := startWebhookSink(b, h)
	s, err := audit.NewSealer(audit.SealerOptions{Store: h.Store, Signer: h.Keys, Issuer: h.URL, Sealed: hook.d.Offer})
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	benchClientCredentials(b, h, s)
	hook.drain(b)
	all := (cpuTime() - cpu0).Seconds() / float64(b.N)
	hook.stop(b)
	b.ReportMetric(all*1e6, "all-cpu-µs/op")
}

// BenchmarkClientCredentialsAuditCost measures the audit path's share
// apart, as BenchmarkClientCredentials's seal-% does for the chain:
// client-credentials issuance runs alone (benchTokenPosts), then, with
// nothing else running, the sealer links the run's events and hands them
// to one webhook sink, which delivers them; both on the process's CPU
// clock. audit-% = (sealing + delivery) / issuance, robust where two
// benchmarks' difference is lost in a shared machine's noise. The sealer
// starts after the run, so it reads every event back, as after a restart
// (a sealer running beside the issuance takes them from the SQLite
// writer's tail instead): this is the catch-up's cost;
// BenchmarkAuditPathOnOff measures the hub as serve runs it (issue 13:
// less than 15%).
func BenchmarkClientCredentialsAuditCost(b *testing.B) {
	h := newHub(b)
	secret := h.AddClient(&store.Client{ID: "bench-bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}.Encode()
	cpu0 := cpuTime()
	benchTokenPosts(b, h.Server.Handler(), h.URL, "bench-bot", secret, []string{body}, "tokens")
	cpu1 := cpuTime()
	stopProfile := auditProfile(b)
	hook := startWebhookSink(b, h)
	s, err := audit.NewSealer(audit.SealerOptions{Store: h.Store, Signer: h.Keys, Issuer: h.URL, Sealed: hook.d.Offer})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Final(context.Background()); err != nil {
		b.Fatal(err)
	}
	hook.drain(b)
	cpu2 := cpuTime()
	stopProfile()
	hook.stop(b)
	issue := (cpu1 - cpu0).Seconds()
	path := (cpu2 - cpu1).Seconds()
	b.ReportMetric(path/float64(b.N)*1e6, "audit-cpu-µs/op")
	b.ReportMetric(100*path/issue, "audit-%")
}

// auditProfile starts a CPU profile of the audit path alone when
// AGENTID_BENCH_AUDIT_PROFILE names a file (not with -test.cpuprofile,
// which would profile the issuance too); it returns the function that
// stops it.
func auditProfile(b *testing.B) func() {
	path := os.Getenv("AGENTID_BENCH_AUDIT_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// webhookSink is a dispatcher with one webhook sink and its receiver.
type webhookSink struct {
	h        *hub
	d        *sink.Dispatcher
	received atomic.Int64
	lastID   atomic.Int64 // the last event id of the newest batch received
	cancel   func()
	wg       sync.WaitGroup
	recv     *httptest.Server
}

func startWebhookSink(b *testing.B, h *hub) *webhookSink {
	w := &webhookSink{h: h}
	// The receiver stands for a SIEM in another process; it reads each
	// body into one buffer of its announced length (io.ReadAll's growing
	// copies would be the receiver's cost, not the hub's).
	w.recv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body := make([]byte, max(r.ContentLength, 0))
		if _, err := io.ReadFull(r.Body, body); err != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.received.Add(int64(bytes.Count(body, []byte(`{"id":`))))
		// The batch header names "sink:first-last".
		if _, ids, ok := strings.Cut(r.Header.Get(sink.HeaderBatch), ":"); ok {
			if _, last, ok := strings.Cut(ids, "-"); ok {
				if n, err := strconv.ParseInt(last, 10, 64); err == nil && n > w.lastID.Load() {
					w.lastID.Store(n)
				}
			}
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	wh, err := sink.NewWebhook(sink.HTTPOptions{URL: w.recv.URL, Secret: []byte("bench-webhook-key-0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	d, err := sink.New(sink.Options{Store: h.Store, Sinks: []sink.Config{{Name: "bench", Type: "webhook", Sink: wh}}})
	if err != nil {
		b.Fatal(err)
	}
	w.d = d
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Go(func() { d.Run(ctx) })
	return w
}

// drain waits until the receiver has every event written so far (once
// sealed), watching the batches' headers: no store reads that the CPU
// clock would count.
func (w *webhookSink) drain(b *testing.B) {
	last, err := w.h.Store.AuditWatermark(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for w.lastID.Load() < last {
		if time.Now().After(deadline) {
			b.Fatalf("the sink did not catch up: received through %d, last event %d", w.lastID.Load(), last)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *webhookSink) stop(b *testing.B) {
	w.cancel()
	w.wg.Wait()
	w.recv.Close()
	if w.received.Load() < int64(b.N) {
		b.Fatalf("the receiver got %d events for %d tokens", w.received.Load(), b.N)
	}
}

// BenchmarkAuditPathOnOff is issue 13's measure made robust on a shared,
// noisy machine: in one process it runs pairs of client-credentials runs
// of b.N tokens each, one with the audit path off (issuance alone) and
// one with it on as serve runs it (the sealer every second, signing
// checkpoints, handing what it linked to one webhook sink that delivers
// HMAC-signed batches to a receiver in this process), each on a fresh
// hub, the order alternating from pair to pair. Each run is measured on
// the process's CPU clock (rusage), the "on" run until the receiver has
// every event of the run; the pair's ratio is on/off CPU per token, and
// the result is the median ratio over the pairs (AGENTID_BENCH_PAIRS,
// default 7): audit-% = 100 × (median − 1). Machine load that changes
// over minutes moves both runs of a pair alike, and a pair disturbed by a
// burst moves the median little.
func BenchmarkAuditPathOnOff(b *testing.B) {
	pairs := 7
	if v := os.Getenv("AGENTID_BENCH_PAIRS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("AGENTID_BENCH_PAIRS=%q: want a positive count", v)
		}
		pairs = n
	}
	n := b.N
	if n == 1 {
		pairs = 1 // the framework's first call, or a smoke run (-benchtime 1x)
	}
	b.StopTimer()
	var offs, ons, ratios []float64
	for i := range pairs {
		var off, on float64
		if i%2 == 0 {
			off, on = labelledRun(b, n, false), labelledRun(b, n, true)
		} else {
			on, off = labelledRun(b, n, true), labelledRun(b, n, false)
		}
		offs, ons, ratios = append(offs, off), append(ons, on), append(ratios, on/off)
		b.Logf("pair %d: off %.1f, on %.1f cpu-µs/token: %.3f", i+1, off, on, on/off)
	}
	b.ReportMetric(median(offs), "off-cpu-µs/op")
	b.ReportMetric(median(ons), "on-cpu-µs/op")
	b.ReportMetric(median(ratios), "on/off")
	b.ReportMetric(100*(median(ratios)-1), "audit-%")
	b.ReportMetric(slices.Min(ratios), "on/off-min")
	b.ReportMetric(slices.Max(ratios), "on/off-max")
}

// labelledRun is issueRun with its goroutines (the hub's, the sealer's,
// the sink's and the receiver's) labelled audit=on or audit=off, so that a
// CPU profile of the benchmark (-test.cpuprofile) splits by mode: go tool
// pprof -tagfocus audit=on.
func labelledRun(b *testing.B, n int, audited bool) (cpu float64) {
	pprof.Do(context.Background(), pprof.Labels("audit", map[bool]string{false: "off", true: "on"}[audited]), func(context.Context) {
		cpu = issueRun(b, n, audited)
	})
	return cpu
}

// issueRun issues n client-credentials tokens on a fresh hub from 32
// concurrent clients per core and returns the process's CPU time per
// token in µs; with audit on, the sealer and a webhook sink run as serve
// runs them and the clock stops when the receiver has every event.
func issueRun(b *testing.B, n int, audited bool) float64 {
	h := newHub(b)
	secret := h.AddClient(&store.Client{ID: "bench-bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}.Encode()
	handler := h.Server.Handler()
	runtime.GC() // the previous run's garbage is not this run's cost
	cpu0 := cpuTime()
	var hook *webhookSink
	stopSealer := func() {}
	if audited {
		hook = startWebhookSink(b, h)
		s, err := audit.NewSealer(audit.SealerOptions{Store: h.Store, Signer: h.Keys, Issuer: h.URL, Sealed: hook.d.Offer})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { s.Run(ctx, time.Second) })
		stopSealer = func() { cancel(); wg.Wait() } // Run ends with Final
	}
	var next atomic.Int64
	var failed atomic.Int32
	var wg sync.WaitGroup
	for range 32 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodPost, h.URL+"/token", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("bench-bot", secret)
				req.RemoteAddr = "127.0.0.1:1234"
				w := &discardWriter{h: http.Header{}}
				handler.ServeHTTP(w, req)
				if w.status != 0 && w.status != http.StatusOK {
					failed.Store(int32(w.status))
				}
			}
		})
	}
	wg.Wait()
	if st := failed.Load(); st != 0 {
		b.Fatalf("status %d", st)
	}
	stopSealer()
	if audited {
		hook.drain(b)
	}
	cpu := (cpuTime() - cpu0).Seconds() / float64(n) * 1e6
	if audited {
		hook.stop(b)
	}
	return cpu
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
