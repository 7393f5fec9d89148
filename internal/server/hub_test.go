package server_test

import (
	"context"
	"crypto/rand"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
	"github.com/agentid/agentid/internal/token"
)

// hub is a complete hub on a real SQLite file, served by httptest.
type hub struct {
	t      testing.TB
	srv    *httptest.Server
	st     store.Store
	keys   *token.Keys
	server *server.Server
	url    string
	// resource is the MCP server registered in every hub.
	resource string
}

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
)

var hashedTestPassword = func() string {
	h, err := password.Hash(testPassword)
	if err != nil {
		panic(err)
	}
	return h
}()

type hubOption func(*server.Config)

func newHub(t testing.TB, opts ...hubOption) *hub {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return newHubOn(t, st, opts...)
}

func newHubOn(t testing.TB, st store.Store, opts ...hubOption) *hub {
	t.Helper()
	ctx := context.Background()
	kek, err := token.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.NewKeys(ctx, token.Options{Store: st, Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(ctx, policy.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, st: st, keys: keys}
	h.srv = httptest.NewUnstartedServer(nil)
	h.url = "http://" + h.srv.Listener.Addr().String()
	h.resource = h.url + "/mcp"
	cfg := server.Config{Issuer: h.url, Store: st, Keys: keys, Policy: pol}
	for _, o := range opts {
		o(&cfg)
	}
	h.server, err = server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.Config.Handler = h.server.Handler()
	h.srv.Start()
	t.Cleanup(h.srv.Close)

	now := time.Now()
	if err := st.CreateResource(ctx, &store.Resource{
		TenantID: store.DefaultTenant, ID: "notes", URI: h.resource, Name: "Notes", CreatedAt: now,
		Scopes: []store.Scope{
			{Name: "notes.read", Description: "Read your notes"},
			{Name: "notes.write", Description: "Write your notes"},
			{Name: "notes.delete", Description: "Delete your notes", Sensitive: true},
		},
	}); err != nil && !strings.Contains(err.Error(), "conflict") {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-alice", Username: testUser, PasswordHash: hashedTestPassword, CreatedAt: now, UpdatedAt: now}); err != nil && !strings.Contains(err.Error(), "conflict") {
		t.Fatal(err)
	}
	return h
}

// addClient registers a client directly in the store and returns its secret
// (empty for public clients).
func (h *hub) addClient(c *store.Client) string {
	h.t.Helper()
	c.TenantID = store.DefaultTenant
	if c.RegistrationMethod == "" {
		c.RegistrationMethod = store.RegistrationManual
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = "client_secret_basic"
	}
	if c.ResponseTypes == nil && len(c.RedirectURIs) > 0 {
		c.ResponseTypes = []string{"code"}
	}
	c.CreatedAt, c.UpdatedAt = time.Now(), time.Now()
	var secret string
	if strings.HasPrefix(c.TokenEndpointAuthMethod, "client_secret") {
		secret = "secret-" + c.ID + "-0123456789abcdef0123456789abcdef"
		c.SecretHash = token.Hash(secret)
	}
	if err := h.st.CreateClient(context.Background(), c, nil); err != nil {
		h.t.Fatal(err)
	}
	return secret
}

// browser is a person with a cookie jar who stops at the client's redirect.
type browser struct {
	t      testing.TB
	c      *http.Client
	hubURL string
}

func (h *hub) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: h.t, hubURL: h.url, c: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), h.url) {
			return http.ErrUseLastResponse // the client's redirect URI: stop here
		}
		return nil
	}}}
}

var (
	csrfRe    = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	requestRe = regexp.MustCompile(`name="request" value="([^"]*)"`)
	scopeRe   = regexp.MustCompile(`name="scope" value="([^"]*)"( checked)?`)
)

// page is a fetched HTML page.
type page struct {
	status int
	body   string
	url    *url.URL
	// location is set when the flow left the hub (redirect to the client).
	location *url.URL
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := &page{status: resp.StatusCode, body: string(body), url: resp.Request.URL}
	if resp.StatusCode/100 == 3 {
		p.location, _ = resp.Location()
	}
	return p
}

func (b *browser) get(u string) *page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) *page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.hubURL)
	return b.do(req)
}

func field(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no %s:\n%s", re, body)
	}
	return html.UnescapeString(m[1])
}

// login fills the login form on p.
func (b *browser) login(p *page, user, pw string) *page {
	b.t.Helper()
	if !strings.Contains(p.body, `action="/login"`) {
		b.t.Fatalf("expected the login page, got %d:\n%s", p.status, p.body)
	}
	ret := regexp.MustCompile(`name="return_to" value="([^"]*)"`).FindStringSubmatch(p.body)
	return b.post(b.hubURL+"/login", url.Values{"csrf_token": {field(b.t, csrfRe, p.body)}, "return_to": {html.UnescapeString(ret[1])}, "username": {user}, "password": {pw}})
}

// consent submits the consent form on p approving scopes (nil: deny).
func (b *browser) consent(p *page, approve []string) *page {
	b.t.Helper()
	if !strings.Contains(p.body, `action="/authorize/decision"`) {
		b.t.Fatalf("expected the consent page, got %d:\n%s", p.status, p.body)
	}
	form := url.Values{"csrf_token": {field(b.t, csrfRe, p.body)}, "request": {field(b.t, requestRe, p.body)}}
	if approve == nil {
		form.Set("decision", "deny")
	} else {
		form.Set("decision", "allow")
		form["scope"] = approve
	}
	return b.post(b.hubURL+"/authorize/decision", form)
}

// offered lists the scopes on a consent page.
func offered(body string) []string {
	var out []string
	for _, m := range scopeRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// authorize runs the browser part of the code flow from authURL, logging in
// and approving approve, and returns the redirect to the client.
func (b *browser) authorize(authURL string, approve []string) *url.URL {
	b.t.Helper()
	p := b.get(authURL)
	if strings.Contains(p.body, `action="/login"`) {
		p = b.login(p, testUser, testPassword)
	}
	if p.location == nil {
		p = b.consent(p, approve)
	}
	if p.location == nil {
		b.t.Fatalf("the flow did not return to the client: %d %s\n%s", p.status, p.url, p.body)
	}
	return p.location
}

type (
	serverConfig       = server.Config
	registrationConfig = server.RegistrationConfig
)
