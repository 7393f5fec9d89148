package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server/servertest"
)

// TestBrowserCIMD walks a person through the consent screen of a Client ID
// Metadata Document client in a real browser: the heading names the
// verified host, the document's name is shown only with "(from host)", the
// loopback redirect is marked; after allowing, the account page lists the
// installation and "Sign out this installation" ends its tokens. Both
// pages pass the accessibility checks and are the screenshots
// consent-cimd-*.png and account-cimd-*.png.
func TestBrowserCIMD(t *testing.T) {
	b := newTab(t)
	agents := newCIMDAgents(t)
	h := newHub(t, agents.option)
	h.Wrap(slowPages)
	cb := newCallback(t)
	const clientID = "https://app.example.com/oauth/client.json"
	// The document lists the loopback redirect without a port; the agent
	// listens on whatever port it got (RFC 8252 §7.3).
	agents.add(h, clientID, "Example MCP Client", "http://127.0.0.1/callback")
	conf := &oauth2.Config{ClientID: clientID, RedirectURL: cb.url, Scopes: []string{"notes.read", "notes.write"},
		Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("cimd", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource))

	b.do(t, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.CSS("#username")), loaded,
		chromedp.SendKeys(chromedp.CSS("#username"), servertest.TestUser),
		chromedp.SendKeys(chromedp.CSS("#password"), servertest.TestPassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#allow")), loaded)
	text := b.text(t)
	for _, want := range []string{
		"Allow app.example.com to act for you?",
		"It calls itself Example MCP Client (from app.example.com).",
		"Example MCP Client (from app.example.com) verified domain",
		"this computer only",
		"Returns to a program on this computer",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("consent screen lacks %q:\n%s", want, text)
		}
	}
	if h1 := evalIn[string](t, b, `document.querySelector('h1').innerText`); strings.Contains(h1, "Example MCP Client") {
		t.Errorf("the heading shows the document's name: %q", h1)
	}
	b.checkPage(t, "consent-cimd")
	b.do(t, chromedp.Click(chromedp.CSS("#allow")))
	q := cb.wait(t, "cimd")
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}

	b.do(t, chromedp.Navigate(h.URL+"/account"), chromedp.WaitVisible(chromedp.CSS(`form[action="/account/signout-installation"] button`)), loaded)
	text = b.text(t)
	for _, want := range []string{"app.example.com", "Example MCP Client (from app.example.com)", "Signed in on", "http://127.0.0.1/callback", "Sign out this installation"} {
		if !strings.Contains(text, want) {
			t.Errorf("account page lacks %q:\n%s", want, text)
		}
	}
	b.checkPage(t, "account-cimd")
	b.do(t, chromedp.Click(chromedp.CSS(`form[action="/account/signout-installation"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")), loaded)
	if text := b.text(t); !strings.Contains(text, "That installation is signed out") {
		t.Errorf("after sign-out:\n%s", text)
	}
	res := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}}, clientID, "")
	if res.status != http.StatusBadRequest || res.body["error"] != "invalid_grant" {
		t.Errorf("refresh after signing the installation out: %d %v", res.status, res.body)
	}
}
