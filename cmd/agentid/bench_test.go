package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	testBench(t, "sqlite", map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data")}, 0)
}

// TestBenchPostgres is TestBench on PostgreSQL, with the database
// server's CPU time (--db-pid) when the cluster runs on this machine.
func TestBenchPostgres(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	testBench(t, "postgres", map[string]string{"AGENTID_DATA_DIR": t.TempDir(), "AGENTID_STORE_DSN": dsn}, postmasterPID(t, dsn))
}

// postmasterPID is the PID of the PostgreSQL server's main process, the
// parent of this connection's backend, or 0 when that process is not on
// this machine.
func postmasterPID(t *testing.T, dsn string) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", backend))
	if err != nil {
		return 0 // another machine (or no /proc)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

func testBench(t *testing.T, backend string, env map[string]string, dbPID int) {
	addr := freeAddr(t)
	env["AGENTID_LISTEN"], env["AGENTID_ISSUER"] = addr, "http://"+addr
	h := startServe(t, env)

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--hub", h.issuer, "--duration", "300ms", "--warmup", "100ms",
		"--concurrency", "4", "--subjects", "16", "--pid", fmt.Sprint(os.Getpid()), "--db-pid", fmt.Sprint(dbPID), "--json"},
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
		case dbPID != 0 && (r.Database == nil || r.Database.CPUSeconds <= 0):
			t.Errorf("%s: database usage %+v", r.Scenario, r.Database)
		case dbPID == 0 && r.Database != nil:
			t.Errorf("%s: database usage %+v without --db-pid", r.Scenario, r.Database)
		}
		if r.ClientCPUPerRequestMicros <= 0 {
			t.Errorf("%s: no client CPU time", r.Scenario)
		}
		if writes(r.Scenario) && r.StoreBytesPerRequest <= 0 {
			t.Errorf("%s: store growth per request %v", r.Scenario, r.StoreBytesPerRequest)
		}
	}
	// A sanity bound, not a measurement: runs this short on a busy machine
	// swing either way, and the true ratio is now close to 1.
	if i := slices.Index(got, loadtest.MCPAuthVerify); i >= 0 && !(rep.Results[i].VerifyRatio > 0 && rep.Results[i].VerifyRatio < 10) {
		t.Errorf("mcpauth-verify / raw-verify = %v", rep.Results[i].VerifyRatio)
	}
	if !slices.Equal(got, loadtest.Scenarios) {
		t.Errorf("scenarios %v, want %v", got, loadtest.Scenarios)
	}
}

// TestBenchRefusals: a run that cannot measure says so before seeding
// anything: an unknown scenario, a process that is not there, a URL that
// is not the hub's issuer.
func TestBenchRefusals(t *testing.T) {
	addr := freeAddr(t)
	data := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"AGENTID_DATA_DIR": data, "AGENTID_LISTEN": addr, "AGENTID_ISSUER": "http://" + addr}
	h := startServe(t, env)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--pid", "999999999"}, exitError, "--pid: process 999999999"},
		{[]string{"--db-pid", "999999999"}, exitError, "--db-pid: process 999999999"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"bench", "--hub", h.issuer}, tc.args...)
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, lookup); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
	// The hub's address under another name is not its issuer.
	var stdout, stderr bytes.Buffer
	other := strings.Replace(h.issuer, "127.0.0.1", "localhost", 1)
	if code := run(context.Background(), []string{"bench", "--hub", other}, strings.NewReader(""), &stdout, &stderr, lookup); code != exitError || !strings.Contains(stderr.String(), "is not the hub's issuer") {
		t.Errorf("--hub %s: exit %d, stderr %q", other, code, stderr.String())
	}
	// Nothing was seeded by the refused runs.
	code, out, _ := runCLI(t, env, "clients", "list")
	if code != 0 || strings.Contains(out, "bench-") {
		t.Errorf("clients after refused runs (exit %d):\n%s", code, out)
	}
}

// TestBenchFlagErrors: flags that cannot make a measurement are usage
// errors (exit 2) naming the flag and its value, every problem at once,
// before anything is read or seeded — among them both bounds 0, which
// would otherwise have been a silent 5 s run.
func TestBenchFlagErrors(t *testing.T) {
	env := map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	const hub = "http://127.0.0.1:9"
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--duration", "0", "--requests", "0"}, []string{"--duration 0 and --requests 0: a scenario needs a bound"}},
		{[]string{"--duration", "0"}, []string{"--duration 0 and --requests 0"}},
		{[]string{"--duration", "-1s"}, []string{"--duration -1s: must not be negative"}},
		{[]string{"--requests", "-5"}, []string{"--requests -5: must not be negative"}},
		{[]string{"--warmup", "-1ms"}, []string{"--warmup -1ms: must not be negative"}},
		{[]string{"--concurrency", "0"}, []string{"--concurrency 0: at least 1"}},
		{[]string{"--concurrency", "-3"}, []string{"--concurrency -3: at least 1"}},
		{[]string{"--subjects", "0"}, []string{"--subjects 0: at least 1"}},
		{[]string{"--scenario", "password-grant"}, []string{`--scenario "password-grant": one of client-credentials`}},
		{[]string{"--scenario", ""}, []string{`--scenario "": one of client-credentials`}},
		{[]string{"--pid", "-2"}, []string{"--pid -2: a process id is positive"}},
		{[]string{"--db-pid", "-2"}, []string{"--db-pid -2: a process id is positive"}},
		{[]string{"--hub", "127.0.0.1:9090"}, []string{`--hub "127.0.0.1:9090": an http:// or https:// URL`}},
		{[]string{"--hub", "http://127.0.0.1:9090/?x=1"}, []string{`--hub "http://127.0.0.1:9090/?x=1": an http:// or https:// URL`}},
		// Every problem at once.
		{[]string{"--concurrency", "-1", "--duration", "0", "--scenario", "nope"}, []string{"--concurrency -1", "--duration 0 and --requests 0", `--scenario "nope"`}},
	} {
		args := append([]string{"bench", "--hub", hub}, tc.args...)
		code, _, stderr := runCLI(t, env, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, exitUsage, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr %q, want %q", tc.args, stderr, w)
			}
		}
	}
	// Refused before the store is opened: no data directory was made.
	if _, err := os.Stat(env["AGENTID_DATA_DIR"]); err == nil {
		t.Error("a refused bench created the data directory")
	}
}

// TestBenchRequestsAlone: --requests without --duration runs until the
// count, not until the default 5 s (which would cut a long count short);
// with both, both bound the run.
func TestBenchRequestsAlone(t *testing.T) {
	for _, tc := range []struct {
		requestsOnly bool
		want         time.Duration
	}{{true, 0}, {false, 5 * time.Second}} {
		f := benchFlags{requests: 100000, duration: 5 * time.Second, concurrency: 1, subjects: 1, requestsOnly: tc.requestsOnly}
		if _, err := f.check(); err != nil || f.duration != tc.want {
			t.Errorf("requestsOnly %v: duration %v (%v), want %v", tc.requestsOnly, f.duration, err, tc.want)
		}
	}
	cmd := (&cli{}).newBenchCmd()
	if d := cmd.Flags().Lookup("duration"); !strings.Contains(d.Usage, "when only --requests is given, no time bound") {
		t.Errorf("--duration's help %q does not say --requests alone has no time bound", d.Usage)
	}
}

// TestBenchFailures: requests that fail are counted by status, the first
// error is reported, and the command exits 1 after printing the report.
// The client-credentials client is disabled as soon as it is seeded.
func TestBenchFailures(t *testing.T) {
	addr := freeAddr(t)
	data := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"AGENTID_DATA_DIR": data, "AGENTID_LISTEN": addr, "AGENTID_ISSUER": "http://" + addr}
	h := startServe(t, env)
	type outcome struct {
		code   int
		stdout string
	}
	done := make(chan outcome, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"bench", "--hub", h.issuer, "--scenario", "client-credentials", "--duration", "3s",
			"--concurrency", "2", "--subjects", "2", "--json"}, strings.NewReader(""), &stdout, &stderr, func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		})
		done <- outcome{code, stdout.String()}
	}()
	// Find the run's client and disable it.
	deadline := time.Now().Add(30 * time.Second)
	for disabled := false; !disabled; {
		if time.Now().After(deadline) {
			t.Fatal("the bench's client never appeared")
		}
		_, out, _ := runCLI(t, env, "clients", "list", "--json")
		var list []struct {
			ClientID string `json:"client_id"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, c := range list {
			if strings.HasPrefix(c.ClientID, "bench-") && strings.HasSuffix(c.ClientID, "-cc") {
				if code, out, errOut := runCLI(t, env, "clients", "disable", c.ClientID); code != 0 {
					t.Fatalf("disable: exit %d\n%s%s", code, out, errOut)
				}
				disabled = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	o := <-done
	if o.code != exitError {
		t.Errorf("exit %d, want %d", o.code, exitError)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(o.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, o.stdout)
	}
	// 401 invalid_client, then 429 once the hub throttles the failing
	// client's authentication.
	r := rep.Results[0]
	var sum int64
	for st, n := range r.ErrorsByStatus {
		if st != "401" && st != "429" {
			t.Errorf("%d errors with status %s", n, st)
		}
		sum += n
	}
	if r.Errors == 0 || r.Errors > r.Requests || sum != r.Errors || r.ErrorsByStatus["401"] == 0 || !strings.Contains(r.FirstError, "invalid_client") {
		t.Errorf("%d requests, %d errors %v, first %q", r.Requests, r.Errors, r.ErrorsByStatus, r.FirstError)
	}
}

// benchHub starts `agentid serve` on a fresh data directory for a bench
// test: its environment, the hub, and its URL for proxies to it.
func benchHub(t *testing.T) (map[string]string, *runningHub, *url.URL) {
	t.Helper()
	addr := freeAddr(t)
	env := map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data"), "AGENTID_LISTEN": addr, "AGENTID_ISSUER": "http://" + addr}
	h := startServe(t, env)
	target, err := url.Parse(h.url)
	if err != nil {
		t.Fatal(err)
	}
	return env, h, target
}

// TestBenchReplicas: with several --hub URLs, every worker's requests go
// to each in turn. The hub runs once here; two counting proxies in front
// of it stand for two more replicas (they answer its metadata, so they
// name its issuer). Each of the three gets a third of every HTTP
// scenario's requests, within the workers' last round, and the report
// lists the replicas. A URL of another hub is refused.
func TestBenchReplicas(t *testing.T) {
	env, h, target := benchHub(t)
	var counts [2]map[string]*atomic.Int64
	var proxies [2]string
	for i := range proxies {
		counts[i] = map[string]*atomic.Int64{"/token": {}, "/introspect": {}}
		rp := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n := counts[i][r.URL.Path]; n != nil {
				n.Add(1)
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		proxies[i] = srv.URL
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	// A second --pid: a process of this user that stays idle, as a
	// replica's usage added to the hub's.
	idle := exec.Command("sleep", "60")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.Process.Kill(); idle.Wait() })
	const workers = 2 // fewer than the replicas: each worker must visit all
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--hub", h.issuer, "--hub", proxies[0], "--hub", proxies[1] + "/",
		"--scenario", "client-credentials,introspection", "--requests", "300", "--concurrency", fmt.Sprint(workers), "--subjects", "4",
		"--pid", fmt.Sprint(os.Getpid()), "--pid", fmt.Sprint(idle.Process.Pid), "--cpuprofile", profile, "--json"}, strings.NewReader(""), &stdout, &stderr, lookup)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if rep.Hub != h.issuer || !slices.Equal(rep.Hubs, []string{h.issuer, proxies[0], proxies[1]}) {
		t.Errorf("report hub %s, hubs %v", rep.Hub, rep.Hubs)
	}
	paths := map[string]string{loadtest.ClientCredentials: "/token", loadtest.Introspection: "/introspect"}
	for _, r := range rep.Results {
		if r.Requests != 300 || r.Errors != 0 {
			t.Fatalf("%s: %d requests, %d errors (%s)", r.Scenario, r.Requests, r.Errors, r.FirstError)
		}
		// The hub's usage is the two processes' sum.
		if r.Hub == nil || len(r.Hubs) != 2 || r.Hubs[0].CPUSeconds <= 0 || r.Hubs[1].PeakRSSBytes <= 0 ||
			r.Hub.CPUSeconds != r.Hubs[0].CPUSeconds+r.Hubs[1].CPUSeconds || r.Hub.PeakRSSBytes != r.Hubs[0].PeakRSSBytes+r.Hubs[1].PeakRSSBytes {
			t.Errorf("%s: usage %+v, per process %+v", r.Scenario, r.Hub, r.Hubs)
		}
		// Setup requests go to the issuer alone: the proxies saw only the
		// scenario's, a third each (each worker's share of 300 ends at most
		// one round of three short).
		for i := range proxies {
			n := counts[i][paths[r.Scenario]].Swap(0)
			if n < 100-workers || n > 100+workers {
				t.Errorf("%s: replica %d got %d of 300 requests, want about 100", r.Scenario, i+2, n)
			}
		}
	}

	// --cpuprofile wrote a profile (gzip-compressed protocol buffer).
	if b, err := os.ReadFile(profile); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("--cpuprofile: %d bytes, %v", len(b), err)
	}

	// A hub with another issuer is not a replica.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q}`, "http://"+r.Host)
	}))
	t.Cleanup(other.Close)
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"bench", "--hub", h.issuer, "--hub", other.URL}, strings.NewReader(""), &stdout, &stderr, lookup); code != exitError ||
		!strings.Contains(stderr.String(), "not a replica of the same hub") {
		t.Errorf("--hub of another issuer: exit %d, stderr %q", code, stderr.String())
	}
}

// TestBenchHubDies: when a hub process given with --pid exits in the
// middle of a scenario, the bench stops there, still prints its report
// (the requests, latencies and usage measured until then, the exit
// noted), says on stderr which process exited during which scenario,
// and exits 1. The process is a child of the test standing for a
// replica; a second --hub URL, a proxy to the hub, kills it at the first
// request it forwards (the setup talks to the issuer alone, so that is
// the scenario's).
func TestBenchHubDies(t *testing.T) {
	env, h, target := benchHub(t)
	replica := exec.Command("sleep", "120")
	if err := replica.Start(); err != nil {
		t.Fatal(err)
	}
	var kill sync.Once
	reap := func() { kill.Do(func() { replica.Process.Kill(); replica.Wait() }) }
	t.Cleanup(reap)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			reap()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	start := time.Now()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--hub", h.issuer, "--hub", proxy.URL, "--pid", fmt.Sprint(os.Getpid()),
		"--pid", fmt.Sprint(replica.Process.Pid), "--scenario", "client-credentials,introspection", "--duration", "60s",
		"--concurrency", "2", "--subjects", "2", "--json"}, strings.NewReader(""), &stdout, &stderr, lookup)
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if el := time.Since(start); el > 40*time.Second {
		t.Errorf("the bench took %v: it went on after the hub process exited", el)
	}
	want := fmt.Sprintf("the hub process %d exited during client-credentials", replica.Process.Pid)
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to say %q", stderr.String(), want)
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("no report: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want the interrupted scenario's alone", len(rep.Results))
	}
	r := rep.Results[0]
	if r.Scenario != loadtest.ClientCredentials || r.Requests == 0 || r.Errors != 0 || r.P50 <= 0 || r.Max < r.P50 {
		t.Errorf("result %+v", r)
	}
	if !slices.Equal(r.Exited, []int{replica.Process.Pid}) || r.Hub == nil || !r.Hub.Exited || len(r.Hubs) != 2 || r.Hubs[0].Exited || !r.Hubs[1].Exited {
		t.Errorf("exited %v, hub %+v, per process %+v", r.Exited, r.Hub, r.Hubs)
	}
}
