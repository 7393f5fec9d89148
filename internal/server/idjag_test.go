package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

const (
	idjagAudience = "https://as.mcp.example.com"
	idjagResource = "https://mcp.example.com/mcp"
	idjagOther    = "https://mcp.example.com/other"
	idjagSingle   = "https://single.example.com"
)

// withIdentityAssertions configures the hub as an IdP for two targets:
// idjagAudience with two resources (agent-1 may carry notes.read and
// notes.write, agent-2 notes.read), and idjagSingle with one resource.
func withIdentityAssertions(lifetime time.Duration) servertest.Option {
	return func(cfg *server.Config) {
		cfg.IdentityAssertions = server.IdentityAssertions{Lifetime: lifetime, Targets: []server.IdentityTarget{
			{
				Audience: idjagAudience, Resources: []string{idjagResource, idjagOther}, Claims: []string{"preferred_username", "email"},
				Clients: []server.IdentityClient{
					{ClientID: "agent-1", RemoteClientID: "remote-agent-1", Scopes: []string{"notes.read", "notes.write"}},
					{ClientID: "agent-2", RemoteClientID: "remote-agent-2", Scopes: []string{"notes.read"}},
				},
			},
			{
				Audience: idjagSingle, Resources: []string{idjagSingle + "/mcp"},
				Clients: []server.IdentityClient{{ClientID: "agent-1", RemoteClientID: "r1", Scopes: []string{"files.read"}}},
			},
		}}
	}
}

// idjagClient registers a confidential client allowed the code flow and
// token exchange and returns its secret.
func (h *hub) idjagClient(id string, grants ...string) string {
	if grants == nil {
		grants = []string{oauth.GrantAuthorizationCode, oauth.GrantTokenExchange}
	}
	return h.AddClient(&store.Client{ID: id, Name: "Agent " + id, RedirectURIs: []string{redirectURI}, GrantTypes: grants})
}

// idToken signs alice in to client id with openid and returns the ID token
// and the access token of the response.
func (h *hub) idToken(t *testing.T, id, secret string) (idToken, accessToken string) {
	t.Helper()
	conf := &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: redirectURI, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"}, Scopes: []string{"openid", "notes.read"}}
	verifier := oauth2.GenerateVerifier()
	back := h.Browser().Authorize(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource)), []string{"notes.read"})
	tok, err := conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", h.Resource))
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	idt, _ := tok.Extra("id_token").(string)
	if idt == "" {
		t.Fatal("no id_token")
	}
	return idt, tok.AccessToken
}

// idjagForm is the token exchange the SDK's EnterpriseHandler sends.
func idjagForm(subject string, extra ...string) url.Values {
	f := url.Values{
		"grant_type":           {oauth.GrantTokenExchange},
		"requested_token_type": {oauth.TokenTypeIDJAG},
		"audience":             {idjagAudience},
		"resource":             {idjagResource},
		"subject_token":        {subject},
		"subject_token_type":   {oauth.TokenTypeIDToken},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			f.Del(extra[i])
			continue
		}
		f[extra[i]] = strings.Split(extra[i+1], "|")
	}
	return f
}

// postForm sends form with the client's credentials in the body
// (client_secret_post), as the Go SDK does.
func (h *hub) postForm(form url.Values, clientID, secret string) jsonResp {
	h.T.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("client_id", clientID)
	if secret != "" {
		f.Set("client_secret", secret)
	}
	return h.tokenRequest(f, "", "")
}

func jwtParts(t *testing.T, raw string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	for i, out := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// TestIDJAGIssuance: an ID token the hub issued to agent-1 becomes an ID-JAG
// for the configured audience: the response per the profile (issued_token_type
// id-jag, token_type N_A, expires_in, scope, no refresh token), the JWT with
// typ oauth-id-jag+jwt signed by the hub's published keys (go-oidc verifies
// it), the claims the target needs (client_id at the target, resource, scope,
// auth_time, the disclosed user claims), an audit event with its jti, and no
// verifier of the hub accepts it as an access token or an ID token.
func TestIDJAGIssuance(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk), withIdentityAssertions(2*time.Minute))
	ctx := context.Background()
	u, err := h.Store.GetUserByUsername(ctx, store.DefaultTenant, servertest.TestUser)
	if err != nil {
		t.Fatal(err)
	}
	u.Email, u.EmailVerified = "alice@example.com", true
	if err := h.Store.UpdateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	secret := h.idjagClient("agent-1")
	idt, _ := h.idToken(t, "agent-1", secret)

	for _, how := range []string{"client_secret_post", "client_secret_basic"} {
		t.Run(how, func(t *testing.T) {
			var r jsonResp
			if how == "client_secret_post" {
				r = h.postForm(idjagForm(idt, "scope", "notes.read notes.delete"), "agent-1", secret)
			} else {
				r = h.tokenRequest(idjagForm(idt, "scope", "notes.read notes.delete"), "agent-1", secret)
			}
			if r.status != 200 {
				t.Fatalf("exchange: %d %v", r.status, r.body)
			}
			if r.body["issued_token_type"] != oauth.TokenTypeIDJAG || r.body["token_type"] != "N_A" || r.body["expires_in"] != float64(120) || r.body["scope"] != "notes.read" {
				t.Fatalf("response %v", r.body)
			}
			if _, ok := r.body["refresh_token"]; ok {
				t.Fatal("a refresh token beside an ID-JAG")
			}
			jag, _ := r.body["access_token"].(string)
			hdr, c := jwtParts(t, jag)
			if hdr["typ"] != "oauth-id-jag+jwt" || hdr["kid"] == "" {
				t.Fatalf("header %v", hdr)
			}
			want := map[string]any{
				"iss": h.URL, "sub": "u-alice", "aud": idjagAudience, "client_id": "remote-agent-1",
				"resource": idjagResource, "scope": "notes.read", "preferred_username": servertest.TestUser,
				"email": "alice@example.com", "email_verified": true,
			}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			if c["jti"] == "" || c["auth_time"] == nil || c["exp"].(float64)-c["iat"].(float64) != 120 || c["iat"] != float64(clk.Now().Unix()) {
				t.Errorf("claims %v", c)
			}
			if _, ok := c["name"]; ok {
				t.Error("a claim the target was not configured to see")
			}
			provider, err := oidc.NewProvider(ctx, h.URL)
			if err != nil {
				t.Fatal(err)
			}
			// go-oidc checks the signature against the JWKS, iss, aud and
			// exp; the hub's clock is the real one here.
			if _, err := provider.Verifier(&oidc.Config{ClientID: idjagAudience, SupportedSigningAlgs: []string{oidc.ES256}, Now: clk.Now}).Verify(ctx, jag); err != nil {
				t.Fatalf("the ID-JAG does not verify with the hub's keys: %v", err)
			}
			if _, err := h.Keys.Verify(jag, h.URL); err == nil {
				t.Fatal("the hub accepts its ID-JAG as an access token")
			}
			if _, err := h.Keys.VerifyIDToken(jag, h.URL); err == nil {
				t.Fatal("the hub accepts its ID-JAG as an ID token")
			}
			evs := h.auditEvents(audit.IdentityAssertionIssued)
			if len(evs) == 0 {
				t.Fatal("no identity_assertion.issued event")
			}
			ev := evs[0]
			if ev.Details["jti"] != c["jti"] || ev.ClientID != "agent-1" || ev.UserID != "u-alice" || ev.Resource != idjagResource ||
				ev.Details["audience"] != idjagAudience || ev.Details["remote_client_id"] != "remote-agent-1" || !slices.Equal(ev.Scopes, []string{"notes.read"}) {
				t.Fatalf("event %+v", ev)
			}
			if err := audit.Check(ev); err != nil {
				t.Fatal(err)
			}
			for _, v := range ev.Details {
				if strings.Contains(v, jag) || strings.Contains(v, idt) {
					t.Fatal("a token in the audit event")
				}
			}
			clk.Advance(time.Second)
		})
	}

	// No scope asked: every scope the client may carry.
	r := h.postForm(idjagForm(idt), "agent-1", secret)
	if r.status != 200 || r.body["scope"] != "notes.read notes.write" {
		t.Fatalf("without scope: %d %v", r.status, r.body)
	}
	// A target with one resource: resource may be left out.
	r = h.postForm(idjagForm(idt, "audience", idjagSingle, "resource", ""), "agent-1", secret)
	if r.status != 200 {
		t.Fatalf("single resource: %d %v", r.status, r.body)
	}
	if _, c := jwtParts(t, r.body["access_token"].(string)); c["resource"] != idjagSingle+"/mcp" || c["client_id"] != "r1" || c["email"] != nil {
		t.Fatalf("claims %v", c)
	}
}

// TestIDJAGRefusals: each way an ID-JAG request can be wrong gets its RFC
// 6749 / 8693 error, and nothing is issued.
func TestIDJAGRefusals(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk), withIdentityAssertions(0))
	ctx := context.Background()
	s1 := h.idjagClient("agent-1")
	s2 := h.idjagClient("agent-2")
	s3 := h.idjagClient("agent-3")
	noTE := h.idjagClient("agent-4", oauth.GrantAuthorizationCode)
	h.AddClient(&store.Client{ID: "public-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantTokenExchange}, TokenEndpointAuthMethod: "none"})
	idt, at := h.idToken(t, "agent-1", s1)
	idt2, _ := h.idToken(t, "agent-2", s2)
	idt4, _ := h.idToken(t, "agent-4", noTE)
	good := h.postForm(idjagForm(idt), "agent-1", s1)
	if good.status != 200 {
		t.Fatalf("baseline: %d %v", good.status, good.body)
	}
	jag := good.body["access_token"].(string)
	tampered := idt[:len(idt)-4] + "AAAA"

	tests := []struct {
		name           string
		form           url.Values
		client, secret string
		code           string
	}{
		{"subject type access token", idjagForm(at, "subject_token_type", oauth.TokenTypeAccessToken), "agent-1", s1, "unsupported_token_type"},
		{"subject type saml2", idjagForm(idt, "subject_token_type", oauth.TokenTypeSAML2), "agent-1", s1, "unsupported_token_type"},
		{"access token sent as an ID token", idjagForm(at), "agent-1", s1, "invalid_grant"},
		{"ID-JAG sent as an ID token", idjagForm(jag), "agent-1", s1, "invalid_grant"},
		{"tampered ID token", idjagForm(tampered), "agent-1", s1, "invalid_grant"},
		{"garbage", idjagForm("not-a-jwt"), "agent-1", s1, "invalid_grant"},
		{"ID token of another client", idjagForm(idt2), "agent-1", s1, "invalid_grant"},
		{"no audience", idjagForm(idt, "audience", ""), "agent-1", s1, "invalid_request"},
		{"two audiences", idjagForm(idt, "audience", idjagAudience+"|"+idjagSingle), "agent-1", s1, "invalid_request"},
		{"unknown audience", idjagForm(idt, "audience", "https://evil.example.com"), "agent-1", s1, "invalid_target"},
		{"audience with a trailing slash", idjagForm(idt, "audience", idjagAudience+"/"), "agent-1", s1, "invalid_target"},
		{"client not listed for the audience", idjagForm(idt2, "audience", idjagSingle, "resource", ""), "agent-2", s2, "invalid_target"},
		{"client not listed anywhere", idjagForm(idt), "agent-3", s3, "invalid_target"},
		{"resource not the audience's", idjagForm(idt, "resource", "https://mcp.example.com/elsewhere"), "agent-1", s1, "invalid_target"},
		{"resource of another audience", idjagForm(idt, "resource", idjagSingle+"/mcp"), "agent-1", s1, "invalid_target"},
		{"two resources", idjagForm(idt, "resource", idjagResource+"|"+idjagOther), "agent-1", s1, "invalid_target"},
		{"no resource, several configured", idjagForm(idt, "resource", ""), "agent-1", s1, "invalid_request"},
		{"scope not allowed", idjagForm(idt, "scope", "notes.delete"), "agent-1", s1, "invalid_scope"},
		{"scope of another client", idjagForm(idt2, "scope", "notes.write"), "agent-2", s2, "invalid_scope"},
		{"actor token", idjagForm(idt, "actor_token", at, "actor_token_type", oauth.TokenTypeAccessToken), "agent-1", s1, "invalid_request"},
		{"wrong secret", idjagForm(idt), "agent-1", "wrong-secret-0123456789abcdef0123456789abcdef", "invalid_client"},
		{"not registered for token exchange", idjagForm(idt4), "agent-4", noTE, "unauthorized_client"},
		{"public client", idjagForm(idt), "public-1", "", "unauthorized_client"},
	}
	before := len(h.auditEvents(audit.IdentityAssertionIssued))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.postForm(tc.form, tc.client, tc.secret)
			if r.status == 200 || r.body["error"] != tc.code {
				t.Fatalf("got %d %v, want %s", r.status, r.body, tc.code)
			}
			if _, ok := r.body["access_token"]; ok {
				t.Fatal("a token in an error response")
			}
		})
	}
	if n := len(h.auditEvents(audit.IdentityAssertionIssued)); n != before {
		t.Fatalf("%d assertions issued by refused requests", n-before)
	}

	t.Run("expired ID token", func(t *testing.T) {
		fresh, _ := h.idToken(t, "agent-1", s1)
		_, c := jwtParts(t, fresh)
		clk.Advance(time.Duration(int64(c["exp"].(float64))-clk.Now().Unix()+1) * time.Second)
		r := h.postForm(idjagForm(fresh), "agent-1", s1)
		if r.body["error"] != "invalid_grant" {
			t.Fatalf("got %d %v", r.status, r.body)
		}
	})

	t.Run("disabled user", func(t *testing.T) {
		fresh, _ := h.idToken(t, "agent-1", s1)
		u, err := h.Store.GetUserByUsername(ctx, store.DefaultTenant, servertest.TestUser)
		if err != nil {
			t.Fatal(err)
		}
		u.Disabled = true
		if err := h.Store.UpdateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
		defer func() {
			u.Disabled = false
			_ = h.Store.UpdateUser(ctx, u, nil)
		}()
		r := h.postForm(idjagForm(fresh), "agent-1", s1)
		if r.body["error"] != "invalid_grant" {
			t.Fatalf("got %d %v", r.status, r.body)
		}
	})
}

// TestIDJAGNotConfigured: without targets the hub does not advertise
// ID-JAGs and issues none.
func TestIDJAGNotConfigured(t *testing.T) {
	h := newHub(t)
	secret := h.idjagClient("agent-1")
	idt, _ := h.idToken(t, "agent-1", secret)
	r := h.postForm(idjagForm(idt), "agent-1", secret)
	if r.body["error"] != "invalid_target" {
		t.Fatalf("got %d %v", r.status, r.body)
	}
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		m := h.getJSON(p)
		if _, ok := m.body["identity_chaining_requested_token_types_supported"]; ok {
			t.Fatalf("%s advertises ID-JAGs without targets", p)
		}
	}
	c := newHub(t, withIdentityAssertions(0))
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		m := c.getJSON(p)
		if got, _ := m.body["identity_chaining_requested_token_types_supported"].([]any); len(got) != 1 || got[0] != oauth.TokenTypeIDJAG {
			t.Fatalf("%s: identity_chaining_requested_token_types_supported = %v", p, m.body["identity_chaining_requested_token_types_supported"])
		}
	}
}

// TestIDJAGPolicy: the policy's exchange action decides the scopes of an
// ID-JAG, with the target resource as the resource; a request with no
// scope left is refused and recorded as identity_assertion.denied.
func TestIDJAGPolicy(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	files := policy.DefaultFiles()
	files["idjag.cedar"] = `@id("no-remote-writes")
forbid (principal, action == Action::"exchange", resource)
when { context.resource == "` + idjagResource + `" && resource.name == "notes.write" };`
	if err := policy.Apply(ctx, st, &store.PolicySet{TenantID: store.DefaultTenant, Files: files, CreatedBy: "test", CreatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	h := &hub{servertest.NewOn(t, st, withIdentityAssertions(0))}
	secret := h.idjagClient("agent-1")
	idt, _ := h.idToken(t, "agent-1", secret)
	r := h.postForm(idjagForm(idt, "scope", "notes.read notes.write"), "agent-1", secret)
	if r.status != 200 || r.body["scope"] != "notes.read" {
		t.Fatalf("got %d %v", r.status, r.body)
	}
	ev := h.auditEvents(audit.IdentityAssertionIssued)[0]
	d, _, err := audit.DecisionOf(ev)
	if err != nil || d.PolicyVersion == 0 || len(d.Scopes) != 2 || d.Scopes[1].Allowed || !slices.Contains(d.Scopes[1].PolicyIDs, "no-remote-writes") {
		t.Fatalf("decision %+v %v", d, err)
	}
	r = h.postForm(idjagForm(idt, "scope", "notes.write"), "agent-1", secret)
	if r.body["error"] != "invalid_scope" {
		t.Fatalf("got %d %v", r.status, r.body)
	}
	evs := h.auditEvents(audit.IdentityAssertionDenied)
	if len(evs) != 1 || evs[0].Outcome != audit.Denied || !slices.Equal(evs[0].Scopes, []string{"notes.write"}) || audit.Check(evs[0]) != nil {
		t.Fatalf("denied events %+v", evs)
	}
}

func (h *hub) getJSON(path string) jsonResp {
	h.T.Helper()
	req, err := http.NewRequest(http.MethodGet, h.URL+path, nil)
	if err != nil {
		h.T.Fatal(err)
	}
	return h.send(req)
}
