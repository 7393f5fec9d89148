package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/internal/store"
)

// sdkResource starts a minimal MCP server trusting the hub, built only from
// the official SDK's own pieces, and registers it as a resource.
func (h *hub) sdkResource(t *testing.T) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	resource := base + "/mcp"
	prmURL := base + "/.well-known/oauth-protected-resource/mcp"
	if err := h.Store.CreateResource(context.Background(), &store.Resource{
		TenantID: store.DefaultTenant, ID: "sdk", URI: resource, Name: "SDK server", CreatedAt: time.Now(),
		Scopes: []store.Scope{{Name: "files.read", Description: "Read files"}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	verify := func(ctx context.Context, tok string, _ *http.Request) (*auth.TokenInfo, error) {
		c, err := h.Keys.Verify(tok, h.URL)
		if err != nil || !slices.Contains(c.Audience, resource) {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{Scopes: strings.Fields(c.Scope), Expiration: time.Unix(c.Expiry, 0), UserID: c.Subject}, nil
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	type in struct{}
	type out struct {
		Files []string `json:"files"`
	}
	mcp.AddTool(server, &mcp.Tool{Name: "list_files"}, func(ctx context.Context, req *mcp.CallToolRequest, _ in) (*mcp.CallToolResult, out, error) {
		return nil, out{Files: []string{"a.txt"}}, nil
	})
	mux := http.NewServeMux()
	mux.Handle("/.well-known/oauth-protected-resource/mcp", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: resource, AuthorizationServers: []string{h.URL}, ScopesSupported: []string{"files.read"},
	}))
	mux.Handle("/mcp", auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: prmURL})(
		mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return resource
}

// TestOfficialSDKClient drives the hub with the MCP Go SDK's own client
// auth, unmodified: PRM discovery, AS metadata, dynamic registration,
// authorization with iss validation, token exchange with resource.
func TestOfficialSDKClient(t *testing.T) {
	h := newHub(t)
	resource := h.sdkResource(t)
	b := h.Browser()
	authorizations := 0
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName: "sdk test agent", RedirectURIs: []string{"http://localhost:3000/callback"}, TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"},
		}},
		RedirectURL: "http://localhost:3000/callback",
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			authorizations++
			back := b.Authorize(args.URL, []string{"files.read"})
			q := back.Query()
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource, OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect through the hub: %v", err)
	}
	defer sess.Close()
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("call tool: %v %v", err, res)
	}
	if authorizations != 1 {
		t.Fatalf("authorization round trips = %d, want 1", authorizations)
	}
	clients, _ := h.Store.ListClients(ctx, store.DefaultTenant)
	if len(clients) != 1 || clients[0].RegistrationMethod != store.RegistrationDCR || clients[0].TokenEndpointAuthMethod != "none" {
		t.Fatalf("registered clients = %+v", clients)
	}
}
