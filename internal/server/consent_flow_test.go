package server_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
)

// fakeClock is the hub's injected time. It starts at the real now (the
// signing keys run on real time) and only moves forward.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withClock(c *fakeClock) servertest.Option { return func(cfg *server.Config) { cfg.Now = c.Now } }

// consentBackends runs test on a hub with a fake clock, on SQLite and on
// PostgreSQL.
func consentBackends(t *testing.T, test func(t *testing.T, h *hub, clk *fakeClock)) {
	t.Run("sqlite", func(t *testing.T) {
		clk := newFakeClock()
		test(t, newHub(t, withClock(clk)), clk)
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
		clk := newFakeClock()
		test(t, &hub{servertest.NewOn(t, st, withClock(clk))}, clk)
	})
}

var (
	cfCSRF     = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	cfRequest  = regexp.MustCompile(`name="request" value="([^"]*)"`)
	cfDuration = regexp.MustCompile(`name="duration" value="([^"]*)"( checked)?`)
)

func cfField(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no %s:\n%s", re, body)
	}
	return html.UnescapeString(m[1])
}

// durations lists the duration choices on a consent page and the checked one.
func durations(body string) (offered []string, checked string) {
	for _, m := range cfDuration.FindAllStringSubmatch(body, -1) {
		offered = append(offered, m[1])
		if m[2] != "" {
			checked = m[1]
		}
	}
	return offered, checked
}

// flow is one authorization code flow of a confidential agent, paused at
// whatever page the hub shows after login.
type flow struct {
	h        *hub
	b        *servertest.Browser
	conf     *oauth2.Config
	verifier string
	page     *servertest.Page
}

func (h *hub) startFlow(b *servertest.Browser, conf *oauth2.Config, opts ...oauth2.AuthCodeOption) *flow {
	h.T.Helper()
	f := &flow{h: h, b: b, conf: conf, verifier: oauth2.GenerateVerifier()}
	// opts come last, so that they may name another resource.
	opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("resource", h.Resource)}, opts...)
	f.page = b.Get(conf.AuthCodeURL("st", opts...))
	if strings.Contains(f.page.Body, `action="/login"`) {
		f.page = b.Login(f.page, servertest.TestUser, servertest.TestPassword)
	}
	return f
}

// decide posts the consent form with the given decision, scopes and
// duration ("" leaves the duration out, as a form without it).
func (f *flow) decide(decision string, scopes []string, duration string) *servertest.Page {
	f.h.T.Helper()
	body := f.page.Body
	form := url.Values{"csrf_token": {cfField(f.h.T, cfCSRF, body)}, "request": {cfField(f.h.T, cfRequest, body)}, "decision": {decision}, "scope": scopes}
	if duration != "" {
		form.Set("duration", duration)
	}
	return f.b.Post(f.h.URL+"/authorize/decision", form)
}

// finish exchanges the code the hub redirected with.
func (f *flow) finish(back *servertest.Page) *oauth2.Token {
	f.h.T.Helper()
	if back.Location == nil {
		f.h.T.Fatalf("the hub did not redirect to the client: %d\n%s", back.Status, back.Body)
	}
	q := back.Location.Query()
	if e := q.Get("error"); e != "" {
		f.h.T.Fatalf("authorization failed: %s", e)
	}
	tok, err := f.conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		f.h.T.Fatalf("exchange: %v", err)
	}
	return tok
}

func (h *hub) grants(userID, clientID string) map[string]*store.ConsentGrant {
	h.T.Helper()
	list, err := h.Store.ListConsents(context.Background(), store.ConsentFilter{TenantID: store.DefaultTenant, UserID: userID, ClientID: clientID})
	if err != nil {
		h.T.Fatal(err)
	}
	m := map[string]*store.ConsentGrant{}
	for _, g := range list {
		m[g.Scope] = g
	}
	return m
}

func (h *hub) auditEvents(typ string) []*store.AuditEvent {
	h.T.Helper()
	evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Type: typ})
	if err != nil {
		h.T.Fatal(err)
	}
	return evs
}

func (h *hub) refresh(rt, clientID, secret string) jsonResp {
	h.T.Helper()
	return h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, clientID, secret)
}

func addAgent(h *hub) (*oauth2.Config, string) {
	secret := h.AddClient(&store.Client{ID: "agent-1", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	return h.oauth2Config("agent-1", secret), secret
}

func TestConsentDurations(t *testing.T) {
	const accessTTL = 10 * time.Minute // the hub default
	const refreshTTL = 30 * 24 * time.Hour
	tests := []struct {
		name     string
		duration string // "" submits no duration: the default (30 days)
		// consentTTL is how long the consent lasts (0: until revoked).
		consentTTL time.Duration
		// refreshTTL is the refresh token's lifetime (0: none is issued).
		refreshTTL time.Duration
	}{
		{"only for this session", "session", accessTTL, 0},
		{"one hour", "1h", time.Hour, time.Hour},
		{"one day", "1d", 24 * time.Hour, 24 * time.Hour},
		{"thirty days", "30d", 30 * 24 * time.Hour, 30 * 24 * time.Hour},
		{"until revoked", "revoke", 0, refreshTTL},
		{"no duration sent takes the default", "", 30 * 24 * time.Hour, 30 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			consentBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
				conf, secret := addAgent(h)
				conf.Scopes = []string{"notes.read", "notes.write"}
				f := h.startFlow(h.Browser(), conf)
				offered, checked := durations(f.page.Body)
				if !slices.Equal(offered, []string{"session", "1h", "1d", "30d", "revoke"}) || checked != "30d" {
					t.Fatalf("durations offered %v, preselected %q", offered, checked)
				}
				granted := clk.Now()
				back := f.decide("allow", []string{"notes.read", "notes.write"}, tc.duration)
				// The code is exchanged a little later, as over a network.
				const lag = 30 * time.Second
				clk.Advance(lag)
				tok := f.finish(back)

				// The ledger holds each scope with the chosen expiry.
				for _, sc := range conf.Scopes {
					g := h.grants("u-alice", "agent-1")[sc]
					want := time.Time{}
					if tc.consentTTL > 0 {
						want = granted.Add(tc.consentTTL)
					}
					if g == nil || !g.ExpiresAt.Equal(want) {
						t.Fatalf("consent %s = %+v, want expiry %v", sc, g, want)
					}
				}
				// The access token never outlives the consent: a session
				// token ends with the session consent.
				c := h.claims(tok.AccessToken)
				wantExp := granted.Add(lag + accessTTL)
				if tc.duration == "session" {
					wantExp = granted.Add(accessTTL)
				}
				if int64(c["exp"].(float64)) != wantExp.Unix() || c["scope"] != "notes.read notes.write" {
					t.Fatalf("claims = %v, want exp %v", c, wantExp.Unix())
				}
				// The refresh token never outlives the longest consent; a
				// session consent gets none.
				if tc.refreshTTL == 0 {
					if tok.RefreshToken != "" {
						t.Fatal("a refresh token was issued for a session-only consent")
					}
					clk.Advance(accessTTL - lag)
					if got := h.introspect(tok.AccessToken, "agent-1", secret); got["active"] != false {
						t.Fatalf("session token active after the session: %v", got)
					}
					return
				}
				if tok.RefreshToken == "" {
					t.Fatal("no refresh token")
				}
				wantRT := granted.Add(tc.refreshTTL)
				if tc.consentTTL == 0 {
					wantRT = wantRT.Add(lag) // uncapped: the hub's refresh lifetime from the exchange
				}
				got := h.introspect(tok.RefreshToken, "agent-1", secret)
				if got["active"] != true || int64(got["exp"].(float64)) != wantRT.Unix() {
					t.Fatalf("refresh token introspection = %v, want exp %v", got, wantRT.Unix())
				}
				if tc.consentTTL == 0 {
					// Consent until revoked: refreshing a month later works.
					clk.Advance(29 * 24 * time.Hour)
					if r := h.refresh(tok.RefreshToken, "agent-1", secret); r.status != 200 || r.body["scope"] != "notes.read notes.write" {
						t.Fatalf("refresh after 29 days: %d %v", r.status, r.body)
					}
					return
				}
				// Just before the consent ends a refresh still works; when it
				// has ended, the refresh fails with invalid_grant and the
				// expiry is in the audit trail.
				clk.Advance(tc.consentTTL - lag - time.Second)
				r := h.refresh(tok.RefreshToken, "agent-1", secret)
				if r.status != 200 {
					t.Fatalf("refresh a second before expiry: %d %v", r.status, r.body)
				}
				if r.body["expires_in"].(float64) != 1 {
					t.Fatalf("token minted a second before the consent ends lives %v s", r.body["expires_in"])
				}
				// Its successor lives exactly as long as the consent.
				last, _ := r.body["refresh_token"].(string)
				if got := h.introspect(last, "agent-1", secret); got["active"] != true || int64(got["exp"].(float64)) != granted.Add(tc.consentTTL).Unix() {
					t.Fatalf("last refresh token = %v, want exp %v", got, granted.Add(tc.consentTTL).Unix())
				}
				clk.Advance(time.Second)
				for range 2 {
					if r := h.refresh(last, "agent-1", secret); r.status != 400 || r.body["error"] != "invalid_grant" {
						t.Fatalf("refresh after the consent ended: %d %v", r.status, r.body)
					}
				}
				ev := h.auditEvents(audit.ConsentExpired)
				if len(ev) != 1 || !slices.Equal(ev[0].Scopes, conf.Scopes) {
					t.Fatalf("consent.expired events = %+v, want one with %v", ev, conf.Scopes)
				}
			})
		})
	}
}

func TestConsentExpiryDropsScopeOnRefresh(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		conf, secret := addAgent(h)
		b := h.Browser()
		conf.Scopes = []string{"notes.read"}
		f := h.startFlow(b, conf)
		f.finish(f.decide("allow", []string{"notes.read"}, "1h"))

		// Step-up: only the new scope is prompted; the earlier one is shown
		// as already granted, with its expiry.
		conf.Scopes = []string{"notes.read", "notes.write"}
		f = h.startFlow(b, conf)
		if got := servertest.Offered(f.page.Body); !slices.Equal(got, []string{"notes.write"}) {
			t.Fatalf("step-up prompted %v, want only notes.write", got)
		}
		if !strings.Contains(f.page.Body, "Already allowed") || !strings.Contains(f.page.Body, "Read your notes") {
			t.Fatalf("step-up page does not show the earlier grant:\n%s", f.page.Body)
		}
		tok := f.finish(f.decide("allow", []string{"notes.write"}, "1d"))
		if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read notes.write" {
			t.Fatalf("step-up token scope = %v, want the union", got)
		}
		if got := h.introspect(tok.RefreshToken, "agent-1", secret); got["scope"] != "notes.read notes.write" {
			t.Fatalf("step-up refresh token = %v", got)
		}

		// After the hour, a refresh drops notes.read and says so once.
		clk.Advance(time.Hour + time.Minute)
		r := h.refresh(tok.RefreshToken, "agent-1", secret)
		if r.status != 200 || r.body["scope"] != "notes.write" {
			t.Fatalf("refresh after notes.read expired: %d %v", r.status, r.body)
		}
		ev := h.auditEvents(audit.ConsentExpired)
		if len(ev) != 1 || !slices.Equal(ev[0].Scopes, []string{"notes.read"}) || ev[0].UserID != "u-alice" || ev[0].ClientID != "agent-1" {
			t.Fatalf("consent.expired events = %+v", ev)
		}
		next := r.body["refresh_token"].(string)
		if got := h.introspect(next, "agent-1", secret); got["scope"] != "notes.write" {
			t.Fatalf("the rotated refresh token still carries the expired scope: %v", got)
		}
		// A refresh never widens back, and the expiry is not reported again.
		r = h.refresh(next, "agent-1", secret)
		if r.status != 200 || r.body["scope"] != "notes.write" || len(h.auditEvents(audit.ConsentExpired)) != 1 {
			t.Fatalf("second refresh: %d %v, %d expiry events", r.status, r.body, len(h.auditEvents(audit.ConsentExpired)))
		}
		// When the last scope runs out, the refresh fails with invalid_grant.
		clk.Advance(24 * time.Hour)
		if r := h.refresh(r.body["refresh_token"].(string), "agent-1", secret); r.status != 400 || r.body["error"] != "invalid_grant" {
			t.Fatalf("refresh with no consent left: %d %v", r.status, r.body)
		}
		if ev := h.auditEvents(audit.ConsentExpired); len(ev) != 2 || !slices.Equal(ev[0].Scopes, []string{"notes.write"}) {
			t.Fatalf("consent.expired events = %+v", ev)
		}
	})
}

func TestConsentDurationCapAndDefault(t *testing.T) {
	tests := []struct {
		name       string
		duration   string
		wantStatus int // of the decision: 302 to the client or an error page
		wantTTL    time.Duration
	}{
		{"within the cap", "1d", http.StatusFound, 24 * time.Hour},
		{"the preselected default", "", http.StatusFound, time.Hour},
		{"above the cap", "30d", http.StatusBadRequest, 0},
		{"until revoked under a cap", "revoke", http.StatusBadRequest, 0},
		{"not a choice", "2h", http.StatusBadRequest, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			consentBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
				ctx := context.Background()
				res, err := h.Store.GetResource(ctx, store.DefaultTenant, h.Resource)
				if err != nil {
					t.Fatal(err)
				}
				res.ConsentMaxTTL, res.ConsentDefaultTTL = 24*time.Hour, time.Hour
				if err := h.Store.UpdateResource(ctx, res, nil); err != nil {
					t.Fatal(err)
				}
				conf, _ := addAgent(h)
				conf.Scopes = []string{"notes.read"}
				f := h.startFlow(h.Browser(), conf)
				offered, checked := durations(f.page.Body)
				if !slices.Equal(offered, []string{"session", "1h", "1d"}) || checked != "1h" {
					t.Fatalf("durations offered %v, preselected %q; want the capped menu with 1h", offered, checked)
				}
				p := f.decide("allow", []string{"notes.read"}, tc.duration)
				if p.Status != tc.wantStatus {
					t.Fatalf("decision status %d, want %d\n%s", p.Status, tc.wantStatus, p.Body)
				}
				g := h.grants("u-alice", "agent-1")["notes.read"]
				if tc.wantTTL == 0 {
					if g != nil {
						t.Fatalf("a refused duration recorded consent: %+v", g)
					}
					return
				}
				if g == nil || !g.ExpiresAt.Equal(clk.Now().Add(tc.wantTTL)) {
					t.Fatalf("consent = %+v, want %v from now", g, tc.wantTTL)
				}
			})
		})
	}
}

func TestConsentDecisions(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		scopes   []string
		// wantError is the error at the client ("" for a code).
		wantError   string
		wantScope   string
		wantGiven   []string
		wantDenied  []string
		wantPartial bool
	}{
		{"allow all", "allow", []string{"notes.read", "notes.write"}, "", "notes.read notes.write", []string{"notes.read", "notes.write"}, nil, false},
		{"partial", "allow", []string{"notes.read"}, "", "notes.read", []string{"notes.read"}, []string{"notes.write"}, true},
		{"empty approval is a denial", "allow", nil, "access_denied", "", nil, []string{"notes.read", "notes.write"}, false},
		{"deny ignores ticked boxes", "deny", []string{"notes.read"}, "access_denied", "", nil, []string{"notes.read", "notes.write"}, false},
		{"a scope not asked for is ignored", "allow", []string{"notes.read", "notes.delete"}, "", "notes.read", []string{"notes.read"}, []string{"notes.write"}, true},
		{"only scopes not asked for is a denial", "allow", []string{"notes.delete"}, "access_denied", "", nil, []string{"notes.read", "notes.write"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			consentBackends(t, func(t *testing.T, h *hub, _ *fakeClock) {
				conf, _ := addAgent(h)
				conf.Scopes = []string{"notes.read", "notes.write"}
				f := h.startFlow(h.Browser(), conf)
				p := f.decide(tc.decision, tc.scopes, "1h")
				if p.Location == nil {
					t.Fatalf("no redirect to the client: %d\n%s", p.Status, p.Body)
				}
				if got := p.Location.Query().Get("error"); got != tc.wantError {
					t.Fatalf("error at the client = %q, want %q", got, tc.wantError)
				}
				if tc.wantError == "" {
					if got := h.claims(f.finish(p).AccessToken)["scope"]; got != tc.wantScope {
						t.Fatalf("token scope = %v, want %q", got, tc.wantScope)
					}
				}
				var live []string
				for sc := range h.grants("u-alice", "agent-1") {
					live = append(live, sc)
				}
				slices.Sort(live)
				if !slices.Equal(live, tc.wantGiven) {
					t.Errorf("ledger holds %v, want %v", live, tc.wantGiven)
				}
				given := h.auditEvents(audit.ConsentGiven)
				if len(tc.wantGiven) == 0 && len(given) != 0 || len(tc.wantGiven) > 0 && (len(given) != 1 || !slices.Equal(given[0].Scopes, tc.wantGiven) || given[0].Details["duration"] != "1h") {
					t.Errorf("consent.given events = %+v", given)
				}
				denied := h.auditEvents(audit.ConsentDenied)
				if len(tc.wantDenied) == 0 {
					if len(denied) != 0 {
						t.Errorf("consent.denied events = %+v", denied)
					}
					return
				}
				if len(denied) != 1 || !slices.Equal(denied[0].Scopes, tc.wantDenied) || denied[0].Outcome != audit.Denied || (denied[0].Details["partial"] == "true") != tc.wantPartial {
					t.Errorf("consent.denied events = %+v", denied)
				}
			})
		})
	}
}

func TestConsentPromptConsentAsksAgain(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, _ *fakeClock) {
		conf, _ := addAgent(h)
		b := h.Browser()
		conf.Scopes = []string{"notes.read", "notes.write"}
		f := h.startFlow(b, conf)
		f.finish(f.decide("allow", conf.Scopes, "revoke"))
		// Without prompt=consent the screen is skipped.
		f = h.startFlow(b, conf)
		if f.page.Location == nil || f.page.Location.Query().Get("code") == "" {
			t.Fatalf("everything granted, yet no code: %d\n%s", f.page.Status, f.page.Body)
		}
		// With it, every scope is asked about again, marked as granted.
		f = h.startFlow(b, conf, oauth2.SetAuthURLParam("prompt", "consent"))
		if got := servertest.Offered(f.page.Body); !slices.Equal(got, conf.Scopes) {
			t.Fatalf("prompt=consent offered %v", got)
		}
		if !strings.Contains(f.page.Body, "already granted") {
			t.Fatal("granted scopes are not marked on the prompt=consent screen")
		}
		// Re-approving one scope for an hour narrows this token to it and
		// gives that scope the new expiry; the other keeps its own.
		tok := f.finish(f.decide("allow", []string{"notes.read"}, "1h"))
		if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read" {
			t.Fatalf("token scope = %v", got)
		}
		gs := h.grants("u-alice", "agent-1")
		if gs["notes.read"].ExpiresAt.IsZero() || !gs["notes.write"].ExpiresAt.IsZero() {
			t.Fatalf("grants = read %+v write %+v", gs["notes.read"], gs["notes.write"])
		}
	})
}

func TestConsentPage(t *testing.T) {
	d := newDocHost(t)
	h, _ := cimdHub(t, d)
	h.AddClient(&store.Client{ID: "dcr-agent", Name: "Helper <b>bot</b>", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}, RegistrationMethod: store.RegistrationDCR})
	d.put("/client.json", map[string]any{"client_id": "https://agent.example.com/client.json", "client_name": "Hosted agent", "redirect_uris": []string{"https://agent.example.com/cb"}}, "")
	h.AddClient(&store.Client{ID: "manual-agent", Name: "Manual agent", RedirectURIs: []string{"https://app.example.org/cb"}, GrantTypes: []string{"authorization_code"}})
	page := func(clientID, redirect string) *servertest.Page {
		conf := &oauth2.Config{ClientID: clientID, RedirectURL: redirect, Scopes: []string{"notes.read", "notes.write", "notes.delete"}, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize"}}
		f := h.startFlow(h.Browser(), conf)
		if f.page.Status != 200 || !strings.Contains(f.page.Body, `action="/authorize/decision"`) {
			t.Fatalf("no consent page: %d\n%s", f.page.Status, f.page.Body)
		}
		return f.page
	}
	// The default policy keeps sensitive scopes from unverified agents, so
	// the scope list is checked on the manual agent's page.
	dcr := page("dcr-agent", redirectURI)
	cimd := page("https://agent.example.com/client.json", "https://agent.example.com/cb")
	manual := page("manual-agent", "https://app.example.org/cb")
	tests := []struct {
		name string
		body string
		want []string
		not  []string
	}{
		{"client name escaped", dcr.Body, []string{"Helper &lt;b&gt;bot&lt;/b&gt;"}, []string{"<b>bot</b>"}},
		{"dynamic registration is unverified", dcr.Body, []string{">unverified<"}, []string{"verified domain"}},
		{"loopback redirect warns", dcr.Body, []string{"127.0.0.1", "this computer only"}, nil},
		{"resource by name and URL", dcr.Body, []string{"<dd><bdi>Notes</bdi> <span", h.Resource}, nil},
		{"policy-denied scope never offered", dcr.Body, nil, []string{`value="notes.delete"`}},
		{"descriptions", manual.Body, []string{"Read your notes", "Write your notes", "Delete your notes"}, nil},
		{"sensitive mark", manual.Body, []string{">sensitive<"}, nil},
		{"sensitive unchecked, others checked", manual.Body, []string{`value="notes.read" checked`, `value="notes.write" checked`, `value="notes.delete" aria-describedby`}, []string{`value="notes.delete" checked`}},
		{"fieldsets with legends", manual.Body, []string{"<legend>It asks to</legend>", "<legend>For how long</legend>"}, nil},
		{"no script at all", manual.Body, nil, []string{"<script", "onclick", "javascript:"}},
		{"deny is the first submit button", manual.Body[strings.Index(manual.Body, "<button"):], []string{`<button type="submit" name="decision" value="deny"`}, nil},
		{"cimd shows the verified host", cimd.Body, []string{"verified domain", "agent.example.com"}, []string{">unverified<", "this computer only"}},
		{"manual registration", manual.Body, []string{"registered by an administrator", "app.example.org"}, []string{">unverified<", "this computer only"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(tc.body, n) {
					t.Errorf("page has %q", n)
				}
			}
		})
	}
	t.Run("every control has a label", func(t *testing.T) {
		ids := regexp.MustCompile(`<input type="(?:checkbox|radio)" id="([^"]+)"`).FindAllStringSubmatch(manual.Body, -1)
		if len(ids) != 3+5 {
			t.Fatalf("%d controls, want 3 scopes and 5 durations", len(ids))
		}
		for _, m := range ids {
			if !strings.Contains(manual.Body, `<label for="`+m[1]+`"`) {
				t.Errorf("control %s has no label", m[1])
			}
		}
	})
	t.Run("headers", func(t *testing.T) {
		// An error page of the browser mux: the consent page shares its headers.
		req, _ := http.NewRequest(http.MethodGet, h.URL+"/authorize", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("CSP = %q", csp)
		}
	})
}

func TestConsentDecisionNeedsCSRF(t *testing.T) {
	h := newHub(t)
	conf, _ := addAgent(h)
	conf.Scopes = []string{"notes.read"}
	f := h.startFlow(h.Browser(), conf)
	form := url.Values{"csrf_token": {"forged-forged-forged-forged-forged-forged"}, "request": {cfField(t, cfRequest, f.page.Body)}, "decision": {"allow"}, "scope": {"notes.read"}, "duration": {"1h"}}
	if p := f.b.Post(h.URL+"/authorize/decision", form); p.Status != http.StatusForbidden || p.Location != nil {
		t.Fatalf("forged decision: %d %v", p.Status, p.Location)
	}
	if len(h.grants("u-alice", "agent-1")) != 0 {
		t.Fatal("a forged form recorded consent")
	}
}
