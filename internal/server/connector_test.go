package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/connectors/connectorstest"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// connectorHub is a hub with a connector "corp" (tenant default, email
// domain corp.example, groups from the "groups" claim) to a test provider.
type connectorHub struct {
	*policyHub
	idp  *connectorstest.Provider
	corp *store.Connector
}

func newConnectorHub(t *testing.T, opts ...servertest.Option) *connectorHub {
	t.Helper()
	st := openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db"))
	clk := &testClock{}
	e, err := policy.New(context.Background(), policy.Options{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	reg := connectors.New(connectors.Options{AllowHTTPLoopback: true, Now: clk.Now})
	all := append([]servertest.Option{func(c *server.Config) { c.Policy, c.Now, c.Connectors = e, clk.Now, reg }}, opts...)
	h := &connectorHub{policyHub: &policyHub{hub: &hub{servertest.NewOn(t, st, all...)}, engine: e, clock: clk}}
	h.idp = connectorstest.New(t, "agentid-hub", "idp-secret")
	h.corp = h.addConnector(t, "corp", store.DefaultTenant, "Corp SSO", h.idp, "corp.example")
	h.idp.SignIn("sub-carol", map[string]any{"preferred_username": "carol", "email": "carol@corp.example",
		"email_verified": true, "name": "Carol Example", "groups": []any{"eng", "eng-oncall"}, "dept": "R&D"})
	return h
}

// oncallPolicy forbids notes.write to anyone outside the eng-oncall group,
// the policy the connector tests decide by.
func (h *connectorHub) oncallPolicy(t *testing.T) {
	t.Helper()
	applyPolicy(t, h.Store, h.engine, `@id("write-needs-oncall")
forbid (principal, action == Action::"grant", resource)
when { resource.name == "notes.write" && !(context has user && context.user.groups.contains("eng-oncall")) };`)
	h.settle()
}

// browserAgent registers an agent that takes codes at cb, for the
// Chromium sign-in tests.
func (h *connectorHub) browserAgent(id, name string, cb *callback) *oauth2.Config {
	secret := h.AddClient(&store.Client{ID: id, Name: name, RedirectURIs: []string{cb.url}, GrantTypes: []string{"authorization_code"}})
	return &oauth2.Config{
		ClientID: id, ClientSecret: secret, RedirectURL: cb.url, Scopes: []string{"notes.read", "notes.write"},
		Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"},
	}
}

// addConnector stores a connector to idp with its secret in a file.
func (h *connectorHub) addConnector(t *testing.T, id, tenant, name string, idp *connectorstest.Provider, domains ...string) *store.Connector {
	t.Helper()
	secret := filepath.Join(t.TempDir(), id+".secret")
	if err := os.WriteFile(secret, []byte(idp.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &store.Connector{TenantID: tenant, ID: id, Type: store.ConnectorOIDC, Name: name, Issuer: idp.URL,
		ClientID: idp.ClientID, ClientSecretFile: secret, EmailDomains: domains,
		Claims: store.ClaimMapping{Groups: "groups", Attributes: map[string]string{"department": "dept"}}}
	if err := h.Store.CreateConnector(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// browser follows redirects on the hub and the providers, and stops at
// the agent's redirect URI.
func (h *connectorHub) browser(idps ...*connectorstest.Provider) *servertest.Browser {
	b := h.Browser()
	b.Client().CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), h.URL) || strings.HasPrefix(req.URL.String(), h.idp.URL) {
			return nil
		}
		for _, p := range idps {
			if strings.HasPrefix(req.URL.String(), p.URL) {
				return nil
			}
		}
		return http.ErrUseLastResponse
	}
	return b
}

var connectorLinkRe = regexp.MustCompile(`id="connector-([a-z0-9-]+)" href="([^"]*)"`)

// via follows the login page's button for connector id.
func (h *connectorHub) via(t *testing.T, b *servertest.Browser, p *servertest.Page, id string) *servertest.Page {
	t.Helper()
	for _, m := range connectorLinkRe.FindAllStringSubmatch(p.Body, -1) {
		if m[1] == id {
			return b.Get(h.URL + html.UnescapeString(m[2]))
		}
	}
	t.Fatalf("login page (%d) offers no connector %q:\n%s", p.Status, id, p.Body)
	return nil
}

func (h *connectorHub) user(t *testing.T, tenant, username string) *store.User {
	t.Helper()
	u, err := h.Store.GetUserByUsername(context.Background(), tenant, username)
	if err != nil {
		t.Fatalf("user %s/%s: %v", tenant, username, err)
	}
	return u
}

// TestConnectorSignIn: through the login page's button the person signs
// in at the provider and comes back to the agent's authorization; the
// first sign-in provisions them in the connector's tenant, the consent
// page names the connector, the agent's scopes follow a policy on a
// group claim, and when the provider drops the group the next sign-in
// takes it from the user and the policy answers differently.
func TestConnectorSignIn(t *testing.T) {
	h := newConnectorHub(t)
	h.oncallPolicy(t)
	secret := h.AddClient(&store.Client{ID: "agent-1", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	conf := h.oauth2Config("agent-1", secret, "openid", "notes.read", "notes.write")

	b := h.browser()
	f := &flow{h: h.hub, b: b, conf: conf, verifier: oauth2.GenerateVerifier()}
	login := b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("resource", h.Resource)))
	if !strings.Contains(login.Body, "Sign in with <bdi>Corp SSO</bdi>") || !strings.Contains(login.Body, `id="password"`) {
		t.Fatalf("login page lacks the connector button or the password form:\n%s", login.Body)
	}
	f.page = h.via(t, b, login, "corp")
	if !strings.Contains(f.page.Body, `action="/authorize/decision"`) {
		t.Fatalf("after the provider: %d %s\n%s", f.page.Status, f.page.URL, f.page.Body)
	}
	if q := h.idp.LastAuthorize(); q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" ||
		q.Get("redirect_uri") != h.URL+"/login/connectors/corp/callback" {
		t.Fatalf("authorization request to the provider: %v", q)
	}
	if !strings.Contains(f.page.Body, `id="via">through <bdi>Corp SSO</bdi>`) {
		t.Fatalf("consent page does not name the connector:\n%s", f.page.Body)
	}
	if got := servertest.Offered(f.page.Body); !slices.Equal(got, []string{"notes.read", "notes.write"}) {
		t.Fatalf("offered %v with eng-oncall", got)
	}
	carol := h.user(t, store.DefaultTenant, "carol")
	if carol.ConnectorID != "corp" || carol.ExternalSubject != "sub-carol" || carol.Email != "carol@corp.example" ||
		!carol.EmailVerified || carol.Name != "Carol Example" || !slices.Equal(carol.Groups, []string{"eng", "eng-oncall"}) || carol.PasswordHash != "" || carol.Attributes["department"] != "R&D" {
		t.Fatalf("provisioned user %+v", carol)
	}
	tok := f.finish(f.decide("allow", []string{"notes.read", "notes.write"}, ""))
	if tok.Extra("scope") != "openid notes.read notes.write" {
		t.Fatalf("token scope = %v", tok.Extra("scope"))
	}
	first := tok
	if sub := h.claims(tok.AccessToken)["sub"]; sub != carol.ID {
		t.Fatalf("token sub = %v, want %s", sub, carol.ID)
	}
	// The ID token names the person; it claims no password sign-in, which
	// happened (or not) at the provider.
	idt, _ := tok.Extra("id_token").(string)
	parts := strings.Split(idt, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q", idt)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var idClaims map[string]any
	if err := json.Unmarshal(payload, &idClaims); err != nil || idClaims["sub"] != carol.ID || idClaims["amr"] != nil || idClaims["acr"] != nil {
		t.Fatalf("ID token claims %v (%v)", idClaims, err)
	}
	evs := h.auditEvents(audit.UserSignedIn)
	if len(evs) != 1 || evs[0].UserID != carol.ID || evs[0].Details["connector"] != "corp" || evs[0].Details["provisioned"] != "true" {
		t.Fatalf("user.signed_in events %+v", evs)
	}
	if evs := h.auditEvents(audit.UserCreated); len(evs) != 1 || evs[0].UserID != carol.ID {
		t.Fatalf("user.created events %+v", evs)
	}

	// The account page names the connector too.
	if p := b.Get(h.URL + "/account"); !strings.Contains(p.Body, `id="via">through <bdi>Corp SSO</bdi>`) {
		t.Fatalf("account page does not name the connector:\n%s", p.Body)
	}

	// Upstream, carol leaves eng-oncall and changes her name; she signs in
	// again (prompt=login).
	h.idp.SignIn("sub-carol", map[string]any{"preferred_username": "carol", "email": "carol@corp.example",
		"name": "Carol Q. Example", "groups": []any{"eng"}})
	f = &flow{h: h.hub, b: b, conf: conf, verifier: oauth2.GenerateVerifier()}
	login = b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("resource", h.Resource),
		oauth2.SetAuthURLParam("prompt", "login consent")))
	f.page = h.via(t, b, login, "corp")
	again := h.user(t, store.DefaultTenant, "carol")
	if again.ID != carol.ID || !slices.Equal(again.Groups, []string{"eng"}) || again.Name != "Carol Q. Example" || again.EmailVerified ||
		len(again.Attributes) != 0 {
		t.Fatalf("user after the second sign-in %+v", again)
	}
	// The agent's refresh token from before is decided with the groups
	// she has now: notes.write is gone at the next refresh.
	if first.RefreshToken == "" {
		t.Fatal("the first token came without a refresh token")
	}
	if r := h.refresh(first.RefreshToken, "agent-1", secret); r.status != http.StatusOK || r.body["scope"] != "openid notes.read" {
		t.Fatalf("refresh after eng-oncall was dropped upstream: %d %v", r.status, r.body)
	}
	if got := servertest.Offered(f.page.Body); !slices.Equal(got, []string{"notes.read"}) {
		t.Fatalf("offered %v without eng-oncall", got)
	}
	tok = f.finish(f.decide("allow", []string{"notes.read"}, ""))
	if tok.Extra("scope") != "openid notes.read" {
		t.Fatalf("token scope without eng-oncall = %v", tok.Extra("scope"))
	}
	evs = h.auditEvents(audit.UserSignedIn)
	if len(evs) != 2 || evs[0].Details["provisioned"] != "false" {
		t.Fatalf("user.signed_in events after the second sign-in %+v", evs)
	}
}

// TestConnectorRouting: an address typed on the login page, or the
// login_hint of an authorization request, whose domain is a connector's
// goes to that connector with the hint passed on; other addresses do not.
func TestConnectorRouting(t *testing.T) {
	h := newConnectorHub(t)
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read")

	for _, tc := range []struct {
		name, hint string
		open       func(b *servertest.Browser) *servertest.Page
	}{
		{"typed address", "Carol@Corp.Example", func(b *servertest.Browser) *servertest.Page {
			p := b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource)))
			return b.Login(p, "Carol@Corp.Example", "")
		}},
		{"login_hint", "carol@corp.example", func(b *servertest.Browser) *servertest.Page {
			return b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource),
				oauth2.SetAuthURLParam("login_hint", "carol@corp.example")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.open(h.browser())
			if !strings.Contains(p.Body, `action="/authorize/decision"`) {
				t.Fatalf("did not sign in through corp: %d %s\n%s", p.Status, p.URL, p.Body)
			}
			if hint := h.idp.LastAuthorize().Get("login_hint"); hint != tc.hint {
				t.Fatalf("login_hint at the provider = %q, want %q", hint, tc.hint)
			}
		})
	}
	t.Run("other domain stays local", func(t *testing.T) {
		b := h.browser()
		p := b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource),
			oauth2.SetAuthURLParam("login_hint", "alice@example.org")))
		if !strings.Contains(p.Body, `id="password"`) || !strings.Contains(p.Body, `value="alice@example.org"`) {
			t.Fatalf("a hint of another domain: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		p = b.Login(p, servertest.TestUser, servertest.TestPassword)
		if !strings.Contains(p.Body, `action="/authorize/decision"`) || strings.Contains(p.Body, `id="via"`) {
			t.Fatalf("local sign-in beside a connector: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("disabled connector is not offered", func(t *testing.T) {
		c := *h.corp
		c.Disabled = true
		if err := h.Store.UpdateConnector(context.Background(), &c, nil); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := h.Store.UpdateConnector(context.Background(), h.corp, nil); err != nil {
				t.Fatal(err)
			}
		}()
		b := h.browser()
		p := b.Get(h.URL + "/login")
		if strings.Contains(p.Body, "connector-corp") {
			t.Fatalf("a disabled connector is offered:\n%s", p.Body)
		}
		if p := b.Get(h.URL + "/login/connectors/corp?return_to=/account"); p.Status != http.StatusNotFound {
			t.Fatalf("starting a disabled connector = %d", p.Status)
		}
	})
}

// TestLocalLoginOff: with login.local false the page has no password
// field and a posted password is refused without checking it; connectors
// still sign people in.
func TestLocalLoginOff(t *testing.T) {
	h := newConnectorHub(t, func(c *server.Config) { c.DisableLocalLogin = true })
	b := h.browser()
	p := b.Get(h.URL + "/login?return_to=/account")
	if strings.Contains(p.Body, `id="password"`) || !strings.Contains(p.Body, "connector-corp") || !strings.Contains(p.Body, "Work email") {
		t.Fatalf("login page with local sign-in off:\n%s", p.Body)
	}
	p = b.Login(p, servertest.TestUser, servertest.TestPassword)
	if p.Status != http.StatusUnauthorized || strings.Contains(p.Body, "Your agents") {
		t.Fatalf("a password sign-in with local sign-in off: %d\n%s", p.Status, p.Body)
	}
	if evs := h.auditEvents(audit.LoginSucceeded); len(evs) != 0 {
		t.Fatalf("login events %+v", evs)
	}
	p = b.Login(b.Get(h.URL+"/login?return_to=/account"), "carol@corp.example", "")
	if !strings.Contains(p.Body, "Your agents") {
		t.Fatalf("email routing with local sign-in off: %d %s\n%s", p.Status, p.URL, p.Body)
	}
}

// TestConnectorCallbackRefusals: a callback is accepted only in the
// browser that started the attempt, with its state, once; a disabled
// user is refused even through the connector; a connector user never
// takes over a local account of the same name.
func TestConnectorCallbackRefusals(t *testing.T) {
	h := newConnectorHub(t)
	// start sends b to the provider and returns the callback URL the
	// provider sent back, without following it.
	start := func(t *testing.T, b *servertest.Browser) *url.URL {
		t.Helper()
		saved := b.Client().CheckRedirect
		defer func() { b.Client().CheckRedirect = saved }()
		b.Client().CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.Contains(req.URL.Path, "/callback") {
				return http.ErrUseLastResponse
			}
			return nil
		}
		p := b.Get(h.URL + "/login/connectors/corp?return_to=/account")
		if p.Location == nil || !strings.Contains(p.Location.Path, "/login/connectors/corp/callback") {
			t.Fatalf("start: %d %s\n%s", p.Status, p.URL, p.Body)
		}
		return p.Location
	}
	signedIn := func(p *servertest.Page) bool { return strings.Contains(p.Body, "Your agents") }

	t.Run("state mismatch", func(t *testing.T) {
		b := h.browser()
		cb := start(t, b)
		q := cb.Query()
		q.Set("state", q.Get("state")+"x")
		cb.RawQuery = q.Encode()
		if p := b.Get(cb.String()); signedIn(p) || p.Status != http.StatusBadRequest {
			t.Fatalf("mismatched state: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("another browser", func(t *testing.T) {
		cb := start(t, h.browser())
		if p := h.browser().Get(cb.String()); signedIn(p) || p.Status != http.StatusBadRequest {
			t.Fatalf("callback in a browser that did not start it: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("attempt expired", func(t *testing.T) {
		b := h.browser()
		cb := start(t, b)
		h.clock.Advance(connectors.AttemptTTL + time.Second)
		// The provider's ID tokens follow the wall clock: set the hub's back.
		defer h.clock.Advance(-connectors.AttemptTTL - time.Second)
		if p := b.Get(cb.String()); signedIn(p) || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "took too long") {
			t.Fatalf("callback after the attempt expired: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("replayed state", func(t *testing.T) {
		b := h.browser()
		cb := start(t, b)
		jar := b.Client().Jar
		cookies := jar.Cookies(cb) // the attempt cookie, copied before it is used
		if p := b.Get(cb.String()); !signedIn(p) {
			t.Fatalf("first callback: %d\n%s", p.Status, p.Body)
		}
		replay := h.browser()
		replay.Client().Jar.SetCookies(cb, cookies)
		p := replay.Get(cb.String())
		if signedIn(p) || p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "already") {
			t.Fatalf("replayed callback with the cookie: %d\n%s", p.Status, p.Body)
		}
	})
	t.Run("disabled user", func(t *testing.T) {
		u := h.user(t, store.DefaultTenant, "carol")
		u.Disabled = true
		if err := h.Store.UpdateUser(context.Background(), u, nil); err != nil {
			t.Fatal(err)
		}
		defer func() {
			u.Disabled = false
			_ = h.Store.UpdateUser(context.Background(), u, nil)
		}()
		b := h.browser()
		p := b.Get(h.URL + "/login/connectors/corp?return_to=/account")
		if signedIn(p) || p.Status != http.StatusForbidden {
			t.Fatalf("disabled user through the connector: %d\n%s", p.Status, p.Body)
		}
		if p := b.Get(h.URL + "/account"); signedIn(p) {
			t.Fatal("a disabled user has a session")
		}
	})
	t.Run("local account of the same name", func(t *testing.T) {
		h.idp.SignIn("sub-alice", map[string]any{"preferred_username": servertest.TestUser, "email": "alice@corp.example"})
		defer h.idp.SignIn("sub-carol", map[string]any{"preferred_username": "carol"})
		p := h.browser().Get(h.URL + "/login/connectors/corp?return_to=/account")
		if signedIn(p) || p.Status != http.StatusConflict {
			t.Fatalf("a connector user named like a local one: %d\n%s", p.Status, p.Body)
		}
		if u := h.user(t, store.DefaultTenant, servertest.TestUser); u.ConnectorID != "" || u.Email == "alice@corp.example" {
			t.Fatalf("the local account was taken over: %+v", u)
		}
	})
	t.Run("provider error", func(t *testing.T) {
		h.idp.SignIn("", nil) // the provider answers access_denied
		defer h.idp.SignIn("sub-carol", map[string]any{"preferred_username": "carol"})
		p := h.browser().Get(h.URL + "/login/connectors/corp?return_to=/account")
		if signedIn(p) || p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "did not sign you in") ||
			!strings.Contains(p.Body, `name="return_to" value="/account"`) {
			t.Fatalf("access_denied from the provider: %d\n%s", p.Status, p.Body)
		}
		if evs := h.auditEvents(audit.LoginFailed); len(evs) == 0 {
			t.Fatal("no user.login_failed event for a refused sign-in")
		}
	})
}

// TestConnectorTenantIsolation: two connectors put their people in two
// tenants; a person of connector B's tenant gets nothing of tenant A's
// resource, one of connector A's tenant does.
func TestConnectorTenantIsolation(t *testing.T) {
	h := newConnectorHub(t)
	idpB := connectorstest.New(t, "agentid-hub-b", "idp-b-secret")
	h.addConnector(t, "acme", "acme", "Acme SSO", idpB, "acme.example")
	idpB.SignIn("sub-dave", map[string]any{"preferred_username": "dave", "email": "dave@acme.example", "groups": []any{"eng-oncall"}})
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read")
	authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource))

	b := h.browser(idpB)
	p := h.via(t, b, b.Get(authURL), "acme")
	dave := h.user(t, "acme", "dave")
	if _, err := h.Store.GetUserByUsername(context.Background(), store.DefaultTenant, "dave"); err == nil {
		t.Fatal("acme's person is a user of the default tenant")
	}
	if dave.ConnectorID != "acme" {
		t.Fatalf("dave %+v", dave)
	}
	if !strings.Contains(p.Body, "It belongs to another organisation than your account.") {
		t.Fatalf("a person of tenant acme is not told the resource is another organisation's:\n%s", p.Body)
	}
	if back := servertest.BackLink(p.Body); back == nil || back.Query().Get("error") != "invalid_scope" {
		t.Fatalf("the refusal does not take the agent back an invalid_scope: %v", back)
	}
	if strings.Contains(p.Body, `action="/authorize/decision"`) && len(servertest.Offered(p.Body)) > 0 {
		t.Fatalf("a person of tenant acme is offered tenant default's scopes %v", servertest.Offered(p.Body))
	}
	if p.Location != nil && p.Location.Query().Get("code") != "" {
		t.Fatalf("a person of tenant acme got a code for tenant default's resource: %s", p.Location)
	}

	b = h.browser()
	p = h.via(t, b, b.Get(authURL), "corp")
	if got := servertest.Offered(p.Body); !slices.Equal(got, []string{"notes.read"}) {
		t.Fatalf("a person of connector corp's tenant is offered %v:\n%s", got, p.Body)
	}
}

// TestConnectorAttributePolicy: an attribute mapped from the provider's
// claims is what a policy reads; when the provider changes it, the next
// sign-in changes the decision.
func TestConnectorAttributePolicy(t *testing.T) {
	h := newConnectorHub(t)
	applyPolicy(t, h.Store, h.engine, `@id("contractors-read-only")
forbid (principal, action == Action::"grant", resource)
when { resource.name == "notes.write" && context has user && context.user.hasTag("department") &&
  context.user.getTag("department") == "contractors" };`)
	h.settle()
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("agent-1", secret, "notes.read", "notes.write")
	offered := func(t *testing.T) []string {
		t.Helper()
		b := h.browser()
		login := b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource)))
		return servertest.Offered(h.via(t, b, login, "corp").Body)
	}
	if got := offered(t); !slices.Equal(got, []string{"notes.read", "notes.write"}) {
		t.Fatalf("offered %v in R&D", got)
	}
	h.idp.SignIn("sub-carol", map[string]any{"preferred_username": "carol", "dept": "contractors"})
	if got := offered(t); !slices.Equal(got, []string{"notes.read"}) {
		t.Fatalf("offered %v to a contractor", got)
	}
	if u := h.user(t, store.DefaultTenant, "carol"); u.Attributes["department"] != "contractors" {
		t.Fatalf("attributes %v", u.Attributes)
	}
}

// TestConnectorEmailOfAnotherConnectorsDomain: a provider that vouches for
// an address in a domain another connector holds (in any case) is not
// believed about it: the person is signed in, but their email is not
// verified here, so the hub's ID tokens and userinfo never pass it on as
// verified. The domain's own connector still verifies its people's.
func TestConnectorEmailOfAnotherConnectorsDomain(t *testing.T) {
	for _, tc := range []struct{ name, tenant, email string }{
		{"other tenant", "evil", "carol@corp.example"},
		{"same tenant", store.DefaultTenant, "carol@corp.example"},
		{"domain in capitals", "evil", "carol@CORP.Example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newConnectorHub(t)
			idpE := connectorstest.New(t, "agentid-hub-e", "idp-e-secret")
			h.addConnector(t, "evil", tc.tenant, "Evil SSO", idpE, "evil.example")
			idpE.SignIn("sub-m", map[string]any{"preferred_username": "mallory", "email": tc.email, "email_verified": true})
			b := h.browser(idpE)
			h.via(t, b, b.Get(h.URL+"/login"), "evil")
			if m := h.user(t, tc.tenant, "mallory"); m.Email != tc.email || m.EmailVerified {
				t.Fatalf("connector evil's person got email %q verified=%v", m.Email, m.EmailVerified)
			}
			b = h.browser()
			h.via(t, b, b.Get(h.URL+"/login"), "corp")
			if c := h.user(t, store.DefaultTenant, "carol"); !c.EmailVerified {
				t.Fatal("connector corp's own person lost the verified email")
			}
		})
	}
}

// TestConnectorUserNoPasswordLogin: a person provisioned by a connector
// signs in at their provider only. Even with a password hash on the row
// (set by an administrator), the password form does not sign them in —
// otherwise they would bypass the provider's checks and keep signing in
// after the provider, or the connector, turned them away.
func TestConnectorUserNoPasswordLogin(t *testing.T) {
	h := newConnectorHub(t)
	b := h.browser()
	h.via(t, b, b.Get(h.URL+"/login?return_to=/account"), "corp")
	carol := h.user(t, store.DefaultTenant, "carol")
	hash, err := password.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	carol.PasswordHash = hash
	if err := h.Store.UpdateUser(context.Background(), carol, nil); err != nil {
		t.Fatal(err)
	}
	h.corp.Disabled = true
	if err := h.Store.UpdateConnector(context.Background(), h.corp, nil); err != nil {
		t.Fatal(err)
	}
	b = h.browser()
	p := b.Login(b.Get(h.URL+"/login?return_to=/account"), "carol", "correct horse battery staple")
	if p.Status != http.StatusUnauthorized || strings.Contains(p.Body, "Your agents") {
		t.Fatalf("a connector's person signed in with a password: %d\n%s", p.Status, p.Body)
	}
	if evs := h.auditEvents(audit.LoginSucceeded); len(evs) != 0 {
		t.Fatalf("login events %+v", evs)
	}
}

// TestConnectorUsernameInAnotherConnectorsDomain: a provider cannot give
// its person a username that is an address in a domain another connector
// holds: it would take that name before the domain's own person signs in,
// and ID tokens would name them so.
func TestConnectorUsernameInAnotherConnectorsDomain(t *testing.T) {
	for _, tc := range []struct{ name, username string }{
		{"same case", "alice@corp.example"},
		{"domain in capitals", "alice@Corp.EXAMPLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newConnectorHub(t)
			idpE := connectorstest.New(t, "agentid-hub-e", "idp-e-secret")
			h.addConnector(t, "evil", store.DefaultTenant, "Evil SSO", idpE)
			idpE.SignIn("sub-m", map[string]any{"preferred_username": tc.username, "email": "m@evil.example"})
			b := h.browser(idpE)
			p := h.via(t, b, b.Get(h.URL+"/login?return_to=/account"), "evil")
			if strings.Contains(p.Body, "Your agents") {
				t.Fatalf("connector evil's person signed in as %q", tc.username)
			}
			if u, err := h.Store.GetUserByUsername(context.Background(), store.DefaultTenant, tc.username); err == nil {
				t.Fatalf("connector evil provisioned %+v", u)
			}
		})
	}
}
