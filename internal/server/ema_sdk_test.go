package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/mcpauth"
)

// mcpauthServer starts an MCP server guarded by mcpauth against the hub,
// registers it at the hub as a resource offering files.read, and returns
// its URL. Its whoami tool answers with what the verified token says.
func (h *hub) mcpauthServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	resource := "http://" + srv.Listener.Addr().String() + "/mcp"
	if err := h.Store.CreateResource(context.Background(), &store.Resource{
		TenantID: store.DefaultTenant, ID: "files", URI: resource, Name: "Files", CreatedAt: time.Now(),
		Scopes: []store.Scope{{Name: "files.read", Description: "Read files"}, {Name: "files.write", Description: "Write files"}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{Issuer: h.URL, Resource: resource})
	if err != nil {
		t.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	type out struct {
		Subject, ClientID, Scope string
	}
	mcp.AddTool(server, &mcp.Tool{Name: "whoami"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, out, error) {
		c, ok := mcpauth.ClaimsFromTokenInfo(req.Extra.TokenInfo)
		if !ok {
			return nil, out{}, io.ErrUnexpectedEOF
		}
		return nil, out{Subject: c.Subject, ClientID: c.ClientID, Scope: strings.Join(c.Scopes, " ")}, nil
	})
	mux := http.NewServeMux()
	if _, err := mcpauth.HandleMetadata(mux, &mcpauth.ProtectedResourceMetadata{Resource: resource, AuthorizationServers: []string{h.URL}, ScopesSupported: []string{"files.read"}}); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/mcp", mcpauth.Middleware(v, mcpauth.MiddlewareOptions{})(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true})))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return resource
}

// TestEnterpriseManagedAuthorizationSDK is MCP enterprise-managed
// authorization end to end with the official Go SDK's client,
// extauth.EnterpriseHandler, unmodified: hub #1 is the enterprise IdP (the
// person signs in with OpenID Connect through extauth.PerformOIDCLogin, and
// hub #1 exchanges the ID token for an ID-JAG), hub #2 is the authorization
// server of an MCP server guarded by mcpauth, with hub #1 registered as a
// trusted issuer of ID-JAGs; the jwt-bearer grant there turns the ID-JAG
// into an access token. The person never sees hub #2: no login, no consent
// screen. Then the edges: the ID-JAG is single use at hub #2, hub #1 never
// accepts the ID-JAG it issued as a grant of its own (even trusting
// itself), and hub #2 refuses an ID-JAG hub #1 minted for another target.
func TestEnterpriseManagedAuthorizationSDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Hub #2: the MCP server's authorization server.
	as := newHub(t)
	mcpURL := as.mcpauthServer(t)
	const remoteClient = "desktop-agent-at-as"
	remoteSecret := as.AddClient(&store.Client{ID: remoteClient, Name: "Desktop agent", GrantTypes: []string{oauth.GrantJWTBearer}, TokenEndpointAuthMethod: "client_secret_post"})

	// Hub #1: the enterprise IdP, which may hand desktop-agent to hub #2
	// for files.read on the MCP server.
	idp := newHub(t, func(cfg *server.Config) {
		cfg.IdentityAssertions = server.IdentityAssertions{Targets: []server.IdentityTarget{{
			Audience: as.URL, Resources: []string{mcpURL}, Claims: []string{"preferred_username"},
			Clients: []server.IdentityClient{{ClientID: "desktop-agent", RemoteClientID: remoteClient, Scopes: []string{"files.read"}}},
		}, {
			// Another authorization server, with the same MCP server
			// URL and client id: its ID-JAGs are not for hub #2.
			Audience: "https://elsewhere.example.com", Resources: []string{mcpURL}, Claims: []string{"preferred_username"},
			Clients: []server.IdentityClient{{ClientID: "desktop-agent", RemoteClientID: remoteClient, Scopes: []string{"files.read"}}},
		}}}
	})
	idpSecret := idp.AddClient(&store.Client{ID: "desktop-agent", Name: "Desktop agent", RedirectURIs: []string{redirectURI},
		GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantTokenExchange, oauth.GrantJWTBearer}, TokenEndpointAuthMethod: "client_secret_post"})

	// Hub #2 trusts hub #1's ID-JAGs, with its published keys, and finds
	// the person by preferred_username.
	rawJWKS := idp.rawGet(t, "/jwks.json")
	if err := as.Store.CreateIssuer(ctx, &store.Issuer{
		TenantID: store.DefaultTenant, ID: "idp", Issuer: idp.URL, JWKS: rawJWKS, Uses: []string{store.IssuerUseIDJAG},
		UserClaim: "preferred_username", CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}, nil); err != nil {
		t.Fatal(err)
	}

	signIns := 0
	idpBrowser := idp.Browser()
	handler, err := extauth.NewEnterpriseHandler(&extauth.EnterpriseHandlerConfig{
		IdPIssuerURL:     idp.URL,
		IdPCredentials:   &oauthex.ClientCredentials{ClientID: "desktop-agent", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: idpSecret}},
		MCPAuthServerURL: as.URL,
		MCPResourceURI:   mcpURL,
		MCPCredentials:   &oauthex.ClientCredentials{ClientID: remoteClient, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: remoteSecret}},
		MCPScopes:        []string{"files.read"},
		IDTokenFetcher: func(ctx context.Context) (*oauth2.Token, error) {
			signIns++
			return extauth.PerformOIDCLogin(ctx, &extauth.OIDCLoginConfig{
				IssuerURL:   idp.URL,
				Credentials: &oauthex.ClientCredentials{ClientID: "desktop-agent", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: idpSecret}},
				RedirectURL: redirectURI,
				Scopes:      []string{"openid", "profile", "notes.read"},
			}, func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				back := idpBrowser.Authorize(args.URL, []string{"notes.read"})
				q := back.Query()
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "desktop-agent", Version: "1"}, nil)
	sess, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect through enterprise-managed authorization: %v", err)
	}
	defer sess.Close()
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("call tool: %v %+v", err, res)
	}
	who, _ := res.StructuredContent.(map[string]any)
	if who["Subject"] != "u-alice" || who["ClientID"] != remoteClient || who["Scope"] != "files.read" {
		t.Fatalf("the MCP server saw %v", res.StructuredContent)
	}
	if signIns != 1 {
		t.Fatalf("sign-ins at the IdP = %d, want 1", signIns)
	}

	// The IdP recorded the assertion; the authorization server issued on
	// the jwt-bearer grant, with no login, code or consent of its own.
	issued := idp.auditEvents(audit.IdentityAssertionIssued)
	if len(issued) != 1 || issued[0].ClientID != "desktop-agent" || issued[0].Resource != mcpURL || issued[0].Details["audience"] != as.URL {
		t.Fatalf("identity_assertion.issued at the IdP: %+v", issued)
	}
	tokens := as.auditEvents(audit.TokenIssued)
	if len(tokens) != 1 || tokens[0].Details["grant_type"] != oauth.GrantJWTBearer || tokens[0].ClientID != remoteClient || tokens[0].UserID != "u-alice" {
		t.Fatalf("token.issued at the AS: %+v", tokens)
	}
	for _, typ := range []string{audit.LoginSucceeded, audit.ConsentGiven, audit.CodeIssued} {
		if evs := as.auditEvents(typ); len(evs) != 0 {
			t.Fatalf("the authorization server recorded %s: the person was asked there", typ)
		}
	}

	// A fresh ID-JAG, as the SDK gets it: spent once at hub #2, then
	// refused as a replay.
	idt := func() string {
		tok, err := extauth.PerformOIDCLogin(ctx, &extauth.OIDCLoginConfig{
			IssuerURL: idp.URL, RedirectURL: redirectURI, Scopes: []string{"openid", "notes.read"},
			Credentials: &oauthex.ClientCredentials{ClientID: "desktop-agent", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: idpSecret}},
		}, func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			q := idpBrowser.Authorize(args.URL, []string{"notes.read"}).Query()
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Extra("id_token").(string)
	}()
	jag, err := oauthex.ExchangeToken(ctx, idp.URL+"/token", &oauthex.TokenExchangeRequest{
		RequestedTokenType: oauthex.TokenTypeIDJAG, Audience: as.URL, Resource: mcpURL, Scope: []string{"files.read"},
		SubjectToken: idt, SubjectTokenType: oauthex.TokenTypeIDToken,
	}, &oauthex.ClientCredentials{ClientID: "desktop-agent", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: idpSecret}}, nil)
	if err != nil {
		t.Fatalf("token exchange with oauthex.ExchangeToken: %v", err)
	}
	if jag.TokenType != "N_A" || jag.Extra("issued_token_type") != oauthex.TokenTypeIDJAG {
		t.Fatalf("exchange response: type %q, issued %v", jag.TokenType, jag.Extra("issued_token_type"))
	}
	bearer := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {jag.AccessToken}}
	if r := as.postForm(bearer, remoteClient, remoteSecret); r.status != 200 {
		t.Fatalf("jwt-bearer at the AS: %d %v", r.status, r.body)
	}
	if r := as.tokenRequest(bearer, remoteClient, remoteSecret); r.body["error"] != "invalid_grant" {
		t.Fatalf("the ID-JAG replayed (basic auth): %d %v", r.status, r.body)
	}

	// The IdP never takes its own ID-JAG as a grant, even when an admin
	// made it trust itself.
	ownJWKS := rawJWKS
	if err := idp.Store.CreateIssuer(ctx, &store.Issuer{
		TenantID: store.DefaultTenant, ID: "self", Issuer: idp.URL, JWKS: ownJWKS, Uses: []string{store.IssuerUseIDJAG},
		UserClaim: "preferred_username", CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}, nil); err != nil {
		t.Fatal(err)
	}
	if r := idp.postForm(bearer, "desktop-agent", idpSecret); r.body["error"] != "invalid_grant" {
		t.Fatalf("the IdP accepted its own ID-JAG: %d %v", r.status, r.body)
	}

	// An ID-JAG for another target is refused at hub #2 (aud).
	elsewhere, err := oauthex.ExchangeToken(ctx, idp.URL+"/token", &oauthex.TokenExchangeRequest{
		RequestedTokenType: oauthex.TokenTypeIDJAG, Audience: "https://elsewhere.example.com", Resource: mcpURL,
		SubjectToken: idt, SubjectTokenType: oauthex.TokenTypeIDToken,
	}, &oauthex.ClientCredentials{ClientID: "desktop-agent", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: idpSecret}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := as.postForm(url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {elsewhere.AccessToken}}, remoteClient, remoteSecret); r.body["error"] != "invalid_grant" {
		t.Fatalf("an ID-JAG for another audience was accepted: %d %v", r.status, r.body)
	}
}

// rawGet returns the body of a GET on the hub.
func (h *hub) rawGet(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(h.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}
