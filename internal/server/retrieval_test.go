package server_test

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/vault"
	"github.com/agentid/agentid/internal/vault/vaulttest"
)

// retrievalHub is an exchange hub (agent, MCP servers A and B, a stranger,
// a public client, a bot) with the vault's providers: calendar (an OAuth 2
// provider, vaulttest) linked to A and B, search (an API key) linked to A,
// mail (known, linked to nothing) and off (disabled, linked to A).
type retrievalHub struct {
	*exchangeHub
	cal              *vaulttest.Provider
	calendar, search *store.Provider
}

// calendarLink maps A's scopes to calendar scopes: reading notes reaches
// reading the calendar, writing notes reaches writing it too.
var calendarLink = store.ResourceProvider{ProviderID: "calendar", Scopes: map[string][]string{
	"notes.read":  {"calendar.read"},
	"notes.write": {"calendar.read", "calendar.write"},
}}

func newRetrievalHub(t testing.TB, policyText string) *retrievalHub {
	t.Helper()
	return newRetrievalHubWith(t, exchangeOptions{policy: policyText})
}

// newRetrievalHubWith is newRetrievalHub on an exchange hub made with o.
func newRetrievalHubWith(t testing.TB, o exchangeOptions) *retrievalHub {
	t.Helper()
	eh := newExchangeHub(t, o)
	h := &retrievalHub{exchangeHub: eh}
	ctx := context.Background()
	h.cal = vaulttest.New(t, vaulttest.Options{Now: eh.clk.Now, Scopes: []string{"calendar.read", "calendar.write"}})
	var err error
	if h.calendar, err = h.cal.StoreProvider(h.Vault, store.DefaultTenant, "calendar"); err != nil {
		t.Fatal(err)
	}
	h.search = vaulttest.APIKeyProvider(store.DefaultTenant, "search")
	h.search.KeyFormat = "Bearer {key}"
	mail := vaulttest.APIKeyProvider(store.DefaultTenant, "mail")
	off := vaulttest.APIKeyProvider(store.DefaultTenant, "off")
	off.Disabled = true
	for _, p := range []*store.Provider{h.calendar, h.search, mail, off} {
		p.CreatedAt, p.UpdatedAt = time.Now(), time.Now()
		if err := h.Store.CreateProvider(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	h.link(h.resA, calendarLink,
		store.ResourceProvider{ProviderID: "search", Scopes: map[string][]string{"notes.write": {}}},
		store.ResourceProvider{ProviderID: "off", Scopes: map[string][]string{"notes.read": {}}})
	h.link(h.resB, calendarLink)
	// An agent registered for token exchange too, to try its own hand.
	h.secrets["agent-ex"] = h.AddClient(&store.Client{ID: "agent-ex", RedirectURIs: []string{redirectURI},
		GrantTypes: []string{oauth.GrantAuthorizationCode, grantExchange}})
	return h
}

func (h *retrievalHub) link(uri string, links ...store.ResourceProvider) {
	h.T.Helper()
	ctx := context.Background()
	r, err := h.Store.GetResource(ctx, store.DefaultTenant, uri)
	if err != nil {
		h.T.Fatal(err)
	}
	r.Providers = links
	if err := h.Store.UpdateResource(ctx, r, nil); err != nil {
		h.T.Fatal(err)
	}
}

// providerURI is the retrieval resource naming provider id.
func (h *retrievalHub) providerURI(id string) string { return h.URL + "/providers/" + id }

// retrieve asks, as clientID, for the credential of provider with the
// subject token tok; pairs are further form fields.
func (h *retrievalHub) retrieve(clientID, tok, provider string, pairs ...string) jsonResp {
	h.T.Helper()
	return h.exchange(clientID, subjectForm(tok, append([]string{"resource", h.providerURI(provider)}, pairs...)...))
}

// connect gives alice a calendar connection with scopes, through the
// vault's authorization-code flow at the test provider.
func (h *retrievalHub) connect(scopes ...string) *store.Connection {
	h.T.Helper()
	ctx := context.Background()
	redirect := h.URL + "/connections/callback"
	ar, err := h.Vault.AuthCodeURL(h.calendar, redirect, scopes)
	if err != nil {
		h.T.Fatal(err)
	}
	code, _, err := h.cal.Authorize(ctx, ar.URL)
	if err != nil {
		h.T.Fatal(err)
	}
	conn, err := h.Vault.CompleteAuth(ctx, audit.Meta{TenantID: store.DefaultTenant, Time: h.clk.Now()}, h.calendar,
		vault.Owner{Kind: store.OwnerUser, ID: "u-alice"}, code, ar.Verifier, redirect, ar.Scopes...)
	if err != nil {
		h.T.Fatal(err)
	}
	return conn
}

// saveKey gives alice a search API key.
func (h *retrievalHub) saveKey(key string) *store.Connection {
	h.T.Helper()
	conn, err := h.Vault.SaveAPIKey(context.Background(), audit.Meta{TenantID: store.DefaultTenant, Time: h.clk.Now()}, h.search,
		vault.Owner{Kind: store.OwnerUser, ID: "u-alice"}, "work", key)
	if err != nil {
		h.T.Fatal(err)
	}
	return conn
}

func (h *retrievalHub) denials() []*store.AuditEvent {
	return h.auditEvents(audit.ConnectionRetrievalDenied)
}

func (r jsonResp) str(k string) string { s, _ := r.body[k].(string); return s }

// wantRefused checks r is error code with nothing retrieved.
func wantRefused(t *testing.T, r jsonResp, code string) {
	t.Helper()
	if r.str("error") != code || r.body["access_token"] != nil {
		t.Fatalf("got %d %v, want %s", r.status, r.body, code)
	}
}

// TestRetrievalRefusals: every refusal of a retrieval that comes before
// the vault is asked, by error code; those after the caller is known to be
// the subject token's resource server are recorded, the others are not (a
// stranger learns nothing and writes nothing).
func TestRetrievalRefusals(t *testing.T) {
	h := newRetrievalHub(t, "")
	tRead := h.userToken("notes.read")
	exConf := h.oauth2Config("agent-ex", h.secrets["agent-ex"], "notes.read")
	tAgentEx, err := h.codeFlowFor(h.Browser(), exConf, h.resA, []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	botTok := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, "bot", h.secrets["bot"]).str("access_token")
	// A token of the agent for B, and one for A whose agent the person
	// never consented to.
	tForB := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resB}, ClientID: "agent", Scope: "notes.read"})
	tNoConsent := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "stranger", Scope: "notes.read"})

	tests := []struct {
		name     string
		clientID string
		form     url.Values
		want     string
		recorded string // the denial's reason; "" when nothing is recorded
	}{
		{name: "the agent itself, not registered for token exchange", clientID: "agent",
			form: subjectForm(tRead, "resource", h.providerURI("calendar")), want: oauth.CodeUnauthorizedClient},
		{name: "the agent itself with its own token", clientID: "agent-ex",
			form: subjectForm(tAgentEx, "resource", h.providerURI("calendar")), want: oauth.CodeInvalidGrant},
		{name: "the agent's token presented by a client linked to nothing", clientID: "stranger",
			form: subjectForm(tRead, "resource", h.providerURI("calendar")), want: oauth.CodeInvalidGrant},
		{name: "a token minted for A presented by B", clientID: "mcp-b",
			form: subjectForm(tRead, "resource", h.providerURI("calendar")), want: oauth.CodeInvalidGrant},
		{name: "a token minted for B presented by A", clientID: "mcp-a",
			form: subjectForm(tForB, "resource", h.providerURI("calendar")), want: oauth.CodeInvalidGrant},
		{name: "a client's own token (no person)", clientID: "mcp-a",
			form: subjectForm(botTok, "resource", h.providerURI("calendar")), want: oauth.CodeInvalidGrant},
		{name: "a public client", clientID: "public-app",
			form: subjectForm(tRead, "resource", h.providerURI("calendar")), want: oauth.CodeUnauthorizedClient},
		{name: "not a token", clientID: "mcp-a",
			form: subjectForm("not-a-token", "resource", h.providerURI("calendar")), want: oauth.CodeInvalidGrant},
		{name: "subject token of another type", clientID: "mcp-a",
			form: url.Values{"subject_token": {tRead}, "subject_token_type": {typeJWT}, "resource": {h.providerURI("calendar")}}, want: oauth.CodeUnsupportedTokenType},
		{name: "requested token type other than an access token", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("calendar"), "requested_token_type", oauth.TokenTypeRefreshToken), want: oauth.CodeUnsupportedTokenType},
		{name: "an actor token", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("calendar"), "actor_token", botTok, "actor_token_type", typeAccess), want: oauth.CodeInvalidRequest},
		{name: "a provider and another target", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("calendar"), "audience", h.resB), want: oauth.CodeInvalidTarget},
		{name: "two providers", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("calendar"), "resource", h.providerURI("search")), want: oauth.CodeInvalidTarget},
		{name: "not a provider id", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.URL+"/providers/Cal%20endar"), want: oauth.CodeInvalidTarget},
		{name: "no consent to this agent", clientID: "mcp-a",
			form: subjectForm(tNoConsent, "resource", h.providerURI("calendar")), want: oauth.CodeInvalidGrant, recorded: "consent"},
		{name: "unknown provider", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("nosuch")), want: oauth.CodeInvalidTarget, recorded: "provider_unknown"},
		{name: "provider not linked to the resource", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("mail")), want: oauth.CodeInvalidTarget, recorded: "provider_not_linked"},
		{name: "provider disabled", clientID: "mcp-a",
			form: subjectForm(tRead, "audience", h.providerURI("off")), want: oauth.CodeInvalidTarget, recorded: "provider_disabled"},
		{name: "provider scope beyond the mapping", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("calendar"), "scope", "calendar.write"), want: oauth.CodeInvalidScope, recorded: "scope"},
		{name: "provider scope the provider does not have", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("calendar"), "scope", "calendar.read calendar.admin"), want: oauth.CodeInvalidScope, recorded: "scope"},
		{name: "no scope of the token reaches the provider", clientID: "mcp-a",
			form: subjectForm(tRead, "resource", h.providerURI("search")), want: oauth.CodeInvalidScope, recorded: "scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.denials())
			r := h.exchange(tc.clientID, tc.form)
			wantRefused(t, r, tc.want)
			evs := h.denials()
			switch {
			case tc.recorded == "" && len(evs) != before:
				t.Fatalf("a refusal before the resource server is known was recorded: %+v", evs[0])
			case tc.recorded != "" && len(evs) != before+1:
				t.Fatalf("%d denials recorded, want 1", len(evs)-before)
			case tc.recorded != "":
				ev := evs[0]
				if ev.Details["reason"] != tc.recorded || ev.ClientID != tc.clientID || ev.UserID != "u-alice" || ev.Resource != h.resA || ev.Outcome != audit.Denied {
					t.Fatalf("denial %+v, want reason %s by %s for u-alice at %s", ev, tc.recorded, tc.clientID, h.resA)
				}
			}
		})
	}
	if n := len(h.auditEvents(audit.ConnectionRetrieved)); n != 0 {
		t.Fatalf("%d retrievals recorded", n)
	}
}

// TestRetrievalPolicy: the policy's connect action sees the agent, the
// person, the resource scopes used, the provider and the chain; a denial
// of any scope used refuses the whole retrieval (invalid_scope naming it),
// never a silently smaller one, and is recorded.
func TestRetrievalPolicy(t *testing.T) {
	const rules = `@id("no-calendar-through-write") forbid (principal, action == Action::"connect", resource)
when { context has service && context.service == Service::"calendar" && resource.name == "notes.write" };
@id("no-connect-via-b") forbid (principal == Agent::"agent", action == Action::"connect", resource)
when { context has first_actor && context.first_actor == "agent" && context.actors.contains("mcp-b") };`
	h := newRetrievalHub(t, rules)
	conn := h.connect("calendar.read", "calendar.write")
	tRead := h.userToken("notes.read")
	tBoth := h.userToken("notes.read", "notes.write")

	// Reading through notes.read is allowed.
	if r := h.retrieve("mcp-a", tRead, "calendar", "scope", "calendar.read"); r.status != http.StatusOK {
		t.Fatalf("calendar.read through notes.read: %d %v", r.status, r.body)
	}
	// calendar.read through a token holding both: notes.write reaches it
	// too and is used, and denied: the whole request is refused.
	for _, scope := range []string{"calendar.read", "calendar.read calendar.write", ""} {
		before := len(h.auditEvents(audit.ConnectionRetrieved))
		r := h.retrieve("mcp-a", tBoth, "calendar", "scope", scope)
		wantRefused(t, r, oauth.CodeInvalidScope)
		if !strings.Contains(r.str("error_description"), "notes.write") {
			t.Fatalf("the refusal does not name what the policy denied: %q", r.str("error_description"))
		}
		if len(h.auditEvents(audit.ConnectionRetrieved)) != before {
			t.Fatal("a credential was retrieved")
		}
		ev := h.denials()[0]
		if ev.Details["reason"] != "policy" || ev.Details[audit.DetailPolicyVersion] == "" || ev.Details["provider"] != "calendar" {
			t.Fatalf("denial %+v", ev)
		}
	}
	// The chain reaches the policy: B, exchanging A's token onwards and
	// retrieving with the exchanged one, is refused by a rule on actors.
	ex := h.exchange("mcp-a", subjectForm(tRead, "resource", h.resB))
	if ex.status != http.StatusOK {
		t.Fatalf("exchange to B: %d %v", ex.status, ex.body)
	}
	// The person's consent to the agent at B lets the consent check pass.
	if err := h.Server.ConsentLedgerForTest().Grant(context.Background(), consent.Key{UserID: "u-alice", ClientID: "agent", Resource: h.resB}, []string{"notes.read"}, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	r := h.retrieve("mcp-b", ex.str("access_token"), "calendar")
	wantRefused(t, r, oauth.CodeInvalidScope)
	if ev := h.denials()[0]; ev.Details["act_chain"] != "mcp-b mcp-a agent" || ev.Details["agent"] != "agent" || ev.ClientID != "mcp-b" {
		t.Fatalf("denial %+v, want the chain mcp-b mcp-a agent", ev)
	}
	got, err := h.Store.GetConnection(context.Background(), store.DefaultTenant, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.auditEvents(audit.ConnectionRetrieved)); n != 1 || got.LastUsedAt.IsZero() {
		t.Fatalf("%d retrievals, last used %v; want the one allowed", n, got.LastUsedAt)
	}
}

// TestRetrievalConnectionRequired: without a usable connection the answer
// is connection_required with a connect URI that opens, on the connect
// page, for the token's person, the provider and the scopes asked, naming
// the agent and the MCP server; a connection the provider no longer
// honours says needs_reauth.
func TestRetrievalConnectionRequired(t *testing.T) {
	h := newRetrievalHub(t, "")
	tRead := h.userToken("notes.read")
	check := func(t *testing.T, r jsonResp, status string) {
		t.Helper()
		wantRefused(t, r, oauth.CodeConnectionRequired)
		if r.status != http.StatusBadRequest || r.str("provider") != "calendar" || r.str("connection_status") != status {
			t.Fatalf("got %d %v, want provider calendar, status %s", r.status, r.body, status)
		}
		u, err := url.Parse(r.str("connect_uri"))
		if err != nil || u.Scheme+"://"+u.Host+u.Path != h.URL+"/connections/connect/calendar" {
			t.Fatalf("connect_uri %q", r.str("connect_uri"))
		}
		ci, err := h.Server.OpenConnectIntent("calendar", u.Query().Get("intent"))
		if err != nil {
			t.Fatalf("the connect URI does not open: %v", err)
		}
		if ci.UserID != "u-alice" || ci.Provider != "calendar" || !slices.Equal(ci.Scopes, []string{"calendar.read"}) || ci.ClientID != "agent" || ci.Resource != h.resA {
			t.Fatalf("intent %+v", ci)
		}
		if _, err := h.Server.OpenConnectIntent("search", u.Query().Get("intent")); err == nil {
			t.Fatal("the intent opens for another provider")
		}
		if ev := h.denials()[0]; ev.Details["reason"] != map[string]string{"missing": "no_connection", "needs_reauth": "needs_reauth"}[status] {
			t.Fatalf("denial %+v", ev)
		}
	}
	t.Run("no connection", func(t *testing.T) {
		check(t, h.retrieve("mcp-a", tRead, "calendar"), "missing")
	})
	t.Run("a connection without the scope", func(t *testing.T) {
		h.connect("calendar.write")
		check(t, h.retrieve("mcp-a", tRead, "calendar", "scope", "calendar.read"), "missing")
	})
	t.Run("needs_reauth", func(t *testing.T) {
		conn := h.connect("calendar.read")
		if r := h.retrieve("mcp-a", tRead, "calendar"); r.status != http.StatusOK {
			t.Fatalf("with a connection: %d %v", r.status, r.body)
		}
		if _, err := h.Store.UpdateConnection(context.Background(), store.DefaultTenant, conn.ID, func(c *store.Connection) error {
			c.Status = store.ConnectionNeedsReauth
			return nil
		}, nil); err != nil {
			t.Fatal(err)
		}
		check(t, h.retrieve("mcp-a", tRead, "calendar"), "needs_reauth")
	})
}

// TestRetrievalIssuesCredential: the MCP server gets the downstream token
// (which the provider accepts) or API key, shaped as the contract says,
// with no-store; the retrieval is recorded with agent, person, provider,
// MCP server and chain, and no audit event ever carries the credential.
func TestRetrievalIssuesCredential(t *testing.T) {
	h := newRetrievalHub(t, "")
	conn := h.connect("calendar.read")
	tRead := h.userToken("notes.read")
	tBoth := h.userToken("notes.read", "notes.write")

	r := h.retrieve("mcp-a", tRead, "calendar", "requested_token_type", oauth.TokenTypeAccessToken)
	if r.status != http.StatusOK {
		t.Fatalf("retrieval: %d %v", r.status, r.body)
	}
	at := r.str("access_token")
	handed := []string{at, h.cal.ClientSecret()} // every secret the hub handed out or holds
	if !h.cal.AccessTokenValid(at) || r.str("token_type") != "Bearer" || r.str("issued_token_type") != oauth.TokenTypeAccessToken ||
		r.str("scope") != "calendar.read" || r.str("provider") != "calendar" || r.str("connection_id") != conn.ID {
		t.Fatalf("response %v", r.body)
	}
	if exp, _ := r.body["expires_in"].(float64); exp < 3500 || exp > 3600 {
		t.Fatalf("expires_in %v, want about an hour", r.body["expires_in"])
	}
	for _, k := range []string{"refresh_token", "key_header", "key_header_value", "key_query"} {
		if _, ok := r.body[k]; ok {
			t.Fatalf("response carries %s: %v", k, r.body)
		}
	}
	// The provider's API accepts it.
	req, _ := http.NewRequest(http.MethodGet, h.cal.APIURL(), nil)
	req.Header.Set("Authorization", "Bearer "+at)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("provider API: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	evs := h.auditEvents(audit.ConnectionRetrieved)
	if len(evs) != 1 {
		t.Fatalf("%d retrieval events", len(evs))
	}
	ev := evs[0]
	if ev.ClientID != "mcp-a" || ev.UserID != "u-alice" || ev.Resource != h.resA || ev.Details["agent"] != "agent" ||
		ev.Details["act_chain"] != "mcp-a agent" || ev.Details["provider"] != "calendar" || ev.Details["connection_id"] != conn.ID ||
		ev.Details["subject_jti"] == "" || !slices.Equal(ev.Scopes, []string{"calendar.read"}) {
		t.Fatalf("retrieval event %+v", ev)
	}
	got, err := h.Store.GetConnection(context.Background(), store.DefaultTenant, conn.ID)
	if err != nil || !got.LastUsedAt.Equal(h.clk.Now()) {
		t.Fatalf("last used %v (%v), want now", got.LastUsedAt, err)
	}

	t.Run("no scope asked: every scope the token reaches", func(t *testing.T) {
		if r := h.retrieve("mcp-a", tRead, "calendar"); r.status != http.StatusOK || r.str("access_token") == "" {
			t.Fatalf("%d %v", r.status, r.body)
		}
		// Through notes.write the token reaches calendar.write too, which
		// the connection lacks: the person must connect for it.
		wantRefused(t, h.retrieve("mcp-a", tBoth, "calendar"), oauth.CodeConnectionRequired)
	})
	t.Run("audience instead of resource", func(t *testing.T) {
		r := h.exchange("mcp-a", subjectForm(tRead, "audience", h.providerURI("calendar")))
		if r.status != http.StatusOK {
			t.Fatalf("%d %v", r.status, r.body)
		}
	})
	t.Run("force_refresh", func(t *testing.T) {
		before := h.cal.Counts().Refreshes
		h.clk.Advance(10 * time.Second)
		r := h.retrieve("mcp-a", tRead, "calendar", "force_refresh", "true")
		if r.status != http.StatusOK || h.cal.Counts().Refreshes != before+1 || r.str("access_token") == at || !h.cal.AccessTokenValid(r.str("access_token")) {
			t.Fatalf("forced refresh: %d %v, %d refreshes", r.status, r.body, h.cal.Counts().Refreshes-before)
		}
		handed = append(handed, r.str("access_token"))
	})
	t.Run("API key", func(t *testing.T) {
		const key = "sk-test-0123456789abcd"
		handed = append(handed, key)
		kc := h.saveKey(key)
		r := h.retrieve("mcp-a", tBoth, "search")
		if r.status != http.StatusOK || r.str("access_token") != key || r.str("token_type") != oauth.TokenTypeNA ||
			r.str("issued_token_type") != oauth.TokenTypeAPIKey || r.str("key_header") != "X-API-Key" ||
			r.str("key_header_value") != "Bearer "+key || r.str("connection_id") != kc.ID || r.body["expires_in"] != nil {
			t.Fatalf("API key retrieval: %d %v", r.status, r.body)
		}
		// API keys have no provider scopes to ask for.
		wantRefused(t, h.retrieve("mcp-a", tBoth, "search", "scope", "read"), oauth.CodeInvalidScope)
	})
	t.Run("provider unavailable", func(t *testing.T) {
		h.cal.SetFail500(true)
		defer h.cal.SetFail500(false)
		h.clk.Advance(2 * time.Hour)
		tNew := h.userToken("notes.read")
		r := h.retrieve("mcp-a", tNew, "calendar")
		wantRefused(t, r, oauth.CodeTemporarilyUnavailable)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("got %d %v Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
		}
		if ev := h.denials()[0]; ev.Details["reason"] != "provider_unavailable" {
			t.Fatalf("denial %+v", ev)
		}
	})
	t.Run("provider revoked the grant", func(t *testing.T) {
		h.cal.RevokeAll()
		h.clk.Advance(2 * time.Hour)
		tNew := h.userToken("notes.read")
		r := h.retrieve("mcp-a", tNew, "calendar")
		wantRefused(t, r, oauth.CodeConnectionRequired)
		if r.str("connection_status") != store.ConnectionNeedsReauth {
			t.Fatalf("got %v, want needs_reauth", r.body)
		}
	})

	// No audit event carries a credential the hub handed out.
	all, err := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(all)
	for _, secret := range handed {
		if strings.Contains(string(b), secret) {
			t.Fatalf("an audit event carries a credential")
		}
	}
}

// TestRetrievalCutOffAtOnce: revoking the person's consent, disabling the
// agent, disabling the person or revoking the subject token each refuses
// the very next retrieval, recorded as a denial.
func TestRetrievalCutOffAtOnce(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		cut     func(h *retrievalHub, tok string)
		reasons []string // the check that refuses may be any of these
		code    string   // the error; "" for invalid_grant
	}{
		{"consent revoked", func(h *retrievalHub, _ string) {
			if _, err := h.Server.ConsentLedgerForTest().Revoke(ctx, consent.Key{UserID: "u-alice", ClientID: "agent", Resource: h.resA}, nil, nil, "user"); err != nil {
				h.T.Fatal(err)
			}
		}, []string{"subject_token"}, ""},
		{"consent revoked, the token's record left alone", func(h *retrievalHub, _ string) {
			// The ledger alone: what the consent check itself refuses.
			if err := h.Store.UpsertConsents(ctx, []*store.ConsentGrant{{TenantID: store.DefaultTenant, UserID: "u-alice", ClientID: "agent", Resource: h.resA,
				Scope: "notes.read", GrantedAt: h.clk.Now().Add(-time.Hour), ExpiresAt: h.clk.Now().Add(-time.Second)}}, nil); err != nil {
				h.T.Fatal(err)
			}
		}, []string{"consent"}, ""},
		{"agent disabled", func(h *retrievalHub, _ string) {
			// The store alone, no token revoked: the chain check (through
			// the client cache) or the agent check (never cached) refuses.
			if _, err := h.Store.UpdateClient(ctx, store.DefaultTenant, "agent", func(c *store.Client) error { c.Disabled = true; return nil }, nil); err != nil {
				h.T.Fatal(err)
			}
		}, []string{"chain", "agent"}, ""},
		{"agent's ceiling narrowed", func(h *retrievalHub, _ string) {
			if _, err := h.Store.UpdateClient(ctx, store.DefaultTenant, "agent", func(c *store.Client) error {
				c.RequestedScopes, c.Scopes = []string{"notes.read", "notes.write"}, []string{"notes.write"}
				return nil
			}, nil); err != nil {
				h.T.Fatal(err)
			}
		}, []string{"ceiling"}, oauth.CodeInvalidScope},
		{"user disabled", func(h *retrievalHub, _ string) {
			u, err := h.Store.GetUser(ctx, store.DefaultTenant, "u-alice")
			if err != nil {
				h.T.Fatal(err)
			}
			u.Disabled = true
			if err := h.Store.UpdateUser(ctx, u, nil); err != nil {
				h.T.Fatal(err)
			}
		}, []string{"user"}, ""},
		{"token family revoked", func(h *retrievalHub, tok string) {
			at, err := h.Store.GetAccessToken(ctx, h.claims(tok)["jti"].(string))
			if err != nil || at.GrantID == "" {
				h.T.Fatalf("the token's record: %+v %v", at, err)
			}
			if err := h.Store.RevokeGrant(ctx, store.DefaultTenant, at.GrantID, h.clk.Now(), nil); err != nil {
				h.T.Fatal(err)
			}
		}, []string{"subject_token"}, ""},
		{"subject token revoked", func(h *retrievalHub, tok string) {
			r := h.post("/revoke", url.Values{"token": {tok}}, "agent", h.secrets["agent"])
			if r.status != http.StatusOK {
				h.T.Fatalf("revoke: %d %v", r.status, r.body)
			}
		}, []string{"subject_token"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newRetrievalHub(t, "")
			h.connect("calendar.read")
			tok := h.userToken("notes.read")
			if r := h.retrieve("mcp-a", tok, "calendar"); r.status != http.StatusOK {
				t.Fatalf("before: %d %v", r.status, r.body)
			}
			tc.cut(h, tok)
			wantRefused(t, h.retrieve("mcp-a", tok, "calendar"), cmp.Or(tc.code, oauth.CodeInvalidGrant))
			if ev := h.denials(); len(ev) != 1 || !slices.Contains(tc.reasons, ev[0].Details["reason"]) {
				t.Fatalf("denials %+v, want one for %v", ev, tc.reasons)
			}
		})
	}
}

// TestRetrievalLeavesExchangeAlone: with providers linked, an ordinary
// token exchange to a resource is served as before, by its own row.
func TestRetrievalLeavesExchangeAlone(t *testing.T) {
	h := newRetrievalHub(t, "")
	tRead := h.userToken("notes.read")
	r := h.exchange("mcp-a", subjectForm(tRead, "resource", h.resB, "scope", "notes.read"))
	if r.status != http.StatusOK || r.str("issued_token_type") != oauth.TokenTypeAccessToken || r.str("provider") != "" {
		t.Fatalf("exchange to B: %d %v", r.status, r.body)
	}
	if claims := h.claims(r.str("access_token")); claims["aud"] != h.resB {
		t.Fatalf("claims %v", claims)
	}
}

// TestRetrievalConnectOnDemand: the connect_uri of connection_required is
// the hub's connect page for the person; connecting there (the provider's
// code flow with the scopes the link asked for) makes the very retrieval
// that was refused succeed. Someone else signed in connects nothing.
func TestRetrievalConnectOnDemand(t *testing.T) {
	h := newRetrievalHub(t, "")
	tRead := h.userToken("notes.read")
	r := h.retrieve("mcp-a", tRead, "calendar")
	wantRefused(t, r, oauth.CodeConnectionRequired)
	link := r.str("connect_uri")

	// bob opens alice's link: refused.
	now := time.Now()
	if err := h.Store.CreateUser(context.Background(), &store.User{TenantID: store.DefaultTenant, ID: "u-bob", Username: "bob",
		PasswordHash: h.alicePasswordHash(t), CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	bob := h.Browser()
	if p := bob.Login(bob.Get(link), "bob", servertest.TestPassword); p.Status != http.StatusForbidden || strings.Contains(p.Body, `name="intent"`) {
		t.Fatalf("bob on alice's connect link: %d\n%s", p.Status, p.Body)
	}

	b := h.Browser()
	p := b.Login(b.Get(link), servertest.TestUser, servertest.TestPassword)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "calendar.read") {
		t.Fatalf("connect page: %d\n%s", p.Status, p.Body)
	}
	start := b.Post(h.URL+"/connections/calendar/start", url.Values{
		"csrf_token": {formField(t, csrfFieldRe, p.Body)}, "intent": {formField(t, intentFieldRe, p.Body)},
	})
	if start.Location == nil {
		t.Fatalf("start did not send the person to the provider: %d\n%s", start.Status, start.Body)
	}
	code, state, err := h.cal.Authorize(context.Background(), start.Location.String())
	if err != nil {
		t.Fatal(err)
	}
	if p := b.Get(h.URL + "/connections/callback?" + url.Values{"code": {code}, "state": {state}}.Encode()); p.Status != http.StatusOK {
		t.Fatalf("callback: %d\n%s", p.Status, p.Body)
	}
	r = h.retrieve("mcp-a", tRead, "calendar")
	if r.status != http.StatusOK || !h.cal.AccessTokenValid(r.str("access_token")) || r.str("scope") != "calendar.read" {
		t.Fatalf("after connecting: %d %v", r.status, r.body)
	}
}

// alicePasswordHash is the stored hash of the test password.
func (h *retrievalHub) alicePasswordHash(t *testing.T) string {
	u, err := h.Store.GetUser(context.Background(), store.DefaultTenant, "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

// TestRetrievalPostgres: the retrieval's path through the store on
// PostgreSQL: connection_required, a retrieval recorded with the
// connection's use, an API key, and the subject token's revocation.
func TestRetrievalPostgres(t *testing.T) {
	h := newRetrievalHubWith(t, exchangeOptions{postgres: true})
	tRead := h.userToken("notes.read")
	wantRefused(t, h.retrieve("mcp-a", tRead, "calendar"), oauth.CodeConnectionRequired)
	conn := h.connect("calendar.read")
	r := h.retrieve("mcp-a", tRead, "calendar")
	if r.status != http.StatusOK || !h.cal.AccessTokenValid(r.str("access_token")) || r.str("connection_id") != conn.ID {
		t.Fatalf("retrieval: %d %v", r.status, r.body)
	}
	got, err := h.Store.GetConnection(context.Background(), store.DefaultTenant, conn.ID)
	if err != nil || got.LastUsedAt.IsZero() || len(h.auditEvents(audit.ConnectionRetrieved)) != 1 {
		t.Fatalf("the use is not recorded: %+v %v", got, err)
	}
	tBoth := h.userToken("notes.read", "notes.write")
	h.saveKey("sk-test-pg-0123456789")
	if r := h.retrieve("mcp-a", tBoth, "search"); r.status != http.StatusOK || r.str("key_header_value") != "Bearer sk-test-pg-0123456789" {
		t.Fatalf("API key: %d %v", r.status, r.body)
	}
	if r := h.post("/revoke", url.Values{"token": {tRead}}, "agent", h.secrets["agent"]); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %v", r.status, r.body)
	}
	wantRefused(t, h.retrieve("mcp-a", tRead, "calendar"), oauth.CodeInvalidGrant)
	if ev := h.denials(); len(ev) != 2 || ev[0].Details["reason"] != "subject_token" || ev[1].Details["reason"] != "no_connection" {
		t.Fatalf("denials %+v", ev)
	}
}
