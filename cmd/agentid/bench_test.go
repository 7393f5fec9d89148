package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/loadtest"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// freeAddr is a loopback address with a port nobody listens on now, for a
// hub whose issuer must name its port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestBench runs every scenario of `agentid bench` briefly against
// `agentid serve` on a fresh data directory, seeding through the same
// directory, and checks the JSON report: every scenario made requests,
// none failed, the percentiles are ordered, the hub's CPU time and memory
// were read (the hub runs in this process, so --pid is ours) and the
// store's growth was measured.
func TestBench(t *testing.T) {
	testBench(t, "sqlite", map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data")})
}

// TestBenchPostgres is TestBench on PostgreSQL.
func TestBenchPostgres(t *testing.T) {
	testBench(t, "postgres", map[string]string{"AGENTID_DATA_DIR": t.TempDir(), "AGENTID_STORE_DSN": pgtest.FreshSchema(t)})
}

func testBench(t *testing.T, backend string, env map[string]string) {
	addr := freeAddr(t)
	env["AGENTID_LISTEN"], env["AGENTID_ISSUER"] = addr, "http://"+addr
	h := startServe(t, env)

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--hub", h.issuer, "--duration", "300ms",
		"--concurrency", "4", "--subjects", "16", "--pid", fmt.Sprint(os.Getpid()), "--json"},
		strings.NewReader(""), &stdout, &stderr, func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		})
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if rep.Hub != h.issuer || rep.Store != backend || rep.Concurrency != 4 || rep.Subjects < 16 {
		t.Errorf("report header %+v", rep)
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Scenario)
		t.Logf("%s: %d requests, %.0f/s, p50 %.2f p90 %.2f p99 %.2f max %.2f ms", r.Scenario, r.Requests, r.PerSecond, r.P50, r.P90, r.P99, r.Max)
		if r.Requests == 0 || r.PerSecond <= 0 {
			t.Errorf("%s: no requests", r.Scenario)
		}
		if r.Errors != 0 {
			t.Errorf("%s: %d errors %v, first: %s", r.Scenario, r.Errors, r.ErrorsByStatus, r.FirstError)
		}
		if !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
			t.Errorf("%s: percentiles not ordered: %v %v %v %v", r.Scenario, r.P50, r.P90, r.P99, r.Max)
		}
		switch {
		case local(r.Scenario):
			if r.Hub != nil || r.Concurrency > runtime.GOMAXPROCS(0) {
				t.Errorf("%s: local work with hub usage %+v, %d workers", r.Scenario, r.Hub, r.Concurrency)
			}
		case r.Hub == nil || r.Hub.CPUSeconds <= 0 || r.Hub.PeakRSSBytes <= 0 || r.Hub.RSSBytes <= 0:
			t.Errorf("%s: hub usage %+v", r.Scenario, r.Hub)
		}
		if r.ClientCPUPerRequestMicros <= 0 {
			t.Errorf("%s: no client CPU time", r.Scenario)
		}
		if writes(r.Scenario) && r.StoreBytesPerRequest <= 0 {
			t.Errorf("%s: store growth per request %v", r.Scenario, r.StoreBytesPerRequest)
		}
	}
	if !slices.Equal(got, loadtest.Scenarios) {
		t.Errorf("scenarios %v, want %v", got, loadtest.Scenarios)
	}
}
