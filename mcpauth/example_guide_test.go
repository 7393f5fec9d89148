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

// The server of docs/mcp-server-guide.md, whose Go snippets are lines of
// this function (TestGuideSnippetsCompile): a tool that reads who it acts
// for from the verified token, the same scope enforced by the middleware
// and inside the MCP server, and introspection so that a revoked token is
// refused at once.
func Example_guide() {
	hub, err := mcpauthtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hubURL, resource := hub.Issuer(), "http://"+ln.Addr().String()+"/mcp"
	clientID, secret := hub.IntrospectionCredentials()
	ctx := context.Background()

	// A tool: the token's claims say whom it acts for.
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	readNotes := func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		claims, _ := mcpauth.ClaimsFromTokenInfo(req.Extra.TokenInfo)
		text := fmt.Sprintf("notes of %s, read by agent %s", claims.Subject, claims.ClientID)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	}
	mcp.AddTool(server, &mcp.Tool{Name: "read_notes", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		mcpauth.RequireScopes(readNotes, "notes.read"))

	// Verify tokens locally and at the hub, asking it at every request
	// (CacheTTL -1) so that a revocation bites at once.
	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: hubURL, Resource: resource,
		Introspection: &mcpauth.IntrospectionConfig{ClientID: clientID, ClientSecret: secret, CacheTTL: -1}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	if _, err := mcpauth.HandleMetadata(mux, &mcpauth.ProtectedResourceMetadata{Resource: resource,
		AuthorizationServers: []string{hubURL}, ScopesSupported: []string{"notes.read"}}); err != nil {
		log.Fatal(err)
	}
	protect := mcpauth.Middleware(v, mcpauth.MiddlewareOptions{ToolScopes: mcpauth.ToolScopes{"read_notes": {"notes.read"}}})
	mux.Handle("/mcp", protect(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true})))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	// Without a token: 401, and the challenge names the metadata.
	resp, err := http.Post(resource, "application/json", strings.NewReader(`{}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata="))

	// An agent with notes.read, for alice; then the hub revokes the token.
	tok := hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Scopes: []string{"notes.read"},
		Subject: "alice", ClientID: "nightly", JTI: "tok-1"})
	call := func() {
		hc := &http.Client{Transport: addBearer{tok}}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx,
			&mcp.StreamableClientTransport{Endpoint: resource, HTTPClient: hc}, nil)
		if err != nil {
			fmt.Println("refused")
			return
		}
		defer cs.Close()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}})
		if err != nil {
			fmt.Println("refused")
			return
		}
		fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	}
	call()
	hub.Revoke("tok-1")
	call()

	// Output:
	// 401 true
	// notes of alice, read by agent nightly
	// refused
}
