package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/store"
)

// runCLI runs agentid in-process with env and returns the exit code and
// output. A command still running after a minute (a serve or demo that
// should have been refused) is stopped as by Ctrl-C.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(""), &out, &errb, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	return code, out.String(), errb.String()
}

// leafCommands lists every runnable command of the CLI.
func leafCommands() []*cobra.Command {
	var out []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.HasSubCommands() {
			out = append(out, c)
		}
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk((&cli{flagSettings: map[string]string{}}).newRootCmd())
	return out
}

// TestEveryCommandTakesDataDir: --data-dir reaches every command, so the
// demo's data (./agentid-demo) is one flag away from each admin command.
func TestEveryCommandTakesDataDir(t *testing.T) {
	var paths []string
	for _, cmd := range leafCommands() {
		paths = append(paths, cmd.CommandPath())
		if cmd.Flag("data-dir") == nil {
			t.Errorf("%s has no --data-dir", cmd.CommandPath())
		}
	}
	for _, p := range dataCreators {
		if !slices.Contains(paths, p) {
			t.Errorf("dataCreators names %q, which is no command", p)
		}
	}
}

// TestReadCommandsCreateNothing: a command that reads or changes existing
// records, pointed at a directory without agentid data, says where it
// looked and leaves no database (or directory) behind.
func TestReadCommandsCreateNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing-here")
	env := map[string]string{"AGENTID_DATA_DIR": dir}
	cmds := [][]string{
		{"clients", "list"}, {"clients", "show", "abc"}, {"clients", "disable", "abc"},
		{"clients", "tag", "abc", "trusted"}, {"clients", "delete", "abc"},
		{"resources", "list"}, {"resources", "show", "https://x.example/mcp"},
		{"users", "list"}, {"users", "disable", "alice"}, {"keys", "list"},
		{"policy", "list"}, {"policy", "show"},
		{"policy", "explain", "--agent", "abc", "--resource", "https://x.example/mcp"},
		{"resources", "update", "https://x.example/mcp", "--remove-provider", "calendar"},
		{"providers", "list"}, {"providers", "show", "calendar"}, {"providers", "update", "calendar", "--name", "C"},
		{"providers", "disable", "calendar"}, {"providers", "delete", "calendar"},
		{"connections", "list"}, {"connections", "revoke", "conn_x"},
		{"kek", "status"}, {"kek", "rotate"},
		{"audit", "list"}, {"audit", "tail"}, {"audit", "export"},
		{"backup", "--out", filepath.Join(t.TempDir(), "backup.db")},
	}
	for _, args := range cmds {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, env, args...)
			if code != exitError {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitError, stderr)
			}
			want := fmt.Sprintf("agentid: no agentid data in %s (use --data-dir", dir)
			if !strings.HasPrefix(stderr, want) {
				t.Errorf("stderr %q, want it to start with %q", stderr, want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("%s was created (%v)", dir, err)
			}
		})
	}
	t.Run("an empty database file holds no data either", func(t *testing.T) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "agentid.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runCLI(t, env, "clients", "list"); code != exitError || !strings.Contains(stderr, "no agentid data in "+dir) {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestDataDirFlag: --data-dir, before or after the command, wins over
// AGENTID_DATA_DIR.
func TestDataDirFlag(t *testing.T) {
	work := t.TempDir()
	env := map[string]string{"AGENTID_DATA_DIR": filepath.Join(work, "env")}
	flagDir := filepath.Join(work, "flag")
	if code, _, stderr := runCLI(t, env, "--data-dir", flagDir, "users", "add", "alice"); code != 0 {
		t.Fatalf("users add: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(flagDir, "agentid.db")); err != nil {
		t.Fatalf("no database under --data-dir: %v", err)
	}
	if code, stdout, stderr := runCLI(t, env, "users", "list", "--data-dir", flagDir); code != 0 || !strings.Contains(stdout, "alice") {
		t.Fatalf("users list --data-dir: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, _ := runCLI(t, env, "users", "list"); code != exitError {
		t.Fatalf("users list without the flag found data in %s", env["AGENTID_DATA_DIR"])
	}
	if code, _, stderr := runCLI(t, env, "--data-dir", "", "users", "list"); code != exitUsage {
		t.Fatalf("empty --data-dir: exit %d: %s", code, stderr)
	}
}

// TestServeBusyPort: a busy port, the hub's or the metrics listener's,
// fails before the data directory, database or keys are created, and the
// message names the setting, the address and the way out.
func TestServeBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	for _, tc := range []struct {
		name      string
		env       map[string]string
		args      []string
		want, not []string
	}{
		{"listen", nil, []string{"--listen", busy},
			[]string{"listening on " + busy, "already in use", "--listen"}, []string{"metrics.listen"}},
		{"metrics.listen", map[string]string{"AGENTID_METRICS_LISTEN": busy, "AGENTID_ISSUER": "https://auth.example.test"}, []string{"--listen", "127.0.0.1:0"},
			[]string{"metrics.listen: listening on " + busy, "already in use", "another address for metrics.listen"}, []string{"--listen"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			env := map[string]string{"AGENTID_DATA_DIR": dir}
			maps.Copy(env, tc.env)
			code, _, stderr := runCLI(t, env, append([]string{"serve"}, tc.args...)...)
			if code != exitError {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitError, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q lacks %q", stderr, want)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(stderr, not) {
					t.Errorf("stderr %q points to %q, not the busy setting", stderr, not)
				}
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the data directory was created: %v", err)
			}
		})
	}
}

// TestServeListenFlag: --listen wins over AGENTID_LISTEN.
func TestServeListenFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := startServe(t, map[string]string{
		"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		"AGENTID_LISTEN":   ln.Addr().String(), // busy: only the flag lets serve start
		"AGENTID_ISSUER":   "https://auth.example.test",
	}, "--listen", "127.0.0.1:0")
	if h.url == "http://"+ln.Addr().String() {
		t.Fatalf("serve listens on %s", h.url)
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestServeLocksDataDir: a second serve on the same data directory is
// refused, naming the process that holds it; the lock goes with the first.
func TestServeLocksDataDir(t *testing.T) {
	env := map[string]string{
		"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		"AGENTID_LISTEN":   "127.0.0.1:0",
		"AGENTID_ISSUER":   "https://auth.example.test",
	}
	first := startServe(t, env)
	code, _, stderr := runCLI(t, env, "serve")
	if code != exitError {
		t.Fatalf("second serve: exit %d, want %d; stderr: %s", code, exitError, stderr)
	}
	for _, want := range []string{"is used by another agentid", fmt.Sprintf("(pid %d)", os.Getpid()), env["AGENTID_DATA_DIR"]} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	if resp, _ := get(t, first.url+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("first hub: /healthz %d", resp.StatusCode)
	}
	// Admin commands do not take the lock: they work beside a running hub.
	if code, _, stderr := runCLI(t, env, "keys", "list"); code != 0 {
		t.Errorf("keys list beside the hub: exit %d: %s", code, stderr)
	}
	if code := first.stop(); code != 0 {
		t.Fatalf("first serve: exit %d", code)
	}
	again := startServe(t, env)
	if code := again.stop(); code != 0 {
		t.Fatalf("serve after the first stopped: exit %d", code)
	}
}

// TestDemoLocksDataDir: a second demo on the same data directory is
// refused before it touches the first one's user, password or resource.
func TestDemoLocksDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	first, _, stop := startDemo(t, "--json", "--data-dir", dir)
	code, stdout, stderr := runCLI(t, nil, "demo", "--json", "--data-dir", dir)
	if code != exitError {
		t.Fatalf("second demo: exit %d, want %d; stdout %q stderr %q", code, exitError, stdout, stderr)
	}
	if !strings.Contains(stderr, fmt.Sprintf("%s is used by another agentid (pid %d)", dir, os.Getpid())) {
		t.Errorf("stderr %q does not name the holder", stderr)
	}
	// The second start changed nothing of the first's: the demo user's
	// password and the resource's URL are as the first left them.
	var info demoInfo
	if err := json.Unmarshal([]byte(first), &info); err != nil {
		t.Fatal(err)
	}
	if info.DataDir != dir {
		t.Errorf("data_dir %q, want %q", info.DataDir, dir)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Store.DSN = dir, filepath.Join(dir, "agentid.db")
	st, err := openStore(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.GetUserByUsername(context.Background(), store.DefaultTenant, demoUser)
	if err != nil {
		t.Fatal(err)
	}
	if err := password.Verify(u.PasswordHash, info.Password); err != nil {
		t.Errorf("the first demo's password no longer matches: %v", err)
	}
	r, err := st.GetResource(context.Background(), store.DefaultTenant, info.MCPURL)
	if err != nil || r.ID != demoResourceID {
		t.Errorf("the first demo's resource: %+v, %v", r, err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("first demo: exit %d", code)
	}
	_, _, stop = startDemo(t, "--json", "--data-dir", dir)
	if code := stop(); code != 0 {
		t.Fatalf("demo after the first stopped: exit %d", code)
	}
}

// TestDemoHintsWork: the admin commands the demo prints reach its data when
// pasted (from the same working directory).
func TestDemoHintsWork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo dir")
	first, out, stop := startDemo(t, "--data-dir", dir)
	text := first
	sc := bufio.NewScanner(out)
	var list, tag string
	for sc.Scan() && (list == "" || tag == "") {
		l := strings.TrimSpace(sc.Text())
		text += l + "\n"
		switch {
		case strings.HasSuffix(l, " clients list"):
			list = l
		case strings.HasSuffix(l, " clients tag CLIENT_ID trusted"):
			tag = l
		}
	}
	if list == "" || tag == "" {
		t.Fatalf("no admin hints in the demo output:\n%s", text)
	}
	for _, hint := range []string{list, strings.Replace(tag, "CLIENT_ID", demoServerClientID, 1)} {
		words, err := splitWords(hint)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(words, "--data-dir")
		if i < 0 {
			t.Fatalf("hint %q has no --data-dir", hint)
		}
		if code, stdout, stderr := runCLI(t, nil, words[i:]...); code != 0 || !strings.Contains(stdout, demoServerClientID) {
			t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", hint, code, stdout, stderr)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestLockDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := config.Default()
	cfg.DataDir, cfg.Store.DSN = dir, filepath.Join(dir, "agentid.db")

	first, err := lockDataDir(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q (%v), want this pid", b, err)
	}
	// A second open file is refused even within one process (flock
	// locks belong to the open file, not the process).
	if _, err := lockDataDir(cfg); !errors.Is(err, errDataDirInUse) {
		t.Fatalf("second lock: %v, want errDataDirInUse", err)
	}
	first.Release()
	again, err := lockDataDir(cfg)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Release()

	t.Run("no lock for PostgreSQL", func(t *testing.T) {
		pg := config.Default()
		pg.Store.DSN = "postgres://agentid@db.example.test/agentid"
		if l, err := lockDataDir(pg); l != nil || err != nil {
			t.Fatalf("got %v, %v", l, err)
		}
	})
}

func TestRequireData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := config.Default()
	cfg.DataDir, cfg.Store.DSN = dir, filepath.Join(dir, "agentid.db")
	if err := requireData(cfg); !errors.Is(err, errNoData) {
		t.Fatalf("requireData without a database: %v, want errNoData", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("requireData created %s", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Store.DSN, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := requireData(cfg); err != nil {
		t.Fatalf("requireData with a database file: %v", err)
	}
}
