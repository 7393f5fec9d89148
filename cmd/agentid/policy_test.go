package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

func TestReadPolicyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("set/b.cedar", "B")
	write("set/a.cedar", "A")
	write("set/notes.md", "ignored")
	write("set/sub/c.cedar", "not read: directories are not descended")
	single := write("one/only.cedar", "ONLY")
	write("none/x.txt", "x")
	write("big/huge.cedar", strings.Repeat("x", maxPolicyFile+1))

	tests := []struct {
		name      string
		path      string
		wantFiles map[string]string
		wantPaths map[string]string
		wantErr   string
	}{
		{
			name:      "directory",
			path:      filepath.Join(dir, "set"),
			wantFiles: map[string]string{"a.cedar": "A", "b.cedar": "B"},
			wantPaths: map[string]string{"a.cedar": filepath.Join(dir, "set", "a.cedar"), "b.cedar": filepath.Join(dir, "set", "b.cedar")},
		},
		{
			name:      "single file",
			path:      single,
			wantFiles: map[string]string{"only.cedar": "ONLY"},
			wantPaths: map[string]string{"only.cedar": single},
		},
		{name: "no policy files", path: filepath.Join(dir, "none"), wantErr: "holds no .cedar files"},
		{name: "missing", path: filepath.Join(dir, "missing"), wantErr: "no such file"},
		{name: "too large", path: filepath.Join(dir, "big"), wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf, err := readPolicyFiles(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !mapsEqual(pf.files, tt.wantFiles) || !mapsEqual(pf.paths, tt.wantPaths) {
				t.Fatalf("files %v paths %v", pf.files, pf.paths)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestPolicyProblemsUseReadPaths(t *testing.T) {
	pf := &policyFiles{
		files: map[string]string{"x.cedar": "permit (principal, action, resource) when { principal.nope };"},
		paths: map[string]string{"x.cedar": "policies/x.cedar"},
	}
	_, err := policy.Compile(pf.files)
	ps := pf.problems(err)
	if len(ps) != 1 || ps[0].File != "policies/x.cedar" || ps[0].Line != 1 || ps[0].Column != 1 {
		t.Fatalf("problems %+v", ps)
	}
	msg := (&invalidSetError{problems: ps}).Error()
	if !strings.Contains(msg, "\n  policies/x.cedar:1:1: ") || !strings.Contains(msg, "nothing was changed") {
		t.Fatalf("message %q", msg)
	}
	if pf.problems(os.ErrNotExist) != nil {
		t.Fatal("problems of an error that is no validation error")
	}
}

// cliEnv runs agentid commands in-process against a store under a
// temporary directory.
type cliEnv struct {
	t   *testing.T
	env map[string]string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Chdir(t.TempDir())
	return &cliEnv{t: t, env: map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data")}}
}

func (e *cliEnv) run(args ...string) (stdout, stderr string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := e.env[k]; return v, ok }
	if code := run(context.Background(), args, strings.NewReader(""), &out, &errb, lookup); code != 0 {
		e.t.Fatalf("agentid %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func (e *cliEnv) store() store.Store {
	e.t.Helper()
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := e.env[k]; return v, ok })
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

// TestPolicyDryRunReportsPastGrants replays recorded issuances: the dry run
// names the event and the candidate's deciding policy of every grant that
// would change, and stores nothing.
func TestPolicyDryRunReportsPastGrants(t *testing.T) {
	e := newCLIEnv(t)
	e.run("resources", "add", "--uri", "https://notes.example.test/mcp", "--name", "Notes", "--scope", "notes.read=Read", "--scope", "notes.write=Write")
	e.run("clients", "add", "--name", "Agent", "--id", "agent-1", "--redirect-uri", "https://agent.example.test/cb")
	st := e.store()
	ctx := context.Background()
	now := time.Now()
	if err := st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-1", Username: "alice", CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	issued := func(age time.Duration) *store.AuditEvent {
		return &store.AuditEvent{TenantID: store.DefaultTenant, Time: now.Add(-age), Type: "token.issued", Outcome: "success",
			ClientID: "agent-1", UserID: "u-1", Resource: "https://notes.example.test/mcp", Scopes: []string{"notes.read", "notes.write"},
			Details: map[string]string{"grant_type": "refresh_token", "scope.notes.read": "granted:user-consent", "scope.notes.write": "granted:user-consent"}}
	}
	for _, age := range []time.Duration{time.Hour, 10 * 24 * time.Hour} {
		if err := st.AppendAudit(ctx, issued(age)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "candidate")
	files := policy.DefaultFiles()
	files["tighten.cedar"] = `@id("no-write")
forbid (principal == Agent::"agent-1", action == Action::"grant", resource) when { resource.name == "notes.write" };`
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, text := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name        string
		days        string
		wantChanges int
	}{
		{"last week", "7", 1},
		{"last month", "30", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := e.run("policy", "apply", "-f", dir, "--dry-run", "--days", tt.days, "--json")
			var v dryRunJSON
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !v.DryRun || v.Evaluated != tt.wantChanges || len(v.Changes) != tt.wantChanges {
				t.Fatalf("report %+v, want %d changes", v, tt.wantChanges)
			}
			ch := v.Changes[0]
			if ch.ClientID != "agent-1" || !slices.Equal(ch.Removed, []string{"notes.write"}) || !slices.Equal(ch.After, []string{"notes.read"}) ||
				len(ch.Decisions) != 1 || !slices.Equal(ch.Decisions[0].Policies, []string{"no-write"}) {
				t.Fatalf("change %+v", ch)
			}
			text, _ := e.run("policy", "apply", "-f", dir, "--dry-run", "--days", tt.days)
			if !strings.Contains(text, `notes.write: no longer granted by "no-write"`) {
				t.Fatalf("text report lacks the deciding policy:\n%s", text)
			}
		})
	}
	if _, err := st.ActivePolicySet(ctx, store.DefaultTenant); err == nil {
		t.Fatal("a dry run stored a policy set")
	}
}
