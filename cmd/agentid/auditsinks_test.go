package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// TestAuditSinksCLI: serve streams the trail to a configured NDJSON file
// sink while a webhook sink whose receiver is down keeps failing; `audit
// sinks` then shows each one's cursor, lag and last error, never the
// webhook's key.
func TestAuditSinksCLI(t *testing.T) {
	e := newCLIEnv(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "audit.ndjson")
	keyFile := filepath.Join(dir, "hook.key")
	if err := os.WriteFile(keyFile, []byte("hook-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agentid.yaml")
	yaml := `audit:
  sinks:
    - name: archive
      type: file
      path: ` + out + `
      mask: [ip]
    - name: siem
      type: webhook
      url: http://127.0.0.1:1/hook
      secret_file: ` + keyFile + `
      max_attempts: 1000
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env["AGENTID_LISTEN"] = "127.0.0.1:0"
	e.env["AGENTID_ISSUER"] = "https://auth.example.test"
	e.run("users", "add", "alice", "--name", "Alice")
	h := startServe(t, e.env, "--config", cfg)
	deadline := time.Now().Add(20 * time.Second)
	st := e.store()
	var types []string
	for {
		types = types[:0]
		if f, err := os.Open(out); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var rec audit.Record
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
				}
				types = append(types, rec.Type)
			}
			f.Close()
		}
		// The file sink has the trail and the webhook sink has failed at
		// least once (the sealer seals at start: the file can be first).
		if strings.Contains(strings.Join(types, " "), audit.UserCreated) && webhookFailed(t, st) {
			break
		}
		if time.Now().After(deadline) {
			h.stop()
			t.Fatalf("the file sink received %v, no %s, or the webhook sink never failed", types, audit.UserCreated)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("serve exit %d", code)
	}

	stdout, _ := e.run("audit", "sinks", "--json", "--config", cfg)
	var lines []sinkStatus
	if err := json.Unmarshal([]byte(stdout), &lines); err != nil {
		t.Fatalf("audit sinks --json: %v\n%s", err, stdout)
	}
	if len(lines) != 2 || lines[0].Name != "archive" || lines[1].Name != "siem" {
		t.Fatalf("audit sinks = %+v", lines)
	}
	if a := lines[0]; a.Type != "file" || a.Cursor == 0 || a.Failures != 0 || a.LastError != "" || a.DeliveredAt.IsZero() {
		t.Errorf("file sink = %+v, want a cursor and no failures", a)
	}
	if s := lines[1]; s.Type != "webhook" || s.Cursor != 0 || s.Failures == 0 || !strings.Contains(s.LastError, "127.0.0.1:1") || s.LagEvents == 0 {
		t.Errorf("webhook sink = %+v, want failures, the last error and the whole trail as lag", s)
	}
	table, _ := e.run("audit", "sinks", "--config", cfg)
	if !strings.HasPrefix(table, "NAME") || !strings.Contains(table, "archive") || !strings.Contains(table, "siem") {
		t.Errorf("audit sinks table:\n%s", table)
	}
	if strings.Contains(stdout+table, "hook-secret") {
		t.Error("audit sinks shows the webhook's key")
	}
}

// webhookFailed reports whether the store records a failed attempt of the
// "siem" sink.
func webhookFailed(t *testing.T, st store.AuditSinks) bool {
	t.Helper()
	sinks, err := st.ListAuditSinks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sinks {
		if s.Name == "siem" && s.Failures > 0 {
			return true
		}
	}
	return false
}
