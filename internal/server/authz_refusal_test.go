package server_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestStepUpToRefusedScope: a self-registered agent asking for a sensitive
// scope it may not hold is told so, not silently narrowed. With something
// new to approve, the consent screen lists the refused scope as not
// available, with the reason and the administrator's command; with nothing
// new, the person gets that page with a link back that returns
// invalid_scope naming the scope (RFC 6749 §4.1.2.1). Once an
// administrator tags the agent trusted, the same request gets a consent
// screen for it.
func TestStepUpToRefusedScope(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	const cb = "http://127.0.0.1:3000/callback"
	reg := h.jsonRequest(http.MethodPost, "/register", map[string]any{
		"client_name": "Step-up agent", "redirect_uris": []string{cb}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "scope": "notes.read",
	}, "")
	if reg.status != http.StatusCreated {
		t.Fatalf("register: %d %v", reg.status, reg.body)
	}
	id := reg.body["client_id"].(string)
	conf := &oauth2.Config{ClientID: id, RedirectURL: cb, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"}}
	b := h.Browser()
	start := func(scopes ...string) (*servertest.Page, string) {
		t.Helper()
		conf.Scopes = scopes
		v := oauth2.GenerateVerifier()
		p := b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", h.Resource)))
		if strings.Contains(p.Body, `action="/login"`) {
			p = b.Login(p, servertest.TestUser, servertest.TestPassword)
		}
		return p, v
	}
	exchange := func(back *url.URL, verifier string) map[string]any {
		t.Helper()
		r := h.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "code_verifier": {verifier}, "redirect_uri": {cb}, "client_id": {id}}, "", "")
		if r.status != http.StatusOK {
			t.Fatalf("token: %d %v", r.status, r.body)
		}
		return r.body
	}
	reason := "his application registered itself; an administrator must mark it trusted before it can delete your notes"
	command := "agentid clients tag " + id + " trusted"

	p, v := start("notes.read")
	exchange(b.Consent(p, []string{"notes.read"}).Location, v)

	t.Run("something new to approve: the refused scope is listed as not available", func(t *testing.T) {
		p, v := start("notes.read", "notes.write", "notes.delete")
		if got := servertest.Offered(p.Body); !slices.Equal(got, []string{"notes.write"}) {
			t.Fatalf("offered %v, want only notes.write", got)
		}
		for _, want := range []string{"Not available", "Delete your notes", reason, command} {
			if !strings.Contains(p.Body, want) {
				t.Errorf("consent page lacks %q", want)
			}
		}
		tok := exchange(b.Consent(p, []string{"notes.write"}).Location, v)
		// RFC 6749 §5.1: scope is required when it differs from the request.
		if tok["scope"] != "notes.read notes.write" {
			t.Fatalf("token scope = %v, want notes.read notes.write", tok["scope"])
		}
	})

	t.Run("nothing new to approve: a page and a way back with invalid_scope", func(t *testing.T) {
		codes := len(h.auditEvents(audit.CodeIssued))
		p, _ := start("notes.read", "notes.delete")
		if p.Location != nil || p.Status != http.StatusOK {
			t.Fatalf("got %d %v, want the refusal page (not a silent code for notes.read)", p.Status, p.Location)
		}
		if strings.Contains(p.Body, `action="/authorize/decision"`) {
			t.Fatalf("the refusal page has a consent form:\n%s", p.Body)
		}
		for _, want := range []string{"Back to the application", reason, command, "Already allowed", "Read your notes"} {
			if !strings.Contains(p.Body, want) {
				t.Errorf("refusal page lacks %q:\n%s", want, p.Body)
			}
		}
		back := servertest.BackLink(p.Body)
		if back == nil || !strings.HasPrefix(back.String(), cb+"?") {
			t.Fatalf("back link = %v", back)
		}
		q := back.Query()
		if q.Get("error") != "invalid_scope" || q.Get("state") != "st" || q.Get("iss") != h.URL || q.Get("code") != "" {
			t.Fatalf("back link carries %v", q)
		}
		if d := q.Get("error_description"); !strings.Contains(d, "notes.delete") || !strings.Contains(d, "trusted") {
			t.Fatalf("error_description %q does not name the refused scope and why", d)
		}
		if n := len(h.auditEvents(audit.CodeIssued)); n != codes {
			t.Fatalf("a code was issued for the refused request")
		}
		conf.Scopes = []string{"notes.read", "notes.delete"}
		none := b.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource), oauth2.SetAuthURLParam("prompt", "none")))
		if none.Location == nil || none.Location.Query().Get("error") != "invalid_scope" {
			t.Fatalf("prompt=none answered %d %v", none.Status, none.Location)
		}
	})

	t.Run("tagged trusted: the scope is asked for", func(t *testing.T) {
		if _, _, err := h.engine.TagClient(context.Background(), id, []string{"trusted"}, nil, &audit.Meta{Actor: audit.ActorCLI}); err != nil {
			t.Fatal(err)
		}
		h.settle()
		p, v := start("notes.read", "notes.delete")
		if got := servertest.Offered(p.Body); !slices.Equal(got, []string{"notes.delete"}) || strings.Contains(p.Body, "Not available") {
			t.Fatalf("offered %v after tagging trusted:\n%s", got, p.Body)
		}
		if tok := exchange(b.Consent(p, []string{"notes.delete"}).Location, v); !strings.Contains(tok["scope"].(string), "notes.delete") {
			t.Fatalf("token scope = %v", tok["scope"])
		}
	})
}

// TestRefusalByOtherPolicy: a scope refused by a policy the hub has no
// sentence for gets the generic reason and, for an administrator, the
// explain command that names the deciding policy.
func TestRefusalByOtherPolicy(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	secret := h.AddClient(&store.Client{ID: "agent-1", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	applyPolicy(t, h.Store, h.engine, `@id("no-writing-on-fridays")
forbid (principal, action == Action::"grant", resource) when { resource.name == "notes.write" };`)
	h.settle()
	f := h.startFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read", "notes.write"))
	for _, want := range []string{"Write your notes", "Your organisation&#39;s policy does not allow it.",
		"agentid policy explain --agent=agent-1 --user=alice --resource=" + h.Resource + " --scope=notes.write"} {
		if !strings.Contains(f.page.Body, want) {
			t.Errorf("consent page lacks %q:\n%s", want, f.page.Body)
		}
	}
	tok := f.finish(f.decide("allow", []string{"notes.read"}, ""))
	if tok.Extra("scope") != "notes.read" {
		t.Fatalf("token scope = %v", tok.Extra("scope"))
	}
}

// TestTokenResponseScope: the token response carries scope whenever the
// issued scope differs from the one asked for (RFC 6749 §5.1), at every
// grant: a refresh narrowing the grant, client credentials cut by policy,
// a code for less than the authorization request named.
func TestTokenResponseScope(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	bot := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}})
	tests := []struct {
		name string
		run  func(t *testing.T) any // returns the response's scope
		want string
	}{
		{"code for less than asked", func(t *testing.T) any {
			tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read", "notes.write"), []string{"notes.read"})
			if err != nil {
				t.Fatal(err)
			}
			return tok.Extra("scope")
		}, "notes.read"},
		{"refresh narrowed", func(t *testing.T) any {
			tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent-1", secret, "notes.read", "notes.write"), []string{"notes.read", "notes.write"})
			if err != nil {
				t.Fatal(err)
			}
			return h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"notes.write"}}, "agent-1", secret).body["scope"]
		}, "notes.write"},
		{"client credentials cut by policy", func(t *testing.T) any {
			return h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "resource": {h.Resource}, "scope": {"notes.read notes.write"}}, "bot", bot).body["scope"]
		}, "notes.read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(t); got != tc.want {
				t.Fatalf("scope = %v, want %q", got, tc.want)
			}
		})
	}
}
