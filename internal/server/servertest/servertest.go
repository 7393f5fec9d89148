// Package servertest starts complete agentid hubs for tests: a real SQLite
// store, keys, the default policy and the HTTP server under httptest, plus a
// scripted browser that logs in and answers consent screens.
package servertest

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/changefeed"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/vault"
)

// Hub is a complete hub on a real SQLite file, served by httptest.
type Hub struct {
	T     testing.TB
	HTTP  *httptest.Server
	Store store.Store
	Keys  *token.Keys
	// Keyring seals the hub's signing keys and vault secrets; nil when an
	// option cleared it (a hub without a vault), the keys then use one of
	// their own.
	Keyring *keyring.Keyring
	// Vault is the hub's connection keeper (on the same keyring as Keys).
	Vault  *vault.Vault
	Server *server.Server
	// Changes is the hub's change feed (running until the test ends).
	Changes *changefeed.Feed
	// URL is the issuer.
	URL string
	// Resource is the MCP server registered in every hub.
	Resource string

	handler atomic.Pointer[http.Handler]
}

// Wrap puts mw in front of the hub's handler for the requests that follow,
// e.g. to slow some responses down.
func (h *Hub) Wrap(mw func(http.Handler) http.Handler) {
	next := mw(*h.handler.Load())
	h.handler.Store(&next)
}

const (
	TestUser = "alice"
	// TestUserName and TestUserEmail are the test user's profile (the
	// OpenID Connect profile and email claims).
	TestUserName  = "Alice Example"
	TestUserEmail = "alice@example.com"
	TestPassword  = "correct horse battery staple"
)

// hashedTestPassword is TestPassword's Argon2id hash, made on first use:
// at package initialisation every process of a test binary that links
// this package would pay for it (64 MiB and about a second of CPU under
// the race detector), among them each `agentid serve` replica that the
// cmd/agentid tests run from their own binary.
var hashedTestPassword = sync.OnceValue(func() string {
	h, err := password.Hash(TestPassword)
	if err != nil {
		panic(err)
	}
	return h
})

type Option func(*server.Config)

// WithKeyring runs the hub on ring instead of a fresh one: hubs on one
// store with one keyring are processes of one deployment, loading the
// same signing keys and opening the same vault secrets.
func WithKeyring(ring *keyring.Keyring) Option {
	return func(c *server.Config) { c.Keyring = ring }
}

func New(t testing.TB, opts ...Option) *Hub {
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
	return NewOn(t, st, opts...)
}

func NewOn(t testing.TB, st store.Store, opts ...Option) *Hub {
	t.Helper()
	ctx := context.Background()
	kek, err := keyring.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(ctx, policy.Options{Store: st, Domains: st})
	if err != nil {
		t.Fatal(err)
	}
	h := &Hub{T: t, Store: st}
	h.HTTP = httptest.NewUnstartedServer(nil)
	h.URL = "http://" + h.HTTP.Listener.Addr().String()
	h.Resource = h.URL + "/mcp"
	cfg := server.Config{Issuer: h.URL, Store: st, Policy: pol, Keyring: ring}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Vault == nil && cfg.Keyring != nil {
		// (An option clearing Keyring gets a hub without a vault.)
		cfg.Vault, err = vault.New(vault.Config{Store: st, Keyring: cfg.Keyring, Now: cfg.Now})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.Vault, h.Keyring = cfg.Vault, cfg.Keyring
	if cfg.Keys == nil {
		// The keys run on the hub's clock, so that a test moving the clock
		// forward still mints tokens that the key's lifetime rules accept.
		keysRing := cfg.Keyring
		if keysRing == nil {
			keysRing = ring
		}
		cfg.Keys, err = token.NewKeys(ctx, token.Options{Store: st, Keyring: keysRing, Now: cfg.Now})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.Keys = cfg.Keys
	if cfg.Changes == nil {
		cfg.Changes = runFeed(t, st)
	}
	h.Changes = cfg.Changes
	h.Server, err = server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	handler := h.Server.Handler()
	h.handler.Store(&handler)
	h.HTTP.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.handler.Load()).ServeHTTP(w, r) })
	h.HTTP.Start()
	t.Cleanup(h.HTTP.Close)

	now := time.Now()
	if err := st.CreateResource(ctx, &store.Resource{
		TenantID: store.DefaultTenant, ID: "notes", URI: h.Resource, Name: "Notes", CreatedAt: now,
		Scopes: []store.Scope{
			{Name: "notes.read", Description: "Read your notes"},
			{Name: "notes.write", Description: "Write your notes"},
			{Name: "notes.delete", Description: "Delete your notes", Sensitive: true},
		},
	}, nil); err != nil && !strings.Contains(err.Error(), "conflict") {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-alice", Username: TestUser, Name: TestUserName, Email: TestUserEmail, EmailVerified: true, PasswordHash: hashedTestPassword(), CreatedAt: now, UpdatedAt: now}, nil); err != nil && !strings.Contains(err.Error(), "conflict") {
		t.Fatal(err)
	}
	return h
}

// runFeed runs a change feed on st until the test ends.
func runFeed(t testing.TB, st store.Store) *changefeed.Feed {
	f := changefeed.New(st, changefeed.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

// AddClient registers a client directly in the store and returns its secret
// (empty for public clients).
func (h *Hub) AddClient(c *store.Client) string {
	h.T.Helper()
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
	if err := h.Store.CreateClient(context.Background(), c, nil); err != nil {
		h.T.Fatal(err)
	}
	return secret
}

// LinkResourceServer makes clientID the resource server of the hub's
// resource (DESIGN §4a): the client that may introspect its tokens.
func (h *Hub) LinkResourceServer(clientID string) {
	h.T.Helper()
	ctx := context.Background()
	r, err := h.Store.GetResource(ctx, store.DefaultTenant, h.Resource)
	if err != nil {
		h.T.Fatal(err)
	}
	r.ClientID = clientID
	if err := h.Store.UpdateResource(ctx, r, nil); err != nil {
		h.T.Fatal(err)
	}
}

// Browser is a person with a cookie jar who stops at the client's redirect.
type Browser struct {
	t      testing.TB
	c      *http.Client
	hubURL string
}

func (h *Hub) Browser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: h.T, hubURL: h.URL, c: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), h.URL) {
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

// Page is a fetched HTML page.
type Page struct {
	Status int
	Body   string
	URL    *url.URL
	// Location is set when the flow left the hub (redirect to the client).
	Location *url.URL
}

func (b *Browser) Do(req *http.Request) *Page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := &Page{Status: resp.StatusCode, Body: string(body), URL: resp.Request.URL}
	if resp.StatusCode/100 == 3 {
		p.Location, _ = resp.Location()
	}
	return p
}

func (b *Browser) Get(u string) *Page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.Do(req)
}

func (b *Browser) Post(u string, form url.Values) *Page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.hubURL)
	return b.Do(req)
}

func field(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no %s:\n%s", re, body)
	}
	return html.UnescapeString(m[1])
}

// Login fills the login form on p.
func (b *Browser) Login(p *Page, user, pw string) *Page {
	b.t.Helper()
	if !strings.Contains(p.Body, `action="/login"`) {
		b.t.Fatalf("expected the login page, got %d:\n%s", p.Status, p.Body)
	}
	ret := regexp.MustCompile(`name="return_to" value="([^"]*)"`).FindStringSubmatch(p.Body)
	return b.Post(b.hubURL+"/login", url.Values{"csrf_token": {field(b.t, csrfRe, p.Body)}, "return_to": {html.UnescapeString(ret[1])}, "username": {user}, "password": {pw}})
}

// Consent submits the consent form on p approving scopes (nil: deny).
func (b *Browser) Consent(p *Page, approve []string) *Page {
	b.t.Helper()
	if !strings.Contains(p.Body, `action="/authorize/decision"`) {
		b.t.Fatalf("expected the consent page, got %d:\n%s", p.Status, p.Body)
	}
	form := url.Values{"csrf_token": {field(b.t, csrfRe, p.Body)}, "request": {field(b.t, requestRe, p.Body)}}
	if approve == nil {
		form.Set("decision", "deny")
	} else {
		form.Set("decision", "allow")
		form["scope"] = approve
	}
	return b.Post(b.hubURL+"/authorize/decision", form)
}

// Offered lists the scopes on a consent page.
func Offered(body string) []string {
	var out []string
	for _, m := range scopeRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// Authorize runs the browser part of the code flow from authURL, logging in
// and approving approve, and returns the redirect to the client.
func (b *Browser) Authorize(authURL string, approve []string) *url.URL {
	b.t.Helper()
	p := b.Get(authURL)
	if strings.Contains(p.Body, `action="/login"`) {
		p = b.Login(p, TestUser, TestPassword)
	}
	if p.Location == nil {
		if back := BackLink(p.Body); back != nil {
			// A refusal page: the person follows its link back.
			return back
		}
		p = b.Consent(p, approve)
	}
	if p.Location == nil {
		b.t.Fatalf("the flow did not return to the client: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	return p.Location
}

var backRe = regexp.MustCompile(`id="back" href="([^"]*)"`)

// BackLink is the target of a refusal page's "Back to the application"
// link, or nil when p has none.
func BackLink(body string) *url.URL {
	m := backRe.FindStringSubmatch(body)
	if m == nil {
		return nil
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return nil
	}
	return u
}

// Client is the browser's HTTP client (with its cookie jar).
func (b *Browser) Client() *http.Client { return b.c }
