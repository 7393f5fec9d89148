package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
	"github.com/agentid/agentid/internal/vault/vaulttest"
)

// vaultEnv runs the CLI in-process against one data directory.
type vaultEnv struct {
	t   *testing.T
	env map[string]string
}

func newVaultEnv(t *testing.T) *vaultEnv {
	t.Helper()
	return &vaultEnv{t: t, env: map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data")}}
}

func (e *vaultEnv) lookup(k string) (string, bool) {
	v, ok := e.env[k]
	return v, ok
}

// run runs the CLI and returns its exit code, stdout and stderr.
func (e *vaultEnv) run(stdin string, args ...string) (int, string, string) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut, e.lookup)
	return code, out.String(), errOut.String()
}

// must runs the CLI and fails the test unless it exits 0.
func (e *vaultEnv) must(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run("", args...)
	if code != 0 {
		e.t.Fatalf("agentid %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// open opens the store and vault the CLI uses (the same KEK file).
func (e *vaultEnv) open() (store.Store, *vault.Vault) {
	e.t.Helper()
	ctx := context.Background()
	cfg, err := config.Load("", e.lookup)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := openStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	ring, err := loadKeyring(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := vault.New(vault.Config{Store: st, Keyring: ring})
	if err != nil {
		e.t.Fatal(err)
	}
	return st, v
}

func auditCount(t *testing.T, st store.Store, typ string) int {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func TestConnectionsCommands(t *testing.T) {
	e := newVaultEnv(t)
	ctx := context.Background()
	prov := vaulttest.New(t, vaulttest.Options{})
	e.must("migrate")
	e.must("providers", "add", "weather", "--kind", "api_key", "--header", "X-API-Key")
	if code, out, errOut := e.run("correct-horse-battery-staple\n", "users", "add", "alice", "--password-stdin"); code != 0 {
		t.Fatalf("users add: %s%s", out, errOut)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(prov.ClientSecret()), 0o600); err != nil {
		t.Fatal(err)
	}
	e.must("providers", "add", "calendar", "--kind", "oauth2", "--authorization-endpoint", prov.AuthorizationEndpoint(),
		"--token-endpoint", prov.TokenEndpoint(), "--revocation-endpoint", prov.RevocationEndpoint(),
		"--client-id", prov.ClientID(), "--client-secret-file", secretFile, "--scope", "calendar.read")

	st, v := e.open()
	alice, err := st.GetUserByUsername(ctx, store.DefaultTenant, "alice")
	if err != nil {
		t.Fatal(err)
	}
	weather, err := st.GetProvider(ctx, store.DefaultTenant, "weather")
	if err != nil {
		t.Fatal(err)
	}
	m := audit.Meta{TenantID: store.DefaultTenant, Time: time.Now()}
	const aliceKey, orgKey = "wx_alice_key_0123456789", "wx_org_key_9876543210"
	ca, err := v.SaveAPIKey(ctx, m, weather, vault.Owner{Kind: store.OwnerUser, ID: alice.ID}, "alice's key", aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	co, err := v.SaveAPIKey(ctx, m, weather, vault.Owner{Kind: store.OwnerTenant, ID: store.DefaultTenant}, "org key", orgKey)
	if err != nil {
		t.Fatal(err)
	}
	cal, err := st.GetProvider(ctx, store.DefaultTenant, "calendar")
	if err != nil {
		t.Fatal(err)
	}
	const redirect = "https://hub.example.test/connections/callback"
	req, err := v.AuthCodeURL(cal, redirect, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := prov.Authorize(ctx, req.URL)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := v.CompleteAuth(ctx, m, cal, vault.Owner{Kind: store.OwnerUser, ID: alice.ID}, code, req.Verifier, redirect, req.Scopes...)
	if err != nil {
		t.Fatal(err)
	}
	calCred, err := v.Credential(ctx, m, cc, false)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{aliceKey, orgKey, calCred.AccessToken, prov.ClientSecret()}
	noSecret := func(t *testing.T, outs ...string) {
		t.Helper()
		for _, o := range outs {
			for _, s := range secrets {
				if strings.Contains(o, s) {
					t.Errorf("output carries a credential:\n%s", o)
				}
			}
			if strings.Contains(o, "v1.") {
				t.Errorf("output carries ciphertext:\n%s", o)
			}
		}
	}

	t.Run("list", func(t *testing.T) {
		out := e.must("connections", "list")
		noSecret(t, out)
		for _, want := range []string{
			"ID ", "PROVIDER", "OWNER", "LAST_USED",
			ca.ID + "  weather   user:alice", co.ID + "  weather   tenant", cc.ID + "  calendar  user:alice",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("list lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("filters", func(t *testing.T) {
		for _, tt := range []struct {
			args       []string
			want, not  []string
			wantStatus int
		}{
			{args: []string{"--provider", "calendar"}, want: []string{cc.ID}, not: []string{ca.ID, co.ID}},
			{args: []string{"--user", "alice"}, want: []string{ca.ID, cc.ID}, not: []string{co.ID}},
			{args: []string{"--tenant"}, want: []string{co.ID}, not: []string{ca.ID, cc.ID}},
			{args: []string{"--status", "needs_reauth"}, not: []string{ca.ID, co.ID, cc.ID}},
			{args: []string{"--provider", "nope"}, wantStatus: exitError},
			{args: []string{"--user", "bob"}, wantStatus: exitError},
			{args: []string{"--status", "sleeping"}, wantStatus: exitError},
			{args: []string{"--user", "alice", "--tenant"}, wantStatus: exitUsage},
		} {
			t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
				code, out, errOut := e.run("", append([]string{"connections", "list"}, tt.args...)...)
				if code != tt.wantStatus {
					t.Fatalf("exit %d, want %d: %s", code, tt.wantStatus, errOut)
				}
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("lacks %s:\n%s", w, out)
					}
				}
				for _, n := range tt.not {
					if strings.Contains(out, n) {
						t.Errorf("shows %s:\n%s", n, out)
					}
				}
			})
		}
	})
	t.Run("json", func(t *testing.T) {
		out := e.must("connections", "list", "--json")
		noSecret(t, out)
		var got []map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("%d connections in JSON", len(got))
		}
		for _, c := range got {
			for _, k := range []string{"secret", "data_key", "access_token", "refresh_token", "api_key"} {
				if _, ok := c[k]; ok {
					t.Errorf("JSON has %q", k)
				}
			}
		}
	})
	t.Run("revoke", func(t *testing.T) {
		out := e.must("connections", "revoke", cc.ID)
		noSecret(t, out)
		if !strings.Contains(out, "connection "+cc.ID+" (calendar) revoked") {
			t.Errorf("revoke said %q", out)
		}
		if prov.Counts().Revocations == 0 {
			t.Errorf("the provider's revocation endpoint was not called")
		}
		if _, err := st.GetConnection(ctx, store.DefaultTenant, cc.ID); err == nil {
			t.Error("the connection is still stored")
		}
		if auditCount(t, st, audit.ConnectionRevoked) != 1 {
			t.Error("no connection.revoked event")
		}
		code, _, errOut := e.run("", "connections", "revoke", cc.ID)
		if code != exitError || !strings.Contains(errOut, "no connection "+cc.ID) {
			t.Errorf("second revoke: exit %d, %s", code, errOut)
		}
	})
	t.Run("deleting the provider disconnects its connections", func(t *testing.T) {
		out := e.must("providers", "delete", "weather")
		if !strings.Contains(out, "(2 connections disconnected)") {
			t.Errorf("delete said %q", out)
		}
		cs, err := st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant})
		if err != nil || len(cs) != 0 {
			t.Errorf("connections left: %d, %v", len(cs), err)
		}
		if n := auditCount(t, st, audit.ConnectionRevoked); n != 3 {
			t.Errorf("%d connection.revoked events, want 3", n)
		}
	})
}

func TestProviderDiscovery(t *testing.T) {
	var srv *httptest.Server
	docs := map[string]func() (int, string, string){}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		status, ctype, body := h()
		w.Header().Set("Content-Type", ctype)
		if status == http.StatusFound {
			w.Header().Set("Location", srv.URL+"/elsewhere")
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	meta := func(issuer string, extra string) func() (int, string, string) {
		return func() (int, string, string) {
			return 200, "application/json; charset=utf-8", `{"issuer":"` + issuer + `","authorization_endpoint":"` + issuer + `/auth","token_endpoint":"` + issuer + `/token","revocation_endpoint":"` + issuer + `/revoke"` + extra + `}`
		}
	}
	docs["/oidc/.well-known/openid-configuration"] = meta(srv.URL+"/oidc", `,"code_challenge_methods_supported":["plain"],"token_endpoint_auth_methods_supported":["client_secret_post"]`)
	docs["/.well-known/oauth-authorization-server/as"] = meta(srv.URL+"/as", "")
	docs["/liar/.well-known/openid-configuration"] = meta("https://evil.example", "")
	docs["/moved/.well-known/openid-configuration"] = func() (int, string, string) { return http.StatusFound, "text/plain", "" }
	docs["/html/.well-known/openid-configuration"] = func() (int, string, string) { return 200, "text/html", "<html>" }
	docs["/plain/.well-known/openid-configuration"] = func() (int, string, string) {
		iss := srv.URL + "/plain"
		return 200, "application/json", `{"issuer":"` + iss + `","authorization_endpoint":"http://accounts.example.test/auth","token_endpoint":"` + iss + `/token"}`
	}

	tests := []struct {
		name    string
		issuer  string
		extra   []string
		wantErr string
		want    map[string]any
		stderr  string
	}{
		{
			name: "OpenID Connect discovery", issuer: srv.URL + "/oidc",
			want: map[string]any{"issuer": srv.URL + "/oidc", "authorization_endpoint": srv.URL + "/oidc/auth", "token_endpoint": srv.URL + "/oidc/token",
				"revocation_endpoint": srv.URL + "/oidc/revoke", "token_auth_method": "client_secret_post"},
			stderr: "does not list S256",
		},
		{
			name: "RFC 8414 path insertion", issuer: srv.URL + "/as",
			want: map[string]any{"token_endpoint": srv.URL + "/as/token", "token_auth_method": "client_secret_basic"},
		},
		{
			name: "flags win over discovery", issuer: srv.URL + "/as", extra: []string{"--token-endpoint", "https://tokens.example.test/t"},
			want: map[string]any{"authorization_endpoint": srv.URL + "/as/auth", "token_endpoint": "https://tokens.example.test/t"},
		},
		{name: "issuer mismatch", issuer: srv.URL + "/liar", wantErr: `names the issuer "https://evil.example"`},
		{name: "redirect not followed", issuer: srv.URL + "/moved", wantErr: "redirects are not followed"},
		{name: "not JSON", issuer: srv.URL + "/html", wantErr: `content type "text/html"`},
		{name: "nothing there", issuer: srv.URL + "/none", wantErr: "no authorization server metadata"},
		{name: "discovered endpoint over http", issuer: srv.URL + "/plain", wantErr: `has an unusable authorization_endpoint: "http://accounts.example.test/auth" must use https`},
		{name: "query in issuer", issuer: srv.URL + "/as?x=1", wantErr: "must not have a query"},
		{name: "http off loopback", issuer: "http://accounts.example.test", wantErr: "must use https"},
	}
	e := newVaultEnv(t)
	e.must("migrate")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("p%d", i)
			args := append([]string{"providers", "add", id, "--kind", "oauth2", "--issuer", tt.issuer, "--client-id", "hub",
				"--client-secret-stdin", "--json"}, tt.extra...)
			code, out, errOut := e.run("s3cret-value\n", args...)
			if tt.wantErr != "" {
				if code != exitError || !strings.Contains(errOut, tt.wantErr) {
					t.Fatalf("exit %d, stderr %q; want an error with %q", code, errOut, tt.wantErr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if tt.stderr != "" && !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.stderr)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			if strings.Contains(out+errOut, "s3cret-value") {
				t.Error("the secret was printed")
			}
		})
	}
}

func TestPreviousKEKs(t *testing.T) {
	k1, _ := keyring.GenerateKEK(nil)
	k2, _ := keyring.GenerateKEK(nil)
	k3, _ := keyring.GenerateKEK(nil)
	dir := t.TempDir()
	file := filepath.Join(dir, "old.key")
	if err := os.WriteFile(file, []byte("# old\n"+keyring.FormatKEK(k3)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, []byte(keyring.FormatKEK(k3)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		kc      config.KEKConfig
		want    []string
		wantErr string
	}{
		{name: "none", kc: config.KEKConfig{}},
		{name: "comma separated", kc: config.KEKConfig{Previous: keyring.FormatKEK(k1) + ", " + keyring.FormatKEK(k2)}, want: []string{k1.ID, k2.ID}},
		{name: "lines with a comment", kc: config.KEKConfig{Previous: "# rotated 2026\n" + keyring.FormatKEK(k1) + "\n\n" + keyring.FormatKEK(k2) + "\n"}, want: []string{k1.ID, k2.ID}},
		{name: "value and files", kc: config.KEKConfig{Previous: keyring.FormatKEK(k1), PreviousFiles: []string{file}}, want: []string{k1.ID, k3.ID}},
		{name: "bad key", kc: config.KEKConfig{Previous: keyring.FormatKEK(k1) + ",kek-x:c2hvcnQ="}, wantErr: "kek.previous, key 2: keyring: KEK key must be 32 bytes"},
		{name: "missing file", kc: config.KEKConfig{PreviousFiles: []string{filepath.Join(dir, "nope")}}, wantErr: "file does not exist"},
		{name: "file readable by others", kc: config.KEKConfig{PreviousFiles: []string{open}}, wantErr: "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := previousKEKs(tt.kc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "c2hvcnQ") {
					t.Errorf("the error repeats key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range got {
				ids = append(ids, k.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Errorf("ids %v, want %v", ids, tt.want)
			}
		})
	}
}

// TestServeRefreshesConnections: serve runs the vault's background
// refresher, which refreshes a connection whose access token expires
// within the margin right after the start.
func TestServeRefreshesConnections(t *testing.T) {
	e := newVaultEnv(t)
	ctx := context.Background()
	// Access tokens that expire within the vault's refresh margin.
	prov := vaulttest.New(t, vaulttest.Options{AccessTokenTTL: vault.DefaultRefreshMargin / 2})
	e.must("migrate")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(prov.ClientSecret()), 0o600); err != nil {
		t.Fatal(err)
	}
	e.must("providers", "add", "calendar", "--kind", "oauth2", "--authorization-endpoint", prov.AuthorizationEndpoint(),
		"--token-endpoint", prov.TokenEndpoint(), "--client-id", prov.ClientID(), "--client-secret-file", secretFile)
	st, v := e.open()
	cal, err := st.GetProvider(ctx, store.DefaultTenant, "calendar")
	if err != nil {
		t.Fatal(err)
	}
	const redirect = "https://hub.example.test/connections/callback"
	req, err := v.AuthCodeURL(cal, redirect, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := prov.Authorize(ctx, req.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CompleteAuth(ctx, audit.Meta{TenantID: store.DefaultTenant}, cal, vault.Owner{Kind: store.OwnerUser, ID: "u1"}, code, req.Verifier, redirect, req.Scopes...); err != nil {
		t.Fatal(err)
	}
	if n := prov.Counts().Refreshes; n != 0 {
		t.Fatalf("%d refreshes before serve", n)
	}
	h := startServe(t, map[string]string{"AGENTID_DATA_DIR": e.env["AGENTID_DATA_DIR"], "AGENTID_LISTEN": "127.0.0.1:0", "AGENTID_ISSUER": "https://auth.example.test"})
	deadline := time.Now().Add(10 * time.Second)
	for prov.Counts().Refreshes == 0 {
		if time.Now().After(deadline) {
			h.stop()
			t.Fatalf("serve did not refresh the due connection\nstderr:\n%s", h.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.ConnectionRefreshed, Limit: 10})
	if err != nil || len(evs) == 0 || evs[0].Details["trigger"] != "background" {
		t.Fatalf("connection.refreshed events %+v, %v", evs, err)
	}
}

// cancelOnWrite cancels when what is written holds a progress line with
// re-wrapped connections: an operator's Ctrl-C halfway.
type cancelOnWrite struct {
	buf    syncBuffer
	cancel context.CancelFunc
}

var someConnections = regexp.MustCompile(`(?m)^re-wrapped .* [1-9][0-9]*/[0-9]+ connections$`)

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	if someConnections.MatchString(w.buf.String()) {
		w.cancel()
	}
	return n, err
}

// TestKEKRotateInterrupted: Ctrl-C halfway exits non-zero, says how far
// it got and how to finish; the next run finishes.
func TestKEKRotateInterrupted(t *testing.T) {
	e := newVaultEnv(t)
	ctx := context.Background()
	e.must("migrate")
	e.must("providers", "add", "weather", "--kind", "api_key", "--header", "X-API-Key")
	st, v := e.open()
	p, err := st.GetProvider(ctx, store.DefaultTenant, "weather")
	if err != nil {
		t.Fatal(err)
	}
	const n = 450
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				if _, err := v.SaveAPIKey(ctx, audit.Meta{TenantID: store.DefaultTenant}, p, vault.Owner{Kind: store.OwnerUser, ID: "u" + strconv.Itoa(i)}, "", "wx_"+strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	dir := t.TempDir()
	newKey := filepath.Join(dir, "new.key")
	e.must("kek", "generate", "--out", newKey)
	e.env["AGENTID_KEK_FILE"] = newKey
	oldKEK, err := keyring.ReadKEKFile(filepath.Join(e.env["AGENTID_DATA_DIR"], "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	e.env["AGENTID_KEK_PREVIOUS"] = keyring.FormatKEK(oldKEK)

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &cancelOnWrite{cancel: cancel}
	var errOut bytes.Buffer
	code := run(rctx, []string{"kek", "rotate"}, strings.NewReader(""), out, &errOut, e.lookup)
	if code != exitError {
		t.Fatalf("interrupted rotate: exit %d, want %d\n%s%s", code, exitError, out.buf.String(), errOut.String())
	}
	if !regexp.MustCompile(`interrupted after re-wrapping \d+ signing keys, \d+ provider secrets and [1-9]\d* connections; run 'agentid kek rotate' again to finish`).MatchString(errOut.String()) {
		t.Errorf("stderr %q", errOut.String())
	}
	if strings.Contains(errOut.String()+out.buf.String(), oldKEK.ID+":") {
		t.Error("the output carries key material")
	}
	done := e.must("kek", "rotate")
	if !strings.Contains(done, "done: everything is under KEK") {
		t.Errorf("second run: %s", done)
	}
	status := e.must("kek", "status", "--json")
	var counts []kekCount
	if err := json.Unmarshal([]byte(status), &counts); err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.State != kekCurrent && c.total() > 0 {
			t.Errorf("after the second run %s still wraps %+v", c.KEK, c)
		}
		if c.State == kekCurrent && c.Connections != n {
			t.Errorf("current KEK wraps %d connections, want %d", c.Connections, n)
		}
	}
}

// FuzzParseProviderMetadata: whatever a provider's metadata document
// holds, a document that is accepted names the issuer asked for and
// endpoints the vault may call.
func FuzzParseProviderMetadata(f *testing.F) {
	const iss = "https://accounts.example.test"
	f.Add([]byte(`{"issuer":"https://accounts.example.test","authorization_endpoint":"https://accounts.example.test/a","token_endpoint":"https://accounts.example.test/t","revocation_endpoint":"https://accounts.example.test/r"}`))
	f.Add([]byte(`{"issuer":"https://accounts.example.test","authorization_endpoint":"http://127.0.0.1:9/a","token_endpoint":"https://x/t#f"}`))
	f.Add([]byte(`{"issuer":"https://evil.example"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		md, err := parseProviderMetadata(iss, body)
		if err != nil {
			if md != nil {
				t.Fatal("metadata with an error")
			}
			return
		}
		if md.Issuer != iss {
			t.Fatalf("accepted the issuer %q", md.Issuer)
		}
		for _, u := range []string{md.AuthorizationEndpoint, md.TokenEndpoint} {
			if checkEndpoint("x", u) != nil {
				t.Fatalf("accepted the endpoint %q", u)
			}
		}
		if md.RevocationEndpoint != "" && checkEndpoint("x", md.RevocationEndpoint) != nil {
			t.Fatalf("accepted the revocation endpoint %q", md.RevocationEndpoint)
		}
	})
}

// TestConnectionsAddKeyAndRotate: an admin stores a person's and the
// tenant's API key from a file, an environment variable or stdin (never a
// flag value), and rotates one: the new key is handed out, the old one only
// on a forced retrieval until the overlap ends. No key reaches the output.
func TestConnectionsAddKeyAndRotate(t *testing.T) {
	e := newVaultEnv(t)
	ctx := context.Background()
	e.must("migrate")
	e.must("providers", "add", "weather", "--kind", "api_key", "--header", "X-API-Key")
	e.must("providers", "add", "calendar", "--kind", "oauth2", "--authorization-endpoint", "https://cal.example.test/authorize",
		"--token-endpoint", "https://cal.example.test/token", "--client-id", "hub", "--scope", "calendar.read")
	if code, out, errOut := e.run("correct-horse-battery-staple\n", "users", "add", "alice", "--password-stdin"); code != 0 {
		t.Fatalf("users add: %s%s", out, errOut)
	}
	const aliceKey, orgKey, newKey = "wx_alice_key_0123456789", "wx_org_key_9876543210", "wx_new_key_5555555555"
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(aliceKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.env["ORG_KEY"] = orgKey
	var outs []string
	out := e.must("connections", "add-key", "weather", "--user", "alice", "--key-file", keyFile, "--label", "alice's key")
	outs = append(outs, out)
	if !strings.Contains(out, "stored") || !strings.Contains(out, "user:alice") {
		t.Errorf("add-key said %q", out)
	}
	outs = append(outs, e.must("connections", "--json", "add-key", "weather", "--tenant", "--key-env", "ORG_KEY"))

	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no owner", "", []string{"connections", "add-key", "weather", "--key-env", "ORG_KEY"}, "exactly one of --user and --tenant"},
		{"both owners", "", []string{"connections", "add-key", "weather", "--user", "alice", "--tenant", "--key-env", "ORG_KEY"}, "exactly one of --user and --tenant"},
		{"no key", "", []string{"connections", "add-key", "weather", "--tenant"}, "--key-file, --key-env or --key-stdin"},
		{"two key sources", "", []string{"connections", "add-key", "weather", "--tenant", "--key-env", "ORG_KEY", "--key-file", keyFile}, "at most one of"},
		{"empty stdin", "\n", []string{"connections", "add-key", "weather", "--tenant", "--key-stdin"}, "stdin holds no secret"},
		{"unset variable", "", []string{"connections", "add-key", "weather", "--tenant", "--key-env", "NOPE"}, "NOPE is not set"},
		{"oauth2 provider", "", []string{"connections", "add-key", "calendar", "--tenant", "--key-env", "ORG_KEY"}, "api_key providers"},
		{"unknown provider", "", []string{"connections", "add-key", "nope", "--tenant", "--key-env", "ORG_KEY"}, "nope"},
		{"unknown user", "", []string{"connections", "add-key", "weather", "--user", "bob", "--key-env", "ORG_KEY"}, "bob"},
		{"rotate unknown", "", []string{"connections", "rotate", "conn_nope", "--key-env", "ORG_KEY"}, "no connection conn_nope"},
		{"negative overlap", "", []string{"connections", "rotate", "conn_nope", "--key-env", "ORG_KEY", "--overlap", "-1h"}, "--overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.run(tc.stdin, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want failure naming %q", code, errOut, tc.want)
			}
			outs = append(outs, out, errOut)
		})
	}

	st, v := e.open()
	alice, err := st.GetUserByUsername(ctx, store.DefaultTenant, "alice")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant, OwnerKind: store.OwnerUser, OwnerID: alice.ID})
	if err != nil || len(mine) != 1 {
		t.Fatalf("alice's connections: %d, %v", len(mine), err)
	}
	org, err := st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant, OwnerKind: store.OwnerTenant})
	if err != nil || len(org) != 1 {
		t.Fatalf("tenant connections: %d, %v", len(org), err)
	}
	m := audit.Meta{TenantID: store.DefaultTenant, Time: time.Now()}
	for cn, want := range map[*store.Connection]string{mine[0]: aliceKey, org[0]: orgKey} {
		cred, err := v.Credential(ctx, m, cn, false)
		if err != nil || cred.AccessToken != want {
			t.Errorf("connection %s opens to a different key (%v)", cn.ID, err)
		}
	}

	e.env["NEW_KEY"] = newKey
	out = e.must("connections", "rotate", mine[0].ID, "--key-env", "NEW_KEY", "--overlap", "2h")
	outs = append(outs, out)
	if !strings.Contains(out, "new key stored") {
		t.Errorf("rotate said %q", out)
	}
	rotated, err := st.GetConnection(ctx, store.DefaultTenant, mine[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(rotated.PreviousUntil); d < 119*time.Minute || d > 2*time.Hour {
		t.Errorf("old key kept until %s, want about 2h from now", rotated.PreviousUntil)
	}
	if cred, err := v.Credential(ctx, m, rotated, false); err != nil || cred.AccessToken != newKey {
		t.Errorf("after rotation the connection hands out a different key (%v)", err)
	}
	if cred, err := v.Credential(ctx, m, rotated, true); err != nil || cred.AccessToken != aliceKey {
		t.Errorf("within the overlap a forced retrieval does not fall back to the old key (%v)", err)
	}
	if n := auditCount(t, st, audit.ConnectionCreated); n != 2 {
		t.Errorf("%d connection.created events, want 2", n)
	}
	if n := auditCount(t, st, audit.ConnectionRotated); n != 1 {
		t.Errorf("%d connection.rotated events, want 1", n)
	}
	evs, err := st.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		outs = append(outs, fmt.Sprintf("%+v", ev))
	}
	for _, o := range outs {
		for _, k := range []string{aliceKey, orgKey, newKey} {
			if strings.Contains(o, k) {
				t.Errorf("a key leaked into output or audit: %s", o)
			}
		}
	}
}
