package mcpauth_test

import (
	"context"
	"io"
	"log"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentid/agentid/mcpauth"
)

// ExampleConnectTool is a tool that reads the person's calendar with the
// credential the hub's vault keeps for them, and asks them to connect the
// calendar the first time it is needed.
func ExampleConnectTool() {
	ctx := context.Background()
	x, err := mcpauth.NewExchanger(ctx, mcpauth.ExchangerConfig{
		Issuer: "https://hub.example.com", ClientID: "calendar-mcp", ClientSecret: "this server's client secret at the hub",
	})
	if err != nil {
		log.Fatal(err)
	}
	conn, err := mcpauth.NewConnector(mcpauth.ConnectOptions{
		// Every replica shares it; here, the server's own client secret.
		StateSecret: []byte("this server's client secret at the hub"),
		Exchanger:   x, // also tell 2025-11-25 clients when the person is done
	})
	if err != nil {
		log.Fatal(err)
	}
	readCalendar := func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		// A *ConnectRequiredError from here makes ConnectTool ask the person.
		resp, err := x.HTTPClient(ctx, "calendar", "calendar.read").Get("https://calendar.example.com/api/events")
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil, nil
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "calendar", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "read_calendar"}, mcpauth.ConnectTool(conn, readCalendar))
}
