package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// auditStore creates the data directory's store with n events (user.created
// for users u0…) and returns it open.
func auditStore(t *testing.T, dir string, n int) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	appendUsers(t, st, 0, n)
	return st
}

func appendUsers(t *testing.T, st store.Store, from, to int) {
	t.Helper()
	var evs []*store.AuditEvent
	for i := from; i < to; i++ {
		evs = append(evs, audit.NewUserCreated(audit.Meta{Time: time.Now()}, fmt.Sprintf("u%d", i)))
	}
	if len(evs) > 0 {
		if err := st.AppendAudit(t.Context(), evs...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditTailFollows: tail -f prints the newest events, then every event
// written while it runs, in order, each once, until interrupted (exit 0);
// its filters hold while following.
func TestAuditTailFollows(t *testing.T) {
	dir := t.TempDir()
	st := auditStore(t, dir, 5)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"audit", "tail", "-f", "-n", "2", "--interval", "10ms", "--type", "user.*", "--json"},
			strings.NewReader(""), &out, &errb, func(k string) (string, bool) {
				if k == "AGENTID_DATA_DIR" {
					return dir, true
				}
				return "", false
			})
	}()
	waitFor := func(users ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			s := out.String()
			if strings.Count(s, "\n") >= len(users) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tail printed %q, waiting for %v; stderr %q", s, users, errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("u3", "u4")
	appendUsers(t, st, 5, 8)
	// An event the filter excludes is not printed.
	if err := st.AppendAudit(t.Context(), audit.NewClientDeleted(audit.Meta{Time: time.Now()}, "c")); err != nil {
		t.Fatal(err)
	}
	appendUsers(t, st, 8, 9)
	waitFor("u3", "u4", "u5", "u6", "u7", "u8")
	time.Sleep(50 * time.Millisecond) // a few more polls: nothing twice
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("tail exited %d: %s", code, errb.String())
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var rec audit.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, rec.UserID)
	}
	if want := "u3 u4 u5 u6 u7 u8"; strings.Join(got, " ") != want {
		t.Errorf("tail printed users %v, want %s", got, want)
	}
}

// TestAuditTailLines: without -f, tail prints the newest events as lines,
// oldest of them first, and returns.
func TestAuditTailLines(t *testing.T) {
	dir := t.TempDir()
	auditStore(t, dir, 4)
	code, stdout, stderr := runCLI(t, map[string]string{"AGENTID_DATA_DIR": dir}, "audit", "tail", "-n", "3")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "user=u1") || !strings.Contains(lines[2], "user=u3") ||
		!strings.Contains(lines[2], " user.created success tenant=default ") {
		t.Errorf("tail -n 3 printed:\n%s", stdout)
	}
}

// TestAuditExportPages: export streams every event across many pages, in
// order, each once, in either format; every OCSF line is an OCSF event of
// the event's class.
func TestAuditExportPages(t *testing.T) {
	dir := t.TempDir()
	const n = 2*exportPage + 37
	auditStore(t, dir, n)
	env := map[string]string{"AGENTID_DATA_DIR": dir}
	for _, format := range []string{"ndjson", "ocsf"} {
		t.Run(format, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, env, "audit", "export", "--format", format, "--since", "1h")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != n {
				t.Fatalf("%d lines, want %d", len(lines), n)
			}
			for i, line := range lines {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("line %d: %v", i, err)
				}
				var user any
				if format == "ocsf" {
					md := m["metadata"].(map[string]any)
					if m["class_uid"] != float64(audit.OCSFAccountChange) || md["version"] != audit.OCSFVersion || md["uid"] != fmt.Sprint(i+1) {
						t.Fatalf("line %d: %s", i, line)
					}
					user = m["user"].(map[string]any)["uid"]
				} else {
					user = m["user_id"]
				}
				if user != fmt.Sprintf("u%d", i) {
					t.Fatalf("line %d is about %v, want u%d (oldest first, each once)", i, user, i)
				}
			}
		})
	}
}
