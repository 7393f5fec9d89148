package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/mcpauth"
)

const (
	grantExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAccess     = "urn:ietf:params:oauth:token-type:access_token"
	typeJWT        = "urn:ietf:params:oauth:token-type:jwt"
	exchangeResB   = "https://b.example/mcp"
	exchangeResD   = "https://d.example/api"
	exchangeResOff = "https://unregistered.example/mcp"
)

// exchangeHub is a hub with a moving clock and the cast of a delegated
// call: the agent (code flow), MCP server A (the hub's own test resource,
// linked to client mcp-a), MCP server B (linked to mcp-b), a downstream API
// D (linked to api-d), a client linked to nothing (stranger), a public
// client and a client-credentials bot.
type exchangeHub struct {
	*hub
	clk     *fakeClock
	secrets map[string]string
	// resA, resB, resD are the three resources of the chain.
	resA, resB, resD string
}

type exchangeOptions struct {
	depth  int
	policy string
	// resB, resD override the URIs of B and D (the end-to-end test's real
	// servers).
	resA, resB, resD string
	// postgres runs the hub on PostgreSQL instead of SQLite; wrap, when
	// set, stands between the hub and its store.
	postgres bool
	wrap     func(store.Store) store.Store
	// st, when set, is the hub's store, opened by the test (e.g. to share
	// its database with a second hub); hubOpts configure the hub further.
	st      store.Store
	hubOpts []servertest.Option
}

func newExchangeHub(t testing.TB, o exchangeOptions) *exchangeHub {
	t.Helper()
	ctx := context.Background()
	st := o.st
	switch {
	case st != nil:
	case o.postgres:
		st = openPostgresStore(t)
	default:
		st = openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db"))
	}
	if o.policy != "" {
		files := policy.DefaultFiles()
		files["test.cedar"] = o.policy
		if err := policy.Apply(ctx, st, &store.PolicySet{TenantID: store.DefaultTenant, Files: files, CreatedBy: "test", CreatedAt: time.Now()}, nil); err != nil {
			t.Fatal(err)
		}
	}
	clk := newFakeClock()
	e, err := policy.New(ctx, policy.Options{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if o.wrap != nil {
		st = o.wrap(st)
	}
	h := &exchangeHub{hub: &hub{servertest.NewOn(t, st, append([]servertest.Option{func(c *server.Config) {
		c.Policy, c.Now, c.MaxDelegationDepth = e, clk.Now, o.depth
	}}, o.hubOpts...)...)}, clk: clk, secrets: map[string]string{}}
	h.resA, h.resB, h.resD = h.Resource, exchangeResB, exchangeResD
	if o.resA != "" {
		h.resA = o.resA
	}
	if o.resB != "" {
		h.resB = o.resB
	}
	if o.resD != "" {
		h.resD = o.resD
	}
	ex := []string{grantExchange, oauth.GrantRefreshToken}
	for _, c := range []*store.Client{
		{ID: "agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}},
		{ID: "mcp-a", GrantTypes: append(ex, oauth.GrantClientCredentials), Tags: []string{"cc:notes.read"}},
		{ID: "mcp-b", GrantTypes: ex},
		{ID: "api-d", GrantTypes: ex},
		{ID: "stranger", GrantTypes: ex},
		{ID: "bot", GrantTypes: []string{oauth.GrantClientCredentials}, Tags: []string{"cc:notes.read"}, DefaultResource: h.resA},
		{ID: "public-app", TokenEndpointAuthMethod: "none", GrantTypes: ex},
	} {
		h.secrets[c.ID] = h.AddClient(c)
	}
	notes := []store.Scope{{Name: "notes.read"}, {Name: "notes.write"}, {Name: "files.read"}}
	if o.resA != "" {
		h.addResource(h.resA, "mcp-a", notes...)
	} else {
		h.LinkResourceServer("mcp-a")
		r, _ := st.GetResource(ctx, store.DefaultTenant, h.resA)
		r.Scopes = append(r.Scopes, store.Scope{Name: "files.read"})
		if err := st.UpdateResource(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	h.addResource(h.resB, "mcp-b", notes...)
	h.addResource(h.resD, "api-d", store.Scope{Name: "notes.read"}, store.Scope{Name: "files.read"})
	h.addResource("https://e.example/mcp", "", store.Scope{Name: "notes.read"})
	return h
}

func (h *exchangeHub) addResource(uri, linked string, scopes ...store.Scope) {
	h.T.Helper()
	if err := h.Store.CreateResource(context.Background(), &store.Resource{
		TenantID: store.DefaultTenant, ID: strings.NewReplacer(":", "-", "/", "-", ".", "-").Replace(uri), URI: uri, Name: uri,
		Scopes: scopes, ClientID: linked, CreatedAt: time.Now(),
	}, nil); err != nil {
		h.T.Fatal(err)
	}
}

// userToken runs the agent's code flow (x/oauth2, PKCE) for resource A
// and returns the access token.
func (h *exchangeHub) userToken(scopes ...string) string {
	h.T.Helper()
	conf := h.oauth2Config("agent", h.secrets["agent"], scopes...)
	b := h.Browser()
	tok, err := h.codeFlowFor(b, conf, h.resA, scopes)
	if err != nil {
		h.T.Fatal(err)
	}
	return tok
}

// exchange posts a token exchange as clientID.
func (h *exchangeHub) exchange(clientID string, form url.Values) jsonResp {
	h.T.Helper()
	f := url.Values{"grant_type": {grantExchange}}
	for k, v := range form {
		f[k] = v
	}
	if h.secrets[clientID] == "" {
		f.Set("client_id", clientID)
	}
	return h.tokenRequest(f, clientID, h.secrets[clientID])
}

// mint signs claims with the hub's keys and records the token as issued,
// for subject tokens the hub's grants do not produce (may_act).
func (h *exchangeHub) mint(c *token.AccessClaims) string {
	h.T.Helper()
	c.Issuer = h.URL
	c.JTI = token.NewID(nil)
	c.IssuedAt = h.clk.Now().Unix()
	if c.Expiry == 0 {
		c.Expiry = h.clk.Now().Add(5 * time.Minute).Unix()
	}
	raw, err := h.Keys.Mint(c)
	if err != nil {
		h.T.Fatal(err)
	}
	user := c.Subject
	if user == c.ClientID {
		user = ""
	}
	if err := h.Store.IssueTokens(context.Background(), &store.Issuance{AccessToken: &store.AccessToken{
		JTI: c.JTI, TenantID: store.DefaultTenant, ClientID: c.ClientID, UserID: user, Resource: c.Audience[0],
		Scopes: strings.Fields(c.Scope), ExpiresAt: time.Unix(c.Expiry, 0),
	}}); err != nil {
		h.T.Fatal(err)
	}
	return raw
}

func subjectForm(tok string, extra ...string) url.Values {
	f := url.Values{"subject_token": {tok}, "subject_token_type": {typeAccess}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Add(extra[i], extra[i+1])
	}
	return f
}

// TestTokenExchangeErrors: every refusal of RFC 8693 token exchange, by
// error code, and that nothing is issued for any of them.
func TestTokenExchangeErrors(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{depth: 3})
	t0 := h.userToken("notes.read", "notes.write")
	botTok := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, "bot", h.secrets["bot"]).body["access_token"].(string)
	// A token whose may_act names another client than the one exchanging.
	mayActOther := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "agent", Scope: "notes.read", MayAct: &token.Actor{Subject: "mcp-z"}})
	mayActForeign := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "agent", Scope: "notes.read", MayAct: &token.Actor{Subject: "mcp-a", Issuer: "https://elsewhere.example"}})
	// A token for A whose chain is already as long as the limit allows.
	deep := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "mcp-x", Scope: "notes.read",
		Act: &token.Actor{Subject: "mcp-x", Actor: &token.Actor{Subject: "mcp-y", Actor: &token.Actor{Subject: "agent"}}}})
	// A chain naming an agent that was disabled since.
	h.AddClient(&store.Client{ID: "gone-agent", Disabled: true, GrantTypes: []string{oauth.GrantAuthorizationCode}, RedirectURIs: []string{redirectURI}})
	disabledAgent := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "gone-agent", Scope: "notes.read"})
	expiring := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "agent", Scope: "notes.read", Expiry: h.clk.Now().Add(30 * time.Second).Unix()})
	revoked := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "agent", Scope: "notes.read"})
	if r := h.post("/revoke", url.Values{"token": {revoked}}, "agent", h.secrets["agent"]); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	forged := t0[:strings.LastIndexByte(t0, '.')] + ".AAAA"

	tests := []struct {
		name   string
		client string
		form   url.Values
		want   string
	}{
		// invalid_request: the request itself is malformed (RFC 8693 §2.1).
		{"no subject_token_type", "mcp-a", url.Values{"subject_token": {t0}}, oauth.CodeInvalidRequest},
		{"no subject_token", "mcp-a", url.Values{"subject_token_type": {typeAccess}}, oauth.CodeInvalidRequest},
		{"actor_token without its type", "mcp-a", subjectForm(t0, "actor_token", botTok), oauth.CodeInvalidRequest},
		{"actor_token_type without a token", "mcp-a", subjectForm(t0, "actor_token_type", typeAccess), oauth.CodeInvalidRequest},
		// unsupported_token_type: a type the hub does not exchange.
		{"subject is a refresh token", "mcp-a", url.Values{"subject_token": {"x"}, "subject_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, oauth.CodeUnsupportedTokenType},
		{"subject is SAML", "mcp-a", url.Values{"subject_token": {"x"}, "subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}}, oauth.CodeUnsupportedTokenType},
		{"requested a JWT", "mcp-a", subjectForm(t0, "requested_token_type", typeJWT, "resource", exchangeResB), oauth.CodeUnsupportedTokenType},
		{"requested a refresh token", "mcp-a", subjectForm(t0, "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), oauth.CodeUnsupportedTokenType},
		{"id-jag for an access token", "mcp-a", subjectForm(t0, "requested_token_type", "urn:ietf:params:oauth:token-type:id-jag", "audience", "https://as.example"), oauth.CodeUnsupportedTokenType},
		{"actor is an ID token", "mcp-a", subjectForm(t0, "actor_token", "x", "actor_token_type", "urn:ietf:params:oauth:token-type:id_token"), oauth.CodeUnsupportedTokenType},
		// invalid_target: the next hop is not one resource the hub knows.
		{"unregistered resource", "mcp-a", subjectForm(t0, "resource", exchangeResOff), oauth.CodeInvalidTarget},
		{"audience not a URI", "mcp-a", subjectForm(t0, "audience", "mcp-b"), oauth.CodeInvalidTarget},
		{"resource and audience disagree", "mcp-a", subjectForm(t0, "resource", exchangeResB, "audience", exchangeResD), oauth.CodeInvalidTarget},
		{"two resources", "mcp-a", subjectForm(t0, "resource", exchangeResB, "resource", exchangeResD), oauth.CodeInvalidTarget},
		{"no target and no default", "mcp-a", subjectForm(t0, "scope", "notes.write"), oauth.CodeInvalidTarget},
		// invalid_scope: never wider than the subject token or the target.
		{"scope beyond the subject token", "mcp-a", subjectForm(t0, "resource", exchangeResB, "scope", "files.read"), oauth.CodeInvalidScope},
		{"scope the target does not offer", "mcp-a", subjectForm(t0, "resource", exchangeResD, "scope", "notes.write"), oauth.CodeInvalidScope},
		{"no scope of the subject offered", "mcp-a", subjectForm(t0, "resource", "https://e.example/mcp", "scope", "notes.write"), oauth.CodeInvalidScope},
		{"openid", "mcp-a", subjectForm(t0, "resource", exchangeResB, "scope", "openid notes.read"), oauth.CodeInvalidScope},
		// invalid_grant: the subject (or actor) token cannot be used here.
		{"garbage subject", "mcp-a", subjectForm("not-a-token", "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"forged signature", "mcp-a", subjectForm(forged, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"token for another resource server", "mcp-b", subjectForm(t0, "resource", exchangeResD), oauth.CodeInvalidGrant},
		{"client linked to nothing", "stranger", subjectForm(t0, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"the agent exchanging its own token", "agent", subjectForm(t0, "resource", exchangeResB), oauth.CodeUnauthorizedClient},
		{"client-credentials token as subject", "mcp-a", subjectForm(botTok, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"may_act names another client", "mcp-a", subjectForm(mayActOther, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"may_act names another issuer", "mcp-a", subjectForm(mayActForeign, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"chain beyond the depth limit", "mcp-a", subjectForm(deep, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"disabled agent in the chain", "mcp-a", subjectForm(disabledAgent, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"revoked subject", "mcp-a", subjectForm(revoked, "resource", exchangeResB), oauth.CodeInvalidGrant},
		{"actor token of another client", "mcp-a", subjectForm(t0, "resource", exchangeResB, "actor_token", botTok, "actor_token_type", typeAccess), oauth.CodeInvalidGrant},
		{"actor token about a person", "mcp-a", subjectForm(t0, "resource", exchangeResB, "actor_token", t0, "actor_token_type", typeAccess), oauth.CodeInvalidGrant},
		{"untrusted JWT subject", "mcp-a", url.Values{"subject_token": {t0}, "subject_token_type": {typeJWT}, "resource": {exchangeResB}}, oauth.CodeInvalidGrant},
		// The pipeline's own refusals still apply.
		{"public client", "public-app", subjectForm(t0, "resource", exchangeResB), oauth.CodeUnauthorizedClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := countEvents(t, h.Store, audit.TokenIssued)
			r := h.exchange(tc.client, tc.form)
			if r.body["error"] != tc.want {
				t.Fatalf("got %d %v, want %s", r.status, r.body, tc.want)
			}
			if _, ok := r.body["access_token"]; ok || countEvents(t, h.Store, audit.TokenIssued) != before {
				t.Fatal("a token was issued")
			}
		})
	}

	// Last, with the clock moved: an expired subject token.
	h.clk.Advance(time.Minute)
	if r := h.exchange("mcp-a", subjectForm(expiring, "resource", exchangeResB)); r.body["error"] != oauth.CodeInvalidGrant {
		t.Fatalf("expired subject: got %d %v, want invalid_grant", r.status, r.body)
	}
}

func countEvents(t *testing.T, st store.Store, typ string) int {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: typ, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// TestTokenExchangeIssues: what a successful exchange returns and records.
func TestTokenExchangeIssues(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	t0 := h.userToken("notes.read", "notes.write")
	c0 := h.claims(t0)

	r := h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResB, "scope", "notes.read"))
	if r.status != 200 {
		t.Fatalf("exchange: %d %v", r.status, r.body)
	}
	if r.body["issued_token_type"] != typeAccess || r.body["token_type"] != "Bearer" || r.body["scope"] != "notes.read" {
		t.Errorf("response = %v", r.body)
	}
	if _, ok := r.body["refresh_token"]; ok {
		// mcp-a is registered for refresh_token: an exchange still gives none.
		t.Error("an exchange returned a refresh token")
	}
	t1 := r.body["access_token"].(string)
	c1 := h.claims(t1)
	if c1["sub"] != "u-alice" || c1["client_id"] != "mcp-a" || c1["aud"] != exchangeResB || c1["scope"] != "notes.read" {
		t.Errorf("claims = %v", c1)
	}
	if act, _ := json.Marshal(c1["act"]); string(act) != `{"act":{"sub":"agent"},"sub":"mcp-a"}` {
		t.Errorf("act = %s", act)
	}
	if c1["exp"].(float64) > c0["exp"].(float64) {
		t.Errorf("exp %v after the subject token's %v", c1["exp"], c0["exp"])
	}

	// The audience parameter names the same resource.
	if r := h.exchange("mcp-a", subjectForm(t0, "audience", exchangeResB, "resource", exchangeResB)); r.status != 200 || r.body["scope"] != "notes.read notes.write" {
		t.Fatalf("audience: %d %v", r.status, r.body)
	}
	// No scope asked: the subject token's scopes that the target offers.
	if r := h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResD)); r.status != 200 || r.body["scope"] != "notes.read" {
		t.Fatalf("no scope: %d %v", r.status, r.body)
	}

	// Introspection shows the chain to the token's client and to the next
	// hop's resource server.
	for _, caller := range []string{"mcp-a", "mcp-b"} {
		in := h.introspect(t1, caller, h.secrets[caller])
		if act, _ := json.Marshal(in["act"]); in["active"] != true || string(act) != `{"act":{"sub":"agent"},"sub":"mcp-a"}` {
			t.Errorf("introspection by %s: %v", caller, in)
		}
	}
	// may_act, when the token carries it, is returned too.
	withMayAct := h.mint(&token.AccessClaims{Subject: "u-alice", Audience: []string{h.resA}, ClientID: "agent", Scope: "notes.read", MayAct: &token.Actor{Subject: "mcp-a"}})
	if in := h.introspect(withMayAct, "mcp-a", h.secrets["mcp-a"]); !strings.Contains(asJSON(in["may_act"]), `"sub":"mcp-a"`) {
		t.Errorf("introspection of may_act: %v", in)
	}
	// ... and such a token is exchanged by the client it names.
	if r := h.exchange("mcp-a", subjectForm(withMayAct, "resource", exchangeResB)); r.status != 200 {
		t.Errorf("may_act naming the actor: %d %v", r.status, r.body)
	}

	// The audit event records the chain and the subject token.
	evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{Type: audit.TokenIssued, ClientID: "mcp-a", Limit: 10})
	if err != nil || len(evs) == 0 {
		t.Fatalf("events: %v %v", evs, err)
	}
	ev := evs[len(evs)-1]
	if ev.Details[audit.DetailActChain] != "mcp-a agent" || ev.Details["subject_jti"] != c0["jti"] || ev.Details["grant_type"] != grantExchange || ev.UserID != "u-alice" {
		t.Errorf("event = %+v", ev)
	}
	for _, ev := range evs {
		if strings.Contains(asJSON(ev), t0[:40]) {
			t.Fatal("the subject token is in an audit event")
		}
	}

	// An actor token that is the exchanging client's own adds proof, not
	// another identity: the chain is the same.
	cc := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}, "resource": {h.resA}}, "mcp-a", h.secrets["mcp-a"])
	if cc.status != 200 {
		t.Fatalf("client credentials: %v", cc.body)
	}
	r = h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResB, "actor_token", cc.body["access_token"].(string), "actor_token_type", typeAccess))
	if r.status != 200 || asJSON(h.claims(r.body["access_token"].(string))["act"]) != `{"act":{"sub":"agent"},"sub":"mcp-a"}` {
		t.Errorf("own actor token: %d %v", r.status, r.body)
	}
}

// codeFlowToken runs the agent's code flow for resource with x/oauth2.
func (h *exchangeHub) codeFlowToken(b *servertest.Browser, conf *oauth2.Config, resource string, approve []string) (*oauth2.Token, error) {
	h.T.Helper()
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	back := b.Authorize(authURL, approve)
	if e := back.Query().Get("error"); e != "" {
		return nil, errors.New(e)
	}
	return conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resource))
}

func (h *exchangeHub) codeFlowFor(b *servertest.Browser, conf *oauth2.Config, resource string, approve []string) (string, error) {
	tok, err := h.codeFlowToken(b, conf, resource, approve)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTokenExchangeCapsExpiry: a hop never extends the subject token's
// life, whatever the next resource's token lifetime.
func TestTokenExchangeCapsExpiry(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	t0 := h.userToken("notes.read")
	exp0 := int64(h.claims(t0)["exp"].(float64))
	h.clk.Advance(8 * time.Minute) // 2 minutes left of the default 10
	r := h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResB))
	if r.status != 200 {
		t.Fatalf("exchange: %d %v", r.status, r.body)
	}
	if exp := int64(h.claims(r.body["access_token"].(string))["exp"].(float64)); exp != exp0 {
		t.Fatalf("exp = %d, want the subject token's %d", exp, exp0)
	}
	if in := r.body["expires_in"].(float64); in > 120 {
		t.Fatalf("expires_in = %v, want at most 120", in)
	}
}

// TestTokenExchangeFamily: revoking the family of the agent's token (its
// refresh token) reaches the tokens exchanged from it.
func TestTokenExchangeFamily(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	conf := h.oauth2Config("agent", h.secrets["agent"], "notes.read")
	tok, err := h.codeFlowToken(h.Browser(), conf, h.resA, []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.exchange("mcp-a", subjectForm(tok.AccessToken, "resource", exchangeResB))
	if r.status != 200 {
		t.Fatalf("exchange: %d %v", r.status, r.body)
	}
	t1 := r.body["access_token"].(string)
	if rr := h.post("/revoke", url.Values{"token": {tok.RefreshToken}}, "agent", h.secrets["agent"]); rr.status != 200 {
		t.Fatal(rr.status)
	}
	if in := h.introspect(t1, "mcp-b", h.secrets["mcp-b"]); in["active"] != false {
		t.Fatalf("the exchanged token outlived its family: %v", in)
	}
	// And the revoked family's token can no longer be exchanged.
	if r := h.exchange("mcp-a", subjectForm(tok.AccessToken, "resource", exchangeResB)); r.body["error"] != oauth.CodeInvalidGrant {
		t.Fatalf("exchange after revocation: %v", r.body)
	}
}

// TestTokenExchangeUserDisabledWhileCached: the issuance pipeline
// remembers the person for lookupTTL (issuingUser), so a user disabled
// by another process (here: the store directly) is still seen enabled
// by the pipeline; the exchange's write refuses all the same, before the
// clock moves, and the user enabled again is served again.
func TestTokenExchangeUserDisabledWhileCached(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	tok := h.userToken("notes.read")
	form := subjectForm(tok, "resource", exchangeResB)
	if r := h.exchange("mcp-a", form); r.status != http.StatusOK {
		t.Fatalf("exchange: %d %v", r.status, r.body)
	}
	issued := countEvents(t, h.Store, audit.TokenIssued)
	updateUser(t, h.Store, "u-alice", func(u *store.User) { u.Disabled = true })
	r := h.exchange("mcp-a", form)
	if r.status != http.StatusBadRequest || r.body["error"] != oauth.CodeInvalidGrant {
		t.Fatalf("exchange for a disabled user: %d %v, want invalid_grant", r.status, r.body)
	}
	if n := countEvents(t, h.Store, audit.TokenIssued); n != issued {
		t.Fatalf("token.issued events: %d, want %d: a token was written for a disabled user", n, issued)
	}
	updateUser(t, h.Store, "u-alice", func(u *store.User) { u.Disabled = false })
	if r := h.exchange("mcp-a", form); r.status != http.StatusOK {
		t.Fatalf("exchange after enabling the user again: %d %v", r.status, r.body)
	}
}

// TestTokenExchangePolicySeesChain: the exchange action decides with the
// chain in its context (actors, first_actor, chain_depth).
func TestTokenExchangePolicySeesChain(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{policy: `
@id("no-writes-via-a") forbid (principal, action == Action::"exchange", resource)
when { context.actors.contains("mcp-a") && resource.name == "notes.write" };
@id("agent-only-to-d") forbid (principal, action == Action::"exchange", resource in Resource::"` + exchangeResD + `")
unless { context has first_actor && context.first_actor == "other-agent" };
@id("depth-two") forbid (principal, action == Action::"exchange", resource)
when { context.chain_depth > 2 };`})
	t0 := h.userToken("notes.read", "notes.write")
	r := h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResB))
	if r.status != 200 || r.body["scope"] != "notes.read" {
		t.Fatalf("actors: got %d %v, want notes.read only", r.status, r.body)
	}
	if r := h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResD)); r.body["error"] != oauth.CodeInvalidScope {
		t.Fatalf("first_actor: got %d %v, want invalid_scope", r.status, r.body)
	}
	t1 := r.body["access_token"].(string)
	if r := h.exchange("mcp-b", subjectForm(t1, "resource", "https://e.example/mcp")); r.body["error"] != oauth.CodeInvalidScope {
		t.Fatalf("chain_depth: got %d %v, want invalid_scope", r.status, r.body)
	}
	evs, _ := h.Store.ListAudit(context.Background(), store.AuditFilter{Type: audit.TokenDenied, Limit: 10})
	if len(evs) != 2 || !slices.ContainsFunc(evs, func(e *store.AuditEvent) bool { return e.Details[audit.DetailActChain] == "mcp-b mcp-a agent" }) {
		t.Fatalf("denials recorded: %v", evs)
	}
}

// hop is one service of the end-to-end chain: an HTTP server guarded by
// mcpauth that may pass the call on.
type hop struct {
	srv      *httptest.Server
	resource string
	v        *mcpauth.Verifier
	// next handles a verified call; claims are what mcpauth verified.
	next func(w http.ResponseWriter, r *http.Request, claims *mcpauth.Claims, token string)
}

func newHop(t *testing.T) *hop {
	hp := &hop{}
	hp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := hp.v.Check(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		hp.next(w, r, claims, tok)
	}))
	t.Cleanup(hp.srv.Close)
	hp.resource = hp.srv.URL + "/mcp"
	return hp
}

// call sends tok to the hop and returns the status and body.
func callHop(t *testing.T, resource, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, resource, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTokenExchangeThreeHops is the delegated call end to end: a person
// lets an agent in (authorization code flow with x/oauth2), the agent calls
// MCP server A, A exchanges the token for one to MCP server B, B for one to
// the downstream API D. Each hop verifies with mcpauth and sees the person
// as sub and the whole chain in act; scopes narrow at every hop and cannot
// widen; expiry never moves later; a token replayed to a server it was not
// minted for is refused, by that server and by the hub; with a maximum
// chain depth of 3, D's own exchange (a fourth hop) is refused.
func TestTokenExchangeThreeHops(t *testing.T) {
	a, b, d := newHop(t), newHop(t), newHop(t)
	h := newExchangeHub(t, exchangeOptions{depth: 3, resA: a.resource, resB: b.resource, resD: d.resource})
	for _, hp := range []*hop{a, b, d} {
		v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{Issuer: h.URL, Resource: hp.resource, Now: h.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		hp.v = v
	}
	type seen struct {
		sub, client string
		act         string
		scopes      []string
		exp         time.Time
	}
	var atA, atB, atD seen
	record := func(s *seen, c *mcpauth.Claims) {
		// The chain as mcpauth hands it over (Claims.Act, raw JSON), read
		// as the RFC 8693 §4.1 structure.
		var act *token.Actor
		if c.Act != nil {
			if err := json.Unmarshal(c.Act, &act); err != nil {
				t.Errorf("act %s: %v", c.Act, err)
			}
		}
		*s = seen{sub: c.Subject, client: c.ClientID, act: asJSON(act), scopes: c.Scopes, exp: c.ExpiresAt}
	}
	var t1, t2 string
	a.next = func(w http.ResponseWriter, r *http.Request, c *mcpauth.Claims, tok string) {
		record(&atA, c)
		// Widening is refused: the agent's token has no such scope.
		if x := h.exchange("mcp-a", subjectForm(tok, "resource", b.resource, "scope", "notes.read notes.delete")); x.body["error"] != oauth.CodeInvalidScope {
			t.Errorf("A widening: %v", x.body)
		}
		x := h.exchange("mcp-a", subjectForm(tok, "resource", b.resource, "scope", "notes.read files.read"))
		if x.status != 200 {
			http.Error(w, asJSON(x.body), http.StatusBadGateway)
			return
		}
		t1 = x.body["access_token"].(string)
		status, body := callHop(t, b.resource, t1)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	b.next = func(w http.ResponseWriter, r *http.Request, c *mcpauth.Claims, tok string) {
		record(&atB, c)
		if x := h.exchange("mcp-b", subjectForm(tok, "resource", d.resource, "scope", "notes.read notes.write")); x.body["error"] != oauth.CodeInvalidScope {
			t.Errorf("B widening back to notes.write: %v", x.body)
		}
		x := h.exchange("mcp-b", subjectForm(tok, "audience", d.resource, "scope", "notes.read"))
		if x.status != 200 {
			http.Error(w, asJSON(x.body), http.StatusBadGateway)
			return
		}
		t2 = x.body["access_token"].(string)
		status, body := callHop(t, d.resource, t2)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
	d.next = func(w http.ResponseWriter, r *http.Request, c *mcpauth.Claims, tok string) {
		record(&atD, c)
		// A fourth hop: the chain would hold four actors, the limit is 3.
		x := h.exchange("api-d", subjectForm(tok, "resource", "https://e.example/mcp"))
		io.WriteString(w, asJSON(x.body))
	}

	conf := h.oauth2Config("agent", h.secrets["agent"], "notes.read", "notes.write", "files.read")
	tok, err := h.codeFlowToken(h.Browser(), conf, a.resource, []string{"notes.read", "notes.write", "files.read"})
	if err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(3 * time.Minute)
	status, body := callHop(t, a.resource, tok.AccessToken)
	if status != 200 {
		t.Fatalf("the chain failed: %d %s", status, body)
	}
	var fourth map[string]any
	if err := json.Unmarshal([]byte(body), &fourth); err != nil || fourth["error"] != oauth.CodeInvalidGrant || !strings.Contains(fourth["error_description"].(string), "at most 3") {
		t.Fatalf("the fourth hop: %s", body)
	}

	want := []struct {
		name   string
		got    seen
		client string
		act    string
		scopes []string
	}{
		{"A", atA, "agent", "null", []string{"notes.read", "notes.write", "files.read"}},
		{"B", atB, "mcp-a", `{"sub":"mcp-a","act":{"sub":"agent"}}`, []string{"notes.read", "files.read"}},
		{"D", atD, "mcp-b", `{"sub":"mcp-b","act":{"sub":"mcp-a","act":{"sub":"agent"}}}`, []string{"notes.read"}},
	}
	for _, w := range want {
		if w.got.sub != "u-alice" || w.got.client != w.client || w.got.act != w.act || !slices.Equal(w.got.scopes, w.scopes) {
			t.Errorf("%s saw %+v, want sub u-alice, client %s, act %s, scopes %v", w.name, w.got, w.client, w.act, w.scopes)
		}
	}
	if !atB.exp.Equal(atA.exp) || atD.exp.After(atB.exp) {
		t.Errorf("expiry moved later: A %v, B %v, D %v", atA.exp, atB.exp, atD.exp)
	}

	// Replays: a token goes only where it was minted for.
	if status, _ := callHop(t, d.resource, t1); status != http.StatusUnauthorized {
		t.Errorf("B's token at D: %d", status)
	}
	if status, _ := callHop(t, a.resource, t2); status != http.StatusUnauthorized {
		t.Errorf("D's token at A: %d", status)
	}
	if x := h.exchange("api-d", subjectForm(t1, "resource", "https://e.example/mcp")); x.body["error"] != oauth.CodeInvalidGrant {
		t.Errorf("D exchanging B's token: %v", x.body)
	}
	if x := h.exchange("mcp-a", subjectForm(t1, "resource", d.resource)); x.body["error"] != oauth.CodeInvalidGrant {
		t.Errorf("A exchanging the token it passed to B: %v", x.body)
	}
}

// foreignIssuer is a trusted issuer of subject tokens with a local key.
type foreignIssuer struct {
	url    string
	signer jose.Signer
}

func newForeignIssuer(t *testing.T, h *exchangeHub, audiences ...string) *foreignIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	fi := &foreignIssuer{url: "https://idp.example"}
	now := time.Now()
	if err := h.Store.CreateIssuer(context.Background(), &store.Issuer{
		TenantID: store.DefaultTenant, ID: "idp", Issuer: fi.url, JWKS: string(jwks), Audiences: audiences,
		Algorithms: []string{"ES256"}, Uses: []string{store.IssuerUseSubjectToken}, MaxLifetime: time.Hour,
		UserClaim: "preferred_username", CreatedAt: now, UpdatedAt: now,
	}, nil); err != nil {
		t.Fatal(err)
	}
	fi.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// token signs a subject token about alice (preferred_username) for aud,
// with extra claims.
func (fi *foreignIssuer) token(t *testing.T, now time.Time, aud string, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{
		"iss": fi.url, "sub": "00u-alice", "preferred_username": "alice", "aud": aud, "client_id": "ext-agent",
		"scope": "notes.read notes.write", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": token.NewID(nil),
	}
	for k, v := range extra {
		claims[k] = v
	}
	payload, _ := json.Marshal(claims)
	jws, err := fi.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := jws.CompactSerialize()
	return raw
}

// TestTokenExchangeFederatedSubject: a trusted issuer's JWT (use
// subject_token) is exchanged by the resource server its aud names (or,
// with the hub as aud, by a resource server), for the user its
// user_claim names; its act (or its client_id) starts the chain, named by
// its issuer; may_act and authorization_details are honoured.
func TestTokenExchangeFederatedSubject(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	fi := newForeignIssuer(t, h, h.resA, h.URL)
	now := h.clk.Now()
	jwtForm := func(tok string, extra ...string) url.Values {
		f := subjectForm(tok, extra...)
		f.Set("subject_token_type", typeJWT)
		return f
	}
	r := h.exchange("mcp-a", jwtForm(fi.token(t, now, h.resA, nil), "resource", exchangeResB, "scope", "notes.read"))
	if r.status != 200 {
		t.Fatalf("exchange: %d %v", r.status, r.body)
	}
	c := h.claims(r.body["access_token"].(string))
	if c["sub"] != "u-alice" || c["client_id"] != "mcp-a" || asJSON(c["act"]) != `{"act":{"iss":"https://idp.example","sub":"ext-agent"},"sub":"mcp-a"}` {
		t.Fatalf("claims = %v", c)
	}
	// The issuer's own chain is kept, each actor named by its issuer.
	r = h.exchange("mcp-a", jwtForm(fi.token(t, now, h.resA, map[string]any{"act": map[string]any{"sub": "ext-agent", "exp": 1}}), "resource", exchangeResB))
	if r.status != 200 || asJSON(h.claims(r.body["access_token"].(string))["act"]) != `{"act":{"iss":"https://idp.example","sub":"ext-agent"},"sub":"mcp-a"}` {
		t.Fatalf("foreign act: %d %v", r.status, r.body)
	}
	// With the hub as aud, any resource server may exchange it.
	if r := h.exchange("mcp-b", jwtForm(fi.token(t, now, h.URL, nil), "resource", exchangeResD)); r.status != 200 {
		t.Fatalf("hub audience: %d %v", r.status, r.body)
	}
	for _, tc := range []struct {
		name, client, tok string
	}{
		{"another resource server's token", "mcp-b", fi.token(t, now, h.resA, nil)},
		{"hub audience, no resource server", "stranger", fi.token(t, now, h.URL, nil)},
		{"authorization_details", "mcp-a", fi.token(t, now, h.resA, map[string]any{"authorization_details": []any{map[string]any{"type": "x"}}})},
		{"may_act names another", "mcp-a", fi.token(t, now, h.resA, map[string]any{"may_act": map[string]any{"sub": "mcp-z"}})},
		{"may_act names the client under another issuer", "mcp-a", fi.token(t, now, h.resA, map[string]any{"may_act": map[string]any{"sub": "mcp-a"}})},
		{"unknown user", "mcp-a", fi.token(t, now, h.resA, map[string]any{"preferred_username": "mallory"})},
		{"malformed act", "mcp-a", fi.token(t, now, h.resA, map[string]any{"act": "ext-agent"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.exchange(tc.client, jwtForm(tc.tok, "resource", exchangeResB)); r.body["error"] != oauth.CodeInvalidGrant {
				t.Fatalf("got %d %v, want invalid_grant", r.status, r.body)
			}
		})
	}
	// may_act naming the client as the hub names it passes.
	ok := fi.token(t, now, h.resA, map[string]any{"may_act": map[string]any{"sub": "mcp-a", "iss": h.URL}})
	if r := h.exchange("mcp-a", jwtForm(ok, "resource", exchangeResB)); r.status != 200 {
		t.Fatalf("may_act with the hub's issuer: %d %v", r.status, r.body)
	}
}

// TestTokenExchangeForeignActorsQualified: the policy and the audit trail
// name an actor a trusted issuer vouches for by that issuer, never by its
// bare sub: a foreign client called "agent" is not the hub's agent, so a
// rule trusting the hub's agent as first actor cannot be met by naming a
// foreign client the same (as mcpauth's FirstActors never matches an actor
// with a foreign iss).
func TestTokenExchangeForeignActorsQualified(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{policy: `
@id("only-from-agent") forbid (principal, action == Action::"exchange", resource)
unless { context has first_actor && context.first_actor == "agent" && context.actors.contains("agent") };`})
	fi := newForeignIssuer(t, h, h.resA)
	t0 := h.userToken("notes.read")
	if r := h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResB)); r.status != 200 {
		t.Fatalf("the hub's agent first: %d %v", r.status, r.body)
	}
	jwtForm := func(tok string) url.Values {
		f := subjectForm(tok, "resource", exchangeResB, "scope", "notes.read")
		f.Set("subject_token_type", typeJWT)
		return f
	}
	now := h.clk.Now()
	for _, tc := range []struct {
		name  string
		extra map[string]any
		chain string
	}{
		{"foreign client_id", map[string]any{"client_id": "agent"}, "mcp-a https://idp.example#agent"},
		{"foreign act", map[string]any{"act": map[string]any{"sub": "agent"}}, "mcp-a https://idp.example#agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.exchange("mcp-a", jwtForm(fi.token(t, now, h.resA, tc.extra)))
			if r.body["error"] != oauth.CodeInvalidScope {
				t.Fatalf("got %d %v, want invalid_scope", r.status, r.body)
			}
			evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{Type: audit.TokenDenied, Limit: 100})
			if err != nil || len(evs) == 0 {
				t.Fatalf("token.denied: %v %v", evs, err)
			}
			if got := evs[len(evs)-1].Details[audit.DetailActChain]; got != tc.chain {
				t.Fatalf("act_chain = %q, want %q", got, tc.chain)
			}
		})
	}
}

// TestTokenExchangeActorDisabledEndsChain: disabling (or deleting) an
// agent ends the tokens exchanged from its tokens, not only its own: their
// client is the exchanging resource server, so only their chain names the
// agent, and introspection checks every actor of it as the exchange does.
func TestTokenExchangeActorDisabledEndsChain(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	t0 := h.userToken("notes.read")
	r := h.exchange("mcp-a", subjectForm(t0, "resource", exchangeResB))
	if r.status != 200 {
		t.Fatalf("exchange: %d %v", r.status, r.body)
	}
	t1 := r.body["access_token"].(string)
	r = h.exchange("mcp-b", subjectForm(t1, "resource", exchangeResD))
	if r.status != 200 {
		t.Fatalf("second hop: %d %v", r.status, r.body)
	}
	t2 := r.body["access_token"].(string)
	if in := h.introspect(t2, "api-d", h.secrets["api-d"]); in["active"] != true {
		t.Fatalf("before: %v", in)
	}
	// An earlier hop disabled: the last token names it in its chain.
	disableClient(t, h.Store, "mcp-a")
	if in := h.introspect(t2, "api-d", h.secrets["api-d"]); in["active"] != false {
		t.Fatalf("a hop of the chain is disabled, the token still introspects active: %v", in)
	}
	// The first actor disabled: both exchanged tokens end.
	h2 := newExchangeHub(t, exchangeOptions{})
	t0 = h2.userToken("notes.read")
	t1 = h2.exchange("mcp-a", subjectForm(t0, "resource", exchangeResB)).body["access_token"].(string)
	disableClient(t, h2.Store, "agent")
	if in := h2.introspect(t1, "mcp-b", h2.secrets["mcp-b"]); in["active"] != false {
		t.Fatalf("the agent is disabled, its delegated token still introspects active: %v", in)
	}
}

// TestTokenExchangeFederatedSubjectByEmail: a subject token's user is found
// by the same rule as a jwt-bearer assertion's (design §11): the verified
// address compared without regard to case, and an address two users share
// names nobody.
func TestTokenExchangeFederatedSubjectByEmail(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	fi := newForeignIssuer(t, h, h.resA)
	ctx := context.Background()
	is, err := h.Store.GetIssuer(ctx, store.DefaultTenant, "idp")
	if err != nil {
		t.Fatal(err)
	}
	is.UserClaim = "email"
	if err := h.Store.UpdateIssuer(ctx, is, nil); err != nil {
		t.Fatal(err)
	}
	updateUser(t, h.Store, "u-alice", func(u *store.User) { u.Email, u.EmailVerified = "alice@example.com", true })
	jwtForm := func(tok string) url.Values {
		f := subjectForm(tok, "resource", exchangeResB, "scope", "notes.read")
		f.Set("subject_token_type", typeJWT)
		return f
	}
	now := h.clk.Now()
	r := h.exchange("mcp-a", jwtForm(fi.token(t, now, h.resA, map[string]any{"email": "Alice@Example.COM"})))
	if r.status != 200 || h.claims(r.body["access_token"].(string))["sub"] != "u-alice" {
		t.Fatalf("email in another case: %d %v", r.status, r.body)
	}
	if err := h.Store.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-alice2", Username: "alice2", Email: "ALICE@example.com", EmailVerified: true, CreatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	if r := h.exchange("mcp-a", jwtForm(fi.token(t, now, h.resA, map[string]any{"email": "alice@example.com"}))); r.body["error"] != oauth.CodeInvalidGrant {
		t.Fatalf("an address two users share: got %d %v, want invalid_grant", r.status, r.body)
	}
}

// TestTokenExchangeWorkloadActorToken: a trusted workload issuer's JWT as
// actor_token proves the exchanging client as its own token does, and is
// held to the rules of the same JWT as a grant or client_assertion: it
// must be the client's, and one carrying act (someone else acted to get
// it), cnf or authorization_details is refused rather than shed, as an
// access token with act is.
func TestTokenExchangeWorkloadActorToken(t *testing.T) {
	h := newExchangeHub(t, exchangeOptions{})
	wl := newTrustedIssuer(t, k8sIssuer)
	h.addIssuer(&store.Issuer{
		ID: "k8s", Issuer: k8sIssuer, JWKS: wl.jwks(), Uses: []string{store.IssuerUseWorkload},
		Rules: []store.IssuerRule{{Claims: map[string]string{"sub": "mcp-*"}, Agent: "{sub}"}},
	})
	t0 := h.userToken("notes.read")
	actor := func(sub string, extra map[string]any) string {
		now := h.clk.Now()
		c := map[string]any{"iss": k8sIssuer, "sub": sub, "aud": h.URL, "jti": wl.jti(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return wl.sign("", c)
	}
	form := func(actorToken string) url.Values {
		return subjectForm(t0, "resource", exchangeResB, "actor_token", actorToken, "actor_token_type", typeJWT)
	}
	r := h.exchange("mcp-a", form(actor("mcp-a", nil)))
	if r.status != 200 || asJSON(h.claims(r.body["access_token"].(string))["act"]) != `{"act":{"sub":"agent"},"sub":"mcp-a"}` {
		t.Fatalf("own workload token: %d %v", r.status, r.body)
	}
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"another client's", actor("mcp-b", nil)},
		{"act", actor("mcp-a", map[string]any{"act": map[string]any{"sub": "someone-else"}})},
		{"cnf", actor("mcp-a", map[string]any{"cnf": map[string]any{"jkt": "abc"}})},
		{"authorization_details", actor("mcp-a", map[string]any{"authorization_details": []any{map[string]any{"type": "x"}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.exchange("mcp-a", form(tc.tok)); r.body["error"] != oauth.CodeInvalidGrant {
				t.Fatalf("got %d %v, want invalid_grant", r.status, r.body)
			}
		})
	}
}
