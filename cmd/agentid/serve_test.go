package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runningHub is `agentid serve` started in-process.
type runningHub struct {
	url, issuer string
	stderr      *syncBuffer
	stop        func() int // cancels and returns the exit code
}

var listeningLine = regexp.MustCompile(`^agentid: listening on (https?://\S+), issuer (\S+)\n$`)

// startServe runs `agentid serve ARGS` with env (on 127.0.0.1:0 unless env
// or ARGS say otherwise) and waits for its "listening" line.
func startServe(t *testing.T, env map[string]string, args ...string) *runningHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), strings.NewReader(""), pw, stderr, func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("serve ended before listening (exit %d): %v\nstderr:\n%s", <-done, err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	m := listeningLine.FindStringSubmatch(line)
	if m == nil {
		cancel()
		t.Fatalf("unexpected first line %q", line)
	}
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(shutdownTimeout + 5*time.Second):
				t.Fatal("serve did not shut down")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return &runningHub{url: m[1], issuer: m[2], stderr: stderr, stop: stop}
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"AGENTID_DATA_DIR": filepath.Join(dir, "data"),
		"AGENTID_LISTEN":   "127.0.0.1:0",
		// Port 0 cannot give the issuer, so it is configured.
		"AGENTID_ISSUER": "https://auth.example.test",
	}
	h := startServe(t, env)
	if h.issuer != "https://auth.example.test" {
		t.Errorf("printed issuer %q", h.issuer)
	}
	if strings.HasSuffix(h.url, ":0") {
		t.Errorf("printed the configured address %s, not the actual one", h.url)
	}

	t.Run("healthz", func(t *testing.T) {
		resp, body := get(t, h.url+"/healthz")
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
			t.Fatalf("GET /healthz = %d %q", resp.StatusCode, body)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		resp, body := get(t, h.url+"/.well-known/oauth-authorization-server")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &md); err != nil {
			t.Fatal(err)
		}
		// RFC 8414 §3.3: the issuer must be the configured one.
		if md.Issuer != "https://auth.example.test" {
			t.Errorf("issuer %q", md.Issuer)
		}
		if md.JWKSURI == "" {
			t.Error("no jwks_uri")
		}
	})
	var kids []string
	t.Run("first signing key", func(t *testing.T) {
		kids = jwksKIDs(t, h.url)
		if len(kids) != 1 {
			t.Fatalf("JWKS holds %d keys on first start, want 1", len(kids))
		}
	})

	if code := h.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM-like cancel\nstderr:\n%s", code, h.stderr.String())
	}
	if _, err := http.Get(h.url + "/healthz"); err == nil {
		t.Error("still answering after shutdown")
	}

	t.Run("logs are JSON", func(t *testing.T) {
		msgs := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(h.stderr.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
			msgs[rec["msg"].(string)] = true
			if rec["level"] == "ERROR" {
				t.Errorf("error logged: %s", line)
			}
		}
		for _, want := range []string{"listening", "shutting down", "stopped"} {
			if !msgs[want] {
				t.Errorf("no %q log line in %v", want, msgs)
			}
		}
	})
	t.Run("files and permissions", func(t *testing.T) {
		for _, f := range []struct {
			path string
			perm os.FileMode
		}{
			{filepath.Join(dir, "data"), 0o700},
			{filepath.Join(dir, "data", "kek.key"), 0o600},
		} {
			fi, err := os.Stat(f.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != f.perm {
				t.Errorf("%s: mode %#o, want %#o", f.path, fi.Mode().Perm(), f.perm)
			}
		}
	})

	// A restart finds its KEK and keys again: same key, no new one.
	t.Run("restart keeps keys", func(t *testing.T) {
		h2 := startServe(t, env)
		got := jwksKIDs(t, h2.url)
		if strings.Join(got, ",") != strings.Join(kids, ",") {
			t.Errorf("JWKS after restart %v, want %v", got, kids)
		}
		if code := h2.stop(); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	})
}

func jwksKIDs(t *testing.T, base string) []string {
	t.Helper()
	resp, body := get(t, base+"/jwks.json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /jwks.json = %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func TestServeListenError(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"AGENTID_DATA_DIR": dir, "AGENTID_LISTEN": "192.0.2.1:1", "AGENTID_ISSUER": "https://auth.example.test"}
	code := run(context.Background(), []string{"serve"}, nil, &stdout, &stderr, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if code != exitError {
		t.Fatalf("exit %d, want %d", code, exitError)
	}
	if !strings.Contains(stderr.String(), "listening on 192.0.2.1:1") {
		t.Errorf("stderr %q does not name the address", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q: nothing should claim to listen", stdout.String())
	}
}

func TestHTTPServerLimits(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	for _, tt := range []struct {
		name string
		got  time.Duration
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout},
		{"ReadTimeout", srv.ReadTimeout},
		{"WriteTimeout", srv.WriteTimeout},
		{"IdleTimeout", srv.IdleTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got <= 0 {
				t.Errorf("%s not set", tt.name)
			}
		})
	}
	t.Run("MaxHeaderBytes", func(t *testing.T) {
		if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
			t.Errorf("MaxHeaderBytes = %d", srv.MaxHeaderBytes)
		}
	})
}

func TestRegistrationConfig(t *testing.T) {
	tok := strings.Repeat("a", 40)
	tests := []struct {
		name       string
		in         config.RegistrationConfig
		disabled   bool
		hashes     int
		wantErrMsg string
	}{
		{name: "open", in: config.RegistrationConfig{Enabled: true, Open: true}},
		{name: "disabled", in: config.RegistrationConfig{Enabled: false}, disabled: true},
		{name: "initial access tokens", in: config.RegistrationConfig{Enabled: true, InitialAccessTokens: []string{tok, tok + "b"}}, hashes: 2},
		// The server reads "no hashes" as open: closed with no tokens must fail.
		{name: "closed without tokens", in: config.RegistrationConfig{Enabled: true}, wantErrMsg: "holds no tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registrationConfig(tt.in)
			if tt.wantErrMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrMsg) {
					t.Fatalf("err = %v, want %q", err, tt.wantErrMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Disabled != tt.disabled || len(got.InitialAccessTokenHashes) != tt.hashes {
				t.Fatalf("got %+v", got)
			}
			for _, h := range got.InitialAccessTokenHashes {
				if bytes.Contains(h, []byte(tok)) {
					t.Fatal("a token is passed on in clear")
				}
			}
		})
	}
}

// TestServePostgres runs the hub on PostgreSQL: the store is migrated, the
// first key created, and /readyz reaches the database.
func TestServePostgres(t *testing.T) {
	env := map[string]string{
		"AGENTID_DATA_DIR":  t.TempDir(),
		"AGENTID_LISTEN":    "127.0.0.1:0",
		"AGENTID_ISSUER":    "https://auth.example.test",
		"AGENTID_STORE_DSN": pgtest.FreshSchema(t),
	}
	h := startServe(t, env)
	for _, path := range []string{"/healthz", "/readyz"} {
		t.Run(path, func(t *testing.T) {
			if resp, body := get(t, h.url+path); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
			}
		})
	}
	if kids := jwksKIDs(t, h.url); len(kids) != 1 {
		t.Errorf("JWKS holds %d keys, want 1", len(kids))
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", code, h.stderr.String())
	}
}

// TestServeLogsStartupPhases: the log line that says the hub listens
// times the steps of its start, so that a slow start shows where the time
// went; the steps add up to no more than the total.
func TestServeLogsStartupPhases(t *testing.T) {
	h := startServe(t, map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data")})
	var line struct {
		Msg     string           `json:"msg"`
		Startup map[string]int64 `json:"startup"`
	}
	// The line follows the one on stdout that startServe waited for.
	for deadline := time.Now().Add(10 * time.Second); line.Msg != "listening" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for l := range strings.Lines(h.stderr.String()) {
			if err := json.Unmarshal([]byte(l), &line); err == nil && line.Msg == "listening" {
				break
			}
			line.Msg = ""
		}
	}
	if line.Msg != "listening" {
		t.Fatalf("no listening line in the log:\n%s", h.stderr.String())
	}
	var sum int64
	for _, step := range []string{"store_ms", "schema_ms", "keys_ms", "policy_ms", "vault_connectors_ms", "server_ms", "claim_jobs_ms"} {
		v, ok := line.Startup[step]
		if !ok || v < 0 {
			t.Errorf("startup step %s: %d, %v", step, v, ok)
		}
		sum += v
	}
	if total, ok := line.Startup["total_ms"]; !ok || total < sum || len(line.Startup) != 8 {
		t.Errorf("startup %v: total under the steps' sum %d, or unknown steps", line.Startup, sum)
	}
}
