package mcpauth_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The least an MCP server needs to trust the hub: a verifier, its Protected
// Resource Metadata, and the middleware in front of the MCP handler, with a
// scope for the tool that destroys data. The stateless handler serves MCP
// 2026-07-28 and, without sessions, older clients too.
func Example_minimal() {
	// Scaffolding: a hub (in production, your agentid hub's URL), an
	// address, and an MCP server with its tools.
	hub, err := mcpauthtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	issuer, resource := hub.Issuer(), "http://"+ln.Addr().String()+"/mcp"
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "delete_note", Annotations: &mcp.ToolAnnotations{DestructiveHint: new(true)}},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
		})

	// The protection itself.
	v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{Issuer: issuer, Resource: resource})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	if _, err := mcpauth.HandleMetadata(mux, &mcpauth.ProtectedResourceMetadata{Resource: resource, AuthorizationServers: []string{issuer}, ScopesSupported: []string{"notes.read"}}); err != nil {
		log.Fatal(err)
	}
	protect := mcpauth.Middleware(v, mcpauth.MiddlewareOptions{ToolScopes: mcpauth.ToolScopes{"delete_note": {"notes.delete"}}})
	mux.Handle("/mcp", protect(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{Stateless: true})))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	// An agent at each revision: without notes.delete, the call is refused
	// with the step-up challenge; with it, it runs.
	for _, rev := range []string{"2025-11-25", "2026-07-28"} {
		for _, scopes := range [][]string{{"notes.read"}, {"notes.read", "notes.delete"}} {
			hc := &http.Client{Transport: addBearer{hub.Token(resource, scopes...)}}
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(),
				&mcp.StreamableClientTransport{Endpoint: resource, HTTPClient: hc}, &mcp.ClientSessionOptions{ProtocolVersion: rev})
			if err != nil {
				log.Fatal(err)
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_note", Arguments: map[string]any{}})
			if err != nil {
				fmt.Println(cs.InitializeResult().ProtocolVersion, scopes, "refused")
			} else {
				fmt.Println(cs.InitializeResult().ProtocolVersion, scopes, res.Content[0].(*mcp.TextContent).Text)
			}
			cs.Close()
		}
	}

	// Output:
	// 2025-11-25 [notes.read] refused
	// 2025-11-25 [notes.read notes.delete] deleted
	// 2026-07-28 [notes.read] refused
	// 2026-07-28 [notes.read notes.delete] deleted
}
