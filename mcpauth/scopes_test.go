package mcpauth_test

import (
	"strings"
	"testing"

	"github.com/agentid/agentid/mcpauth"
)

var noteTools = mcpauth.ToolScopes{
	"read_notes":   {"notes:read"},
	"write_notes":  {"notes:write"},
	"delete_notes": {"notes:delete", "notes:write"},
}

func call(tool string) string {
	return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
}

func TestToolScopes(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name      string
		scopes    []string
		body      string
		wantCode  int
		wantScope string // scope attribute of the 403 challenge
	}{
		{name: "granted", scopes: []string{"notes:read"}, body: call("read_notes"), wantCode: 204},
		{name: "tool without requirements", scopes: nil, body: call("echo"), wantCode: 204},
		{name: "not a tool call", scopes: nil, body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, wantCode: 204},
		{name: "initialize", scopes: nil, body: `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`, wantCode: 204},
		{name: "missing one scope", scopes: []string{"notes:read"}, body: call("write_notes"), wantCode: 403, wantScope: "notes:read notes:write"},
		{name: "missing several scopes", scopes: []string{"notes:read"}, body: call("delete_notes"), wantCode: 403, wantScope: "notes:read notes:delete notes:write"},
		{name: "partially granted", scopes: []string{"notes:write"}, body: call("delete_notes"), wantCode: 403, wantScope: "notes:write notes:delete"},
		{name: "no scopes at all", scopes: nil, body: call("read_notes"), wantCode: 403, wantScope: "notes:read"},
		{name: "offline_access not challenged", scopes: []string{"offline_access", "notes:read"}, body: call("write_notes"), wantCode: 403, wantScope: "notes:read notes:write"},
		{
			name: "batch: union of needs", scopes: []string{"notes:read"},
			body:     "[" + call("read_notes") + "," + call("write_notes") + "," + call("delete_notes") + "]",
			wantCode: 403, wantScope: "notes:read notes:write notes:delete",
		},
		{name: "batch all granted", scopes: []string{"notes:read", "notes:write"}, body: "[" + call("read_notes") + "," + call("write_notes") + "]", wantCode: 204},
		{name: "case-folded keys", scopes: []string{"notes:read"}, body: `{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","PARAMS":{"Name":"write_notes"}}`, wantCode: 403, wantScope: "notes:read notes:write"},
		{name: "duplicate params smuggling", scopes: []string{"notes:read"}, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_notes"},"params":{"name":"write_notes"}}`, wantCode: 403, wantScope: "notes:read notes:write"},
		{name: "unparseable body", scopes: []string{"notes:read"}, body: `{"method":"tools/call"`, wantCode: 400},
		{name: "trailing second message", scopes: []string{"notes:read"}, body: call("read_notes") + call("write_notes"), wantCode: 400},
		{name: "body too large", scopes: []string{"notes:read"}, body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_notes","arguments":{"x":"` + strings.Repeat("a", 2000) + `"}}}`, wantCode: 413},
	}
	mw := mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{ToolScopes: noteTools, Scopes: []string{"notes:read"}, MaxBodyBytes: 1024})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := f.hub.Token(resource, tt.scopes...)
			rec, s := serve(t, mw, request("POST", tok, tt.body))
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode == 204 {
				if s.body != tt.body {
					t.Errorf("handler saw body %q, want it restored to %q", s.body, tt.body)
				}
				if s.claims == nil {
					t.Error("no claims in context")
				}
				return
			}
			if s.called {
				t.Fatal("protected handler ran")
			}
			if tt.wantCode != 403 {
				return
			}
			ch := challenge(t, rec)
			if ch["error"] != "insufficient_scope" {
				t.Errorf("error = %q, want insufficient_scope", ch["error"])
			}
			if ch["scope"] != tt.wantScope {
				t.Errorf("scope = %q, want %q", ch["scope"], tt.wantScope)
			}
			if ch["resource_metadata"] != metadataURL {
				t.Errorf("resource_metadata = %q", ch["resource_metadata"])
			}
			if ch["error_description"] == "" {
				t.Error("no error_description")
			}
		})
	}

	t.Run("GET is not peeked", func(t *testing.T) {
		rec, s := serve(t, mw, request("GET", f.hub.Token(resource), ""))
		if rec.Code != 204 || !s.called {
			t.Fatalf("status = %d", rec.Code)
		}
	})
	t.Run("unauthenticated tool call gets 401, not 403", func(t *testing.T) {
		rec, _ := serve(t, mw, request("POST", "", call("write_notes")))
		if ch := challenge(t, rec); rec.Code != 401 || ch["error"] != "" || ch["scope"] != "notes:read" {
			t.Fatalf("status %d, challenge %v", rec.Code, ch)
		}
	})
	t.Run("custom resource_metadata", func(t *testing.T) {
		mw := mcpauth.Middleware(f.v, mcpauth.MiddlewareOptions{ResourceMetadataURL: "https://mcp.example.com/prm.json"})
		rec, _ := serve(t, mw, request("POST", "", ""))
		if ch := challenge(t, rec); ch["resource_metadata"] != "https://mcp.example.com/prm.json" {
			t.Fatalf("challenge %v", ch)
		}
		if h := rec.Header().Get("WWW-Authenticate"); strings.Contains(h, "scope=") {
			t.Errorf("scope attribute without configured scopes: %q", h)
		}
	})
}
