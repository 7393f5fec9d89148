package demo_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// The MCP revisions the demo serves: the last with sessions, and the first
// stateless one (the current revision).
var revisions = []string{"2025-11-25", "2026-07-28"}

// bearer sends a fixed access token.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// readerToken is a notes.read token for the demo at resource, from the hub.
func readerToken(t *testing.T, h *servertest.Hub, resource string) string {
	t.Helper()
	secret := h.AddClient(&store.Client{ID: "reader", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: resource})
	return clientCredentialsToken(t, h, "reader", secret, resource, "notes.read")
}

// TestDemoToolAnnotations lists the demo's tools with the official client
// at both revisions: every tool has a title and spells out every MCP tool
// annotation, truthfully. (TestToolHintsAndScopesAgree checks that the
// hints and the scopes tell the same story.)
func TestDemoToolAnnotations(t *testing.T) {
	type hints struct {
		title                                        string
		readOnly, destructive, idempotent, openWorld bool
	}
	want := map[string]hints{
		"read_notes":    {title: "Read notes", readOnly: true, idempotent: true},
		"read_calendar": {title: "Read today's calendar", readOnly: true, idempotent: true},
		"write_note":    {title: "Write a note"},
		"delete_note":   {title: "Delete a note", destructive: true, idempotent: true},
	}
	h := servertest.New(t)
	resource := startDemo(t, h)
	tok := readerToken(t, h, resource)
	for _, rev := range revisions {
		t.Run(rev, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sess, err := mcp.NewClient(&mcp.Implementation{Name: "lister", Version: "1"}, nil).Connect(ctx,
				&mcp.StreamableClientTransport{Endpoint: resource, HTTPClient: &http.Client{Transport: bearer(tok)}},
				&mcp.ClientSessionOptions{ProtocolVersion: rev})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			if got := sess.InitializeResult().ProtocolVersion; got != rev {
				t.Fatalf("negotiated MCP %q, want %q", got, rev)
			}
			res, err := sess.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Tools) != len(want) {
				t.Fatalf("%d tools, want %d", len(res.Tools), len(want))
			}
			for _, tool := range res.Tools {
				w, ok := want[tool.Name]
				a := tool.Annotations
				switch {
				case !ok:
					t.Errorf("unexpected tool %q", tool.Name)
				case tool.Title != w.title:
					t.Errorf("%s: title %q, want %q", tool.Name, tool.Title, w.title)
				case a == nil || a.DestructiveHint == nil || a.OpenWorldHint == nil:
					t.Errorf("%s: annotations %+v leave hints to their pessimistic defaults", tool.Name, a)
				case a.ReadOnlyHint != w.readOnly || *a.DestructiveHint != w.destructive || a.IdempotentHint != w.idempotent || *a.OpenWorldHint != w.openWorld:
					t.Errorf("%s: readOnly=%v destructive=%v idempotent=%v openWorld=%v, want %+v",
						tool.Name, a.ReadOnlyHint, *a.DestructiveHint, a.IdempotentHint, *a.OpenWorldHint, w)
				}
			}
		})
	}
}

// TestDemoSessionIsNotAuthentication: a valid session id with no token, or
// with an invalid one, gets 401 at the demo, whatever revision it names.
func TestDemoSessionIsNotAuthentication(t *testing.T) {
	h := servertest.New(t)
	resource := startDemo(t, h)
	tok := readerToken(t, h, resource)
	post := func(token, rev, sid, body string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, resource, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if rev != "" {
			req.Header.Set("MCP-Protocol-Version", rev)
		}
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post(tok, "", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d, session %q", resp.StatusCode, sid)
	}
	if resp := post(tok, "2025-11-25", sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d", resp.StatusCode)
	}
	const list = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	tests := []struct {
		name, token, rev string
		want             int
	}{
		{"no token", "", "2025-11-25", http.StatusUnauthorized},
		{"invalid token", tok + "x", "2025-11-25", http.StatusUnauthorized},
		{"valid token", tok, "2025-11-25", http.StatusOK},
		{"no token at 2026-07-28", "", "2026-07-28", http.StatusUnauthorized},
		{"invalid token at 2026-07-28", "garbage", "2026-07-28", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := post(tt.token, tt.rev, sid, list, "Mcp-Method", "tools/list"); resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestDemoHeaderMismatch: at 2026-07-28, an Mcp-Name header naming a tool
// the token may call does not get a call to another tool past the demo.
func TestDemoHeaderMismatch(t *testing.T) {
	h := servertest.New(t)
	resource := startDemo(t, h)
	tok := readerToken(t, h, resource)
	body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_note","arguments":{"id":1},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	req, _ := http.NewRequest(http.MethodPost, resource, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "read_notes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID    int `json:"id"`
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || out.Error.Code != mcp.CodeHeaderMismatch || out.ID != 9 {
		t.Fatalf("status %d, body %+v; want 400 with HeaderMismatch for id 9", resp.StatusCode, out)
	}
}
