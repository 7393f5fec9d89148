package mcpauth_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// An MCP server protected by the hub: token verification, Protected
// Resource Metadata, per-tool scopes with step-up challenges, and the tools
// themselves checking scopes again.
func Example() {
	ctx := context.Background()

	// A hub for this example; in production Issuer is your agentid hub's URL.
	hub, err := mcpauthtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	// The canonical URL of this MCP server: tokens must be issued for it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	mcpURL := "http://" + ln.Addr().String() + "/mcp"

	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: hub.Issuer(), Resource: mcpURL})
	if err != nil {
		log.Fatal(err)
	}

	// Which scopes each tool needs: enforced over HTTP (403 + step-up
	// challenge) and again inside the MCP server.
	tools := mcpauth.ToolScopes{
		"read_notes":  {"notes:read"},
		"write_notes": {"notes:write"},
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "read_notes", Description: "Read the user's notes"},
		mcpauth.RequireScopes(func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			claims, _ := mcpauth.ClaimsFromTokenInfo(req.Extra.TokenInfo)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "notes of " + claims.Subject}}}, nil, nil
		}, tools["read_notes"]...))
	mcp.AddTool(server, &mcp.Tool{Name: "write_notes", Description: "Write a note"},
		mcpauth.RequireScopes(func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "saved"}}}, nil, nil
		}, tools["write_notes"]...))

	mux := http.NewServeMux()
	prmURL, err := mcpauth.HandleMetadata(mux, &mcpauth.ProtectedResourceMetadata{
		Resource:             mcpURL,
		AuthorizationServers: []string{hub.Issuer()},
		ScopesSupported:      []string{"notes:read"},
		ResourceName:         "Notes",
	})
	if err != nil {
		log.Fatal(err)
	}
	protect := mcpauth.Middleware(v, mcpauth.MiddlewareOptions{
		ResourceMetadataURL: prmURL,
		Scopes:              []string{"notes:read"},
		ToolScopes:          tools,
	})
	mux.Handle("/mcp", protect(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	show := func(resp *http.Response) {
		fmt.Println(resp.StatusCode, strings.ReplaceAll(resp.Header.Get("WWW-Authenticate"), prmURL, "<metadata URL>"))
		resp.Body.Close()
	}

	// 1. No token: 401 pointing the client at the metadata, hence the hub.
	resp, err := http.Post(mcpURL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		log.Fatal(err)
	}
	show(resp)

	// 2. A notes:read token: the official MCP client calls read_notes.
	token := hub.Token(mcpURL, "notes:read")
	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   mcpURL,
		HTTPClient: &http.Client{Transport: addBearer{token}},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)

	// 3. write_notes with the same token: 403 and the step-up challenge
	// naming every scope the call needs.
	req, _ := http.NewRequest("POST", mcpURL, strings.NewReader(
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_notes","arguments":{}}}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	show(resp)

	// Output:
	// 401 Bearer scope="notes:read", resource_metadata="<metadata URL>"
	// notes of user-1
	// 403 Bearer error="insufficient_scope", error_description="the token lacks scopes this tool requires", scope="notes:read notes:write", resource_metadata="<metadata URL>"
}

// addBearer sends a fixed access token; a real client would use the MCP
// SDK's OAuth handlers to obtain and refresh it.
type addBearer struct{ token string }

func (b addBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
