package server_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestRegisterDecidedPerResource: a register decision is made per Scope
// entity (<resource>#<name>), so a register forbid on one MCP server must
// keep the agent from ever holding that server's scope, even when another
// server offers a scope of the same name.
func TestRegisterDecidedPerResource(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	other := h.addSecondResource(t, "notes.read")
	applyPolicy(t, h.Store, h.engine, `@id("other-never-for-self-registered")
forbid (principal, action == Action::"register", resource in Resource::"`+other+`")
when { principal.registration_method != "manual" };`)
	h.settle()
	reg := h.jsonRequest(http.MethodPost, "/register", map[string]any{
		"redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code"}, "scope": "notes.read",
	}, "")
	if reg.status != http.StatusCreated {
		t.Fatalf("registration: %d %v", reg.status, reg.body)
	}
	id, secret := reg.body["client_id"].(string), reg.body["client_secret"].(string)
	conf := h.oauth2Config(id, secret, "notes.read")
	verifier := oauth2.GenerateVerifier()
	back := h.Browser().Authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", other)), []string{"notes.read"})
	if e := back.Query().Get("error"); e != "" {
		return // refused: the register decision on the other server holds
	}
	tok, err := conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", other))
	if err != nil {
		return
	}
	t.Fatalf("agent holds %v on %s although register denied that scope there (aud %v)",
		h.claims(tok.AccessToken)["scope"], other, h.claims(tok.AccessToken)["aud"])
}

// TestAuthMethodContext: docs/policy.md and the schema say
// context.auth_method is how the agent authenticated at the token endpoint
// (none, client_secret_basic, private_key_jwt, …). A policy written from
// those docs must bite.
func TestAuthMethodContext(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	applyPolicy(t, h.Store, h.engine, `@id("no-write-with-shared-secret")
forbid (principal, action == Action::"grant", resource)
when { resource.name == "notes.write" && context.auth_method == "client_secret_basic" };`)
	h.settle()

	t.Run("client_credentials", func(t *testing.T) {
		secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read", "cc:notes.write"}})
		r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "resource": {h.Resource}, "scope": {"notes.read notes.write"}}, "bot", secret)
		if r.status != http.StatusOK || r.body["scope"] != "notes.read" {
			t.Errorf("client_secret_basic bot got %d %v, want notes.write denied", r.status, r.body)
		}
	})
	t.Run("authorization_code", func(t *testing.T) {
		secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
		tok, err := h.codeFlow(h.Browser(), h.oauth2Config("web", secret, "notes.read", "notes.write"), []string{"notes.read", "notes.write"})
		if err != nil {
			t.Fatal(err)
		}
		if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read" {
			t.Errorf("client_secret_basic web client got %v, want notes.write denied", got)
		}
	})
}

var _ = servertest.TestUser
var _ = time.Second
