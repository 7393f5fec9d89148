package mcpauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// The MCP revisions a server protected by mcpauth serves: the last one with
// sessions and the first stateless one.
var revisions = []string{"2025-11-25", "2026-07-28"}

// bothRevisions is how an MCP server built on the Go SDK v1.8 serves both:
// the SDK answers 2026-07-28 only from a stateless handler, so requests
// naming it in MCP-Protocol-Version go there and the rest to a session-based
// handler, both over one server.
func bothRevisions(server *mcp.Server) http.Handler {
	get := func(*http.Request) *mcp.Server { return server }
	stateful := mcp.NewStreamableHTTPHandler(get, nil)
	stateless := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Stateless: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("MCP-Protocol-Version") >= "2026-07-28" {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
}

// TestRevisionRequireScopes: the official client pinned to each revision
// gets that revision, and RequireScopes refuses inside the MCP server at
// both (no HTTP-level tool scopes here).
func TestRevisionRequireScopes(t *testing.T) {
	for _, rev := range revisions {
		t.Run(rev, func(t *testing.T) {
			env := startMCP(t, nil)
			cs := connectAt(t, rev, env.resource, &http.Client{Transport: bearerTransport{env.hub.Token(env.resource, "notes:read")}}, nil)
			if got := cs.InitializeResult().ProtocolVersion; got != rev {
				t.Fatalf("negotiated %q, want %q", got, rev)
			}
			ctx := context.Background()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}})
			if err != nil || res.IsError || !strings.Contains(resultText(res), "notes of user-1") {
				t.Fatalf("read_notes: %v %+v", err, res)
			}
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "write_notes", Arguments: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			if !res.IsError || !strings.Contains(resultText(res), "notes:write") {
				t.Fatalf("write_notes with notes:read only: IsError=%v text=%q", res.IsError, resultText(res))
			}
		})
	}
}

// TestRevisionStepUp: at both revisions, the middleware's 403
// insufficient_scope makes the official client's OAuth handler fetch a
// token with the union of scopes and retry.
func TestRevisionStepUp(t *testing.T) {
	for _, rev := range revisions {
		t.Run(rev, func(t *testing.T) {
			env := startMCP(t, noteTools)
			var scopesAsked []string
			var forbidden atomic.Int32
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
					body, _ := r.GetBody()
					b, _ := io.ReadAll(body)
					form, _ := url.ParseQuery(string(b))
					scopesAsked = append(scopesAsked, form.Get("scope"))
				}
				resp, err := http.DefaultTransport.RoundTrip(r)
				if err == nil && resp.StatusCode == http.StatusForbidden {
					forbidden.Add(1)
				}
				return resp, err
			})}
			id, secret := env.hub.IntrospectionCredentials()
			h, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
				Credentials: &oauthex.ClientCredentials{ClientID: id, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: secret}},
				HTTPClient:  hc,
			})
			if err != nil {
				t.Fatal(err)
			}
			cs := connectAt(t, rev, env.resource, hc, h)
			if got := cs.InitializeResult().ProtocolVersion; got != rev {
				t.Fatalf("negotiated %q, want %q", got, rev)
			}
			ctx := context.Background()
			if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}}); err != nil || res.IsError {
				t.Fatalf("read_notes: %v %+v", err, res)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write_notes", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Fatalf("write_notes after step-up: %v %+v", err, res)
			}
			if forbidden.Load() != 1 || len(scopesAsked) != 2 {
				t.Fatalf("403s = %d, token requests = %q; want one step-up", forbidden.Load(), scopesAsked)
			}
			asked := strings.Fields(scopesAsked[1])
			slices.Sort(asked)
			if !slices.Equal(asked, []string{"notes:read", "notes:write"}) {
				t.Errorf("step-up asked for %q, want the union notes:read notes:write", asked)
			}
		})
	}
}

// rawPost sends one JSON-RPC message as an MCP client of revision rev would,
// with extra headers, and returns the status and the decoded JSON body.
func rawPost(t *testing.T, endpoint, token, rev, body string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if rev != "" {
		req.Header.Set("MCP-Protocol-Version", rev)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.NewDecoder(resp.Body).Decode(&out)
	}
	return resp, out
}

// callBody is a tools/call of tool as a client of revision rev sends it.
func callBody(rev, tool string) string {
	meta := ""
	if rev >= "2026-07-28" {
		meta = `,"_meta":{"io.modelcontextprotocol/protocolVersion":"` + rev + `","io.modelcontextprotocol/clientCapabilities":{}}`
	}
	return `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}` + meta + `}}`
}

// TestHeaderBodyMismatch: a request whose Mcp-Method / Mcp-Name headers
// name another tool than its body is refused with 400 and the JSON-RPC
// HeaderMismatch error, whichever way the mismatch would have helped, and
// the MCP server never sees it.
func TestHeaderBodyMismatch(t *testing.T) {
	env := startMCP(t, noteTools)
	readToken := env.hub.Token(env.resource, "notes:read")
	allToken := env.hub.Token(env.resource, "notes:read", "notes:write")
	tests := []struct {
		name, token, body string
		hdr               map[string]string
		want              int
		wantCode          float64
	}{
		{name: "header hides a privileged tool", token: readToken, body: "write_notes",
			hdr: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "read_notes"}, want: 400, wantCode: mcp.CodeHeaderMismatch},
		{name: "header names a privileged tool", token: allToken, body: "read_notes",
			hdr: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "write_notes"}, want: 400, wantCode: mcp.CodeHeaderMismatch},
		{name: "method header differs", token: allToken, body: "read_notes",
			hdr: map[string]string{"Mcp-Method": "tools/list", "Mcp-Name": "read_notes"}, want: 400, wantCode: mcp.CodeHeaderMismatch},
		{name: "headers agree, scope lacking", token: readToken, body: "write_notes",
			hdr: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "write_notes"}, want: 403},
		{name: "headers agree", token: readToken, body: "read_notes",
			hdr: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "read_notes"}, want: 200},
	}
	for _, rev := range revisions {
		for _, tt := range tests {
			t.Run(rev+"/"+tt.name, func(t *testing.T) {
				resp, body := rawPost(t, env.resource, tt.token, rev, callBody(rev, tt.body), tt.hdr)
				if resp.StatusCode != tt.want {
					t.Fatalf("status = %d, want %d (%v)", resp.StatusCode, tt.want, body)
				}
				if tt.wantCode == 0 {
					return
				}
				e, _ := body["error"].(map[string]any)
				if e == nil || e["code"] != tt.wantCode || body["id"] != float64(42) {
					t.Fatalf("body = %v, want a JSON-RPC error %v for id 42", body, tt.wantCode)
				}
			})
		}
	}
	t.Run("2026-07-28 without headers", func(t *testing.T) {
		resp, body := rawPost(t, env.resource, readToken, "2026-07-28", callBody("2026-07-28", "read_notes"), nil)
		if resp.StatusCode != 400 {
			t.Fatalf("status = %d, want 400 (%v)", resp.StatusCode, body)
		}
	})
}

// TestSessionIsNotAuthentication: a session id (2025-11-25) or any
// session header sent at 2026-07-28 proves nothing; every request needs its
// own valid token, and a session stays bound to its token's subject.
func TestSessionIsNotAuthentication(t *testing.T) {
	env := startMCP(t, noteTools)
	tok := env.hub.Token(env.resource, "notes:read")
	const rev = "2025-11-25"
	resp, _ := rawPost(t, env.resource, tok, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+rev+`","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, sid)
	}
	session := map[string]string{"Mcp-Session-Id": sid}
	if resp, _ := rawPost(t, env.resource, tok, rev, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, session); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d", resp.StatusCode)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	other := env.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{env.resource}, Scopes: []string{"notes:read"}, Subject: "user-2"})
	expired := env.hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{env.resource}, Scopes: []string{"notes:read"}, OmitExpiry: true})
	tests := []struct {
		name, rev, token string
		want             int
	}{
		{"session without token", rev, "", http.StatusUnauthorized},
		{"session with a garbage token", rev, "not-a-token", http.StatusUnauthorized},
		{"session with an invalid token", rev, expired, http.StatusUnauthorized},
		{"session with another user's token", rev, other, http.StatusForbidden},
		{"session with its own token", rev, tok, http.StatusOK},
		{"stateless revision, session id, no token", "2026-07-28", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Mcp-Session-Id": sid}
			if tt.rev >= "2026-07-28" {
				hdr["Mcp-Method"] = "tools/list"
			}
			if resp, body := rawPost(t, env.resource, tt.token, tt.rev, list, hdr); resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d (%v)", resp.StatusCode, tt.want, body)
			}
		})
	}
}
