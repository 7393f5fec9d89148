package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/vault"
)

// asCLIEnv makes the test binary run the agentid command line instead of
// the tests, so a test can run agentid as a process of its own (and kill
// it).
const asCLIEnv = "AGENTID_TEST_RUN_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asCLIEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// agentidCommand is agentid ARGS run by the test binary in a process of
// its own, with exactly env as its environment (plus PATH and HOME).
func agentidCommand(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = []string{asCLIEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

var rewrappedLine = regexp.MustCompile(`^re-wrapped \S+ signing keys, \S+ provider secrets, (\d+)/(\d+) connections$`)

// TestKEKRotateSurvivesKill9 runs agentid kek rotate as a process over a
// few thousand connections, kills it with SIGKILL halfway, and runs it
// again: the second run finishes, every connection opens under the new KEK
// alone with its own key, and every signing key still signs. Retrievals
// from this process keep working throughout.
func TestKEKRotateSurvivesKill9(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is a Unix signal")
	}
	const connections = 3000
	ctx := context.Background()
	work := t.TempDir()
	t.Chdir(work)
	e := newVaultEnv(t)
	e.env["AGENTID_DATA_DIR"] = filepath.Join(work, "data")
	e.must("migrate")
	e.must("keys", "rotate")
	e.must("providers", "add", "weather", "--kind", "api_key", "--header", "X-API-Key")
	st, oldVault := e.open()
	p, err := st.GetProvider(ctx, store.DefaultTenant, "weather")
	if err != nil {
		t.Fatal(err)
	}

	// A few thousand connections under the old KEK, written by several
	// goroutines so the store commits them in groups.
	keys := make(map[string]string, connections)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < connections; i += 8 {
				key := fmt.Sprintf("wx_%04d_%s", i, strings.Repeat("k", 24))
				c, err := oldVault.SaveAPIKey(ctx, audit.Meta{TenantID: store.DefaultTenant}, p, vault.Owner{Kind: store.OwnerUser, ID: "user-" + strconv.Itoa(i%50)}, "", key)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				keys[c.ID] = key
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	oldKEK, err := keyring.ReadKEKFile(filepath.Join(work, "data", "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	e.must("kek", "generate", "--out", filepath.Join(work, "new.key"))
	newKEK, err := keyring.ReadKEKFile(filepath.Join(work, "new.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("rotate.yaml", []byte("kek:\n  file: new.key\n  previous_files: [data/kek.key]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rotated, err := keyring.NewKeyring(newKEK, oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	// This process plays a hub restarted with the rotated keyring: it
	// retrieves credentials the whole time.
	hub, err := vault.New(vault.Config{Store: st, Keyring: rotated})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	var (
		stop      atomic.Bool
		retrieved atomic.Int64
		readErr   atomic.Value
		readers   sync.WaitGroup
	)
	for r := range 2 {
		readers.Go(func() {
			for i := r * 997; !stop.Load(); i++ {
				id := ids[i%len(ids)]
				c, err := st.GetConnection(ctx, store.DefaultTenant, id)
				if err == nil {
					var cred *vault.Credential
					if cred, err = hub.Credential(ctx, audit.Meta{TenantID: store.DefaultTenant}, c, false); err == nil && cred.AccessToken != keys[id] {
						err = fmt.Errorf("connection %s: wrong key", id)
					}
				}
				if err != nil {
					readErr.Store(err)
					return
				}
				retrieved.Add(1)
			}
		})
	}
	stopReaders := func() {
		stop.Store(true)
		readers.Wait()
		if err, _ := readErr.Load().(error); err != nil {
			t.Fatalf("a retrieval failed during the rotation: %v", err)
		}
	}
	defer stopReaders()

	env := map[string]string{"AGENTID_DATA_DIR": filepath.Join(work, "data")}
	first := agentidCommand(t, env, "--config", "rotate.yaml", "kek", "rotate")
	first.Dir = work
	out, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var firstErr strings.Builder
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	killedAt := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		m := rewrappedLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			if err := first.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killedAt = n
			break
		}
	}
	// Drain what is left (EOF once the process is gone), then reap it.
	_, _ = io.Copy(io.Discard, out)
	err = first.Wait()
	if killedAt < 0 {
		t.Fatalf("the first run printed no connection progress before it ended (%v): %s", err, firstErr.String())
	}
	if ws, ok := first.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first run was not killed by SIGKILL: %v", err)
	}

	// Killed halfway: some connections are under the new KEK, some not.
	under := map[string]int{}
	cs, err := st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		under[c.KEKID]++
	}
	t.Logf("killed after a progress line of %d connections; stored: %v", killedAt, under)
	if under[oldKEK.ID] == 0 {
		t.Fatalf("the first run re-wrapped every connection before the kill landed; nothing was left to resume")
	}
	if under[newKEK.ID] == 0 {
		t.Fatalf("the kill landed before any connection was re-wrapped")
	}

	second := agentidCommand(t, env, "--config", "rotate.yaml", "kek", "rotate")
	second.Dir = work
	outb, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("the second run failed: %v\n%s", err, outb)
	}
	if !strings.Contains(string(outb), "done: everything is under KEK "+newKEK.ID) {
		t.Errorf("the second run said:\n%s", outb)
	}
	if m := regexp.MustCompile(`re-wrapping under KEK \S+: (\d+) signing keys, \d+ provider secrets, (\d+) connections`).FindStringSubmatch(string(outb)); m == nil || m[2] != strconv.Itoa(under[oldKEK.ID]) {
		t.Errorf("the second run should resume with the %d connections left:\n%s", under[oldKEK.ID], outb)
	}
	// Let the readers retrieve under the finished rotation too.
	time.Sleep(50 * time.Millisecond)
	stopReaders()
	if retrieved.Load() == 0 {
		t.Fatal("no retrieval ran during the rotation")
	}

	// Everything opens under the new KEK alone.
	newOnly, err := keyring.NewKeyring(newKEK)
	if err != nil {
		t.Fatal(err)
	}
	check, err := vault.New(vault.Config{Store: st, Keyring: newOnly})
	if err != nil {
		t.Fatal(err)
	}
	cs, err = st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != connections {
		t.Fatalf("%d connections after the rotation, want %d", len(cs), connections)
	}
	for _, c := range cs {
		cred, err := check.Credential(ctx, audit.Meta{TenantID: store.DefaultTenant}, c, false)
		if err != nil {
			t.Fatalf("connection %s does not open under the new KEK alone: %v", c.ID, err)
		}
		if cred.AccessToken != keys[c.ID] {
			t.Fatalf("connection %s lost its key", c.ID)
		}
	}
	tk, err := token.NewKeys(ctx, token.Options{Store: st, Keyring: newOnly})
	if err != nil {
		t.Fatalf("signing keys under the new KEK alone: %v", err)
	}
	now := time.Now()
	raw, err := tk.Mint(&token.AccessClaims{Issuer: "https://hub.example.test", Subject: "u", Audience: []string{"https://mcp.example.test"},
		ClientID: "agent", JTI: "kill9", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	if err != nil {
		t.Fatalf("signing after the rotation: %v", err)
	}
	if _, err := tk.Verify(raw, "https://hub.example.test"); err != nil {
		t.Fatalf("verifying after the rotation: %v", err)
	}
	keysList, err := st.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keysList {
		if id, _ := keyring.KEKID(k.PrivateEnc); id != newKEK.ID {
			t.Errorf("signing key %s is under %q", k.ID, id)
		}
	}
	// One event for the finished run (the killed one wrote none).
	if n := auditCount(t, st, audit.KEKRewrapped); n != 1 {
		t.Errorf("%d kek.rewrapped events, want 1", n)
	}
}
