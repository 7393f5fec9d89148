package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/policy"
)

// The world every help example runs in: what its names refer to.
const (
	exampleResource = "https://mcp.example.com/mcp"
	exampleClient   = "dcr-1"
	// exampleServerClient is the resource server's own client.
	exampleServerClient = "notes-mcp"
	exampleUser         = "alice"
	exampleIssuer       = "https://auth.example.test"
	// exampleTrustedIssuer is the ID of a trusted issuer (agentid issuers).
	exampleTrustedIssuer = "okta"
)

// examplePlaceholders are the upper-case words an example may use for a
// value of the reader's, and what the test puts in their place. Any other
// upper-case word in an example is an error, so a new placeholder gets a
// value here.
var examplePlaceholders = map[string]string{
	"CLIENT_ID": exampleClient,
	"USERNAME":  exampleUser,
	"URI":       exampleResource,
	"VERSION":   "0",
	"HOST:PORT": "127.0.0.1:0",
	// The hub of a bench example runs in the test process.
	"HUB_PID": strconv.Itoa(os.Getpid()),
	// A second process to sum: the one that started the tests.
	"REPLICA_PID": strconv.Itoa(os.Getppid()),
}

// TestHelpExamples runs every line of every command's Example, each in a
// fresh working directory and data directory seeded with the world the
// examples talk about (a resource, an agent dcr-1, the MCP server's
// confidential client notes-mcp, a user alice, a trusted issuer okta, a
// policies/ directory, an agentid.yaml). Every line must succeed. A client
// that an example registers for client_credentials must then get a token
// from the hub: an example that makes a client that can never get one is
// as wrong as one that fails.
func TestHelpExamples(t *testing.T) {
	var n int
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		for i, line := range exampleLines(cmd.Example) {
			n++
			t.Run(cmd.CommandPath()+"/"+strconv.Itoa(i+1), func(t *testing.T) {
				runExample(t, line)
			})
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk((&cli{flagSettings: map[string]string{}}).newRootCmd())
	if n == 0 {
		t.Fatal("no examples found")
	}
}

// exampleLines splits an Example into command lines, joining lines ending
// in a backslash and dropping blank lines and # comments.
func exampleLines(example string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.SplitSeq(example, "\n") {
		line = strings.TrimSpace(line)
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont)
			continue
		}
		cur.WriteString(line)
		if s := strings.TrimSpace(cur.String()); s != "" && !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

var upperWord = regexp.MustCompile(`^[A-Z][A-Z_:]*[A-Z]$`)

func runExample(t *testing.T, line string) {
	words, err := splitWords(line)
	if err != nil {
		t.Fatal(err)
	}
	if words[0] != "agentid" {
		t.Fatalf("example %q does not start with agentid", line)
	}
	work := t.TempDir()
	t.Chdir(work)
	dataDir := filepath.Join(work, "data")
	// Any free port (8080 may be taken on a shared machine), so the
	// issuer is configured.
	env := map[string]string{"AGENTID_DATA_DIR": dataDir, "AGENTID_LISTEN": "127.0.0.1:0", "AGENTID_ISSUER": exampleIssuer}
	seedExampleWorld(t, env)
	if words[1] == "users" {
		// What the users examples take away must be there: alice's role,
		// group and attribute (seeded only for them, to keep the test fast).
		for _, args := range [][]string{
			{"users", "add-role", exampleUser, "release-manager"},
			{"users", "add-group", exampleUser, "eng-oncall"},
			{"users", "set-attr", exampleUser, "employment=staff"},
		} {
			if code, stdout, stderr := runCLI(t, env, args...); code != 0 {
				t.Fatalf("seeding %q: exit %d\n%s%s", args, code, stdout, stderr)
			}
		}
	}

	if words[1] == "restore" {
		// What a restore example restores: a backup of the world.
		if code, stdout, stderr := runCLI(t, env, "backup", "--out", "agentid-backup.db"); code != 0 {
			t.Fatalf("backing up the world: exit %d\n%s%s", code, stdout, stderr)
		}
	}

	args := words[1:]
	for i, a := range args {
		if v, ok := examplePlaceholders[a]; ok {
			args[i] = v
			continue
		}
		if upperWord.MatchString(a) {
			t.Fatalf("example %q: placeholder %s has no value in examplePlaceholders", line, a)
		}
		if i > 0 {
			switch args[i-1] {
			case "--data-dir":
				args[i] = dataDir // the world's, wherever the example points
			case "--listen":
				args[i] = "127.0.0.1:0" // any free port
			}
		}
	}

	if slices.Contains(args, "bench") {
		benchExampleHub(t, env, args)
		// Short: a run of 200 ms per scenario (the last --duration wins).
		args = append(args, "--subjects", "8", "--duration", "200ms")
	}
	if slices.Contains(args, "serve") && !slices.Contains(args, "--print-config") || slices.Contains(args, "demo") {
		runHubExample(t, line, env, args)
		return
	}
	code, stdout, stderr := runCLI(t, env, args...)
	if code != 0 {
		t.Fatalf("example %q: exit %d\nstdout:\n%s\nstderr:\n%s", line, code, stdout, stderr)
	}
	if slices.Contains(args, "client_credentials") && slices.Contains(args[:2], "clients") {
		checkClientCredentials(t, line, env, stdout)
	}
}

// benchExampleHub starts the hub a bench example drives, on the world's
// data directory, and points the example's --hub at it.
func benchExampleHub(t *testing.T, env map[string]string, args []string) {
	t.Helper()
	addr := freeAddr(t)
	hubEnv := maps.Clone(env)
	hubEnv["AGENTID_LISTEN"], hubEnv["AGENTID_ISSUER"] = addr, "http://"+addr
	h := startServe(t, hubEnv)
	// Every --hub is this one hub; a second names it by another host so
	// that it reads as another replica of the same issuer.
	hubs := 0
	for i := 1; i < len(args); i++ {
		if args[i-1] == "--hub" {
			args[i] = h.issuer
			if hubs > 0 {
				args[i] = strings.Replace(h.issuer, "127.0.0.1", "localhost", 1)
			}
			hubs++
		}
	}
}

// seedExampleWorld creates, in the scenario's data directory and working
// directory, everything the examples name.
func seedExampleWorld(t *testing.T, env map[string]string) {
	t.Helper()
	for _, args := range [][]string{
		{"resources", "add", "--uri", exampleResource, "--name", "Files and notes",
			"--scope", "notes.read=Read your notes", "--scope", "files:delete=Delete your files", "--sensitive", "files:delete"},
		{"clients", "add", "--name", "Self-registered agent", "--id", exampleClient, "--redirect-uri", "http://127.0.0.1/callback", "--public"},
		// The confidential client an MCP server authenticates as.
		{"clients", "add", "--name", "Notes MCP server", "--id", exampleServerClient},
		{"users", "add", exampleUser},
		// A trusted identity provider.
		{"issuers", "add", exampleTrustedIssuer, "--issuer", "https://acme.okta.com", "--jwks-uri", "https://acme.okta.com/oauth2/v1/keys", "--use", "id_jag"},
		// Downstream providers of the vault.
		{"providers", "add", "calendar", "--kind", "oauth2", "--authorization-endpoint", "https://accounts.example.com/authorize",
			"--token-endpoint", "https://accounts.example.com/token", "--client-id", "hub-client", "--scope", "calendar.read", "--scope", "calendar.events"},
		{"providers", "add", "weather", "--kind", "api_key", "--header", "X-API-Key"},
		{"resources", "update", exampleResource, "--provider", "weather", "--provider-scope", "notes.read"},
	} {
		if code, stdout, stderr := runCLI(t, env, args...); code != 0 {
			t.Fatalf("seeding %q: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	if err := os.Mkdir("policies", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range policy.DefaultFiles() {
		if err := os.WriteFile(filepath.Join("policies", name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile("agentid.yaml", []byte("log:\n  level: info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Client secrets of providers and API keys, as files an administrator
	// keeps.
	for _, name := range []string{"drive-secret.txt", "calendar-secret.txt", "weather.key", "corp-secret.txt"} {
		if err := os.WriteFile(name, []byte("example-client-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// runHubExample starts a serve or demo example, waits for its first line
// of output (it is up), and stops it as Ctrl-C would.
func runHubExample(t *testing.T, line string, env map[string]string, args []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, strings.NewReader(""), pw, stderr, func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		})
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	if err != nil {
		t.Fatalf("example %q ended before it was up (exit %d): %v\nstderr:\n%s", line, <-done, err, stderr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("example %q: exit %d after %q\nstderr:\n%s", line, code, first, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("example %q did not stop", line)
	}
}

var clientField = regexp.MustCompile(`(?m)^(client_id|client_secret) +(\S+)$`)

// checkClientCredentials asks the hub for a client_credentials token with
// the client an example registered, for the resource's notes.read.
func checkClientCredentials(t *testing.T, line string, env map[string]string, stdout string) {
	t.Helper()
	creds := map[string]string{}
	for _, m := range clientField.FindAllStringSubmatch(stdout, -1) {
		creds[m[1]] = m[2]
	}
	if creds["client_id"] == "" || creds["client_secret"] == "" {
		t.Fatalf("example %q printed no client credentials:\n%s", line, stdout)
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHub(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	req, err := http.NewRequest("POST", srv.URL+"/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "scope": {"notes.read"}, "resource": {exampleResource},
	}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(creds["client_id"]), url.QueryEscape(creds["client_secret"]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		t.Fatalf("example %q makes a client that gets no token: %d %s: %s", line, resp.StatusCode, body.Error, body.Description)
	}
}
