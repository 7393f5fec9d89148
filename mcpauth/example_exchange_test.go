package mcpauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// An MCP server that calls a downstream API for the user exchanges the token
// it received for a token to that API (RFC 8693), instead of passing the
// user's token along. The API sees the user as sub and the whole chain of
// actors, and can insist on who started it.
func ExampleExchanger() {
	ctx := context.Background()
	hub, err := mcpauthtest.Start() // in production: your agentid hub
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	const (
		mcpURL = "https://notes.example.com/mcp" // this MCP server
		apiURL = "https://api.example.com/notes" // the downstream resource
	)

	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: hub.Issuer(), Resource: mcpURL})
	if err != nil {
		log.Fatal(err)
	}
	// This server's own client at the hub (the client of its resource).
	clientID, secret := hub.IntrospectionCredentials()
	ex, err := mcpauth.NewExchanger(ctx, mcpauth.ExchangerConfig{Issuer: hub.Issuer(), ClientID: clientID, ClientSecret: secret})
	if err != nil {
		log.Fatal(err)
	}

	var downstream string
	mcpServer := mcpauth.Middleware(v, mcpauth.MiddlewareOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// In a go-sdk tool handler: mcpauth.ClaimsFromTokenInfo(req.Extra.TokenInfo).
		claims, _ := mcpauth.ClaimsFromContext(r.Context())
		tok, err := ex.Exchange(r.Context(), claims.Token(), apiURL, "notes:read")
		if xe, ok := errors.AsType[*mcpauth.ExchangeError](err); ok {
			http.Error(w, "downstream access refused: "+xe.Code, http.StatusBadGateway)
			return
		}
		downstream = tok.AccessToken // sent to the API as a bearer token
	}))

	// The agent "agent-7" calls the MCP server for alice.
	req := httptest.NewRequest(http.MethodPost, mcpURL, nil)
	req.Header.Set("Authorization", "Bearer "+hub.TokenWith(mcpauthtest.TokenOptions{
		Audience: []string{mcpURL}, Subject: "alice", ClientID: "agent-7", Scopes: []string{"notes:read", "notes:write"},
	}))
	mcpServer.ServeHTTP(httptest.NewRecorder(), req)

	// The API accepts chains of at most two actors that agent-7 started.
	api, err := mcpauth.NewVerifier(ctx, mcpauth.Config{
		Issuer: hub.Issuer(), Resource: apiURL, MaxDelegationDepth: 2, FirstActors: []string{"agent-7"},
	})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := api.Verify(ctx, downstream)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("user:", claims.Subject)
	for _, a := range claims.Actors() {
		fmt.Println("actor:", a.Subject)
	}
	fmt.Println("scopes:", claims.Scopes)
	// Output:
	// user: alice
	// actor: mcpauthtest-client
	// actor: agent-7
	// scopes: [notes:read]
}
