package server_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestContinueBeforeSilentReauthorization: once a person approved a public
// native client, an authorization with nothing new to approve still asks
// for one click (RFC 8252 §8.6): anyone who knows the client_id and listens
// on a loopback port would otherwise get a code. Confidential and
// https-only clients, and clients an administrator tagged skip-continue,
// are re-authorized silently as before.
func TestContinueBeforeSilentReauthorization(t *testing.T) {
	tests := []struct {
		name     string
		client   store.Client
		redirect string // of the first, approved authorization
		again    string // of the second one
		confirm  bool
	}{
		{name: "public loopback client", client: store.Client{TokenEndpointAuthMethod: "none", RegistrationMethod: store.RegistrationDCR, RedirectURIs: []string{"http://127.0.0.1/callback"}},
			redirect: "http://127.0.0.1:4000/callback", again: "http://127.0.0.1:4000/callback", confirm: true},
		{name: "another program on another loopback port", client: store.Client{TokenEndpointAuthMethod: "none", RegistrationMethod: store.RegistrationDCR, RedirectURIs: []string{"http://127.0.0.1/callback"}},
			redirect: "http://127.0.0.1:4000/callback", again: "http://127.0.0.1:6666/callback", confirm: true},
		{name: "admin-registered public loopback client", client: store.Client{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://localhost/cb"}},
			redirect: "http://localhost:5000/cb", again: "http://localhost:5000/cb", confirm: true},
		{name: "public client with a private-use scheme", client: store.Client{TokenEndpointAuthMethod: "none", RegistrationMethod: store.RegistrationDCR, RedirectURIs: []string{"com.example.notes:/cb"}},
			redirect: "com.example.notes:/cb", again: "com.example.notes:/cb", confirm: true},
		{name: "tagged skip-continue", client: store.Client{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"http://127.0.0.1/callback"}, Tags: []string{server.TagSkipContinue}},
			redirect: "http://127.0.0.1:4000/callback", again: "http://127.0.0.1:4000/callback"},
		{name: "confidential loopback client", client: store.Client{RedirectURIs: []string{"http://127.0.0.1/callback"}},
			redirect: "http://127.0.0.1:4000/callback", again: "http://127.0.0.1:4000/callback"},
		{name: "public https client", client: store.Client{TokenEndpointAuthMethod: "none", RedirectURIs: []string{"https://app.example/cb"}},
			redirect: "https://app.example/cb", again: "https://app.example/cb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t)
			c := tc.client
			c.ID, c.Name, c.GrantTypes = "native", "Notes CLI", []string{"authorization_code", "refresh_token"}
			secret := h.AddClient(&c)
			conf := &oauth2.Config{ClientID: "native", ClientSecret: secret, Scopes: []string{"notes.read"},
				Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"}}
			b := h.Browser()
			authURL := func(redirect string, extra ...oauth2.AuthCodeOption) (string, string) {
				conf.RedirectURL = redirect
				v := oauth2.GenerateVerifier()
				opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", h.Resource)}, extra...)
				return conf.AuthCodeURL("st", opts...), v
			}
			first, _ := authURL(tc.redirect)
			if back := b.Authorize(first, []string{"notes.read"}); back.Query().Get("code") == "" {
				t.Fatalf("first authorization: %s", back)
			}

			again, verifier := authURL(tc.again)
			p := b.Get(again)
			if !tc.confirm {
				if p.Location == nil || p.Location.Query().Get("code") == "" {
					t.Fatalf("re-authorization was not silent: %d\n%s", p.Status, p.Body)
				}
				return
			}
			if p.Location != nil || p.Status != http.StatusOK || !strings.Contains(p.Body, `id="continue"`) {
				t.Fatalf("re-authorization issued without a click: %d %v\n%s", p.Status, p.Location, p.Body)
			}
			checkContinuePage(t, p)
			resp, err := b.Client().Get(again)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Fatalf("continue page CSP = %q", csp)
			}

			// prompt=none cannot click: interaction_required.
			none, _ := authURL(tc.again, oauth2.SetAuthURLParam("prompt", "none"))
			if q := b.Get(none).Location.Query(); q.Get("error") != "interaction_required" || q.Get("state") != "st" {
				t.Fatalf("prompt=none answered %v", q)
			}
			// The form needs the page's CSRF token and the hub's origin.
			form := url.Values{"csrf_token": {continueField(t, `name="csrf_token" value="([^"]*)"`, p.Body)}, "request": {continueField(t, `name="request" value="([^"]*)"`, p.Body)}, "decision": {"allow"}}
			forged := url.Values{"request": form["request"], "decision": {"allow"}}
			if f := b.Post(h.URL+"/authorize/decision", forged); f.Location != nil || f.Status != http.StatusForbidden {
				t.Fatalf("continue without the CSRF token: %d %v", f.Status, f.Location)
			}
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/authorize/decision", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "http://127.0.0.1:6666")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			if f := b.Do(req); f.Location != nil || f.Status != http.StatusForbidden {
				t.Fatalf("cross-origin continue: %d %v", f.Status, f.Location)
			}
			back := b.Post(h.URL+"/authorize/decision", form)
			if back.Location == nil || back.Location.Query().Get("code") == "" || !strings.HasPrefix(back.Location.String(), tc.again+"?") {
				t.Fatalf("continue did not return a code to %s: %d %v", tc.again, back.Status, back.Location)
			}
			tok, err := conf.Exchange(t.Context(), back.Location.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil || tok.Extra("scope") != "notes.read" {
				t.Fatalf("exchange: %v %v", tok, err)
			}

			// Cancel refuses.
			again, _ = authURL(tc.again)
			p = b.Get(again)
			form.Set("csrf_token", continueField(t, `name="csrf_token" value="([^"]*)"`, p.Body))
			form.Set("request", continueField(t, `name="request" value="([^"]*)"`, p.Body))
			form.Set("decision", "deny")
			if q := b.Post(h.URL+"/authorize/decision", form).Location.Query(); q.Get("error") != "access_denied" {
				t.Fatalf("cancel answered %v", q)
			}
		})
	}
}

// checkContinuePage: keyboard first (the Continue button is the first
// control and has focus), no script, the browser pages' CSP, and the
// application named.
func checkContinuePage(t *testing.T, p *servertest.Page) {
	t.Helper()
	body := p.Body
	form := body[strings.Index(body, "<form"):]
	first := regexp.MustCompile(`<(button|input|a|select|textarea)\b[^>]*>`).FindAllString(form, -1)
	var firstVisible string
	for _, el := range first {
		if !strings.Contains(el, `type="hidden"`) {
			firstVisible = el
			break
		}
	}
	if !strings.Contains(firstVisible, `id="continue"`) || !strings.Contains(firstVisible, "autofocus") || !strings.Contains(firstVisible, `value="allow"`) {
		t.Fatalf("the first control is %q, want the focused Continue button", firstVisible)
	}
	if strings.Contains(body, "<script") || strings.Contains(body, `type="password"`) {
		t.Fatalf("continue page has a script or asks for a password:\n%s", body)
	}
	if !strings.Contains(body, "Continue to <bdi>Notes CLI</bdi>") {
		t.Fatalf("continue page does not name the application:\n%s", body)
	}
}

func continueField(t *testing.T, re, body string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no %s", re)
	}
	return html.UnescapeString(m[1])
}
