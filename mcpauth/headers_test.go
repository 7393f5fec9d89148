package mcpauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestMirroredTool(t *testing.T) {
	const (
		call    = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_notes","arguments":{}}}`
		list    = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
		read    = `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"notes://1"}}`
		prompt  = `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summary"}}`
		batch   = `[` + call + `]`
		resp    = `{"jsonrpc":"2.0","id":1,"result":{}}`
		legacy  = "2025-11-25"
		current = "2026-07-28"
	)
	tests := []struct {
		name                  string
		version, method, mcpN string
		extra                 http.Header
		body                  string
		wantTool              string
		wantRefused           bool
	}{
		{name: "legacy without headers", version: legacy, body: call},
		{name: "no version, no headers", body: call},
		{name: "current with matching headers", version: current, method: "tools/call", mcpN: "read_notes", body: call, wantTool: "read_notes"},
		{name: "legacy with matching headers", version: legacy, method: "tools/call", mcpN: "read_notes", body: call, wantTool: "read_notes"},
		{name: "base64 name", version: current, method: "tools/call", mcpN: "=?base64?" + base64.StdEncoding.EncodeToString([]byte("read_notes")) + "?=", body: call, wantTool: "read_notes"},
		{name: "other method, no name needed", version: current, method: "tools/list", body: list},
		{name: "resources/read by uri", version: current, method: "resources/read", mcpN: "notes://1", body: read},
		{name: "prompts/get by name", version: current, method: "prompts/get", mcpN: "summary", body: prompt},
		{name: "current response needs no headers", version: current, body: resp},
		{name: "current batch without headers passes on", version: current, body: batch, wantTool: ""},

		{name: "name names another tool", version: current, method: "tools/call", mcpN: "delete_note", body: call, wantRefused: true},
		{name: "legacy name names another tool", version: legacy, method: "tools/call", mcpN: "delete_note", body: call, wantRefused: true},
		{name: "name without method, legacy", version: legacy, mcpN: "read_notes", body: call, wantRefused: true},
		{name: "method differs", version: current, method: "tools/list", mcpN: "read_notes", body: call, wantRefused: true},
		{name: "method case differs", version: current, method: "Tools/Call", mcpN: "read_notes", body: call, wantRefused: true},
		{name: "current without Mcp-Method", version: current, body: call, wantRefused: true},
		{name: "current without Mcp-Name", version: current, method: "tools/call", body: call, wantRefused: true},
		{name: "future revision without headers", version: "2027-03-01", body: list, wantRefused: true},
		{name: "headers on a batch", version: legacy, method: "tools/call", mcpN: "read_notes", body: batch, wantRefused: true},
		{name: "headers on a response", version: current, method: "tools/call", body: resp, wantRefused: true},
		{name: "repeated Mcp-Name", version: current, method: "tools/call", mcpN: "read_notes", extra: http.Header{"Mcp-Name": {"delete_note"}}, body: call, wantRefused: true},
		{name: "repeated Mcp-Method", version: current, method: "tools/call", mcpN: "read_notes", extra: http.Header{"Mcp-Method": {"tools/call"}}, body: call, wantRefused: true},
		{name: "duplicate name members", version: current, method: "tools/call", mcpN: "read_notes", body: `{"id":1,"method":"tools/call","params":{"name":"read_notes","Name":"delete_note"}}`, wantRefused: true},
		{name: "duplicate method members", version: current, method: "tools/list", body: `{"id":1,"method":"tools/list","METHOD":"tools/call","params":{"name":"x"}}`, wantRefused: true},
		{name: "bad base64", version: current, method: "tools/call", mcpN: "=?base64?!!!?=", body: call, wantRefused: true},
		{name: "call without a name", version: current, method: "tools/call", mcpN: "read_notes", body: `{"id":1,"method":"tools/call","params":{}}`, wantRefused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, vs := range tt.extra {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			if tt.version != "" {
				h.Set("MCP-Protocol-Version", tt.version)
			}
			if tt.method != "" {
				h.Add("Mcp-Method", tt.method)
			}
			if tt.mcpN != "" {
				h.Add("Mcp-Name", tt.mcpN)
			}
			msgs, batch, err := parseRPC([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			tool, reason := mirroredTool(h, msgs, batch)
			if (reason != "") != tt.wantRefused {
				t.Fatalf("reason = %q, want refused = %v", reason, tt.wantRefused)
			}
			if tool != tt.wantTool {
				t.Errorf("tool = %q, want %q", tool, tt.wantTool)
			}
		})
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"read_notes", "read_notes", true},
		{"", "", true},
		{"=?base64?" + base64.StdEncoding.EncodeToString([]byte("notizen lesen ✓")) + "?=", "notizen lesen ✓", true},
		{"=?base64??=", "", true},
		{"=?BASE64?cmVhZA==?=", "=?BASE64?cmVhZA==?=", true}, // markers are case-sensitive
		{"=?base64?cmVhZA==", "=?base64?cmVhZA==", true},     // no closing marker: plain text
		{"=?base64?=", "=?base64?=", true},
		{"=?base64?cmVhZA?=", "", false}, // unpadded
		{"=?base64?cmVhZA=\n=?=", "", false},
		{"=?base64?***?=", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := decodeHeaderValue(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("decodeHeaderValue(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// encodeHeaderValue is the client side of the SEP-2243 encoding, for tests.
func encodeHeaderValue(s string) string {
	plain := s == "" || (s[0] != ' ' && s[0] != '\t' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t')
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] >= 0x20 && s[i] <= 0x7e
	}
	if plain && !(strings.HasPrefix(s, base64Prefix) && strings.HasSuffix(s, base64Suffix)) {
		return s
	}
	return base64Prefix + base64.StdEncoding.EncodeToString([]byte(s)) + base64Suffix
}

// FuzzHeaderValue: every string survives the SEP-2243 encoding, and
// decoding never yields a value for text it did not come from.
func FuzzHeaderValue(f *testing.F) {
	for _, s := range []string{"read_notes", "", " lead", "tail\t", "✓", "=?base64?x?=", "=?base64?", "a\r\nb", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := decodeHeaderValue(encodeHeaderValue(s)); !ok || got != s {
			t.Fatalf("round trip of %q gave %q, %v", s, got, ok)
		}
		got, ok := decodeHeaderValue(s)
		if ok && got != s && !(strings.HasPrefix(s, base64Prefix) && strings.HasSuffix(s, base64Suffix)) {
			t.Fatalf("%q decoded to %q without the base64 markers", s, got)
		}
	})
}

// FuzzMirroredTool checks what the middleware relies on: when the headers
// are accepted and name a tool, a strict decoder (like the MCP SDK's) sees
// exactly that tool called, and nothing else.
func FuzzMirroredTool(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_notes"}}`), "tools/call", "read_notes", "2026-07-28")
	f.Add([]byte(`{"id":1,"method":"tools/call","params":{"name":"a","Name":"b"}}`), "tools/call", "a", "2026-07-28")
	f.Add([]byte(`{"id":1,"Method":"tools/call","method":"tools/list","params":{"name":"a"}}`), "tools/list", "", "2025-11-25")
	f.Add([]byte(`[{"id":1,"method":"tools/call","params":{"name":"a"}}]`), "tools/call", "a", "")
	f.Add([]byte(`{"id":"x","method":"tools/call","params":{"name":"\u00e9"}}`), "tools/call", "=?base64?w6k=?=", "2026-07-28")
	type message struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	f.Fuzz(func(t *testing.T, body []byte, method, name, version string) {
		msgs, batch, err := parseRPC(body)
		if err != nil {
			return
		}
		h := http.Header{}
		h.Set("MCP-Protocol-Version", version)
		h.Set("Mcp-Method", method)
		h.Set("Mcp-Name", name)
		tool, reason := mirroredTool(h, msgs, batch)
		if reason != "" || tool == "" {
			return
		}
		var m message
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("headers accepted for a body that is not one message: %q", body)
		}
		if m.Method != "tools/call" || m.Params.Name != tool {
			t.Fatalf("headers name %q; a strict decoder sees %q calling %q", tool, m.Method, m.Params.Name)
		}
	})
}
