package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentid/agentid/mcpauth"
)

// calendarTool is read_calendar reading through the hub's vault: the demo
// server retrieves the person's calendar token with its own client
// (mcpauth.Exchanger.Connection, through HTTPClient), calls the calendar,
// and answers with the events only — the token never reaches the agent.
// When the person has not connected the calendar, mcpauth.ConnectTool
// asks them to, in the way the agent's MCP revision allows.
func calendarTool(ctx context.Context, opts Options) (mcp.ToolHandlerFor[noIn, any], error) {
	ca := opts.Calendar
	x, err := mcpauth.NewExchanger(ctx, mcpauth.ExchangerConfig{Issuer: opts.Issuer, ClientID: ca.ClientID, ClientSecret: ca.ClientSecret, HTTPClient: opts.HTTPClient})
	if err != nil {
		return nil, err
	}
	// The MAC key of requestState comes from the server's own client
	// secret: every replica of the server has it, nobody else does.
	conn, err := mcpauth.NewConnector(mcpauth.ConnectOptions{StateSecret: []byte(ca.ClientSecret), Exchanger: x, CompletionPoll: 2 * time.Second,
		Message: func(e *mcpauth.ConnectRequiredError) string {
			if e.Status == mcpauth.ConnectionNeedsReauth {
				return "Your Demo Calendar connection stopped working. Connect it again so that the demo server can read today's events for you."
			}
			return "Connect your Demo Calendar so that the demo server can read today's events for you."
		}})
	if err != nil {
		return nil, err
	}
	read := func(ctx context.Context, _ *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ca.EventsURL, nil)
		if err != nil {
			return nil, nil, err
		}
		hc := x.HTTPClient(ctx, ca.Provider, calendarScope)
		hc.Timeout = 10 * time.Second
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err // a *ConnectRequiredError among them, for ConnectTool
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, nil, fmt.Errorf("the calendar answered %s", resp.Status)
		}
		var body struct {
			Events []CalendarEvent `json:"events"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
			return nil, nil, fmt.Errorf("the calendar's answer: %w", err)
		}
		var b strings.Builder
		b.WriteString("today in your Demo Calendar (read through the agentid vault):")
		for _, e := range body.Events {
			fmt.Fprintf(&b, "\n%s %s", e.Start, e.Title)
		}
		return text(b.String()), nil, nil
	}
	return mcpauth.ConnectTool(conn, read), nil
}
