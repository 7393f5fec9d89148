package demo_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/demo"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/mcpauth"
)

// TestDemoReportsToolCalls: an agent calls the demo server's tools with
// the MCP Go SDK; the server's Reporter sends the calls to the hub, whose
// audit trail then holds a tool.invoked event per call, linked to the jti
// of the token the hub issued and naming the agent and the server.
func TestDemoReportsToolCalls(t *testing.T) {
	h := servertest.New(t)
	rsSecret := h.AddClient(&store.Client{ID: "demo-mcp", TokenEndpointAuthMethod: "client_secret_basic"})
	srv := httptest.NewUnstartedServer(nil)
	resource := "http://" + srv.Listener.Addr().String() + "/mcp"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Store.CreateResource(ctx, &store.Resource{TenantID: store.DefaultTenant, ID: "demo", URI: resource, Name: "Demo", Scopes: demo.Scopes(), ClientID: "demo-mcp", CreatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	reporter, err := mcpauth.NewReporter(mcpauth.ReporterConfig{Issuer: h.URL, ClientID: "demo-mcp", ClientSecret: rsSecret, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	handler, err := demo.Handler(ctx, demo.Options{Issuer: h.URL, Resource: resource, Reporter: reporter})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = handler
	srv.Start()
	t.Cleanup(srv.Close)

	secret := h.AddClient(&store.Client{ID: "cron-agent", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read", "cc:notes.write"}, DefaultResource: resource})
	oh, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
		Credentials: &oauthex.ClientCredentials{ClientID: "cron-agent", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: secret}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := mcp.NewClient(&mcp.Implementation{Name: "cron", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource, OAuthHandler: oh}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	call(ctx, t, sess, "read_notes", map[string]any{})
	call(ctx, t, sess, "write_note", map[string]any{"text": "x"})
	if err := reporter.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := reporter.Stats(); st.Recorded != 2 || st.Refused != 0 {
		t.Fatalf("reporter stats = %+v, want 2 recorded", st)
	}

	issued, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.TokenIssued, ClientID: "cron-agent"})
	if err != nil || len(issued) == 0 {
		t.Fatalf("token.issued events: %d, %v", len(issued), err)
	}
	jtis := map[string]bool{}
	for _, ev := range issued {
		jtis[ev.Details["jti"]] = true
	}
	evs, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.ToolInvoked})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	// (A call refused for scope is answered 403 by mcpauth.Middleware
	// before the MCP server sees it, so it is no tool call to report.)
	for _, ev := range evs {
		if !jtis[ev.Details["jti"]] || ev.ClientID != "cron-agent" || ev.Resource != resource || ev.Details["reporting_client"] != "demo-mcp" {
			t.Errorf("event = %+v, want a token the hub issued the agent, at the demo server", ev)
		}
		got[ev.Details["tool"]] = ev.Details["tool_outcome"]
	}
	if len(evs) != 2 || got["read_notes"] != mcpauth.ToolSuccess || got["write_note"] != mcpauth.ToolSuccess {
		t.Errorf("tool calls recorded = %v, want read_notes and write_note", got)
	}
}
