package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// BenchmarkClientCredentials measures client-credentials issuance through
// the whole HTTP handler (client authentication, policy, signing and the
// durable access-token + audit write), in parallel, without the network.
func BenchmarkClientCredentials(b *testing.B) {
	benchClientCredentials(b, newHub(b), nil)
}

// BenchmarkClientCredentialsSealed is BenchmarkClientCredentials with the
// audit chain's sealer running as serve runs it (every second, signing
// checkpoints); the last seal after the run is inside the CPU measure, so
// every event's linking is paid for. The difference to the plain run is
// the chain's cost (issue 13 allows less than 15%).
func BenchmarkClientCredentialsSealed(b *testing.B) {
	h := newHub(b)
	benchClientCredentials(b, h, sealer(b, h))
}

// sealer is the hub's sealer as cmd/agentid builds it.
func sealer(b *testing.B, h *hub) *audit.Sealer {
	s, err := audit.NewSealer(audit.SealerOptions{Store: h.Store, Signer: h.Keys, Issuer: h.URL})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchClientCredentials(b *testing.B, h *hub, sealer *audit.Sealer) {
	secret := h.AddClient(&store.Client{ID: "bench-bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}.Encode()
	handler := h.HTTP.Config.Handler // with the wrapping a benchmark added (servertest.Hub.Wrap)
	b.ReportAllocs()
	pg := newPGClock()
	pg0 := pg.cpu()
	cpu0 := cpuTime()
	// Many concurrent clients, as an HTTP server sees them: with only
	// GOMAXPROCS goroutines the group commit would never batch.
	b.SetParallelism(32)
	var stopSealer func()
	if sealer != nil {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { sealer.Run(ctx, time.Second) })
		stopSealer = func() { cancel(); wg.Wait() }
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("bench-bot", secret)
			req.RemoteAddr = "127.0.0.1:1234"
			w := &discardWriter{h: http.Header{}}
			handler.ServeHTTP(w, req)
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	})
	b.StopTimer()
	if stopSealer != nil {
		stopSealer() // the final seal: CPU counted, its settle wait not timed
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	// CPU time per token is what a shared, noisy machine cannot distort:
	// 2 cores / cpu-µs/op is the rate this code reaches on 2 idle cores.
	cpuPerOp := (cpuTime() - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(cpuPerOp*1e6, "cpu-µs/op")
	b.ReportMetric(2/cpuPerOp, "tokens/s@2cores")
	pg1 := pg.cpu()
	if pg != nil {
		b.ReportMetric((pg1-pg0).Seconds()/float64(b.N)*1e6, "pg-cpu-µs/op")
	}
	if sealer == nil {
		// The chain's share, measured apart: seal this run's events now,
		// with nothing else running in the process, on the same CPU
		// time clock. Robust where the two benchmarks' difference is lost
		// in a shared machine's noise.
		s, err := audit.NewSealer(audit.SealerOptions{Store: h.Store, Signer: h.Keys, Issuer: h.URL})
		if err != nil {
			b.Fatal(err)
		}
		cpu1 := cpuTime()
		if err := s.Final(context.Background()); err != nil {
			b.Fatal(err)
		}
		sealPerOp := (cpuTime() - cpu1).Seconds() / float64(b.N)
		b.ReportMetric(sealPerOp*1e6, "seal-cpu-µs/op")
		b.ReportMetric(100*sealPerOp/cpuPerOp, "seal-%")
		if pg != nil {
			pgSeal := (pg.cpu() - pg1).Seconds() / float64(b.N)
			pgRun := (pg1 - pg0).Seconds() / float64(b.N)
			b.ReportMetric(pgSeal*1e6, "pg-seal-cpu-µs/op")
			b.ReportMetric(100*(sealPerOp+pgSeal)/(cpuPerOp+pgRun), "seal-with-pg-%")
		}
	}
}

// pgClock reads the CPU time of a local PostgreSQL cluster, whose
// postmaster's pid AGENTID_BENCH_PG_PID names (Linux /proc), so that the
// PostgreSQL benchmarks can count the database server's work too. Nil
// without it.
type pgClock struct{ pid string }

func newPGClock() *pgClock {
	if pid := os.Getenv("AGENTID_BENCH_PG_PID"); pid != "" {
		return &pgClock{pid}
	}
	return nil
}

// cpu is the postmaster's own and reaped children's CPU time plus that of
// its live children (the backends).
func (c *pgClock) cpu() time.Duration {
	if c == nil {
		return 0
	}
	ticks := func(pid string, fields ...int) int64 {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return 0
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		var n int64
		for _, i := range fields {
			v, _ := strconv.ParseInt(f[i-3], 10, 64)
			n += v
		}
		return n
	}
	total := ticks(c.pid, 14, 15, 16, 17)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(f) > 1 && f[1] == c.pid {
			total += ticks(e.Name(), 14, 15)
		}
	}
	return time.Duration(total) * time.Second / 100 // USER_HZ
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }

// BenchmarkClientCredentialsPostgres is the same on PostgreSQL.
func BenchmarkClientCredentialsPostgres(b *testing.B) {
	benchClientCredentials(b, newPostgresHub(b), nil)
}

// BenchmarkClientCredentialsPostgresSealed is the sealed run on
// PostgreSQL, as serve runs it (no settle time: the store's readings).
func BenchmarkClientCredentialsPostgresSealed(b *testing.B) {
	h := newPostgresHub(b)
	benchClientCredentials(b, h, sealer(b, h))
}
