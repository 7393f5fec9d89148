package server_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
)

// bothBackends is consentBackends with a further hub option.
func bothBackends(t *testing.T, opt servertest.Option, test func(t *testing.T, h *hub, clk *fakeClock)) {
	t.Run("sqlite", func(t *testing.T) {
		clk := newFakeClock()
		test(t, newHub(t, withClock(clk), opt), clk)
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
		test(t, &hub{servertest.NewOn(t, st, withClock(clk), opt)}, clk)
	})
}

var installationFormRe = regexp.MustCompile(`(?s)action="/account/signout-installation">.*?name="redirect_uri" value="([^"]*)"`)

// cimdConf is the oauth2 configuration of one installation of a public
// CIMD client: its redirect URI on a loopback port of its own.
func (h *hub) cimdConf(clientID, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, RedirectURL: redirect, Scopes: []string{"notes.read"},
		Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// signIn runs one authorization of conf in b (logged in) to the token
// response, through the consent or Continue page.
func (h *hub) signIn(t *testing.T, b *servertest.Browser, conf *oauth2.Config) *oauth2.Token {
	t.Helper()
	f := h.startFlow(b, conf)
	var back *servertest.Page
	switch {
	case strings.Contains(f.page.Body, `id="continue"`):
		back = f.decide("allow", nil, "")
	default:
		back = f.decide("allow", conf.Scopes, "revoke")
	}
	return f.finish(back)
}

// TestAccountSignOutInstallation: a Client ID Metadata Document client is
// one client_id for every installation. Alice uses two installations of it
// (two loopback redirect URIs), Bob a third; Alice's account page lists her
// two installations, and signing one out revokes its tokens at once while
// her other installation and Bob's keep refreshing. The event is audited;
// the form acts for the session's person only.
func TestAccountSignOutInstallation(t *testing.T) {
	agents := newCIMDAgents(t)
	bothBackends(t, agents.option, func(t *testing.T, h *hub, clk *fakeClock) {
		const clientID = "https://app.example.com/oauth/client.json"
		agents.add(h, clientID, "Example MCP Client", "http://127.0.0.1/callback", "http://[::1]/callback")
		hash, err := password.Hash("bob's long password")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Store.CreateUser(context.Background(), &store.User{TenantID: store.DefaultTenant, ID: "u-bob", Username: "bob", PasswordHash: hash, CreatedAt: time.Now(), UpdatedAt: time.Now()}, nil); err != nil {
			t.Fatal(err)
		}

		alice := h.Browser()
		confA := h.cimdConf(clientID, "http://127.0.0.1:50001/callback")
		confB := h.cimdConf(clientID, "http://[::1]:50002/callback")
		tokA := h.signIn(t, alice, confA)
		tokB := h.signIn(t, alice, confB)
		// The same installation on another port is the same installation.
		tokA2 := h.signIn(t, alice, h.cimdConf(clientID, "http://127.0.0.1:50077/callback"))

		bob := h.Browser()
		bob.Login(bob.Get(h.URL+"/login"), "bob", "bob's long password")
		tokBob := h.signIn(t, bob, confA)

		p := h.account(alice)
		var listed []string
		for _, m := range installationFormRe.FindAllStringSubmatch(p.Body, -1) {
			listed = append(listed, m[1])
		}
		if want := []string{"http://127.0.0.1/callback", "http://[::1]/callback"}; !slices.Equal(listed, want) {
			t.Fatalf("installations on the account page: %v, want %v\n%s", listed, want, p.Body)
		}
		if !strings.Contains(p.Body, "Sign out this installation") || !strings.Contains(p.Body, `<span class="host">app.example.com</span>`) {
			t.Fatalf("account page lacks the installation controls or the host:\n%s", p.Body)
		}

		clk.Advance(time.Minute)
		r := alice.Post(h.URL+"/account/signout-installation", url.Values{
			"csrf_token": {cfField(t, cfCSRF, p.Body)}, "client_id": {clientID}, "redirect_uri": {"http://127.0.0.1/callback"},
		})
		if r.URL.Query().Get("done") != "signedout" || !strings.Contains(r.Body, "That installation is signed out") {
			t.Fatalf("sign out: %s\n%s", r.URL, r.Body)
		}

		for name, tok := range map[string]*oauth2.Token{"installation A": tokA, "installation A on another port": tokA2} {
			if res := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}}, clientID, ""); res.status != http.StatusBadRequest || res.body["error"] != "invalid_grant" {
				t.Errorf("%s refresh after sign-out: %d %v", name, res.status, res.body)
			}
			at, err := h.Store.AccessTokenRevoked(context.Background(), h.claims(tok.AccessToken)["jti"].(string))
			if err != nil || !at {
				t.Errorf("%s access token not revoked: %v %v", name, at, err)
			}
		}
		for name, tok := range map[string]*oauth2.Token{"installation B": tokB, "bob's installation A": tokBob} {
			if res := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}}, clientID, ""); res.status != http.StatusOK {
				t.Errorf("%s refresh after alice signed A out: %d %v", name, res.status, res.body)
			}
		}

		evs := h.auditEvents(audit.InstallationRevoked)
		if len(evs) != 1 || evs[0].UserID != "u-alice" || evs[0].ClientID != clientID || evs[0].Details["redirect_uri"] != "http://127.0.0.1/callback" {
			t.Fatalf("installation.revoked events: %+v", evs)
		}

		p = h.account(alice)
		listed = listed[:0]
		for _, m := range installationFormRe.FindAllStringSubmatch(p.Body, -1) {
			listed = append(listed, m[1])
		}
		if want := []string{"http://[::1]/callback"}; !slices.Equal(listed, want) {
			t.Errorf("installations after sign-out: %v, want %v", listed, want)
		}

		t.Run("form needs CSRF and a session", func(t *testing.T) {
			if r := alice.Post(h.URL+"/account/signout-installation", url.Values{"client_id": {clientID}, "redirect_uri": {"http://[::1]/callback"}}); r.Status != http.StatusForbidden {
				t.Errorf("without CSRF: %d", r.Status)
			}
			if r := alice.Post(h.URL+"/account/signout-installation", url.Values{"csrf_token": {cfField(t, cfCSRF, p.Body)}, "client_id": {clientID}}); r.Status != http.StatusBadRequest {
				t.Errorf("without redirect_uri: %d", r.Status)
			}
		})
	})
}
