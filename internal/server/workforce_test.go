package server_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/mcpauth"
)

// workforceHub is a policy hub whose resource offers deploy.read and
// deploy.write and maps the person's groups and employment attribute into
// its tokens; agent-1 is a confidential agent, mcp-rs the resource's own
// server (it introspects).
func workforceHub(t *testing.T, h *policyHub) (agentSecret, rsSecret string) {
	t.Helper()
	ctx := context.Background()
	r, err := h.Store.GetResource(ctx, store.DefaultTenant, h.Resource)
	if err != nil {
		t.Fatal(err)
	}
	r.Scopes = append(r.Scopes, store.Scope{Name: "deploy.read", Description: "See deployments"},
		store.Scope{Name: "deploy.write", Description: "Deploy"})
	r.UserClaims = map[string]string{"groups": store.UserClaimGroups, "employment": "attr:employment"}
	if err := h.Store.UpdateResource(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	agentSecret = h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	rsSecret = h.AddClient(&store.Client{ID: "mcp-rs", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("mcp-rs")
	src, err := os.ReadFile("../policy/testdata/workforce.cedar")
	if err != nil {
		t.Fatal(err)
	}
	applyPolicy(t, h.Store, h.engine, string(src))
	h.settle()
	return agentSecret, rsSecret
}

// editUser changes the test user in the store, as agentid users
// add-group, remove-group and set-attr do.
func editUser(t *testing.T, st store.Store, edit func(u *store.User)) {
	t.Helper()
	ctx := context.Background()
	u, err := st.GetUserByUsername(ctx, store.DefaultTenant, servertest.TestUser)
	if err != nil {
		t.Fatal(err)
	}
	edit(u)
	if err := st.UpdateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
}

// jwtClaims decodes a JWT's payload as it is on the wire, every member
// included.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	_, claims := jwtParts(t, tok)
	return claims
}

// TestWorkforcePolicyEndToEnd: policies on the person's groups and
// attributes decide what an agent gets, at authorization and again at
// every refresh with the user as stored then. An on-call member gets
// deploy.write; once removed from eng-oncall the next refresh drops it
// (the response's scope says so, and the token.issued event names the
// deciding policy); added back it returns; a contractor's agent gets read
// scopes only; a non-member's authorization offers only what policy
// allows and the token response names the narrower scope; asking only
// for what policy refuses is invalid_scope. The tokens carry the mapped
// groups and employment claims from the user as they are at each
// issuance, introspection shows them, and mcpauth reads them.
func TestWorkforcePolicyEndToEnd(t *testing.T) {
	forEachPolicyBackend(t, testWorkforcePolicyEndToEnd)
}

func testWorkforcePolicyEndToEnd(t *testing.T, h *policyHub) {
	ctx := context.Background()
	secret, rsSecret := workforceHub(t, h)
	editUser(t, h.Store, func(u *store.User) {
		u.Groups = []string{"eng", "eng-oncall"}
		u.Attributes = map[string]string{"employment": "staff", "department": "platform"}
	})
	both := []string{"deploy.read", "deploy.write"}
	conf := h.oauth2Config("agent-1", secret, both...)

	offered, tok := h.authorizeOffered(t, h.Browser(), conf)
	if !slices.Equal(offered, both) {
		t.Fatalf("consent screen offered %v to an on-call member, want %v", offered, both)
	}
	c := jwtClaims(t, tok.AccessToken)
	if c["scope"] != "deploy.read deploy.write" {
		t.Fatalf("on-call member's token scope %v", c["scope"])
	}
	if !reflect.DeepEqual(c["groups"], []any{"eng", "eng-oncall"}) || c["employment"] != "staff" {
		t.Fatalf("token user claims: groups %v employment %v", c["groups"], c["employment"])
	}
	if _, ok := c["department"]; ok {
		t.Fatal("the token carries an attribute the resource did not map")
	}
	checkDecisions(t, lastIssued(t, h.Store, "agent-1"), map[string]string{
		"deploy.read": "granted:user-consent", "deploy.write": "granted:user-consent",
	})

	// The resource server reads the claims, by introspection and through
	// mcpauth; a registered claim is never a user claim.
	in := h.introspect(tok.AccessToken, "mcp-rs", rsSecret)
	if !reflect.DeepEqual(in["groups"], []any{"eng", "eng-oncall"}) || in["employment"] != "staff" || in["sub"] != "u-alice" {
		t.Fatalf("introspection: %v", in)
	}
	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: h.URL, Resource: h.Resource, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mc, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := mc.UserClaimList("groups"); !ok || !slices.Equal(g, []string{"eng", "eng-oncall"}) {
		t.Fatalf("mcpauth UserClaimList(groups) = %v, %v", g, ok)
	}
	if e, ok := mc.UserClaim("employment"); !ok || e != "staff" {
		t.Fatalf("mcpauth UserClaim(employment) = %q, %v", e, ok)
	}
	if s, ok := mc.UserClaim("sub"); ok {
		t.Fatalf("mcpauth UserClaim(sub) = %q: a registered claim passed for a user claim", s)
	}

	refresh := func(rt string) jsonResp {
		t.Helper()
		return h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "agent-1", secret)
	}

	// Out of eng-oncall: the next refresh re-evaluates policy with the
	// user's current groups and drops deploy.write, saying so in scope.
	editUser(t, h.Store, func(u *store.User) { u.Groups = []string{"eng"} })
	h.settle()
	r := refresh(tok.RefreshToken)
	if r.status != http.StatusOK || r.body["scope"] != "deploy.read" {
		t.Fatalf("refresh after leaving eng-oncall: %d %v", r.status, r.body)
	}
	c = jwtClaims(t, r.body["access_token"].(string))
	if c["scope"] != "deploy.read" || !reflect.DeepEqual(c["groups"], []any{"eng"}) {
		t.Fatalf("refreshed token: scope %v groups %v", c["scope"], c["groups"])
	}
	checkDecisions(t, lastIssued(t, h.Store, "agent-1"), map[string]string{
		"deploy.read": "granted:user-consent", "deploy.write": "denied:deploy-write-oncall-only",
	})
	x, err := h.engine.ExplainQuery(ctx, policy.Query{AgentID: "agent-1", User: servertest.TestUser, Resource: h.Resource,
		Scopes: both, GrantType: "refresh_token"})
	if err != nil {
		t.Fatal(err)
	}
	if out, w := x.String(), `decided on user "u-alice": groups [eng]`; !strings.Contains(out, w) {
		t.Fatalf("explain lacks %q:\n%s", w, out)
	}

	// Back in the group: the grant's scope comes back at the next refresh
	// (the refresh token keeps the whole grant; policy decides each time).
	editUser(t, h.Store, func(u *store.User) { u.Groups = []string{"eng", "eng-oncall"} })
	h.settle()
	r = refresh(r.body["refresh_token"].(string))
	if r.status != http.StatusOK || r.body["scope"] != "deploy.read deploy.write" {
		t.Fatalf("refresh after rejoining eng-oncall: %d %v", r.status, r.body)
	}

	// A contractor, even on call, gets read scopes only.
	editUser(t, h.Store, func(u *store.User) { u.Attributes["employment"] = "contractor" })
	h.settle()
	r = refresh(r.body["refresh_token"].(string))
	if r.status != http.StatusOK || r.body["scope"] != "deploy.read" {
		t.Fatalf("refresh as a contractor: %d %v", r.status, r.body)
	}
	if c := jwtClaims(t, r.body["access_token"].(string)); c["employment"] != "contractor" {
		t.Fatalf("refreshed token employment %v, want the current contractor", c["employment"])
	}
	checkDecisions(t, lastIssued(t, h.Store, "agent-1"), map[string]string{
		"deploy.read": "granted:user-consent", "deploy.write": "denied:contractors-read-only",
	})

	// A new agent authorized by a person policy refuses deploy.write: the
	// consent screen offers only deploy.read, and the token response names
	// the narrower scope (RFC 6749 §5.1).
	secret2 := h.AddClient(&store.Client{ID: "agent-2", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	offered, tok = h.authorizeOffered(t, h.Browser(), h.oauth2Config("agent-2", secret2, both...))
	if !slices.Equal(offered, []string{"deploy.read"}) {
		t.Fatalf("consent screen offered %v to a contractor, want deploy.read only", offered)
	}
	if got, _ := tok.Extra("scope").(string); got != "deploy.read" {
		t.Fatalf("token response scope %q, want deploy.read", got)
	}
	// agent-1 asking again, with deploy.read consented already, has nothing
	// new to approve: the person is told why and the agent gets
	// invalid_scope naming deploy.write, not a token silently without it.
	b := h.Browser()
	p := b.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource)))
	if strings.Contains(p.Body, `action="/login"`) {
		p = b.Login(p, servertest.TestUser, servertest.TestPassword)
	}
	back := servertest.BackLink(p.Body)
	if back == nil || back.Query().Get("error") != "invalid_scope" || !strings.Contains(back.Query().Get("error_description"), "deploy.write") ||
		strings.Contains(p.Body, `action="/authorize/decision"`) {
		t.Fatalf("authorize again as a contractor: %d %v\n%s", p.Status, back, p.Body)
	}
	if evs := h.auditEvents(audit.TokenDenied); len(evs) != 0 {
		t.Fatalf("token.denied events %v: no token request was refused", evs)
	}
}
