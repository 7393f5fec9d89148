package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

	// A subject is a person only at its issuer (OpenID Connect Core §5.7):
	// the users a connector provisioned would pass to whoever holds the
	// same subjects at another provider.
	moved := cfgs[0]
	moved.Issuer = "https://idp.other.example"
	if err := syncConnectors(ctx, st, []config.ConnectorConfig{moved}, log); err == nil {
		t.Fatal("a connector's issuer changed under its users")
	}
	if got, _ := st.GetConnector(ctx, "corp"); got.Issuer != "https://idp.corp.example" {
		t.Fatalf("corp's issuer became %q", got.Issuer)
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

// samlMetadataFile writes an identity provider's metadata (a fresh
// self-signed signing certificate) and returns its path.
func samlMetadataFile(t *testing.T, entityID string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + entityID + `">
<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
<KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>` +
		base64.StdEncoding.EncodeToString(der) + `</X509Certificate></X509Data></KeyInfo></KeyDescriptor>
<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.corp.example/sso"/>
</IDPSSODescriptor></EntityDescriptor>`
	p := filepath.Join(t.TempDir(), "idp.xml")
	if err := os.WriteFile(p, []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSAMLConnectorSettings: `connectors add --type saml` and the config
// file read the identity provider's metadata into the connector (issuer
// from its entity id) and refuse what a SAML connector cannot have.
func TestSAMLConnectorSettings(t *testing.T) {
	ctx := context.Background()
	md := samlMetadataFile(t, "https://idp.corp.example/saml")
	cfg := &config.Config{}
	now := time.Now()
	conn, err := buildConnector("corp-saml", &connectorFlags{typ: store.ConnectorSAML, tenant: store.DefaultTenant,
		metadataFile: md, groups: "memberOf"}, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Type != store.ConnectorSAML || conn.Issuer != "https://idp.corp.example/saml" || !strings.Contains(conn.SAMLMetadata, "X509Certificate") ||
		conn.Claims.Groups != "memberOf" || conn.Check() != nil {
		t.Fatalf("connector %+v (%v)", conn, conn.Check())
	}
	if got := registerAt("https://hub.example", conn); !strings.Contains(got, "https://hub.example/login/saml/corp-saml/metadata") {
		t.Fatalf("registerAt: %s", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.xml")
	if err := os.WriteFile(bad, []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]connectorFlags{
		"no metadata":          {typ: store.ConnectorSAML, tenant: store.DefaultTenant},
		"metadata without IdP": {typ: store.ConnectorSAML, tenant: store.DefaultTenant, metadataFile: bad},
		"other entity id":      {typ: store.ConnectorSAML, tenant: store.DefaultTenant, metadataFile: md, issuer: "https://other.example"},
		"secret":               {typ: store.ConnectorSAML, tenant: store.DefaultTenant, metadataFile: md, secretFile: md},
		"scopes":               {typ: store.ConnectorSAML, tenant: store.DefaultTenant, metadataFile: md, scopes: []string{"groups"}},
		"metadata on oidc":     {typ: store.ConnectorOIDC, tenant: store.DefaultTenant, metadataFile: md, issuer: "https://x.example", clientID: "c"},
		"unknown type":         {typ: "ldap", tenant: store.DefaultTenant},
	} {
		if _, err := buildConnector("x", &f, cfg, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cfgs := []config.ConnectorConfig{{ID: "corp-saml", Type: "saml", IdPMetadataFile: md, EmailDomains: []string{"corp.example"}}}
	if err := syncConnectors(ctx, st, cfgs, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetConnector(ctx, "corp-saml")
	if err != nil || got.Issuer != "https://idp.corp.example/saml" || got.SAMLMetadata == "" {
		t.Fatalf("synced %+v, %v", got, err)
	}
	cfgs[0].IdPMetadataFile = bad
	if err := syncConnectors(ctx, st, cfgs, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a broken metadata file did not fail the start")
	}
}
