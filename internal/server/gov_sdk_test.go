package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/internal/store"
)

// TestSDKClientReconnectsAsOneClient: the official Go SDK client registers
// afresh on every connect (a new handler holds no credentials), each time
// on another loopback port, as MCP clients do; the hub answers with the
// same client every time, so the store does not grow, and every connect
// completes.
func TestSDKClientReconnectsAsOneClient(t *testing.T) {
	h := newHub(t)
	resource := h.sdkResource(t)
	b := h.Browser()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", 41000+i)
		handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName: "reconnecting sdk agent", SoftwareID: "sdk-agent", SoftwareVersion: "1",
				RedirectURIs: []string{redirect}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"},
			}},
			RedirectURL: redirect,
			AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				back := b.Authorize(args.URL, []string{"files.read"})
				q := back.Query()
				return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
		sess, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource, OAuthHandler: handler}, nil)
		if err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("call tool %d: %v %v", i, err, res)
		}
		sess.Close()
	}
	cls, err := h.Store.ListClients(ctx, store.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(cls) != 1 {
		t.Fatalf("%d clients stored after 5 connects, want 1", len(cls))
	}
}
