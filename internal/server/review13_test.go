package server_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestDeprovisionedAgentLosesRegistrationToken: a dynamically registered
// agent keeps its RFC 7592 registration access token after it is
// deprovisioned (or disabled); with it, it must not read, rewrite or
// delete its registration — deleting it would erase the deprovisioned
// record from the inventory, by the agent's own hand.
func TestDeprovisionedAgentLosesRegistrationToken(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	r := h.jsonRequest(http.MethodPost, "/register", map[string]any{
		"client_name": "rogue", "redirect_uris": []string{"http://127.0.0.1/cb"}, "grant_types": []string{"authorization_code", "refresh_token"},
	}, "")
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	id, rat := r.body["client_id"].(string), r.body["registration_access_token"].(string)
	if g := h.jsonRequest(http.MethodGet, "/register/"+id, "", rat); g.status != http.StatusOK {
		t.Fatalf("read before: %d %v", g.status, g.body)
	}
	if _, err := clients.Deprovision(ctx, h.Store, audit.Meta{Actor: audit.ActorCLI}, "", id, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		body   any
	}{
		{http.MethodGet, ""},
		{http.MethodPut, map[string]any{"client_id": id, "client_name": "renamed", "redirect_uris": []string{"http://127.0.0.1/cb2"}}},
		{http.MethodDelete, ""},
	} {
		if a := h.jsonRequest(c.method, "/register/"+id, c.body, rat); a.status != http.StatusUnauthorized || a.body["error"] != "invalid_token" {
			t.Errorf("%s /register/%s after deprovisioning: %d %v, want 401 invalid_token", c.method, id, a.status, a.body)
		}
	}
	cl, err := h.Store.GetClient(ctx, store.DefaultTenant, id)
	if err != nil || cl.Status != store.ClientDeprovisioned || cl.Name != "rogue" {
		t.Fatalf("after the attempts: %+v %v, want the deprovisioned record unchanged", cl, err)
	}
}

// TestNoConsentAfterDeprovision: a person who had the consent page open
// when the agent was deprovisioned (by the CLI, another process, so the
// hub's client cache still holds the agent as it was) approves it
// afterwards. No live consent may be recorded for the deprovisioned agent:
// it would show the agent with a consenting user in the inventory and
// would be live again if the agent were ever enabled, which deprovisioning
// promises it is not.
func TestNoConsentAfterDeprovision(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *hub) {
		ctx := context.Background()
		secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
		f := h.startFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read"))
		if _, err := clients.Deprovision(ctx, h.Store, audit.Meta{Actor: audit.ActorCLI}, "", "agent-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		back := f.decide("allow", []string{"notes.read"}, "")
		for scope, g := range h.grants("u-alice", "agent-1") {
			if g.Live(time.Now()) {
				t.Errorf("consent %s recorded live for the deprovisioned agent (answer %d, to %v)", scope, back.Status, back.Location)
			}
		}
		if back.Location != nil && back.Location.Query().Get("code") != "" {
			t.Errorf("a code was issued to the deprovisioned agent: %v", back.Location)
		}
		a, err := clients.InventoryAgent(ctx, h.Store, "", "agent-1", time.Now())
		if err != nil || a.Status != clients.AgentDeprovisioned || len(a.ConsentingUsers) != 0 {
			t.Errorf("inventory: %+v %v, want deprovisioned without consenting users", a, err)
		}
	})
}

// TestDeprovisionedCIMDAgentStaysOut: a metadata-document agent is
// deprovisioned and then goes unused, as a switched-off agent does. The
// hub's hourly expiry of unused self-registered clients must not remove
// it: its id is its document's URL, so removing it would let the same
// agent back in, under the same id, as a new enabled client at its next
// authorization request.
func TestDeprovisionedCIMDAgentStaysOut(t *testing.T) {
	ctx := context.Background()
	d := newDocHost(t)
	id := d.url("/oauth/client.json")
	d.put("/oauth/client.json", clientDoc(id, redirectURI), "max-age=3600")
	h, clk := cimdHub(t, d)
	if _, err := h.codeFlow(h.Browser(), h.oauth2Config(id, "", "notes.read"), []string{"notes.read"}); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.Deprovision(ctx, h.Store, audit.Meta{Actor: audit.ActorCLI}, "", id, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(120 * 24 * time.Hour) // past the client expiry and every token and consent
	if err := h.Server.ExpireClients(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := h.Store.GetClient(ctx, store.DefaultTenant, id)
	if err != nil || c.Status != store.ClientDeprovisioned || !c.Disabled {
		t.Fatalf("after the expiry job: %+v %v, want the deprovisioned record kept", c, err)
	}
	// Its next authorization request is refused as a disabled client's,
	// and it is not registered anew.
	b := h.Browser()
	b.Login(b.Get(h.URL+"/login"), servertest.TestUser, servertest.TestPassword)
	if p := b.Get(authorizeURL(h, id, redirectURI)); p.Status != http.StatusBadRequest || strings.Contains(p.Body, `action="/authorize/decision"`) {
		t.Errorf("authorization request after the expiry job: %d, want the disabled client's 400 page\n%s", p.Status, p.Body)
	}
	if evs := auditOf(t, h, audit.ClientRegistered); len(evs) != 1 {
		t.Errorf("%d client.registered events, want the first only", len(evs))
	}
}

// deprovisionOnConsent deprovisions an agent the moment the first consent
// is about to be written: the consent decision read the agent enabled,
// and the administrator's deprovisioning commits in between.
type deprovisionOnConsent struct {
	store.Store
	agent string
	once  sync.Once
	err   error
}

func (s *deprovisionOnConsent) UpsertConsents(ctx context.Context, grants []*store.ConsentGrant, ev *store.AuditEvent) error {
	s.once.Do(func() {
		_, s.err = clients.Deprovision(ctx, s.Store, audit.Meta{Actor: audit.ActorCLI}, "", s.agent, time.Now())
	})
	return s.Store.UpsertConsents(ctx, grants, ev)
}

// TestConsentRacingDeprovision: a consent approved while the agent is
// being deprovisioned (the decision read it enabled; the deprovisioning
// ran, revoking every consent, before the new one was written) must not
// be left live behind the deprovisioned agent, nor answered with a code.
func TestConsentRacingDeprovision(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			var inner store.Store
			if pg {
				inner = openPostgresStore(t)
			} else {
				inner = openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db"))
			}
			st := &deprovisionOnConsent{Store: inner, agent: "agent-1"}
			h := &hub{servertest.NewOn(t, st)}
			secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
			f := h.startFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read"))
			back := f.decide("allow", []string{"notes.read"}, "")
			if st.err != nil {
				t.Fatal(st.err)
			}
			for scope, g := range h.grants("u-alice", "agent-1") {
				if g.Live(time.Now()) {
					t.Errorf("consent %s left live behind the deprovisioned agent", scope)
				}
			}
			if back.Location != nil && back.Location.Query().Get("code") != "" {
				t.Errorf("a code was issued to the deprovisioned agent: %v", back.Location)
			}
			a, err := clients.InventoryAgent(context.Background(), h.Store, "", "agent-1", time.Now())
			if err != nil || a.Status != clients.AgentDeprovisioned || len(a.ConsentingUsers) != 0 {
				t.Errorf("inventory: %+v %v, want deprovisioned without consenting users", a, err)
			}
		})
	}
}

// TestConsoleAdminSwitchedOff: an administrator whose session is still
// live loses the console the moment the account is disabled, for pages and for forms carrying a token the console gave
// them while they were an administrator.
func TestConsoleAdminSwitchedOff(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*store.User)
	}{
		{"disabled", func(u *store.User) { u.Disabled = true }},
		{"admin role taken away", func(u *store.User) {
			u.Roles = slices.DeleteFunc(u.Roles, func(r string) bool { return r == server.AdminRole })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHub(t)
			addAdmin(t, h)
			addAgent(h)
			b := h.Browser()
			p := signIn(t, h, b, "/admin/agents/agent-1/deprovision", adminUser)
			if p.Status != http.StatusOK {
				t.Fatalf("confirmation page: %d", p.Status)
			}
			csrf := formToken(t, p)
			ctx := context.Background()
			u, err := h.Store.GetUser(ctx, store.DefaultTenant, adminUserID)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(u)
			// The store only: sessions are not ended, as when the flag
			// is set by another path than the CLI's disable.
			if err := h.Store.UpdateUser(ctx, u, nil); err != nil {
				t.Fatal(err)
			}
			if p := b.Get(h.URL + "/admin/agents"); p.Status == http.StatusOK && strings.Contains(p.Body, "agent-1") {
				t.Errorf("agents page still shown: %d %s", p.Status, p.URL)
			}
			b.Post(h.URL+"/admin/agents/agent-1/deprovision", url.Values{"csrf_token": {csrf}})
			if cl, err := h.Store.GetClient(ctx, store.DefaultTenant, "agent-1"); err != nil || cl.Disabled {
				t.Errorf("the agent was deprovisioned by a switched-off administrator: %+v %v", cl, err)
			}
		})
	}
}

// TestAdminAPIProblemEverywhere: every answer of the admin API's paths
// that is an error is an RFC 9457 problem document, the API's root
// included.
func TestAdminAPIProblemEverywhere(t *testing.T) {
	h := newHub(t)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/admin/api", http.StatusNotFound},
		{http.MethodGet, "/admin/api/", http.StatusNotFound},
		{http.MethodGet, "/admin/api/nothing", http.StatusNotFound},
		{http.MethodPut, "/admin/api/agents/a/deprovision", http.StatusMethodNotAllowed},
		{http.MethodGet, "/admin/api/agents", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(c.method, h.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %s, want %d application/problem+json", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.status)
		}
	}
}

// TestIssuanceRacingDeprovision: client-credentials requests run while
// the agent is deprovisioned. Every token the agent received, before or
// during the deprovisioning, introspects inactive once it returns, and
// no request started after it returns gets a token.
func TestIssuanceRacingDeprovision(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *hub) {
		secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
		rsSecret := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		var (
			mu     sync.Mutex
			tokens []string
			done   = make(chan struct{})
			wg     sync.WaitGroup
		)
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", secret)
					if tok, ok := r.body["access_token"].(string); ok {
						mu.Lock()
						tokens = append(tokens, tok)
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := clients.Deprovision(context.Background(), h.Store, audit.Meta{Actor: audit.ActorCLI}, "", "bot", time.Now()); err != nil {
			t.Fatal(err)
		}
		close(done)
		wg.Wait()
		if len(tokens) == 0 {
			t.Fatal("no token was issued before the deprovisioning")
		}
		for _, tok := range tokens {
			if got := h.introspect(tok, "notes-mcp", rsSecret); got["active"] != false {
				t.Fatalf("a token issued around the deprovisioning is active: %v", got)
			}
		}
		if r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", secret); r.body["access_token"] != nil {
			t.Fatalf("a token was issued after the deprovisioning: %v", r.body)
		}
	})
}
