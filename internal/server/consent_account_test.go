package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// account opens /account in b, which must be logged in.
func (h *hub) account(b *servertest.Browser) *servertest.Page {
	h.T.Helper()
	p := b.Get(h.URL + "/account")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "<h1>Your agents</h1>") {
		h.T.Fatalf("account page: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	return p
}

// revoke posts the account page's revoke form.
func (h *hub) revoke(b *servertest.Browser, csrf string, fields url.Values) *servertest.Page {
	h.T.Helper()
	form := url.Values{"csrf_token": {csrf}}
	for k, v := range fields {
		form[k] = v
	}
	return b.Post(h.URL+"/account/revoke", form)
}

func (h *hub) addCalendar() string {
	h.T.Helper()
	uri := h.URL + "/calendar"
	if err := h.Store.CreateResource(context.Background(), &store.Resource{
		TenantID: store.DefaultTenant, ID: "calendar", URI: uri, Name: "Calendar", CreatedAt: time.Now(),
		Scopes: []store.Scope{{Name: "calendar.read", Description: "See your calendar"}},
	}, nil); err != nil {
		h.T.Fatal(err)
	}
	return uri
}

func TestAccountNeedsLogin(t *testing.T) {
	h := newHub(t)
	b := h.Browser()
	p := b.Get(h.URL + "/account")
	if p.URL.Path != "/login" || p.URL.Query().Get("return_to") != "/account" || !strings.Contains(p.Body, `name="return_to" value="/account"`) {
		t.Fatalf("account without login went to %s:\n%s", p.URL, p.Body)
	}
	p = b.Login(p, servertest.TestUser, servertest.TestPassword)
	if p.URL.Path != "/account" || !strings.Contains(p.Body, "No agent has access") {
		t.Fatalf("after login: %s\n%s", p.URL, p.Body)
	}
	// Revoking needs a session too.
	if p := h.Browser().Post(h.URL+"/account/revoke", url.Values{"client_id": {"x"}}); p.Status != http.StatusForbidden {
		t.Fatalf("revoke without session or CSRF: %d", p.Status)
	}
}

func TestAccountRevokeScope(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		conf, secret := addAgent(h)
		b := h.Browser()
		conf.Scopes = []string{"notes.read", "notes.write"}
		f := h.startFlow(b, conf)
		tok := f.finish(f.decide("allow", conf.Scopes, "1d"))
		clk.Advance(time.Minute)

		p := h.account(b)
		for _, want := range []string{
			"Notes Agent", "<h3><bdi>Notes</bdi> <span", h.Resource, "Read your notes", "Write your notes", "<code>notes.read</code>",
			"(in 23 hours)",                      // expiry
			"You allowed access", "Token issued", // recent activity
		} {
			if !strings.Contains(p.Body, want) {
				t.Errorf("account page lacks %q", want)
			}
		}
		if strings.Contains(p.Body, ">never<") {
			t.Error("last use not shown after a token was issued")
		}
		csrf := cfField(t, cfCSRF, p.Body)

		// Without the form token nothing happens.
		if r := h.revoke(b, "forged-forged-forged-forged-forged-forged", url.Values{"client_id": {"agent-1"}, "resource": {h.Resource}, "scope": {"notes.write"}}); r.Status != http.StatusForbidden {
			t.Fatalf("forged revoke: %d", r.Status)
		}
		if g := h.grants("u-alice", "agent-1")["notes.write"]; !g.RevokedAt.IsZero() {
			t.Fatal("a forged form revoked consent")
		}

		r := h.revoke(b, csrf, url.Values{"client_id": {"agent-1"}, "resource": {h.Resource}, "scope": {"notes.write"}})
		if r.URL.Path != "/account" || r.URL.Query().Get("done") != "revoked" || !strings.Contains(r.Body, "Access revoked") {
			t.Fatalf("after revoke: %s\n%s", r.URL, r.Body)
		}
		if strings.Contains(r.Body, "Write your notes") || !strings.Contains(r.Body, "Read your notes") {
			t.Fatal("the account page does not reflect the revocation of one scope")
		}
		// The cascade: the refresh token carrying the scope and the access
		// token carrying it are dead at once.
		if got := h.introspect(tok.AccessToken, "agent-1", secret); got["active"] != false {
			t.Fatalf("access token after revocation: %v", got)
		}
		if r := h.refresh(tok.RefreshToken, "agent-1", secret); r.status != 400 || r.body["error"] != "invalid_grant" {
			t.Fatalf("refresh after revocation: %d %v", r.status, r.body)
		}
		gs := h.grants("u-alice", "agent-1")
		if gs["notes.write"].RevokedAt.IsZero() || !gs["notes.read"].RevokedAt.IsZero() {
			t.Fatalf("ledger after revoking one scope: read %+v write %+v", gs["notes.read"], gs["notes.write"])
		}
		ev := h.auditEvents(audit.ConsentRevoked)
		if len(ev) != 1 || !slices.Equal(ev[0].Scopes, []string{"notes.write"}) || ev[0].UserID != "u-alice" || ev[0].ClientID != "agent-1" || ev[0].Resource != h.Resource || ev[0].Details["by"] != "user" {
			t.Fatalf("consent.revoked events = %+v", ev)
		}
		if p := h.account(b); !strings.Contains(p.Body, "You revoked access") {
			t.Error("the revocation is not in the agent's recent activity")
		}
		// Revoking it again withdraws nothing and says so.
		if r := h.revoke(b, csrf, url.Values{"client_id": {"agent-1"}, "resource": {h.Resource}, "scope": {"notes.write"}}); r.URL.Query().Get("done") != "none" || len(h.auditEvents(audit.ConsentRevoked)) != 1 {
			t.Fatalf("second revoke: %s", r.URL)
		}
		// The agent must ask again for the revoked scope.
		f = h.startFlow(b, conf)
		if got := servertest.Offered(f.page.Body); !slices.Equal(got, []string{"notes.write"}) {
			t.Fatalf("after revocation the screen offers %v", got)
		}
	})
}

func TestAccountRevokeAgent(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, _ *fakeClock) {
		cal := h.addCalendar()
		conf, secret := addAgent(h)
		other := h.AddClient(&store.Client{ID: "agent-2", Name: "Other Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
		b := h.Browser()
		conf.Scopes = []string{"notes.read"}
		f := h.startFlow(b, conf)
		notesTok := f.finish(f.decide("allow", conf.Scopes, "revoke"))
		conf.Scopes = []string{"calendar.read"}
		f = h.startFlow(b, conf, oauth2.SetAuthURLParam("resource", cal))
		calTok := f.finish(f.decide("allow", conf.Scopes, "revoke"))
		otherConf := h.oauth2Config("agent-2", other, "notes.read")
		f = h.startFlow(b, otherConf)
		otherTok := f.finish(f.decide("allow", otherConf.Scopes, "revoke"))

		p := h.account(b)
		if !strings.Contains(p.Body, "See your calendar") || !strings.Contains(p.Body, "Other Agent") {
			t.Fatalf("account page before:\n%s", p.Body)
		}
		r := h.revoke(b, cfField(t, cfCSRF, p.Body), url.Values{"client_id": {"agent-1"}})
		if r.URL.Query().Get("done") != "revoked" {
			t.Fatalf("revoke agent: %s\n%s", r.URL, r.Body)
		}
		if strings.Contains(r.Body, "Notes Agent") || !strings.Contains(r.Body, "Other Agent") {
			t.Fatal("the account page still lists the revoked agent, or lost the other one")
		}
		// Every resource of the agent, and nothing of the other agent.
		for _, tc := range []struct {
			name, client, secret string
			tok                  *oauth2.Token
			wantActive           bool
		}{
			{"notes token of the revoked agent", "agent-1", secret, notesTok, false},
			{"calendar token of the revoked agent", "agent-1", secret, calTok, false},
			{"token of the other agent", "agent-2", other, otherTok, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := h.introspect(tc.tok.AccessToken, tc.client, tc.secret)["active"]; got != tc.wantActive {
					t.Errorf("access token active = %v, want %v", got, tc.wantActive)
				}
				if r := h.refresh(tc.tok.RefreshToken, tc.client, tc.secret); (r.status == 200) != tc.wantActive {
					t.Errorf("refresh: %d %v", r.status, r.body)
				}
			})
		}
		ev := h.auditEvents(audit.ConsentRevoked)
		if len(ev) != 1 || ev[0].Details["extent"] != "agent" || ev[0].Resource != "" {
			t.Fatalf("consent.revoked events = %+v", ev)
		}
		scopes := slices.Clone(ev[0].Scopes)
		slices.Sort(scopes)
		if !slices.Equal(scopes, []string{"calendar.read", "notes.read"}) {
			t.Fatalf("revoked scopes = %v", scopes)
		}
	})
}

func TestAccountRevokesOnlyOwnConsent(t *testing.T) {
	h := newHub(t)
	hash, err := password.Hash("bob's long password")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.CreateUser(context.Background(), &store.User{TenantID: store.DefaultTenant, ID: "u-bob", Username: "bob", PasswordHash: hash, CreatedAt: time.Now(), UpdatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	conf, _ := addAgent(h)
	conf.Scopes = []string{"notes.read"}
	f := h.startFlow(h.Browser(), conf)
	f.finish(f.decide("allow", conf.Scopes, "revoke"))

	bob := h.Browser()
	p := bob.Login(bob.Get(h.URL+"/account"), "bob", "bob's long password")
	if strings.Contains(p.Body, "Notes Agent") {
		t.Fatal("bob sees alice's agent")
	}
	r := h.revoke(bob, cfField(t, cfCSRF, p.Body), url.Values{"client_id": {"agent-1"}})
	if r.URL.Query().Get("done") != "none" {
		t.Fatalf("bob's revoke: %s", r.URL)
	}
	if g := h.grants("u-alice", "agent-1")["notes.read"]; g == nil || !g.RevokedAt.IsZero() {
		t.Fatalf("alice's consent after bob's revoke: %+v", g)
	}
}

func TestAccountRevokeForm(t *testing.T) {
	h := newHub(t)
	b := h.Browser()
	p := b.Login(b.Get(h.URL+"/account"), servertest.TestUser, servertest.TestPassword)
	csrf := cfField(t, cfCSRF, p.Body)
	tests := []struct {
		name   string
		fields url.Values
	}{
		{"no agent", url.Values{}},
		{"scope without resource", url.Values{"client_id": {"agent-1"}, "scope": {"notes.read"}}},
		{"resource without scope", url.Values{"client_id": {"agent-1"}, "resource": {h.Resource}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.revoke(b, csrf, tc.fields); r.Status != http.StatusBadRequest {
				t.Fatalf("status %d", r.Status)
			}
		})
	}
}

func TestAccountSignOut(t *testing.T) {
	h := newHub(t)
	b := h.Browser()
	p := b.Login(b.Get(h.URL+"/account"), servertest.TestUser, servertest.TestPassword)
	if !strings.Contains(p.Body, `action="/logout"`) || !strings.Contains(p.Body, "Sign out") {
		t.Fatal("the account page has no sign-out button")
	}
	out := b.Post(h.URL+"/logout", url.Values{"csrf_token": {cfField(t, cfCSRF, p.Body)}})
	if out.URL.Path != "/login" {
		t.Fatalf("sign-out went to %s", out.URL)
	}
	if p := b.Get(h.URL + "/account"); p.URL.Path != "/login" {
		t.Fatalf("account after sign-out: %s", p.URL)
	}
}

func TestDescribeEventsCoverConsent(t *testing.T) {
	// Every event type the account page can show has words for people.
	h := newHub(t)
	conf, secret := addAgent(h)
	b := h.Browser()
	conf.Scopes = []string{"notes.read", "notes.write"}
	f := h.startFlow(b, conf)
	tok := f.finish(f.decide("allow", []string{"notes.read"}, "1h"))
	h.refresh(tok.RefreshToken, "agent-1", secret)
	p := h.account(b)
	for _, want := range []string{"You allowed access", "You refused access", "Authorization sent to the agent", "Token issued", "Token refreshed"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("activity lacks %q", want)
		}
	}
	if strings.Contains(p.Body, "consent.") || strings.Contains(p.Body, "token.issued") {
		t.Error("activity shows raw event types")
	}
}
