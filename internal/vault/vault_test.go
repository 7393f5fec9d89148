package vault

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
	"github.com/agentid/agentid/internal/vault/vaulttest"
)

const (
	tenant      = store.DefaultTenant
	redirectURI = "https://hub.example/connections/callback"
)

// clock is a moving test clock shared by the vault and the provider.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// AdvanceTo moves the clock to t unless it is already later.
func (c *clock) AdvanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one test's world: a provider, a database opened through one or
// more store handles, and a vault on each.
type env struct {
	t      *testing.T
	ctx    context.Context
	clock  *clock
	kr     *keyring.Keyring
	prov   *vaulttest.Provider
	stores []store.Store
	vaults []*Vault
	st     store.Store // stores[0]
	v      *Vault      // vaults[0]
	p      *store.Provider
}

type envOptions struct {
	provider vaulttest.Options
	// handles: how many store handles (and vaults) share the database.
	handles int
	// open opens one more store handle on the test's database (nil: SQLite
	// in a temporary file).
	open func(t *testing.T) func() store.Store
	cfg  func(*Config)
}

func openSQLite(t *testing.T) func() store.Store {
	path := filepath.Join(t.TempDir(), "agentid.db")
	return func() store.Store {
		st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

func openPostgres(t *testing.T) func() store.Store {
	dsn := pgtest.FreshSchema(t)
	return func() store.Store {
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), clock: newClock()}
	e.kr = newKeyring(t, newKEK(t, "kek-1"))
	o.provider.Now = e.clock.Now
	e.prov = vaulttest.New(t, o.provider)
	if o.handles == 0 {
		o.handles = 1
	}
	if o.open == nil {
		o.open = openSQLite
	}
	open := o.open(t)
	for i := range o.handles {
		st := open()
		if i == 0 {
			if _, _, err := st.Migrate(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		cfg := Config{Store: st, Keyring: e.kr, Now: e.clock.Now}
		if o.cfg != nil {
			o.cfg(&cfg)
		}
		v, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.stores = append(e.stores, st)
		e.vaults = append(e.vaults, v)
	}
	e.st, e.v = e.stores[0], e.vaults[0]
	p, err := e.prov.StoreProvider(e.v, tenant, "calendar")
	if err != nil {
		t.Fatal(err)
	}
	p.AuthParams = map[string]string{"access_type": "offline", "prompt": "consent"}
	e.createProvider(p)
	e.p = p
	t.Cleanup(e.checkEventsHoldNoSecret)
	return e
}

func (e *env) createProvider(p *store.Provider) {
	e.t.Helper()
	if err := e.st.CreateProvider(e.ctx, p, audit.NewProviderAdded(audit.Meta{Actor: audit.ActorCLI}, audit.ProviderFields{ProviderID: p.ID, Kind: p.Kind})); err != nil {
		e.t.Fatal(err)
	}
}

// connect runs the authorization-code flow for user and returns the new
// connection.
func (e *env) connect(user string, scopes ...string) *store.Connection {
	e.t.Helper()
	req, err := e.v.AuthCodeURL(e.p, redirectURI, scopes)
	if err != nil {
		e.t.Fatal(err)
	}
	code, state, err := e.prov.Authorize(e.ctx, req.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	if state != req.State {
		e.t.Fatalf("state %q came back as %q", req.State, state)
	}
	c, err := e.v.CompleteAuth(e.ctx, audit.Meta{}, e.p, Owner{store.OwnerUser, user}, code, req.Verifier, redirectURI, req.Scopes...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) get(id string) *store.Connection {
	e.t.Helper()
	c, err := e.st.GetConnection(e.ctx, tenant, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) events(typ string) []*store.AuditEvent {
	e.t.Helper()
	evs, err := e.st.ListAudit(e.ctx, store.AuditFilter{TenantID: tenant, Type: typ, Limit: 10000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// callAPI uses cred at the provider's API.
func (e *env) callAPI(cred *Credential) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.prov.APIURL(), nil)
	req.Header.Set("Authorization", cred.TokenType+" "+cred.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkEventsHoldNoSecret: no event the test wrote carries a token, code,
// key or client secret, in any field.
func (e *env) checkEventsHoldNoSecret() {
	evs := e.events("")
	secrets := []string{e.prov.ClientSecret(), "at_", "rt_", "code_", "sk_live_"}
	for _, ev := range evs {
		fields := []string{ev.Type, ev.RequestID, ev.ClientID, ev.UserID, ev.Resource, ev.IP, strings.Join(ev.Scopes, " ")}
		for k, v := range ev.Details {
			fields = append(fields, k, v)
		}
		for _, f := range fields {
			for _, s := range secrets {
				if strings.Contains(f, s) {
					e.t.Errorf("event %s carries a secret (%q) in %q", ev.Type, s, f)
				}
			}
		}
	}
}

func TestAuthCodeURL(t *testing.T) {
	e := newEnv(t, envOptions{})
	req, err := e.v.AuthCodeURL(e.p, redirectURI, []string{"calendar.read"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(req.URL)
	q := u.Query()
	want := map[string]string{
		"response_type": "code", "client_id": e.prov.ClientID(), "redirect_uri": redirectURI,
		"scope": "calendar.read", "state": req.State, "code_challenge_method": "S256",
		"access_type": "offline", "prompt": "consent",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if len(req.State) < 43 || len(req.Verifier) != 43 || len(q.Get("code_challenge")) != 43 {
		t.Errorf("state %d, verifier %d, challenge %d characters", len(req.State), len(req.Verifier), len(q.Get("code_challenge")))
	}
	if strings.Contains(req.URL, e.prov.ClientSecret()) || strings.Contains(req.URL, req.Verifier) {
		t.Error("the URL carries the client secret or the verifier")
	}
	if r2, _ := e.v.AuthCodeURL(e.p, redirectURI, nil); r2.State == req.State || !slices.Equal(r2.Scopes, e.p.Scopes) {
		t.Errorf("second request: same state, or scopes %v", r2.Scopes)
	}

	noPKCE := *e.p
	noPKCE.DisablePKCE = true
	r3, err := e.v.AuthCodeURL(&noPKCE, redirectURI, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(r3.URL); u.Query().Has("code_challenge") || r3.Verifier != "" {
		t.Error("PKCE sent for a provider that disables it")
	}

	bad := []struct {
		name   string
		mut    func(*store.Provider)
		redir  string
		scopes []string
	}{
		{"scope outside the provider", nil, redirectURI, []string{"mail.read"}},
		{"reserved auth param", func(p *store.Provider) { p.AuthParams = map[string]string{"state": "x"} }, redirectURI, nil},
		{"relative redirect", nil, "/connections/callback", nil},
		{"redirect with fragment", nil, redirectURI + "#x", nil},
		{"API-key provider", func(p *store.Provider) { p.Kind = store.ProviderAPIKey }, redirectURI, nil},
		{"disabled provider", func(p *store.Provider) { p.Disabled = true }, redirectURI, nil},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			p := *e.p
			if b.mut != nil {
				b.mut(&p)
			}
			if _, err := e.v.AuthCodeURL(&p, b.redir, b.scopes); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestCompleteAuth: the code flow end to end, for both client
// authentication methods, with and without PKCE and a scope in the
// response; then Find and Credential hand out a token the API accepts.
func TestCompleteAuth(t *testing.T) {
	cases := []struct {
		name      string
		opts      vaulttest.Options
		noPKCE    bool
		ask       []string
		wantScope []string
	}{
		{"basic, PKCE", vaulttest.Options{RequirePKCE: true}, false, []string{"calendar.read"}, []string{"calendar.read"}},
		{"post", vaulttest.Options{AuthMethod: vaulttest.AuthPost}, false, nil, []string{"calendar.read", "calendar.write"}},
		{"no PKCE, scope omitted in response", vaulttest.Options{OmitScope: true}, true, []string{"calendar.write"}, []string{"calendar.write"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{provider: tc.opts})
			e.p.DisablePKCE = tc.noPKCE
			c := e.connect("u1", tc.ask...)
			if !slices.Equal(c.Scopes, tc.wantScope) {
				t.Errorf("scopes = %v, want %v", c.Scopes, tc.wantScope)
			}
			if got := e.prov.LastAuthRequest().Has("code_challenge"); got == tc.noPKCE {
				t.Errorf("code_challenge sent: %v", got)
			}
			stored := e.get(c.ID)
			if stored.Status != store.ConnectionActive || stored.OwnerID != "u1" || stored.Label == "" ||
				!stored.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) || stored.KEKID != "kek-1" {
				t.Errorf("stored connection: %+v", stored)
			}
			if evs := e.events(audit.ConnectionCreated); len(evs) != 1 || evs[0].Details["connection_id"] != c.ID || evs[0].UserID != "u1" {
				t.Errorf("connection.created events: %v", evs)
			}
			found, err := e.v.Find(e.ctx, tenant, "calendar", "u1", tc.wantScope[:1])
			if err != nil || found.ID != c.ID {
				t.Fatalf("Find = %v, %v", found, err)
			}
			cred, err := e.v.Credential(e.ctx, audit.Meta{}, found, false)
			if err != nil {
				t.Fatal(err)
			}
			if cred.TokenType != "Bearer" || cred.ConnectionID != c.ID || !cred.ExpiresAt.Equal(stored.ExpiresAt) {
				t.Errorf("credential: type %q, id %q, expiry %v", cred.TokenType, cred.ConnectionID, cred.ExpiresAt)
			}
			if code := e.callAPI(cred); code != http.StatusOK {
				t.Errorf("API answered %d", code)
			}
			if n := e.prov.Counts().Refreshes; n != 0 {
				t.Errorf("%d refreshes for a fresh token", n)
			}
		})
	}

	t.Run("refused code", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		req, _ := e.v.AuthCodeURL(e.p, redirectURI, nil)
		code, _, _ := e.prov.Authorize(e.ctx, req.URL)
		_, err := e.v.CompleteAuth(e.ctx, audit.Meta{}, e.p, Owner{store.OwnerUser, "u1"}, code, "wrong-verifier-"+strings.Repeat("x", 30), redirectURI, req.Scopes...)
		if err == nil || strings.Contains(err.Error(), code) {
			t.Fatalf("CompleteAuth = %v", err)
		}
		if cs, _ := e.st.ListConnections(e.ctx, store.ConnectionFilter{TenantID: tenant}); len(cs) != 0 {
			t.Fatal("a connection was stored")
		}
	})
	t.Run("bad owner", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		for _, o := range []Owner{{store.OwnerUser, ""}, {store.OwnerTenant, "other"}, {"team", "x"}} {
			if _, err := e.v.CompleteAuth(e.ctx, audit.Meta{}, e.p, o, "code", "", redirectURI); err == nil {
				t.Errorf("owner %+v accepted", o)
			}
		}
	})
}

func TestFind(t *testing.T) {
	e := newEnv(t, envOptions{})
	read := e.connect("u1", "calendar.read")
	both := e.connect("u1")
	// A tenant-owned connection, made directly.
	tc := &store.Connection{TenantID: tenant, ID: "conn_tenant", ProviderID: "calendar", OwnerKind: store.OwnerTenant, OwnerID: tenant,
		Status: store.ConnectionActive, Scopes: []string{"calendar.read"}, CreatedAt: e.clock.Now()}
	if err := e.v.sealNew(tc, &secret{AccessToken: "tenant-token", TokenType: "Bearer"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateConnection(e.ctx, tc, nil); err != nil {
		t.Fatal(err)
	}
	// The read-only connection was used last.
	if err := e.st.TouchConnection(e.ctx, tenant, read.ID, e.clock.Now().Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	// u2 holds a read-only and a read-write connection and used the wider
	// one last: a read is served by the read-only one, so that what the
	// resource's link lets an MCP server reach is not widened by the
	// person's habits (least privilege).
	// u4 holds a connection of their own, without calendar.read: the
	// tenant's credential is another identity at the provider, used only
	// for people who hold none (store.OwnerTenant).
	e.connect("u4", "calendar.write")
	narrow := e.connect("u2", "calendar.read")
	wide := e.connect("u2")
	if err := e.st.TouchConnection(e.ctx, tenant, wide.ID, e.clock.Now().Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, user string
		scopes     []string
		want       string
		err        error
	}{
		{"most recently used", "u1", []string{"calendar.read"}, read.ID, nil},
		{"scopes must all be held", "u1", []string{"calendar.read", "calendar.write"}, both.ID, nil},
		{"the narrowest that holds them, however recently the wider was used", "u2", []string{"calendar.read"}, narrow.ID, nil},
		{"user without one gets the tenant's", "u3", []string{"calendar.read"}, "conn_tenant", nil},
		{"user with one of their own lacking the scope never gets the tenant's", "u4", []string{"calendar.read"}, "", ErrNoConnection},
		{"tenant's lacks the scope", "u3", []string{"calendar.write"}, "", ErrNoConnection},
		{"unknown provider", "u1", nil, "", ErrNoConnection},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			provider := "calendar"
			if c.name == "unknown provider" {
				provider = "mail"
			}
			got, err := e.v.Find(e.ctx, tenant, provider, c.user, c.scopes)
			if !errors.Is(err, c.err) || (got == nil) != (c.want == "") || got != nil && got.ID != c.want {
				t.Fatalf("Find = %v, %v; want %q, %v", got, err, c.want, c.err)
			}
		})
	}

	// Only broken connections of the user's own: needs_reauth, never the
	// tenant's credential instead.
	for _, id := range []string{read.ID, both.ID} {
		if _, err := e.st.UpdateConnection(e.ctx, tenant, id, func(c *store.Connection) error { c.Status = store.ConnectionNeedsReauth; return nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.v.Find(e.ctx, tenant, "calendar", "u1", []string{"calendar.read"}); !errors.Is(err, ErrNeedsReauth) {
		t.Fatalf("Find = %v, want ErrNeedsReauth", err)
	}
	if _, err := e.v.Credential(e.ctx, audit.Meta{}, e.get(read.ID), false); !errors.Is(err, ErrNeedsReauth) {
		t.Fatalf("Credential = %v, want ErrNeedsReauth", err)
	}
}

// expireSoon moves the clock to within the refresh margin of c's expiry.
func (e *env) expireSoon(c *store.Connection) {
	e.clock.Advance(c.ExpiresAt.Sub(e.clock.Now()) - 30*time.Second)
}

// concurrentCredentials asks every vault for c's credential from n
// goroutines each and returns the access tokens handed out.
func (e *env) concurrentCredentials(c *store.Connection, n int) []string {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var toks []string
	start := make(chan struct{})
	for _, v := range e.vaults {
		for range n {
			wg.Go(func() {
				<-start
				cred, err := v.Credential(e.ctx, audit.Meta{}, c, false)
				if err != nil {
					e.t.Error(err)
					return
				}
				mu.Lock()
				toks = append(toks, cred.AccessToken)
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	return toks
}

// TestRefreshSingleFlight: an expiring token asked for by 50 goroutines
// is refreshed exactly once at the provider — in one process, and in two
// processes (two store handles, two vaults) on one database, SQLite and
// PostgreSQL. The provider rotates refresh tokens and is slow, so any
// second use of the old refresh token would show as reuse.
func TestRefreshSingleFlight(t *testing.T) {
	backends := []struct {
		name string
		open func(*testing.T) func() store.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}}
	for _, b := range backends {
		for _, handles := range []int{1, 2} {
			t.Run(b.name+"/vaults="+string(rune('0'+handles)), func(t *testing.T) {
				e := newEnv(t, envOptions{handles: handles, open: b.open, provider: vaulttest.Options{RotateRefreshTokens: true}})
				c := e.connect("u1")
				old := e.get(c.ID)
				e.expireSoon(c)
				e.prov.SetTokenDelay(150 * time.Millisecond)
				toks := e.concurrentCredentials(c, 50/handles)
				if n := e.prov.Counts(); n.Refreshes != 1 || n.RefreshReuse != 0 {
					t.Fatalf("provider saw %d refreshes, %d reuses; want exactly 1 and 0", n.Refreshes, n.RefreshReuse)
				}
				got := e.get(c.ID)
				for _, tok := range toks {
					if tok != toks[0] {
						t.Fatal("callers got different tokens")
					}
				}
				s, err := e.v.open(got)
				if err != nil {
					t.Fatal(err)
				}
				if toks[0] != s.AccessToken || !e.prov.AccessTokenValid(s.AccessToken) || !e.prov.RefreshTokenValid(s.RefreshToken) {
					t.Fatal("the stored tokens are not the live ones")
				}
				if !got.LastRefreshedAt.After(old.LastRefreshedAt) || got.RefreshHolder != "" || got.Failures != 0 ||
					!got.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
					t.Fatalf("after refresh: %+v", got)
				}
				if evs := e.events(audit.ConnectionRefreshed); len(evs) != 1 || evs[0].Details["trigger"] != triggerOnDemand {
					t.Fatalf("connection.refreshed events: %d", len(evs))
				}
			})
		}
	}
}

// TestRefreshTokenRotation: a provider that rotates refresh tokens has the
// new one stored; one that does not keeps the old one working.
func TestRefreshTokenRotation(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		t.Run(map[bool]string{false: "kept", true: "rotated"}[rotate], func(t *testing.T) {
			e := newEnv(t, envOptions{provider: vaulttest.Options{RotateRefreshTokens: rotate}})
			c := e.connect("u1")
			before, _ := e.v.open(e.get(c.ID))
			for range 3 {
				e.expireSoon(e.get(c.ID))
				if _, err := e.v.Credential(e.ctx, audit.Meta{}, e.get(c.ID), false); err != nil {
					t.Fatal(err)
				}
			}
			after, _ := e.v.open(e.get(c.ID))
			if (after.RefreshToken != before.RefreshToken) != rotate || !e.prov.RefreshTokenValid(after.RefreshToken) {
				t.Fatalf("refresh token changed: %v, valid: %v", after.RefreshToken != before.RefreshToken, e.prov.RefreshTokenValid(after.RefreshToken))
			}
			if n := e.prov.Counts(); n.Refreshes != 3 || n.RefreshReuse != 0 {
				t.Fatalf("counts %+v", n)
			}
		})
	}
}

// TestForcedRefresh: force refreshes a token that is not expiring (a
// resource server saw a 401), but not twice within the force window.
func TestForcedRefresh(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.connect("u1")
	e.clock.Advance(10 * time.Second)
	first, err := e.v.Credential(e.ctx, audit.Meta{}, c, true)
	if err != nil {
		t.Fatal(err)
	}
	if e.prov.Counts().Refreshes != 1 {
		t.Fatal("force did not refresh")
	}
	e.clock.Advance(2 * time.Second)
	second, err := e.v.Credential(e.ctx, audit.Meta{}, c, true)
	if err != nil {
		t.Fatal(err)
	}
	if e.prov.Counts().Refreshes != 1 || second.AccessToken != first.AccessToken {
		t.Fatal("a second forced refresh within the window")
	}
	if evs := e.events(audit.ConnectionRefreshed); len(evs) != 1 || evs[0].Details["trigger"] != triggerForced {
		t.Fatalf("events %v", evs)
	}
	// Without force nothing happens before the margin.
	e.clock.Advance(time.Minute)
	if _, err := e.v.Credential(e.ctx, audit.Meta{}, e.get(c.ID), false); err != nil || e.prov.Counts().Refreshes != 1 {
		t.Fatalf("unforced: %v, %d refreshes", err, e.prov.Counts().Refreshes)
	}
}

// TestInvalidGrant: the provider refusing the refresh token marks the
// connection needs_reauth, with its event, and Find says so.
func TestInvalidGrant(t *testing.T) {
	for _, how := range []string{"forced invalid_grant", "grant revoked at the provider"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			c := e.connect("u1")
			if how == "forced invalid_grant" {
				e.prov.SetRefreshError("invalid_grant")
			} else {
				e.prov.RevokeAll()
			}
			e.expireSoon(c)
			_, err := e.v.Credential(e.ctx, audit.Meta{}, c, false)
			if !errors.Is(err, ErrNeedsReauth) {
				t.Fatalf("Credential = %v, want ErrNeedsReauth", err)
			}
			got := e.get(c.ID)
			if got.Status != store.ConnectionNeedsReauth || got.RefreshHolder != "" {
				t.Fatalf("status %q holder %q", got.Status, got.RefreshHolder)
			}
			evs := e.events(audit.ConnectionNeedsReauth)
			if len(evs) != 1 || evs[0].Details["reason"] != "invalid_grant" || evs[0].Details["connection_id"] != c.ID || evs[0].Outcome != audit.Failure {
				t.Fatalf("needs_reauth events: %+v", evs)
			}
			if _, err := e.v.Find(e.ctx, tenant, "calendar", "u1", nil); !errors.Is(err, ErrNeedsReauth) {
				t.Fatalf("Find = %v", err)
			}
			// No further calls to the provider for it.
			before := e.prov.Counts().Refreshes
			e.v.Credential(e.ctx, audit.Meta{}, got, true)
			if n, _ := e.v.RefreshDue(e.ctx); n != 0 || e.prov.Counts().Refreshes != before {
				t.Fatal("a needs_reauth connection was refreshed again")
			}
		})
	}
}

// TestBackoff: provider failures back off exponentially with jitter; the
// vault does not call the provider before NextAttemptAt, hands out the
// still-valid token, then ErrProviderUnavailable once it has expired, and
// recovers when the provider does.
func TestBackoff(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.connect("u1")
	e.prov.SetFail500(true)
	e.expireSoon(c)

	cred, err := e.v.Credential(e.ctx, audit.Meta{}, c, false)
	if err != nil || !e.prov.AccessTokenValid(cred.AccessToken) {
		t.Fatalf("still-valid token not served: %v", err)
	}
	got := e.get(c.ID)
	wait1 := got.NextAttemptAt.Sub(e.clock.Now())
	if got.Failures != 1 || wait1 < backoffBase/2 || wait1 > backoffBase || got.RefreshHolder != "" {
		t.Fatalf("after one failure: failures %d, wait %v", got.Failures, wait1)
	}
	if evs := e.events(audit.ConnectionRefreshFailed); len(evs) != 1 || evs[0].Details["reason"] != "http_500" || evs[0].Details["failures"] != "1" {
		t.Fatalf("refresh_failed events: %+v", evs)
	}

	// Within the backoff: no provider call, the valid token again.
	calls := e.prov.Counts().TokenCalls
	if _, err := e.v.Credential(e.ctx, audit.Meta{}, got, false); err != nil || e.prov.Counts().TokenCalls != calls {
		t.Fatalf("backoff not respected: %v, calls %d → %d", err, calls, e.prov.Counts().TokenCalls)
	}
	// The token expires: the next attempt fails too, and from then on
	// the caller learns when the vault will try again, without a call.
	e.clock.AdvanceTo(got.ExpiresAt)
	_, err = e.v.Credential(e.ctx, audit.Meta{}, got, false)
	got = e.get(c.ID)
	if at, ok := RetryAt(err); !errors.Is(err, ErrProviderUnavailable) || !ok || !at.Equal(got.NextAttemptAt) || got.Failures != 2 {
		t.Fatalf("expired: %v (retry at %v, failures %d)", err, at, got.Failures)
	}
	calls = e.prov.Counts().TokenCalls
	_, err = e.v.Credential(e.ctx, audit.Meta{}, got, false)
	if at, ok := RetryAt(err); !errors.Is(err, ErrProviderUnavailable) || !ok || !at.Equal(got.NextAttemptAt) || e.prov.Counts().TokenCalls != calls {
		t.Fatalf("expired in backoff: %v (retry at %v)", err, at)
	}
	if _, ok := RetryAt(ErrNeedsReauth); ok {
		t.Fatal("RetryAt on another error")
	}

	// Further failures: the wait grows.
	prev := got.NextAttemptAt.Sub(e.clock.Now())
	for n := 3; n <= 6; n++ {
		e.clock.AdvanceTo(e.get(c.ID).NextAttemptAt)
		_, err := e.v.Credential(e.ctx, audit.Meta{}, e.get(c.ID), false)
		if !errors.Is(err, ErrProviderUnavailable) {
			t.Fatalf("failure %d: %v", n, err)
		}
		got = e.get(c.ID)
		wait := got.NextAttemptAt.Sub(e.clock.Now())
		lo, hi := (backoffBase<<(n-1))/2, backoffBase<<(n-1)
		if got.Failures != n || wait < lo || wait > hi {
			t.Fatalf("failure %d: failures %d, wait %v not in [%v, %v]", n, got.Failures, wait, lo, hi)
		}
		if wait <= prev/2 {
			t.Fatalf("backoff did not grow: %v after %v", wait, prev)
		}
		prev = wait
	}
	if n := e.prov.Counts().Refreshes; n != 6 {
		t.Fatalf("%d refresh attempts, want 6", n)
	}

	// The provider recovers.
	e.prov.SetFail500(false)
	e.clock.AdvanceTo(got.NextAttemptAt)
	cred, err = e.v.Credential(e.ctx, audit.Meta{}, got, false)
	if err != nil || e.callAPI(cred) != http.StatusOK {
		t.Fatalf("after recovery: %v", err)
	}
	if got := e.get(c.ID); got.Failures != 0 || !got.NextAttemptAt.IsZero() || got.Status != store.ConnectionActive {
		t.Fatalf("after recovery: %+v", got)
	}

	// The jitter draws from the upper half and differs between draws.
	seen := map[time.Duration]bool{}
	for range 20 {
		d := e.v.backoff(3)
		if d < 60*time.Second || d > 120*time.Second {
			t.Fatalf("backoff(3) = %v", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatal("no jitter")
	}
	if d := e.v.backoff(100); d > backoffMax || d < backoffMax/2 {
		t.Fatalf("backoff(100) = %v", d)
	}
}

// TestRevoke: disconnecting revokes the refresh token at the provider and
// destroys the row; a provider failing revocation does not keep it.
func TestRevoke(t *testing.T) {
	e := newEnv(t, envOptions{provider: vaulttest.Options{AuthMethod: vaulttest.AuthPost}})
	c := e.connect("u1")
	s, _ := e.v.open(e.get(c.ID))
	if err := e.v.Revoke(e.ctx, audit.Meta{}, tenant, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if r := e.prov.Revoked(); len(r) != 1 || r[0] != s.RefreshToken || e.prov.RefreshTokenValid(s.RefreshToken) {
		t.Fatalf("revoked at provider: %d tokens", len(r))
	}
	if _, err := e.st.GetConnection(e.ctx, tenant, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("row still there: %v", err)
	}
	if evs := e.events(audit.ConnectionRevoked); len(evs) != 1 || evs[0].Details["reason"] != "disconnected" || evs[0].Details["connection_id"] != c.ID {
		t.Fatalf("events: %+v", evs)
	}
	if err := e.v.Revoke(e.ctx, audit.Meta{}, tenant, c.ID, ""); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("second revoke: %v", err)
	}

	c2 := e.connect("u1")
	e.prov.SetFail500(true)
	if err := e.v.Revoke(e.ctx, audit.Meta{}, tenant, c2.ID, "user_disabled"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.GetConnection(e.ctx, tenant, c2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("row kept after a failed provider revocation")
	}

	// No revocation endpoint: only the row goes.
	e.prov.SetFail500(false)
	c3 := e.connect("u1")
	p := *e.p
	p.RevocationEndpoint = ""
	if err := e.st.UpdateProvider(e.ctx, &p, nil); err != nil {
		t.Fatal(err)
	}
	before := e.prov.Counts().Revocations
	if err := e.v.Revoke(e.ctx, audit.Meta{}, tenant, c3.ID, ""); err != nil || e.prov.Counts().Revocations != before {
		t.Fatalf("revoke without endpoint: %v", err)
	}
}

// TestAPIKeys: a saved key comes back where the provider wants it; a
// rotation keeps the old key retrievable (force) through the overlap,
// by the clock, and RefreshDue destroys it afterwards.
func TestAPIKeys(t *testing.T) {
	e := newEnv(t, envOptions{})
	kp := vaulttest.APIKeyProvider(tenant, "search")
	kp.KeyFormat = "Token {key}"
	e.createProvider(kp)
	qp := vaulttest.APIKeyProvider(tenant, "maps")
	qp.KeyHeader, qp.KeyQuery = "", "api_key"
	e.createProvider(qp)

	const oldKey, newKey = "sk_live_old_1234", "sk_live_new_abcd"
	c, err := e.v.SaveAPIKey(e.ctx, audit.Meta{}, kp, Owner{store.OwnerTenant, tenant}, "", oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if c.Label != kp.Name || len(c.Scopes) != 0 || !c.ExpiresAt.IsZero() {
		t.Errorf("connection %+v", c)
	}
	cred, err := e.v.Credential(e.ctx, audit.Meta{}, c, false)
	if err != nil || cred.AccessToken != oldKey || cred.Header != "X-API-Key" || cred.HeaderValue != "Token "+oldKey || cred.Query != "" || cred.Kind != store.ProviderAPIKey {
		t.Fatalf("credential %+v, %v", cred, err)
	}
	found, err := e.v.Find(e.ctx, tenant, "search", "anyone", nil)
	if err != nil || found.ID != c.ID {
		t.Fatalf("Find = %v, %v", found, err)
	}

	qc, err := e.v.SaveAPIKey(e.ctx, audit.Meta{}, qp, Owner{store.OwnerUser, "u1"}, "my maps key", "maps-key")
	if err != nil {
		t.Fatal(err)
	}
	if cred, err := e.v.Credential(e.ctx, audit.Meta{}, qc, false); err != nil || cred.Query != "api_key" || cred.Header != "" || cred.AccessToken != "maps-key" || qc.Label != "my maps key" {
		t.Fatalf("query credential %+v, %v", cred, err)
	}

	for _, bad := range []string{"", " padded", "line\nbreak", strings.Repeat("k", 5000)} {
		if _, err := e.v.SaveAPIKey(e.ctx, audit.Meta{}, kp, Owner{store.OwnerUser, "u1"}, "", bad); err == nil {
			t.Errorf("key %.10q accepted", bad)
		}
	}
	if _, err := e.v.SaveAPIKey(e.ctx, audit.Meta{}, e.p, Owner{store.OwnerUser, "u1"}, "", "k"); err == nil {
		t.Error("API key saved for an OAuth 2 provider")
	}

	if err := e.v.RotateAPIKey(e.ctx, audit.Meta{}, tenant, c.ID, newKey, time.Hour); err != nil {
		t.Fatal(err)
	}
	rot := e.get(c.ID)
	if !rot.PreviousUntil.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("PreviousUntil = %v", rot.PreviousUntil)
	}
	evs := e.events(audit.ConnectionRotated)
	if len(evs) != 1 || evs[0].Details["previous_until"] != rot.PreviousUntil.Format(time.RFC3339) {
		t.Fatalf("rotated events: %+v", evs)
	}
	key := func(force bool) string {
		t.Helper()
		cred, err := e.v.Credential(e.ctx, audit.Meta{}, e.get(c.ID), force)
		if err != nil {
			t.Fatal(err)
		}
		return cred.AccessToken
	}
	if key(false) != newKey || key(true) != oldKey {
		t.Fatal("during the overlap: the new key by default, the old one when forced")
	}
	e.clock.Advance(59 * time.Minute)
	if n, err := e.v.RefreshDue(e.ctx); err != nil || n != 0 || len(e.get(c.ID).PreviousSecret) == 0 {
		t.Fatalf("RefreshDue within the overlap: %d, %v", n, err)
	}
	if key(true) != oldKey {
		t.Fatal("old key gone before the overlap ended")
	}
	e.clock.Advance(2 * time.Minute)
	if key(true) != newKey {
		t.Fatal("old key served after the overlap")
	}
	if _, err := e.v.RefreshDue(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.get(c.ID); len(got.PreviousSecret) != 0 || !got.PreviousUntil.IsZero() {
		t.Fatal("RefreshDue kept the rotated-out key")
	}

	// Default overlap: the provider's, else the vault's.
	kp.KeyOverlap = 10 * time.Minute
	if err := e.st.UpdateProvider(e.ctx, kp, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.v.RotateAPIKey(e.ctx, audit.Meta{}, tenant, c.ID, "sk_live_third", 0); err != nil {
		t.Fatal(err)
	}
	if got := e.get(c.ID); !got.PreviousUntil.Equal(e.clock.Now().Add(10 * time.Minute)) {
		t.Fatalf("provider overlap not used: %v", got.PreviousUntil)
	}
	if err := e.v.RotateAPIKey(e.ctx, audit.Meta{}, tenant, qc.ID, "maps-key-2", 0); err != nil {
		t.Fatal(err)
	}
	if got := e.get(qc.ID); !got.PreviousUntil.Equal(e.clock.Now().Add(DefaultKeyOverlap)) {
		t.Fatalf("vault overlap not used: %v", got.PreviousUntil)
	}
	conn := e.connect("u1")
	if err := e.v.RotateAPIKey(e.ctx, audit.Meta{}, tenant, conn.ID, "k", 0); err == nil {
		t.Fatal("rotated the key of an OAuth 2 connection")
	}
}

// TestRefreshDue: the background sweep refreshes what expires within the
// margin and what was not refreshed for KeepAlive, respects backoff, and
// leaves fresh connections alone.
func TestRefreshDue(t *testing.T) {
	e := newEnv(t, envOptions{cfg: func(c *Config) { c.KeepAlive = 12 * time.Hour }})
	e.prov.SetAccessTokenTTL(0) // tokens that never expire: only keep-alive applies
	idle := e.connect("u1")
	e.prov.SetAccessTokenTTL(time.Hour)
	e.clock.Advance(11*time.Hour + 30*time.Minute)
	expiring := e.connect("u2")

	if n, err := e.v.RefreshDue(e.ctx); err != nil || n != 0 {
		t.Fatalf("nothing due: %d, %v", n, err)
	}
	e.clock.Advance(expiring.ExpiresAt.Sub(e.clock.Now()) - 30*time.Second) // idle now 12h old too
	n, err := e.v.RefreshDue(e.ctx)
	if err != nil || n != 2 {
		t.Fatalf("RefreshDue = %d, %v; want 2", n, err)
	}
	for _, id := range []string{idle.ID, expiring.ID} {
		if got := e.get(id); !got.LastRefreshedAt.Equal(e.clock.Now()) {
			t.Errorf("%s not refreshed", id)
		}
	}
	for _, ev := range e.events(audit.ConnectionRefreshed) {
		if ev.Details["trigger"] != triggerBackground {
			t.Errorf("trigger %q", ev.Details["trigger"])
		}
	}
	if n, _ := e.v.RefreshDue(e.ctx); n != 0 {
		t.Fatalf("refreshed again at once: %d", n)
	}

	// Backoff applies in the background too.
	e.prov.SetFail500(true)
	e.clock.Advance(time.Hour)
	if n, _ := e.v.RefreshDue(e.ctx); n != 0 {
		t.Fatal("a failing refresh counted")
	}
	calls := e.prov.Counts().TokenCalls
	e.clock.Advance(5 * time.Second)
	e.v.RefreshDue(e.ctx)
	if e.prov.Counts().TokenCalls != calls {
		t.Fatal("RefreshDue ignored NextAttemptAt")
	}

	// Run sweeps until its context ends.
	e.prov.SetFail500(false)
	e.clock.Advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { e.v.Run(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.get(expiring.ID).Failures != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if e.get(expiring.ID).Failures != 0 {
		t.Fatal("Run did not refresh")
	}
}

// TestLeaseHolderElsewhere: a refresh lease another process holds makes
// the vault wait and read that process's result instead of refreshing;
// a lease left behind by a crashed holder is taken over once it ends.
func TestLeaseHolderElsewhere(t *testing.T) {
	e := newEnv(t, envOptions{cfg: func(c *Config) { c.LeaseTTL = 2 * time.Second }})
	c := e.connect("u1")
	e.expireSoon(c)
	now := e.clock.Now()
	if _, err := e.st.AcquireRefreshLease(e.ctx, tenant, c.ID, "crashed-process", now, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.v.Credential(e.ctx, audit.Meta{}, c, false)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if e.prov.Counts().Refreshes != 0 {
		t.Fatal("refreshed while another process held the lease")
	}
	e.clock.Advance(3 * time.Second) // the crashed holder's lease ends
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.prov.Counts().Refreshes != 1 || e.get(c.ID).RefreshHolder != "" {
		t.Fatal("lease not taken over")
	}
}

// TestRefreshOutlivesCaller: a caller giving up does not abandon a refresh
// in flight — the provider may already have rotated the refresh token, and
// dropping its answer would lose the only valid one.
func TestRefreshOutlivesCaller(t *testing.T) {
	e := newEnv(t, envOptions{provider: vaulttest.Options{RotateRefreshTokens: true}})
	c := e.connect("u1")
	e.expireSoon(c)
	e.prov.SetTokenDelay(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := e.v.Credential(ctx, audit.Meta{}, c, false); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Credential = %v, want the caller's deadline", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.get(c.ID).LastRefreshedAt.Equal(c.LastRefreshedAt) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s, err := e.v.open(e.get(c.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !e.prov.RefreshTokenValid(s.RefreshToken) || e.prov.Counts().Refreshes != 1 {
		t.Fatal("the rotated refresh token was lost")
	}
	e.prov.SetTokenDelay(0)
	if _, err := e.v.Credential(e.ctx, audit.Meta{}, c, false); err != nil || e.prov.Counts().Refreshes != 1 {
		t.Fatalf("after: %v, %d refreshes", err, e.prov.Counts().Refreshes)
	}
}

// TestRevokeDuringRefresh: a disconnect while a refresh is in flight waits
// for it and revokes the refresh token the provider just issued, not the
// rotated-out one (which a provider may ignore, leaving the grant alive).
func TestRevokeDuringRefresh(t *testing.T) {
	e := newEnv(t, envOptions{provider: vaulttest.Options{RotateRefreshTokens: true}})
	c := e.connect("u1")
	orig, _ := e.v.open(e.get(c.ID))
	e.expireSoon(c)
	e.prov.SetTokenDelay(200 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := e.v.Credential(e.ctx, audit.Meta{}, c, false)
		done <- err
	}()
	for e.prov.Counts().Refreshes == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.v.Revoke(e.ctx, audit.Meta{}, tenant, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	<-done
	r := e.prov.Revoked()
	if len(r) != 1 || r[0] == orig.RefreshToken || !strings.HasPrefix(r[0], "rt_") {
		t.Fatalf("revoked %d tokens; the rotated-out one: %v", len(r), len(r) > 0 && r[0] == orig.RefreshToken)
	}
	if _, err := e.st.GetConnection(e.ctx, tenant, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("row kept")
	}
}
