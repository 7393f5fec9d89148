package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
)

// apiAnswer is an admin API answer: its status, headers and JSON body.
type apiAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

// adminCall sends method to the admin API path with bearer (none when
// empty) and checks the answer's media type: JSON on success, an RFC 9457
// problem otherwise.
func adminCall(t *testing.T, h *hub, method, bearer, path string) apiAnswer {
	t.Helper()
	req, err := http.NewRequest(method, h.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := apiAnswer{status: resp.StatusCode, header: resp.Header}
	want := "application/json"
	if resp.StatusCode >= 400 {
		want = "application/problem+json"
	}
	if ct := resp.Header.Get("Content-Type"); ct != want {
		t.Fatalf("%s %s: %d with Content-Type %q, want %q: %s", method, path, resp.StatusCode, ct, want, raw)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: Cache-Control %q", method, path, resp.Header.Get("Cache-Control"))
	}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	if resp.StatusCode >= 400 && (a.body["status"] != float64(resp.StatusCode) || a.body["title"] != http.StatusText(resp.StatusCode) || a.body["type"] != "about:blank") {
		t.Errorf("%s %s: problem %v does not match status %d (RFC 9457 §3.1)", method, path, a.body, resp.StatusCode)
	}
	return a
}

func strList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// adminAPIHub is a hub with the admin API set up, an admin token from
// x/oauth2's clientcredentials, and an agent alice gave notes.read, whose
// token (with a refresh token) it returns.
func adminAPIHub(t *testing.T, h *hub) (bearer string, agentTok map[string]string) {
	t.Helper()
	adminURI, secret := adminHub(t, h)
	bearer, err := adminToken(t, h, "siem", secret, adminURI, server.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	rsSecret := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("notes-mcp")
	conf, agentSecret := addAgent(h)
	tok, err := h.codeFlow(h.Browser(), conf, []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	return bearer, map[string]string{"access": tok.AccessToken, "refresh": tok.RefreshToken, "secret": agentSecret, "rs": rsSecret}
}

// TestAdminAPIAgents: the inventory a page at a time, an agent's detail
// with its consents and events, and deprovisioning: the agent's tokens
// die, the second call changes nothing, and the events name the admin
// client.
func TestAdminAPIAgents(t *testing.T) { forEachBackend(t, testAdminAPIAgents) }

func testAdminAPIAgents(t *testing.T, h *hub) {
	bearer, agent := adminAPIHub(t, h)
	for _, id := range []string{"bot-b", "bot-a", "bot-c"} {
		h.AddClient(&store.Client{ID: id, GrantTypes: []string{"client_credentials"}})
	}

	t.Run("list in pages", func(t *testing.T) {
		var got []string
		path := server.AdminAPIPath + "/agents?limit=2"
		for pages := 0; path != ""; pages++ {
			if pages > 5 {
				t.Fatal("the pages never end")
			}
			a := adminCall(t, h, http.MethodGet, bearer, path)
			if a.status != http.StatusOK {
				t.Fatalf("%s: %d %v", path, a.status, a.body)
			}
			for _, x := range a.body["agents"].([]any) {
				got = append(got, x.(map[string]any)["client_id"].(string))
			}
			path, _ = a.body["next"].(string)
			if path != "" && a.header.Get("Link") != "<"+h.URL+path+`>; rel="next"` {
				t.Errorf("Link %q for next %q", a.header.Get("Link"), path)
			}
		}
		if want := []string{"agent-1", "bot-a", "bot-b", "bot-c", "notes-mcp", "siem"}; !slices.Equal(got, want) {
			t.Fatalf("agents = %v, want %v", got, want)
		}
	})

	t.Run("detail", func(t *testing.T) {
		a := adminCall(t, h, http.MethodGet, bearer, server.AdminAPIPath+"/agents/agent-1")
		if a.status != http.StatusOK {
			t.Fatalf("%d %v", a.status, a.body)
		}
		b := a.body
		if b["status"] != "active" || b["client_type"] != "confidential" || b["registration_method"] != "manual" || !slices.Equal(strList(b["consenting_users"]), []string{servertest.TestUser}) || b["last_token_at"] == nil {
			t.Errorf("agent = %v", b)
		}
		cs := b["consents"].([]any)
		if len(cs) != 1 || cs[0].(map[string]any)["scope"] != "notes.read" || cs[0].(map[string]any)["username"] != servertest.TestUser {
			t.Errorf("consents = %v", cs)
		}
		var types []string
		for _, ev := range b["recent_events"].([]any) {
			types = append(types, ev.(map[string]any)["type"].(string))
		}
		for _, want := range []string{audit.ConsentGiven, audit.TokenIssued} {
			if !slices.Contains(types, want) {
				t.Errorf("recent events %v lack %s", types, want)
			}
		}
		if _, ok := b["secret_hash"]; ok {
			t.Error("the detail carries the secret hash")
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, c := range []struct {
			name, method, bearer, path string
			status                     int
			detail                     string
		}{
			{"unknown agent", "GET", bearer, "/agents/nobody", 404, `no agent with id "nobody"`},
			{"deprovision an unknown agent", "POST", bearer, "/agents/nobody/deprovision", 404, `no agent with id "nobody"`},
			{"bad page parameters", "GET", bearer, "/agents?limit=0&sort=name", 400, "bad parameters: limit, sort"},
			{"a parameter given twice", "GET", bearer, "/users?after=a&after=b", 400, "bad parameters: after"},
			{"a parameter on a detail", "GET", bearer, "/agents/agent-1?x=1", 400, "bad parameters: x"},
			{"GET on a POST endpoint", "GET", bearer, "/agents/agent-1/deprovision", 405, "GET is not allowed here; use POST"},
			{"POST on a GET endpoint", "POST", bearer, "/users", 405, "POST is not allowed here; use GET, HEAD"},
			{"no token", "POST", "", "/agents/agent-1/deprovision", 401, ""},
			{"an agent's own token", "POST", agent["access"], "/agents/agent-1/deprovision", 401, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				a := adminCall(t, h, c.method, c.bearer, server.AdminAPIPath+c.path)
				if a.status != c.status || (c.detail != "" && a.body["detail"] != c.detail) {
					t.Fatalf("%d %v, want %d %q", a.status, a.body, c.status, c.detail)
				}
				if c.status == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("401 without a Bearer challenge: %v", a.header)
				}
			})
		}
		if c, _ := h.Store.GetClient(context.Background(), store.DefaultTenant, "agent-1"); c.Disabled {
			t.Fatal("a refused request changed the agent")
		}
	})

	t.Run("deprovision", func(t *testing.T) {
		if h.introspect(agent["access"], "notes-mcp", agent["rs"])["active"] != true {
			t.Fatal("the agent's access token is inactive before deprovisioning")
		}
		a := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/agents/agent-1/deprovision")
		if a.status != http.StatusOK || a.body["changed"] != true || a.body["status"] != "deprovisioned" {
			t.Fatalf("deprovision: %d %v", a.status, a.body)
		}
		if h.introspect(agent["access"], "notes-mcp", agent["rs"])["active"] != false {
			t.Error("the deprovisioned agent's access token introspects active")
		}
		if r := h.refresh(agent["refresh"], "agent-1", agent["secret"]); r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" && r.body["error"] != "invalid_grant" {
			t.Errorf("the deprovisioned agent refreshed: %d %v", r.status, r.body)
		}
		evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, ClientID: "agent-1", Type: audit.ClientUpdated})
		if err != nil {
			t.Fatal(err)
		}
		var changes []string
		for _, ev := range evs {
			if ev.Details["actor"] != audit.ActorAdminAPI || ev.Details["actor_id"] != "siem" || ev.RequestID == "" {
				t.Errorf("event %s %v does not name the admin client", ev.Type, ev.Details)
			}
			changes = append(changes, ev.Details["change"])
		}
		if want := []string{audit.ChangeDeprovisioned, audit.ChangeDisabled}; !slices.Equal(changes, want) {
			t.Errorf("client.updated changes %v, want %v", changes, want)
		}
		for _, typ := range []string{audit.ConsentRevoked, audit.ClientTokensRevoked} {
			if evs, _ := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, ClientID: "agent-1", Type: typ}); len(evs) != 1 || evs[0].Details["actor_id"] != "siem" {
				t.Errorf("%s events: %v", typ, evs)
			}
		}
		d := adminCall(t, h, http.MethodGet, bearer, server.AdminAPIPath+"/agents/agent-1")
		if d.body["status"] != "deprovisioned" || len(d.body["consents"].([]any)) != 0 || len(strList(d.body["consenting_users"])) != 0 {
			t.Errorf("after deprovisioning: %v", d.body)
		}
		again := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/agents/agent-1/deprovision")
		if again.status != http.StatusOK || again.body["changed"] != false {
			t.Errorf("second deprovision: %d %v", again.status, again.body)
		}
		if evs2, _ := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, ClientID: "agent-1", Type: audit.ClientUpdated}); len(evs2) != len(evs) {
			t.Errorf("the second deprovision wrote %d more events", len(evs2)-len(evs))
		}
	})
}

// TestAdminAPIUsers: people a page at a time, a person's consents and
// connections, disabling (their tokens end) and deprovisioning (their
// connections are revoked), each idempotent and attributed.
func TestAdminAPIUsers(t *testing.T) { forEachBackend(t, testAdminAPIUsers) }

func testAdminAPIUsers(t *testing.T, h *hub) {
	bearer, agent := adminAPIHub(t, h)
	ctx := context.Background()
	now := time.Now()
	for _, u := range []*store.User{
		{TenantID: store.DefaultTenant, ID: "u-bob", Username: "bob", Roles: []string{"admin"}, CreatedAt: now, UpdatedAt: now},
		{TenantID: store.DefaultTenant, ID: "u-carol", Username: "carol", Groups: []string{"eng"}, CreatedAt: now, UpdatedAt: now},
	} {
		if err := h.Store.CreateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := &store.Provider{TenantID: store.DefaultTenant, ID: "search", Name: "Search", Kind: store.ProviderAPIKey, KeyHeader: "X-Api-Key", CreatedAt: now, UpdatedAt: now}
	if err := h.Store.CreateProvider(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	const key = "sk_live_0123456789abcdef"
	conn, err := h.Vault.SaveAPIKey(ctx, audit.Meta{TenantID: store.DefaultTenant, Time: now}, p, vault.Owner{Kind: store.OwnerUser, ID: "u-alice"}, "work", key)
	if err != nil {
		t.Fatal(err)
	}

	a := adminCall(t, h, http.MethodGet, bearer, server.AdminAPIPath+"/users?limit=2")
	users := a.body["users"].([]any)
	if a.status != 200 || len(users) != 2 || users[0].(map[string]any)["username"] != servertest.TestUser || a.body["next_cursor"] != "u-bob" {
		t.Fatalf("first page: %d %v", a.status, a.body)
	}
	if _, ok := users[0].(map[string]any)["password_hash"]; ok {
		t.Fatal("the user list carries password hashes")
	}
	a = adminCall(t, h, http.MethodGet, bearer, a.body["next"].(string))
	if users := a.body["users"].([]any); len(users) != 1 || users[0].(map[string]any)["id"] != "u-carol" || a.body["next"] != nil {
		t.Fatalf("second page: %v", a.body)
	}

	d := adminCall(t, h, http.MethodGet, bearer, server.AdminAPIPath+"/users/u-alice")
	if cs := d.body["consents"].([]any); len(cs) != 1 || cs[0].(map[string]any)["client_id"] != "agent-1" {
		t.Errorf("consents = %v", d.body["consents"])
	}
	conns := d.body["connections"].([]any)
	if len(conns) != 1 || conns[0].(map[string]any)["id"] != conn.ID || conns[0].(map[string]any)["label"] != conn.Label {
		t.Errorf("connections = %v", conns)
	}
	raw, _ := json.Marshal(d.body)
	if strings.Contains(string(raw), key) {
		t.Fatalf("the user detail shows connection material: %s", raw)
	}

	t.Run("disable", func(t *testing.T) {
		a := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/users/u-carol/disable")
		if a.status != 200 || a.body["changed"] != true || a.body["disabled"] != true {
			t.Fatalf("disable: %d %v", a.status, a.body)
		}
		if a := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/users/u-carol/disable"); a.body["changed"] != false {
			t.Errorf("second disable: %v", a.body)
		}
		evs, _ := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, UserID: "u-carol", Type: audit.UserUpdated})
		if len(evs) != 1 || evs[0].Details["change"] != audit.ChangeDisabled || evs[0].Details["actor_id"] != "siem" {
			t.Errorf("user.updated events: %v", evs)
		}
		if a := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/users/u-nobody/disable"); a.status != 404 {
			t.Errorf("disabling an unknown user: %d", a.status)
		}
	})

	t.Run("deprovision", func(t *testing.T) {
		a := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/users/u-alice/deprovision")
		if a.status != 200 || a.body["changed"] != true || a.body["disabled_now"] != true || a.body["consents_revoked"] != float64(1) ||
			!slices.Equal(strList(a.body["connections_revoked"]), []string{conn.ID}) {
			t.Fatalf("deprovision: %d %v", a.status, a.body)
		}
		if r := h.refresh(agent["refresh"], "agent-1", agent["secret"]); r.status == http.StatusOK {
			t.Error("a token issued for the deprovisioned user still refreshes")
		}
		if _, err := h.Store.GetConnection(ctx, store.DefaultTenant, conn.ID); err == nil {
			t.Error("the user's connection survived")
		}
		evs, _ := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.ConnectionRevoked})
		if len(evs) != 1 || evs[0].Details["actor"] != audit.ActorAdminAPI || evs[0].Details["reason"] != "user_deprovisioned" {
			t.Errorf("connection.revoked events: %v", evs)
		}
		if a := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/users/u-alice/deprovision"); a.status != 200 || a.body["changed"] != false {
			t.Errorf("second deprovision: %d %v", a.status, a.body)
		}
	})
}

// TestAdminAPIUserDeprovisionWithoutVault: a person owning connections on
// a hub without a vault is disabled and loses their consents, and the
// answer says the connections are left (409).
func TestAdminAPIUserDeprovisionWithoutVault(t *testing.T) {
	h := newHub(t, func(c *server.Config) { c.Keyring = nil })
	adminURI, secret := adminHub(t, h)
	bearer, err := adminToken(t, h, "siem", secret, adminURI, server.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kek, err := keyring.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(vault.Config{Store: h.Store, Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p := &store.Provider{TenantID: store.DefaultTenant, ID: "search", Name: "Search", Kind: store.ProviderAPIKey, KeyHeader: "X-Api-Key", CreatedAt: now, UpdatedAt: now}
	if err := h.Store.CreateProvider(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.SaveAPIKey(ctx, audit.Meta{TenantID: store.DefaultTenant, Time: now}, p, vault.Owner{Kind: store.OwnerUser, ID: "u-alice"}, "", "sk_live_0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	a := adminCall(t, h, http.MethodPost, bearer, server.AdminAPIPath+"/users/u-alice/deprovision")
	if a.status != http.StatusConflict || !strings.Contains(a.body["detail"].(string), "no vault") {
		t.Fatalf("%d %v", a.status, a.body)
	}
	if u, _ := h.Store.GetUser(ctx, store.DefaultTenant, "u-alice"); !u.Disabled {
		t.Error("the person was not disabled")
	}
}
