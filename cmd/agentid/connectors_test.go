package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/connectors/connectorstest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// TestSyncConnectors: the config file's connectors are created at start,
// left alone when unchanged (no event), updated when changed (settings,
// or disabled/enabled when only that changed), and may not move tenant;
// connectors the file does not name stay.
func TestSyncConnectors(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	events := func(typ string) []*store.AuditEvent {
		t.Helper()
		evs, err := st.ListAudit(ctx, store.AuditFilter{Type: typ, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	cli := &store.Connector{TenantID: store.DefaultTenant, ID: "from-cli", Type: store.ConnectorOIDC, Issuer: "https://cli.example", ClientID: "c"}
	if err := st.CreateConnector(ctx, cli, nil); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "corp.secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs := []config.ConnectorConfig{{ID: "corp", Name: "Corp", Issuer: "https://idp.corp.example", ClientID: "agentid",
		ClientSecretFile: secret, EmailDomains: []string{"corp.example", "a.corp.example"},
		Claims: config.ConnectorClaims{Groups: "groups"}}}
	for range 2 {
		if err := syncConnectors(ctx, st, cfgs, log); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(events(audit.ConnectorCreated)); n != 1 {
		t.Fatalf("%d connector.created events after two starts", n)
	}
	if n := len(events(audit.ConnectorUpdated)); n != 0 {
		t.Fatalf("%d connector.updated events for an unchanged file", n)
	}
	got, err := st.GetConnector(ctx, "corp")
	if err != nil || got.Claims.Groups != "groups" || got.ClientSecretFile != secret || len(got.EmailDomains) != 2 {
		t.Fatalf("corp = %+v, %v", got, err)
	}

	cfgs[0].Disabled = true
	if err := syncConnectors(ctx, st, cfgs, log); err != nil {
		t.Fatal(err)
	}
	cfgs[0].Claims.Roles = "roles"
	if err := syncConnectors(ctx, st, cfgs, log); err != nil {
		t.Fatal(err)
	}
	evs := events(audit.ConnectorUpdated)
	if len(evs) != 2 || evs[1].Details["change"] != audit.ChangeDisabled || evs[0].Details["change"] != "settings" {
		t.Fatalf("connector.updated events %+v", evs)
	}
	if got, _ := st.GetConnector(ctx, "corp"); !got.Disabled || got.Claims.Roles != "roles" {
		t.Fatalf("corp after the changes %+v", got)
	}

	missing := cfgs[0]
	missing.ClientSecretFile = filepath.Join(t.TempDir(), "missing")
	if err := syncConnectors(ctx, st, []config.ConnectorConfig{missing}, log); err == nil {
		t.Fatal("a missing client secret file passed the start")
	}

	cfgs[0].Tenant = "acme"
	if err := syncConnectors(ctx, st, cfgs, log); err == nil {
		t.Fatal("a connector moved tenant")
	}
	if _, err := st.GetConnector(ctx, "from-cli"); err != nil {
		t.Fatalf("the CLI's connector: %v", err)
	}
}

// TestServeConnectors: serve adds the config file's connectors, offers
// them on the login page (and only them with login.local false) and
// starts a sign-in at the provider with PKCE, a nonce and the redirect
// URI under the hub's issuer.
func TestServeConnectors(t *testing.T) {
	idp := connectorstest.New(t, "agentid-hub", "idp-secret")
	dir := t.TempDir()
	secret := filepath.Join(dir, "corp.secret")
	if err := os.WriteFile(secret, []byte(idp.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agentid.yaml")
	yaml := "issuer: http://127.0.0.1:8080\nlisten: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "data") + `
login:
  local: false
  allow_loopback_connectors: true
connectors:
  - id: corp
    name: Corp SSO
    issuer: ` + idp.URL + `
    client_id: agentid-hub
    client_secret_file: ` + secret + `
    email_domains: [corp.example]
    claims: {groups: groups}
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startServe(t, nil, "--config", cfg)
	resp, body := get(t, h.url+"/login")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Sign in with <bdi>Corp SSO</bdi>") || strings.Contains(string(body), `id="password"`) {
		t.Fatalf("login page %d:\n%s", resp.StatusCode, body)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(h.url + "/login/connectors/corp?return_to=/account")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), idp.URL+"/authorize?") {
		t.Fatalf("start = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("redirect_uri") != "http://127.0.0.1:8080/login/connectors/corp/callback" || q.Get("code_challenge_method") != "S256" ||
		q.Get("nonce") == "" || q.Get("client_id") != "agentid-hub" {
		t.Fatalf("authorization request %v", q)
	}
	if len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly || resp.Cookies()[0].Path != "/login/connectors/" {
		t.Fatalf("attempt cookie %+v", resp.Cookies())
	}
}
