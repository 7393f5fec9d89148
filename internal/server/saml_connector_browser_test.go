package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/store"
)

// TestBrowserSAMLConnectorSignIn: in a real browser a person signs in
// through the SAML connector from the login page: the hub redirects to the
// identity provider with an AuthnRequest, the provider's page posts the
// signed Response to the hub's ACS by its own script (a cross-origin POST
// carrying the attempt cookie, SameSite=None), the person is provisioned
// with the assertion's groups, the consent page says which connector they
// came through, and the agent gets a token whose notes.write depended on
// the eng-oncall group. When the provider drops the group, the next
// sign-in takes notes.write away.
func TestBrowserSAMLConnectorSignIn(t *testing.T) {
	b := newTab(t)
	h := newConnectorHub(t)
	idp, alice := addSAMLConnector(t, h)
	h.oncallPolicy(t)
	cb := newCallback(t)
	conf := h.browserAgent("saml-agent", "SAML Agent", cb)
	consentForm := chromedp.CSS(`form[action="/authorize/decision"]`)
	signIn := func(t *testing.T, state string, want []string, opts ...oauth2.AuthCodeOption) {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		opts = append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)}, opts...)
		b.do(t, chromedp.Navigate(conf.AuthCodeURL(state, opts...)), chromedp.WaitVisible(chromedp.CSS("#connector-samlcorp")), loaded)
		b.do(t, chromedp.Click(chromedp.CSS("#connector-samlcorp")), chromedp.WaitVisible(consentForm), loaded)
		if via := evalIn[string](t, b, `document.querySelector('#via').innerText`); via != "through Corp SAML" {
			t.Fatalf("consent page says %q of the connector", via)
		}
		var offered []string
		for _, box := range evalIn[[]scopeBox](t, b, scopeBoxesJS) {
			offered = append(offered, box.Value)
		}
		if !slices.Equal(offered, want) {
			t.Fatalf("offered %v, want %v", offered, want)
		}
		b.do(t, chromedp.Click(chromedp.CSS("#allow")), chromedp.WaitVisible(chromedp.CSS("#back")), loaded)
		tok, err := conf.Exchange(context.Background(), cb.wait(t, state).Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if got := h.claims(tok.AccessToken)["scope"]; got != strings.Join(want, " ") {
			t.Fatalf("token scope %v, want %v", got, want)
		}
	}

	t.Run("with eng-oncall", func(t *testing.T) {
		signIn(t, "first", []string{"notes.read", "notes.write"})
		if u := h.user(t, store.DefaultTenant, "alice@saml.example"); u.ConnectorID != "samlcorp" || !slices.Contains(u.Groups, "eng-oncall") {
			t.Fatalf("provisioned %+v", u)
		}
	})
	t.Run("the group removed at the provider", func(t *testing.T) {
		without := *alice
		without.Groups = []string{"eng"}
		idp.signIn(&without)
		signIn(t, "second", []string{"notes.read"}, oauth2.SetAuthURLParam("prompt", "login consent"))
	})
}
