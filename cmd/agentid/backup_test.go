package main

import (
	"bufio"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

const backupResource = "https://notes.example.test/mcp"

// ccClient registers a client-credentials agent allowed notes.read and
// returns its secret.
func ccClient(t *testing.T, e *cliEnv) string {
	t.Helper()
	e.run("resources", "add", "--uri", backupResource, "--name", "Notes", "--scope", "notes.read=Read")
	out, _ := e.run("clients", "add", "--name", "Nightly", "--id", "nightly", "--grant-type", "client_credentials",
		"--resource", backupResource, "--tag", "cc:notes.read")
	m := regexp.MustCompile(`(?m)^client_secret +(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("clients add printed no secret:\n%s", out)
	}
	return m[1]
}

// issueToken asks the hub at hubURL for a client-credentials token and
// returns its jti and kid; ok is false for any failure.
func issueToken(hubURL, secret string) (jti, kid string, err error) {
	req, err := http.NewRequest("POST", hubURL+"/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "scope": {"notes.read"}, "resource": {backupResource},
	}.Encode()))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("nightly", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", &url.Error{Op: "token", URL: hubURL, Err: os.ErrInvalid}
	}
	parts := strings.Split(body.AccessToken, ".")
	if len(parts) != 3 {
		return "", "", os.ErrInvalid
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	for i, v := range []any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return "", "", err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return "", "", err
		}
	}
	return claims.JTI, hdr.Kid, nil
}

// allAudit lists every audit event of st, oldest first.
func allAudit(t *testing.T, st store.Store) []*store.AuditEvent {
	t.Helper()
	var out []*store.AuditEvent
	after := int64(0)
	for {
		page, err := st.ListAudit(t.Context(), store.AuditFilter{Ascending: true, After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out
		}
		after = page[len(page)-1].ID
	}
}

// TestBackupRestoreUnderLoad takes a backup while a served hub issues
// tokens without pause, restores it into a fresh data directory, and
// checks the result: it verifies; every token whose response came back
// before the backup started has its issuance event in the restored trail,
// none asked for after the backup ended does; the audit chain verifies; and a
// hub on the restored data — given the original KEK, which the backup does
// not hold — signs with the original key and accepts the original client.
func TestBackupRestoreUnderLoad(t *testing.T) {
	e := newCLIEnv(t)
	e.env["AGENTID_LISTEN"] = "127.0.0.1:0"
	e.env["AGENTID_ISSUER"] = "https://auth.example.test"
	secret := ccClient(t, e)
	h := startServe(t, e.env)

	type issued struct {
		jti            string
		sent, returned time.Time
	}
	var (
		mu       sync.Mutex
		tokens   []issued
		failures atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		kids     sync.Map
	)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent := time.Now()
				jti, kid, err := issueToken(h.url, secret)
				if err != nil {
					failures.Add(1)
					continue
				}
				kids.Store(kid, true)
				mu.Lock()
				tokens = append(tokens, issued{jti, sent, time.Now()})
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(tokens) }
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); count() < n; time.Sleep(5 * time.Millisecond) {
			if f := failures.Load(); f > 0 || time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%d tokens issued, %d failed; waited for %d", count(), f, n)
			}
		}
	}
	waitFor(200)

	out := filepath.Join(t.TempDir(), "agentid-backup.db")
	started := time.Now()
	before := count()
	code, stdout, stderr := runCLI(t, e.env, "backup", "--out", out)
	ended := time.Now()
	during := count() - before
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "is not in the backup") {
		t.Errorf("backup does not say the KEK is not in the backup:\n%s", stdout)
	}
	// Let the writers go on past the backup, then stop them.
	waitFor(before + during + 50)
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d issuances failed while the backup ran", n)
	}
	t.Logf("backup took %v; %d tokens issued before it, %d while it ran", ended.Sub(started), before, during)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}

	// The backup is restored into a fresh data directory; the KEK is
	// carried over apart, as an operator would.
	r := &cliEnv{t: t, env: map[string]string{
		"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "restored"),
		"AGENTID_KEK_FILE": filepath.Join(e.env["AGENTID_DATA_DIR"], "kek.key"),
		"AGENTID_LISTEN":   "127.0.0.1:0",
		"AGENTID_ISSUER":   "https://auth.example.test",
	}}
	code, stdout, stderr = runCLI(t, r.env, "restore", "--from", out)
	if code != 0 || stderr != "" {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, stderr)
	}
	db := filepath.Join(r.env["AGENTID_DATA_DIR"], "agentid.db")
	if _, err := sqlite.VerifyFile(t.Context(), db); err != nil {
		t.Fatalf("the restored database: %v", err)
	}

	restored := map[string]bool{}
	for _, ev := range allAudit(t, r.store()) {
		if ev.Type == audit.TokenIssued {
			restored[ev.Details["jti"]] = true
		}
	}
	mu.Lock()
	all := tokens
	mu.Unlock()
	var committedBefore, after, afterPresent int
	for _, tok := range all {
		switch {
		case tok.returned.Before(started):
			committedBefore++
			if !restored[tok.jti] {
				t.Errorf("token %s, issued before the backup started, has no issuance event in the restored trail", tok.jti)
			}
		case tok.sent.After(ended):
			after++
			if restored[tok.jti] {
				afterPresent++
			}
		}
	}
	if committedBefore < 200 || after == 0 {
		t.Fatalf("%d tokens before the backup, %d after it: the load did not surround the backup", committedBefore, after)
	}
	if afterPresent != 0 {
		t.Errorf("%d of %d tokens issued after the backup ended are in it", afterPresent, after)
	}

	code, stdout, stderr = r.runCode("audit", "verify")
	if code != 0 || !strings.Contains(stdout, "chain intact") {
		t.Fatalf("audit verify on the restored data: exit %d\n%s%s", code, stdout, stderr)
	}

	// A hub on the restored data signs with the original key.
	h2 := startServe(t, r.env)
	_, kid, err := issueToken(h2.url, secret)
	if err != nil {
		t.Fatalf("the restored hub refuses the original client: %v\n%s", err, h2.stderr.String())
	}
	if _, ok := kids.Load(kid); !ok {
		t.Errorf("the restored hub signs with key %s, not the original one", kid)
	}
}

// TestRestoreRefusesARunningHub: restore takes the data directory's lock,
// so it is refused while a hub serves from it, and the database is left
// as it was; backup, which only reads, works beside the hub.
func TestRestoreRefusesARunningHub(t *testing.T) {
	e := newCLIEnv(t)
	e.env["AGENTID_LISTEN"] = "127.0.0.1:0"
	e.env["AGENTID_ISSUER"] = "https://auth.example.test"
	e.run("resources", "add", "--uri", backupResource, "--name", "Notes", "--scope", "notes.read=Read")
	out := filepath.Join(t.TempDir(), "b.db")
	e.run("backup", "--out", out)
	h := startServe(t, e.env)
	db := filepath.Join(e.env["AGENTID_DATA_DIR"], "agentid.db")
	beforeStat, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, e.env, "restore", "--from", out, "--force")
	if code != exitError || !strings.Contains(stderr, "not restoring: the data directory is in use") {
		t.Fatalf("restore beside a hub: exit %d, stderr %q", code, stderr)
	}
	afterStat, err := os.Stat(db)
	if err != nil || !os.SameFile(beforeStat, afterStat) {
		t.Fatalf("the database was replaced under the hub (%v)", err)
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("serve: exit %d", code)
	}
	if code, stdout, stderr := runCLI(t, e.env, "restore", "--from", out, "--force"); code != 0 {
		t.Fatalf("restore after the hub stopped: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestRestoreVerifiesAndKeepsThePrevious: restore refuses files that are
// not a whole agentid database this binary knows — before touching the
// current one — and replaces an existing database only with --force,
// keeping it beside as a .bak with its last commits folded in.
func TestRestoreVerifiesAndKeepsThePrevious(t *testing.T) {
	e := newCLIEnv(t)
	e.run("resources", "add", "--uri", backupResource, "--name", "Notes", "--scope", "notes.read=Read")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	e.run("backup", "--out", good)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, e.env, "backup", "--out", good); code != exitError || !strings.Contains(stderr, "never overwrites") {
		t.Errorf("backup over an existing file: exit %d, stderr %q", code, stderr)
	}
	// A change after the backup: the restore must undo it, and the .bak
	// must keep it.
	e.run("resources", "add", "--uri", "https://later.example.test/mcp", "--name", "Later", "--scope", "x=y")

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sqlFile := func(name string, stmts ...string) string {
		p := filepath.Join(dir, name)
		db, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	tooNew := write("too-new.db", goodBytes)
	sqlFile("too-new.db", `INSERT INTO schema_migrations (version, name, applied_at)
		SELECT max(version) + 1, '9999_from_the_future.sql', 0 FROM schema_migrations`)
	// A page in the middle overwritten: the header still says SQLite.
	corrupt := append([]byte(nil), goodBytes...)
	for i := 8192; i < 3*4096; i++ {
		corrupt[i] = 0x5a
	}
	live := write("live.db", goodBytes)
	write("live.db-wal", []byte("frames not yet checkpointed"))

	for _, c := range []struct{ name, file, want string }{
		{"not SQLite", write("notes.txt", []byte("hello\n")), "not an agentid database: " + filepath.Join(dir, "notes.txt") + " is not an SQLite database"},
		{"empty", write("empty.db", nil), "is not an SQLite database"},
		{"another application's database", sqlFile("other.db", "CREATE TABLE t (x)"), "not an agentid database: it has no schema_migrations table"},
		{"foreign migrations", sqlFile("foreign.db",
			"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at INTEGER)",
			"INSERT INTO schema_migrations VALUES (1, '0001_something_else.sql', 0)"),
			`not an agentid database: its migration 1 is "0001_something_else.sql"`},
		{"schema too new", tooNew, "newer than this binary"},
		{"corrupt", write("corrupt.db", corrupt), "the database is damaged"},
		{"live database", live, "it is a live database, not a backup"},
		{"missing", filepath.Join(dir, "absent.db"), "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, e.env, "restore", "--from", c.file, "--force")
			if code != exitError || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want it to contain %q", code, stderr, c.want)
			}
			if out, _ := e.run("resources", "list"); !strings.Contains(out, "later.example.test") {
				t.Fatal("a refused restore changed the database")
			}
		})
	}

	code, _, stderr := runCLI(t, e.env, "restore", "--from", good)
	if code != exitError || !strings.Contains(stderr, "a database exists at") || !strings.Contains(stderr, "--force") {
		t.Fatalf("restore over a database without --force: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := runCLI(t, e.env, "restore", "--from", good, "--force", "--json")
	if code != 0 {
		t.Fatalf("restore --force: exit %d\n%s%s", code, stdout, stderr)
	}
	var res struct {
		Previous      string `json:"previous"`
		SchemaVersion int    `json:"schema_version"`
		KEKProblem    string `json:"kek_problem"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`/agentid\.db\.\d{8}T\d{6}Z\.bak$`).MatchString(res.Previous) || res.SchemaVersion == 0 {
		t.Fatalf("restore --json: %s", stdout)
	}
	// No hub ever ran here, so there is no KEK: restore says so.
	if res.KEKProblem == "" || !strings.Contains(stderr, "warning: no usable KEK") {
		t.Errorf("restore without a KEK does not warn: %s %q", stdout, stderr)
	}
	if out, _ := e.run("resources", "list"); strings.Contains(out, "later.example.test") || !strings.Contains(out, backupResource) {
		t.Fatalf("after restore, resources:\n%s", out)
	}
	if _, err := sqlite.VerifyFile(t.Context(), res.Previous); err != nil {
		t.Fatalf("the kept database: %v", err)
	}
	kept := &cliEnv{t: t, env: map[string]string{"AGENTID_STORE_DSN": res.Previous}}
	if out, _ := kept.run("resources", "list"); !strings.Contains(out, "later.example.test") {
		t.Fatalf("the kept database lacks the change made after the backup:\n%s", out)
	}
}

// TestBackupPostgresGuidance: for a PostgreSQL store backup and restore
// print the pg_dump guidance and fail, without connecting.
func TestBackupPostgresGuidance(t *testing.T) {
	env := map[string]string{"AGENTID_STORE_DSN": "postgres://agentid@127.0.0.1:1/agentid"}
	for _, args := range [][]string{{"backup", "--out", filepath.Join(t.TempDir(), "x.db")}, {"restore", "--from", "x.db"}} {
		code, _, stderr := runCLI(t, env, args...)
		if code != exitError || !strings.Contains(stderr, "pg_dump --format=custom") || !strings.Contains(stderr, "agentid: the store is PostgreSQL") {
			t.Errorf("%s: exit %d, stderr %q", args[0], code, stderr)
		}
	}
	if code, _, stderr := runCLI(t, nil, "backup"); code != exitUsage || !strings.Contains(stderr, "needs --out FILE") {
		t.Errorf("backup without --out: exit %d, stderr %q", code, stderr)
	}
}

// TestBackupOutMissingDirectory: --out in a directory that does not
// exist (or under a file) fails with a message naming the directory and
// saying it is not created; nothing is created, and the same command
// with the directory made succeeds.
func TestBackupOutMissingDirectory(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"AGENTID_DATA_DIR": data}
	if code, _, stderr := runCLI(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	base := t.TempDir()
	missing := filepath.Join(base, "backups", "nightly")
	out := filepath.Join(missing, "agentid.db")
	code, _, stderr := runCLI(t, env, "backup", "--out", out)
	if want := "the directory " + missing + " does not exist; agentid backup does not create directories"; code != exitError || !strings.Contains(stderr, want) {
		t.Errorf("backup into a missing directory: exit %d, stderr %q, want %q", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(base, "backups")); err == nil {
		t.Error("the refused backup created a directory")
	}
	file := filepath.Join(base, "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, env, "backup", "--out", filepath.Join(file, "x.db")); code != exitError || !strings.Contains(stderr, file+" is not a directory") {
		t.Errorf("backup under a file: exit %d, stderr %q", code, stderr)
	}
	if err := os.MkdirAll(missing, 0o700); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, env, "backup", "--out", out); code != 0 {
		t.Fatalf("backup into the made directory: exit %d\n%s", code, stderr)
	}
}

// TestRestoreOverACrashedHub: a hub killed with SIGKILL leaves its
// write-ahead log behind, holding commits the database file may not have
// yet. restore --force folds that log into the database it keeps as .bak
// (so the .bak has the last commits) and never lets it meet the restored
// file (whose pages it would overwrite at the next open).
func TestRestoreOverACrashedHub(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is a Unix signal")
	}
	e := newCLIEnv(t)
	e.env["AGENTID_LISTEN"] = "127.0.0.1:0"
	e.env["AGENTID_ISSUER"] = "https://auth.example.test"
	e.run("resources", "add", "--uri", backupResource, "--name", "Notes", "--scope", "notes.read=Read")
	backup := filepath.Join(t.TempDir(), "b.db")
	e.run("backup", "--out", backup)

	hub := agentidCommand(t, e.env, "serve")
	stdout, err := hub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	defer hub.Process.Kill()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || !strings.Contains(line, "listening on") {
		t.Fatalf("serve: %q %v", line, err)
	}
	// Written beside the running hub: its connections keep the log open,
	// so the commit stays in the log.
	e.run("resources", "add", "--uri", "https://later.example.test/mcp", "--name", "Later", "--scope", "x=y")
	if err := hub.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	hub.Wait()
	db := filepath.Join(e.env["AGENTID_DATA_DIR"], "agentid.db")
	if fi, err := os.Stat(db + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the killed hub left no write-ahead log (%v, %v); the test shows nothing", fi, err)
	}
	strayWAL, err := os.ReadFile(db + "-wal")
	if err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runCLI(t, e.env, "restore", "--from", backup, "--force", "--json")
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, stderr)
	}
	var res struct {
		Previous string `json:"previous"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{db + "-wal", db + "-shm"} {
		if fi, err := os.Stat(side); err == nil && fi.Size() > 0 {
			t.Errorf("%s (%d bytes) survived the restore beside the new database", side, fi.Size())
		}
	}
	if _, err := sqlite.VerifyFile(t.Context(), db); err != nil {
		t.Fatalf("the restored database: %v", err)
	}
	if list, _ := e.run("resources", "list"); strings.Contains(list, "later.example.test") || !strings.Contains(list, backupResource) {
		t.Fatalf("the restored database is not the backup:\n%s", list)
	}
	if _, err := sqlite.VerifyFile(t.Context(), res.Previous); err != nil {
		t.Fatalf("the kept database: %v", err)
	}
	kept := &cliEnv{t: t, env: map[string]string{"AGENTID_STORE_DSN": res.Previous}}
	if list, _ := kept.run("resources", "list"); !strings.Contains(list, "later.example.test") {
		t.Fatalf("the kept database lost the commit that was only in the log:\n%s", list)
	}

	// A log whose database is gone (deleted by hand) must not be replayed
	// onto a restore into the same place.
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db+"-wal", strayWAL, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI(t, e.env, "restore", "--from", backup); code != 0 {
		t.Fatalf("restore beside a stray log: exit %d\n%s%s", code, out, stderr)
	}
	if list, _ := e.run("resources", "list"); strings.Contains(list, "later.example.test") || !strings.Contains(list, backupResource) {
		t.Fatalf("the stray log was replayed onto the restored database:\n%s", list)
	}
}
