package server_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/store/sqlite"
	"github.com/agentid/agentid/internal/token"
)

// These tests drive the central policy layer end to end: policy sets
// applied and clients tagged through the same functions the admin CLI
// uses, observed through the protocol endpoints and the audit trail.

// testClock is the real time plus an offset a test moves forward, so that
// refresh intervals and cache lifetimes pass without sleeping.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// policyHub is a hub whose policy engine and clock the test holds.
type policyHub struct {
	*hub
	engine *policy.Engine
	clock  *testClock
}

// settle moves the clock past the policy refresh interval and the token
// endpoint's client cache, as a few seconds of wall time would.
// settle lets a change made through the store reach the hub: the policy
// engine's refresh interval passes, and the change feed has read it (on
// PostgreSQL its NOTIFY comes asynchronously).
func (p *policyHub) settle() {
	p.clock.Advance(policy.DefaultRefreshInterval + time.Second)
	if err := p.Changes.Sync(context.Background()); err != nil {
		p.T.Fatal(err)
	}
}

func newPolicyHubOn(t *testing.T, st store.Store) *policyHub {
	t.Helper()
	clk := &testClock{}
	e, err := policy.New(context.Background(), policy.Options{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := servertest.NewOn(t, st, func(c *server.Config) { c.Policy, c.Now = e, clk.Now })
	return &policyHub{hub: &hub{h}, engine: e, clock: clk}
}

func forEachPolicyBackend(t *testing.T, test func(*testing.T, *policyHub)) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db"))))
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), pgtest.FreshSchema(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, _, err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		test(t, newPolicyHubOn(t, st))
	})
}

func openSQLiteStore(t testing.TB, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// applyPolicy applies the default set plus extra, as `agentid policy apply`
// does: validate, store with its audit event, recompute the ceilings.
func applyPolicy(t *testing.T, st store.Store, e *policy.Engine, extra string) int64 {
	t.Helper()
	ctx := context.Background()
	files := policy.DefaultFiles()
	files["extra.cedar"] = extra
	ps := &store.PolicySet{TenantID: store.DefaultTenant, Files: files, CreatedBy: "test", CreatedAt: time.Now()}
	if err := policy.Apply(ctx, st, ps, &audit.Meta{Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RecomputeCeilings(ctx, &audit.Meta{}); err != nil {
		t.Fatal(err)
	}
	return ps.Version
}

// lastIssued returns the newest token.issued event of the client.
func lastIssued(t *testing.T, st store.Store, clientID string) *store.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: audit.TokenIssued, ClientID: clientID, Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("token.issued events of %s: %v %v", clientID, evs, err)
	}
	return evs[0]
}

// checkDecisions checks that ev records, per requested scope, granted or
// denied and the deciding policy ids.
func checkDecisions(t *testing.T, ev *store.AuditEvent, want map[string]string) {
	t.Helper()
	dec, ok, err := audit.DecisionOf(ev)
	if err != nil || !ok {
		t.Fatalf("event records no decisions (%v): %v", err, ev.Details)
	}
	got := map[string]string{}
	for _, d := range dec.Scopes {
		verdict := "denied"
		if d.Allowed {
			verdict = "granted"
		}
		by := strings.Join(d.PolicyIDs, ",")
		if d.Reason != audit.ReasonPolicy {
			by = string(d.Reason)
		}
		got[d.Scope] = verdict + ":" + by
	}
	if len(got) != len(want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	for s, w := range want {
		if got[s] != w {
			t.Fatalf("decision on %s = %q, want %q (all: %v)", s, got[s], w, got)
		}
	}
}

const noWriteForAgent1 = `@id("no-notes-write-for-agent-1")
forbid (principal == Agent::"agent-1", action == Action::"grant", resource)
when { resource.name == "notes.write" };`

// TestTightenedPolicyBitesOnRefresh: a set applied after the authorization
// removes a scope from the next refresh, without re-registration or new
// consent; the token.issued event names the deciding policy, and explain
// says the same.
func TestTightenedPolicyBitesOnRefresh(t *testing.T) {
	forEachPolicyBackend(t, testTightenedPolicyBitesOnRefresh)
}

func testTightenedPolicyBitesOnRefresh(t *testing.T, h *policyHub) {
	ctx := context.Background()
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read", "notes.write"), []string{"notes.read", "notes.write"})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read notes.write" {
		t.Fatalf("first token scope %v", got)
	}
	// (d) Every token.issued event records each requested scope.
	checkDecisions(t, lastIssued(t, h.Store, "agent-1"), map[string]string{
		"notes.read": "granted:user-consent", "notes.write": "granted:user-consent",
	})

	version := applyPolicy(t, h.Store, h.engine, noWriteForAgent1)
	h.settle()

	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "agent-1", secret)
	if r.status != http.StatusOK || r.body["scope"] != "notes.read" {
		t.Fatalf("refresh under the tightened policy: %d %v", r.status, r.body)
	}
	if got := h.claims(r.body["access_token"].(string))["scope"]; got != "notes.read" {
		t.Fatalf("refreshed token scope %v, want notes.write removed", got)
	}
	ev := lastIssued(t, h.Store, "agent-1")
	if ev.Details["grant_type"] != "refresh_token" || !slices.Equal(ev.Scopes, []string{"notes.read"}) {
		t.Fatalf("event %+v", ev)
	}
	checkDecisions(t, ev, map[string]string{
		"notes.read": "granted:user-consent", "notes.write": "denied:no-notes-write-for-agent-1",
	})
	if dec, _, _ := audit.DecisionOf(ev); dec.PolicyVersion != version {
		t.Fatalf("token.issued records policy version %d, want %d", dec.PolicyVersion, version)
	}

	// (c) Explain, as `agentid policy explain` asks it, names the same policy.
	x, err := h.engine.ExplainQuery(ctx, policy.Query{AgentID: "agent-1", User: servertest.TestUser, Resource: h.Resource,
		Scopes: []string{"notes.read", "notes.write"}, GrantType: "refresh_token"})
	if err != nil {
		t.Fatal(err)
	}
	if x.Result.Version != version {
		t.Fatalf("explained with version %d, want %d", x.Result.Version, version)
	}
	out := x.String()
	for _, want := range []string{
		`notes.write  DENY  forbidden by "no-notes-write-for-agent-1"`,
		`forbid "no-notes-write-for-agent-1" at extra.cedar:1:1`,
		`notes.read  ALLOW  permitted by "user-consent"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
}

// TestTrustedTagUnlocksSensitiveScope: a self-registered agent asking for a
// sensitive scope does not get it (registration response, consent screen,
// token); once an admin tags it trusted (through the CLI's function) and it
// re-authorizes, it does; untagged again, its next refresh loses it.
func TestTrustedTagUnlocksSensitiveScope(t *testing.T) {
	forEachPolicyBackend(t, testTrustedTagUnlocksSensitiveScope)
}

func testTrustedTagUnlocksSensitiveScope(t *testing.T, h *policyHub) {
	ctx := context.Background()
	reg := h.jsonRequest(http.MethodPost, "/register", map[string]any{
		"client_name": "dcr agent", "redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code", "refresh_token"},
		"scope": "notes.read notes.delete",
	}, "")
	if reg.status != http.StatusCreated || reg.body["scope"] != "notes.read notes.write" {
		t.Fatalf("registration: %d %v, want the sensitive notes.delete left out of scope", reg.status, reg.body)
	}
	id, secret := reg.body["client_id"].(string), reg.body["client_secret"].(string)
	regToken := reg.body["registration_access_token"].(string)
	c, err := h.Store.GetClient(ctx, store.DefaultTenant, id)
	if err != nil || !slices.Equal(c.RequestedScopes, []string{"notes.read", "notes.write", "notes.delete"}) || !slices.Equal(c.Scopes, []string{"notes.read", "notes.write"}) {
		t.Fatalf("stored client: requested %v ceiling %v (%v)", c.RequestedScopes, c.Scopes, err)
	}
	conf := h.oauth2Config(id, secret, "notes.read", "notes.delete")

	b := h.Browser()
	offered, tok := h.authorizeOffered(t, b, conf)
	if !slices.Equal(offered, []string{"notes.read"}) {
		t.Fatalf("consent screen offered %v before trust, want only notes.read", offered)
	}
	if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read" {
		t.Fatalf("token scope %v before trust", got)
	}

	// The admin tags it trusted, exactly as `agentid clients tag ID trusted`.
	_, ch, err := h.engine.TagClient(ctx, id, []string{"trusted"}, nil, &audit.Meta{Actor: audit.ActorCLI})
	if err != nil || !slices.Equal(ch.Added, []string{"notes.delete"}) {
		t.Fatalf("TagClient: %+v %v", ch, err)
	}
	h.settle()
	if r := h.jsonRequest(http.MethodGet, "/register/"+id, "", regToken); r.body["scope"] != "notes.read notes.write notes.delete" {
		t.Fatalf("RFC 7592 read after trust: %v", r.body)
	}
	offered, tok = h.authorizeOffered(t, b, conf)
	if !slices.Contains(offered, "notes.delete") {
		t.Fatalf("consent screen offered %v after trust, want notes.delete", offered)
	}
	if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read notes.delete" {
		t.Fatalf("token scope %v after trust", got)
	}
	checkDecisions(t, lastIssued(t, h.Store, id), map[string]string{
		"notes.read": "granted:user-consent", "notes.delete": "granted:user-consent",
	})

	// Untagged, the next refresh drops the sensitive scope again.
	if _, _, err := h.engine.TagClient(ctx, id, nil, []string{"trusted"}, &audit.Meta{Actor: audit.ActorCLI}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	r := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, id, secret)
	if r.status != http.StatusOK || r.body["scope"] != "notes.read" {
		t.Fatalf("refresh after untag: %d %v", r.status, r.body)
	}
}

// authorizeOffered runs the code flow, approving whatever the consent
// screen offers, and returns the offered scopes (nil when the screen was
// skipped) and the token.
func (h *hub) authorizeOffered(t *testing.T, b *servertest.Browser, conf *oauth2.Config) ([]string, *oauth2.Token) {
	t.Helper()
	return h.authorizeAs(t, b, conf, h.Resource, servertest.TestUser, servertest.TestPassword)
}

// authorizeAs is authorizeOffered for a resource, signing in as user
// with password when the browser has no session.
func (h *hub) authorizeAs(t *testing.T, b *servertest.Browser, conf *oauth2.Config, resource, user, password string) ([]string, *oauth2.Token) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	p := b.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	if strings.Contains(p.Body, `action="/login"`) {
		p = b.Login(p, user, password)
	}
	var offered []string
	if p.Location == nil {
		offered = servertest.Offered(p.Body)
		p = b.Consent(p, offered)
	}
	if p.Location == nil {
		t.Fatalf("the flow did not return to the client: %d\n%s", p.Status, p.Body)
	}
	code := p.Location.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", p.Location)
	}
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", resource))
	if err != nil {
		t.Fatal(err)
	}
	return offered, tok
}

// TestReplicaHubsShareAppliedPolicy: two hubs on one SQLite file, as two
// replicas; a set applied through one hub's store governs tokens the other
// hub issues within a few refresh intervals, with no restart.
func TestReplicaHubsShareAppliedPolicy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "agentid.db")
	const interval = 100 * time.Millisecond
	// Replicas share the key-encryption key, hence the signing keys.
	kek, err := keyring.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	var hubs [2]*hub
	for i := range hubs {
		st := openSQLiteStore(t, path)
		e, err := policy.New(ctx, policy.Options{Store: st, RefreshInterval: interval})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := token.NewKeys(ctx, token.Options{Store: st, Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		hubs[i] = &hub{servertest.NewOn(t, st, func(c *server.Config) { c.Policy, c.Keys = e, keys })}
	}
	// The first hub registered the resource and user in the shared store.
	a, b := hubs[0], hubs[1]
	secret := b.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read", "cc:notes.write"}})
	issue := func() jsonResp {
		t.Helper()
		return b.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "resource": {a.Resource}, "scope": {"notes.read notes.write"}}, "bot", secret)
	}
	if r := issue(); r.status != http.StatusOK || r.body["scope"] != "notes.read notes.write" {
		t.Fatalf("before: %d %v", r.status, r.body)
	}
	files := policy.DefaultFiles()
	files["bot.cedar"] = `@id("bot-read-only") forbid (principal == Agent::"bot", action, resource) when { resource.name == "notes.write" };`
	if err := policy.Apply(ctx, a.Store, &store.PolicySet{Files: files, CreatedBy: "replica a"}, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		r := issue()
		if r.status == http.StatusOK && r.body["scope"] == "notes.read" {
			t.Logf("the other replica issued under the new set after %v", time.Since(start))
			checkDecisions(t, lastIssued(t, b.Store, "bot"), map[string]string{
				"notes.read": "granted:client-credentials-tagged", "notes.write": "denied:bot-read-only",
			})
			return
		}
		if time.Since(start) > policy.DefaultRefreshInterval {
			t.Fatalf("after %v the other replica still issues %d %v", policy.DefaultRefreshInterval, r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
