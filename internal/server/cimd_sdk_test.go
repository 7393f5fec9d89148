package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentid/agentid/internal/store"
)

// TestOfficialSDKClientCIMD drives the hub with the MCP Go SDK's own client
// auth configured with ClientIDMetadataDocumentConfig, unmodified: it sees
// client_id_metadata_document_supported in the metadata, uses its document
// URL as client_id without registering, and completes authorization and
// the token exchange (x/oauth2's auto-detected client authentication) while
// the hub fetches the document the test serves over TLS on loopback
// through the development allowance.
func TestOfficialSDKClientCIMD(t *testing.T) {
	d := newDocHost(t)
	id := d.url("/sdk-client.json")
	const callback = "http://localhost:3000/callback"
	d.put("/sdk-client.json", map[string]any{
		"client_id": id, "client_name": "SDK CIMD agent", "redirect_uris": []string{callback},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
	}, "max-age=300")
	h, _ := cimdHub(t, d)
	resource := h.sdkResource(t)
	b := h.Browser()
	authorizations := 0
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: id},
		RedirectURL:                    callback,
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
	if len(clients) != 1 || clients[0].ID != id || clients[0].RegistrationMethod != store.RegistrationCIMD {
		t.Fatalf("clients = %+v, want only the document's client", clients)
	}
	if n := d.count("/sdk-client.json"); n != 1 {
		t.Fatalf("document fetched %d times, want 1", n)
	}
}
