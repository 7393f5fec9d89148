package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/mcpauth"
)

// deprovisionBackends runs f on a retrieval hub on SQLite and on
// PostgreSQL: deprovisioning composes store operations whose cascades
// each backend implements.
func deprovisionBackends(t *testing.T, f func(t *testing.T, h *retrievalHub)) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) { f(t, newRetrievalHubWith(t, exchangeOptions{postgres: pg})) })
	}
}

// introspectingVerifier is MCP server A's mcpauth verifier in introspection
// mode (no cache): every token is also checked at the hub.
func introspectingVerifier(t *testing.T, h *retrievalHub) *mcpauth.Verifier {
	t.Helper()
	v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{
		Issuer: h.URL, Resource: h.resA, Now: h.clk.Now,
		Introspection: &mcpauth.IntrospectionConfig{ClientID: "mcp-a", ClientSecret: h.secrets["mcp-a"], CacheTTL: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDeprovisionAgent: after `agents deprovision` the agent's refresh
// token fails with invalid_grant, its access token introspects inactive
// and an mcpauth server in introspection mode refuses it, the resource
// server can no longer retrieve the person's vault credential on it, and
// the inventory shows the agent deprovisioned with no consenting user.
// A second run changes nothing and writes no event.
func TestDeprovisionAgent(t *testing.T) {
	deprovisionBackends(t, func(t *testing.T, h *retrievalHub) {
		ctx := context.Background()
		h.connect("calendar.read")
		conf := h.oauth2Config("agent", h.secrets["agent"], "notes.read")
		tok, err := h.codeFlowToken(h.Browser(), conf, h.resA, []string{"notes.read"})
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token")
		}
		v := introspectingVerifier(t, h)
		// Before: everything works.
		if _, err := v.Verify(ctx, tok.AccessToken); err != nil {
			t.Fatalf("verifier before: %v", err)
		}
		if r := h.retrieve("mcp-a", tok.AccessToken, "calendar"); r.status != http.StatusOK {
			t.Fatalf("retrieval before: %d %v", r.status, r.body)
		}
		if a, err := clients.InventoryAgent(ctx, h.Store, "", "agent", h.clk.Now()); err != nil || a.Status != clients.AgentActive ||
			len(a.ConsentingUsers) != 1 || a.ConsentingUsers[0] != "alice" || a.LastTokenAt.IsZero() {
			t.Fatalf("inventory before: %+v %v", a, err)
		}

		h.clk.Advance(time.Second)
		res, err := clients.Deprovision(ctx, h.Store, audit.Meta{Actor: audit.ActorCLI}, "", "agent", h.clk.Now())
		if err != nil || !res.Changed || res.Client.Status != store.ClientDeprovisioned || !res.Client.Disabled {
			t.Fatalf("deprovision: %+v %v", res, err)
		}

		r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent", h.secrets["agent"])
		if !agentRefused(r) {
			t.Errorf("refresh after: %d %v, want invalid_grant or invalid_client", r.status, r.body)
		}
		if r := h.post("/introspect", url.Values{"token": {tok.AccessToken}}, "mcp-a", h.secrets["mcp-a"]); r.status != http.StatusOK || r.body["active"] != false {
			t.Errorf("introspection after: %d %v, want inactive", r.status, r.body)
		}
		if _, err := v.Verify(ctx, tok.AccessToken); !errors.Is(err, mcpauth.ErrTokenRevoked) {
			t.Errorf("verifier after: %v, want ErrTokenRevoked", err)
		}
		wantRefused(t, h.retrieve("mcp-a", tok.AccessToken, "calendar"), oauth.CodeInvalidGrant)
		a, err := clients.InventoryAgent(ctx, h.Store, "", "agent", h.clk.Now())
		if err != nil || a.Status != clients.AgentDeprovisioned || len(a.ConsentingUsers) != 0 {
			t.Fatalf("inventory after: %+v %v", a, err)
		}
		// The refusal records the subject token's or the agent's end.
		if evs := h.denials(); len(evs) != 1 {
			t.Errorf("retrieval denials %+v", evs)
		}

		// The events: disabled, consents revoked, tokens revoked, deprovisioned.
		updates := h.auditEvents(audit.ClientUpdated)
		changes := map[string]bool{}
		for _, ev := range updates {
			if ev.ClientID == "agent" {
				changes[ev.Details["change"]] = true
			}
		}
		if !changes[audit.ChangeDisabled] || !changes[audit.ChangeDeprovisioned] {
			t.Errorf("client.updated changes %v", changes)
		}
		if evs := h.auditEvents(audit.ClientTokensRevoked); len(evs) != 1 || evs[0].ClientID != "agent" || evs[0].Details["reason"] != clients.ReasonDeprovisioned {
			t.Errorf("client.tokens_revoked %+v", evs)
		}
		if evs := h.auditEvents(audit.ConsentRevoked); len(evs) != 1 || evs[0].ClientID != "agent" || evs[0].Details["extent"] != "agent" {
			t.Errorf("consent.revoked %+v", evs)
		}

		// Idempotent: nothing more is written.
		before, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		res, err = clients.Deprovision(ctx, h.Store, audit.Meta{}, "", "agent", h.clk.Now())
		if err != nil || res.Changed {
			t.Fatalf("second deprovision: %+v %v", res, err)
		}
		after, _ := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Limit: 1000})
		if len(after) != len(before) {
			t.Fatalf("second deprovision wrote %d events", len(after)-len(before))
		}
	})
}

// TestDeprovisionAgentInterrupted: a run interrupted after the disable
// (the agent disabled, its consents and tokens still live) is completed
// by running again; the status is set only then.
func TestDeprovisionAgentInterrupted(t *testing.T) {
	h := newRetrievalHub(t, "")
	ctx := context.Background()
	tok := h.userToken("notes.read")
	if _, err := h.Store.UpdateClient(ctx, store.DefaultTenant, "agent", func(c *store.Client) error { c.Disabled = true; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	res, err := clients.Deprovision(ctx, h.Store, audit.Meta{}, "", "agent", h.clk.Now())
	if err != nil || !res.Changed || res.Client.Status != store.ClientDeprovisioned {
		t.Fatalf("deprovision: %+v %v", res, err)
	}
	if r := h.post("/introspect", url.Values{"token": {tok}}, "mcp-a", h.secrets["mcp-a"]); r.body["active"] != false {
		t.Fatalf("introspection: %v", r.body)
	}
	if evs := h.auditEvents(audit.ClientTokensRevoked); len(evs) != 1 {
		t.Fatalf("client.tokens_revoked %+v", evs)
	}
}

// TestDeprovisionUser: deprovisioning a person revokes their vault
// connections at the provider and deletes them, ends the tokens every
// agent holds for them (refresh and access) and their consents, and
// disables them; a resource server retrieves nothing for them afterwards.
func TestDeprovisionUser(t *testing.T) {
	deprovisionBackends(t, func(t *testing.T, h *retrievalHub) {
		ctx := context.Background()
		cal := h.connect("calendar.read")
		key := h.saveKey("sk-test-deprov-0123456789")
		conf := h.oauth2Config("agent", h.secrets["agent"], "notes.read")
		tok, err := h.codeFlowToken(h.Browser(), conf, h.resA, []string{"notes.read"})
		if err != nil {
			t.Fatal(err)
		}
		if r := h.retrieve("mcp-a", tok.AccessToken, "calendar"); r.status != http.StatusOK {
			t.Fatalf("retrieval before: %d %v", r.status, r.body)
		}
		// A second agent alice consented to: every agent's grants go.
		if err := h.Store.UpsertConsents(ctx, []*store.ConsentGrant{{TenantID: store.DefaultTenant, UserID: "u-alice", ClientID: "agent-ex",
			Resource: h.resB, Scope: "notes.read", GrantedAt: h.clk.Now()}}, nil); err != nil {
			t.Fatal(err)
		}

		h.clk.Advance(time.Second)
		res, err := clients.DeprovisionUser(ctx, h.Store, h.Vault, audit.Meta{Actor: audit.ActorCLI}, "", "u-alice", h.clk.Now())
		if err != nil || !res.Disabled || res.Consents == 0 || len(res.Connections) != 2 {
			t.Fatalf("deprovision user: %+v %v", res, err)
		}
		for _, id := range []string{cal.ID, key.ID} {
			if _, err := h.Store.GetConnection(ctx, store.DefaultTenant, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("connection %s after: %v, want gone", id, err)
			}
		}
		revoked := h.auditEvents(audit.ConnectionRevoked)
		if len(revoked) != 2 {
			t.Fatalf("connection.revoked %+v", revoked)
		}
		for _, ev := range revoked {
			if ev.Details["reason"] != clients.ReasonUserDeprovisioned {
				t.Errorf("connection.revoked reason %q", ev.Details["reason"])
			}
		}
		if h.cal.Counts().Revocations == 0 {
			t.Error("the provider saw no revocation of the calendar connection")
		}
		r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent", h.secrets["agent"])
		if r.str("error") != oauth.CodeInvalidGrant {
			t.Errorf("refresh after: %d %v, want invalid_grant", r.status, r.body)
		}
		if r := h.post("/introspect", url.Values{"token": {tok.AccessToken}}, "mcp-a", h.secrets["mcp-a"]); r.body["active"] != false {
			t.Errorf("introspection after: %v", r.body)
		}
		wantRefused(t, h.retrieve("mcp-a", tok.AccessToken, "calendar"), oauth.CodeInvalidGrant)
		grants, err := h.Store.ListConsents(ctx, store.ConsentFilter{TenantID: store.DefaultTenant, UserID: "u-alice"})
		if err != nil {
			t.Fatal(err)
		}
		agents := map[string]bool{}
		for _, g := range grants {
			agents[g.ClientID] = true
		}
		if !agents["agent"] || !agents["agent-ex"] {
			t.Errorf("consents of alice's agents after: %v, want both agents' grants kept as revoked", agents)
		}
		for _, g := range grants {
			if g.Live(h.clk.Now()) {
				t.Errorf("live consent after: %+v", g)
			}
		}
		if u, err := h.Store.GetUser(ctx, store.DefaultTenant, "u-alice"); err != nil || !u.Disabled {
			t.Errorf("user after: %+v %v", u, err)
		}
		if evs := h.auditEvents(audit.UserAccessRevoked); len(evs) != 1 || evs[0].Details["reason"] != clients.ReasonDeprovisioned {
			t.Errorf("user.access_revoked %+v", evs)
		}

		// Again: nothing left to change.
		res, err = clients.DeprovisionUser(ctx, h.Store, nil, audit.Meta{}, "", "u-alice", h.clk.Now())
		if err != nil || res.Changed() {
			t.Fatalf("second run: %+v %v", res, err)
		}
	})
}

// TestStaleAgents: with a clock that moves, an agent becomes stale only
// once it has gone unused for the whole period, counted from its last
// token (or its registration); a report changes nothing, a dry run of an
// action neither; disable disables and revokes, delete deletes; a
// deprovisioned agent is never reported.
func TestStaleAgents(t *testing.T) {
	h := newRetrievalHub(t, "")
	ctx := context.Background()
	h.userToken("notes.read") // "agent" gets a token now
	ids := func(ss []*clients.StaleAgent) map[string]bool {
		m := map[string]bool{}
		for _, s := range ss {
			m[s.Client.ID] = true
		}
		return m
	}
	stale := func(o clients.StaleOptions) []*clients.StaleAgent {
		t.Helper()
		o.UnusedFor, o.Now = 720*time.Hour, h.clk.Now()
		ss, err := clients.Stale(ctx, h.Store, o)
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	if ss := stale(clients.StaleOptions{}); len(ss) != 0 {
		t.Fatalf("nothing is 30 days old yet: %v", ids(ss))
	}
	h.clk.Advance(719 * time.Hour)
	h.userToken("notes.read") // "agent" used again, 719h in
	h.clk.Advance(2 * time.Hour)
	ss := stale(clients.StaleOptions{})
	got := ids(ss)
	if got["agent"] || !got["bot"] || !got["mcp-b"] {
		t.Fatalf("stale at 721h: %v, want every client but the one used at 719h", got)
	}
	if _, err := clients.Deprovision(ctx, h.Store, audit.Meta{}, "", "stranger", h.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if dry := stale(clients.StaleOptions{Action: clients.StaleDisable, DryRun: true}); ids(dry)["stranger"] || len(dry) != len(ss)-1 {
		t.Fatalf("dry run: %v", ids(dry))
	}
	if c, _ := h.Store.GetClient(ctx, store.DefaultTenant, "bot"); c.Disabled {
		t.Fatal("a dry run disabled bot")
	}
	botTok := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, "bot", h.secrets["bot"]).str("access_token")
	// bot just got a token: no longer stale.
	if got := ids(stale(clients.StaleOptions{})); got["bot"] {
		t.Fatal("bot is stale right after a token")
	}
	h.clk.Advance(721 * time.Hour)
	done := stale(clients.StaleOptions{Action: clients.StaleDisable})
	for _, s := range done {
		if !s.Acted || s.Status != clients.AgentDisabled {
			t.Errorf("after disable: %s acted %v status %s", s.Client.ID, s.Acted, s.Status)
		}
	}
	if !ids(done)["bot"] || !ids(done)["agent"] {
		t.Fatalf("disable reached %v", ids(done))
	}
	// (mcp-a, stale too, is disabled: the store answers for it.)
	if revoked, err := h.Store.AccessTokenRevoked(ctx, h.claims(botTok)["jti"].(string)); err != nil || !revoked {
		t.Errorf("bot's token after disable: revoked %v %v", revoked, err)
	}
	gone := stale(clients.StaleOptions{Action: clients.StaleDelete})
	if len(gone) != len(done) {
		t.Fatalf("delete reached %d, disable %d", len(gone), len(done))
	}
	if _, err := h.Store.GetClient(ctx, store.DefaultTenant, "bot"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bot after delete: %v", err)
	}
	if _, err := h.Store.GetClient(ctx, store.DefaultTenant, "stranger"); err != nil {
		t.Fatalf("the deprovisioned agent was deleted: %v", err)
	}
}

// TestDeprovisionAcrossHubs: two hub processes on one database (SQLite
// file, PostgreSQL schema); the agent is used through the second hub, so
// its caches hold it, then deprovisioned through the first. At once, with
// no clock moving, the second hub refuses the agent's refresh, introspects
// its access token inactive (and records that), an mcpauth server in
// introspection mode against the second hub refuses the token, the
// resource server's vault retrieval through the second hub fails, and the
// inventory read through the second hub's store shows it deprovisioned.
func TestDeprovisionAcrossHubs(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			h := newTwoHubs(t, twoHubsOptions{postgres: pg})
			second := h.second
			h.connect("calendar.read")
			// Used through the second hub: refresh and retrieval warm its
			// client lookups.
			access, refresh := h.refreshedAtSecond(t)
			if r := retrieveAt(second, "mcp-a", h.secrets["mcp-a"], access, h.providerURI("calendar")); r.status != http.StatusOK {
				t.Fatalf("retrieval at the second hub before: %d %v", r.status, r.body)
			}
			v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{
				Issuer: h.URL, Resource: h.resA, Now: h.clk.Now,
				Introspection: &mcpauth.IntrospectionConfig{ClientID: "mcp-a", ClientSecret: h.secrets["mcp-a"], CacheTTL: -1},
				HTTPClient:    &http.Client{Transport: redirectTo(h.URL, second.URL)},
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(ctx, access); err != nil {
				t.Fatalf("verifier before: %v", err)
			}

			if _, err := clients.Deprovision(ctx, h.Store, audit.Meta{Actor: audit.ActorCLI}, "", "agent", h.clk.Now()); err != nil {
				t.Fatal(err)
			}

			if r := second.refresh(refresh, "agent", h.secrets["agent"]); !agentRefused(r) {
				t.Errorf("refresh at the second hub after: %d %v, want invalid_grant or invalid_client", r.status, r.body)
			}
			if r := second.post("/introspect", url.Values{"token": {access}}, "mcp-a", h.secrets["mcp-a"]); r.status != http.StatusOK || r.body["active"] != false {
				t.Errorf("introspection at the second hub after: %d %v, want inactive", r.status, r.body)
			}
			if _, err := v.Verify(ctx, access); !errors.Is(err, mcpauth.ErrTokenRevoked) {
				t.Errorf("verifier after: %v, want ErrTokenRevoked", err)
			}
			wantRefused(t, retrieveAt(second, "mcp-a", h.secrets["mcp-a"], access, h.providerURI("calendar")), oauth.CodeInvalidGrant)
			if a, err := clients.InventoryAgent(ctx, second.Store, "", "agent", h.clk.Now()); err != nil || a.Status != clients.AgentDeprovisioned {
				t.Errorf("inventory through the second hub: %+v %v", a, err)
			}
			evs, err := second.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.TokenIntrospectedInactive, ClientID: "agent"})
			if err != nil || len(evs) == 0 || evs[0].Details["reason"] != audit.InactiveRevoked {
				t.Errorf("token.introspected_inactive: %+v %v", evs, err)
			}
		})
	}
}

// agentRefused reports a token request of a deprovisioned agent refused:
// invalid_client once the hub's copy of the client shows it disabled (the
// change feed drops the cached one within moments), invalid_grant before
// (the issuance's own check finds the client gone or the grant revoked).
func agentRefused(r jsonResp) bool {
	e := r.str("error")
	return (e == oauth.CodeInvalidClient || e == oauth.CodeInvalidGrant) && r.str("access_token") == ""
}

// retrieveAt is a credential retrieval (RFC 8693 exchange for a provider)
// at the hub at base, as clientID.
func retrieveAt(h *hub, clientID, secret, subject, provider string) jsonResp {
	form := subjectForm(subject, "resource", provider)
	form.Set("grant_type", grantExchange)
	return h.post("/token", form, clientID, secret)
}

// redirectTo sends requests for from to the host of to: an mcpauth server
// whose hub (the issuer) is served by another replica.
func redirectTo(from, to string) http.RoundTripper {
	f, _ := url.Parse(from)
	dst, _ := url.Parse(to)
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == f.Host {
			r = r.Clone(r.Context())
			r.URL.Host, r.Host = dst.Host, dst.Host
		}
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
