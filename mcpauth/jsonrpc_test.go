package mcpauth

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestToolCalls(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr bool
	}{
		{name: "single call", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_notes","arguments":{"q":"x"}}}`, want: []string{"read_notes"}},
		{name: "params before method", body: `{"params":{"arguments":{"name":"decoy"},"name":"write_notes"},"method":"tools/call","id":2,"jsonrpc":"2.0"}`, want: []string{"write_notes"}},
		{name: "other method", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"write_notes"}}`, want: nil},
		{name: "notification", body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, want: nil},
		{name: "response", body: `{"jsonrpc":"2.0","id":1,"result":{"name":"write_notes"}}`, want: nil},
		{name: "batch", body: `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}, 7, {"jsonrpc":"2.0","id":2,"method":"tools/list"}, {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"b"}}]`, want: []string{"a", "b"}},
		{name: "empty batch", body: `[]`, want: nil},
		{name: "case-folded keys count", body: `{"METHOD":"tools/call","Params":{"NAME":"write_notes"}}`, want: []string{"write_notes"}},
		{name: "escaped method", body: `{"method":"tools\/call","params":{"name":"w\u0072ite"}}`, want: []string{"write"}},
		{name: "duplicate params: all count", body: `{"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`, want: []string{"a", "b"}},
		{name: "duplicate method: any call counts", body: `{"method":"tools/call","method":"ping","params":{"name":"a"}}`, want: []string{"a"}},
		{name: "non-string name", body: `{"method":"tools/call","params":{"name":5}}`, want: nil},
		{name: "nested values skipped", body: `{"method":"tools/call","meta":{"method":"x","params":[{"name":"n"}]},"params":{"name":"a","arguments":[[{"name":"z"}]]}}`, want: []string{"a"}},
		{name: "whitespace around", body: " \n{\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}\n ", want: []string{"a"}},
		{name: "empty body", body: ``, wantErr: true},
		{name: "not json", body: `method=tools/call`, wantErr: true},
		{name: "scalar", body: `"tools/call"`, wantErr: true},
		{name: "truncated", body: `{"method":"tools/call","params":{"name":"a"}`, wantErr: true},
		{name: "trailing data", body: `{"method":"tools/list"} {"method":"tools/call","params":{"name":"a"}}`, wantErr: true},
		{name: "trailing garbage", body: `{"method":"tools/list"}x`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := toolCalls([]byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, errNotJSONRPC) {
					t.Fatalf("toolCalls() error = %v, want errNotJSONRPC", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("toolCalls() error = %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("toolCalls() = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzToolCalls checks the property the middleware relies on: whatever tool
// a strict decoder (like the MCP SDK's) would see called, toolCalls reports
// too, or it rejects the body.
func FuzzToolCalls(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_notes"}}`,
		`[{"method":"tools/call","params":{"name":"a"}},{"method":"tools/call","params":{"name":"b"}}]`,
		`{"Method":"tools/call","params":{"Name":"x"}}`,
		`{"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`,
		`{"method":"tools/call","params":{"name":"\u0061"}}`,
		`[1,[2],{"a":{}}]`,
		`{`,
		``,
	} {
		f.Add([]byte(s))
	}
	type message struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		names, err := toolCalls(body)
		if err != nil {
			return
		}
		var msgs []message
		var one message
		if json.Unmarshal(body, &one) == nil {
			msgs = []message{one}
		} else {
			var batch []json.RawMessage
			if json.Unmarshal(body, &batch) != nil {
				return
			}
			for _, raw := range batch {
				var m message
				if json.Unmarshal(raw, &m) == nil {
					msgs = append(msgs, m)
				}
			}
		}
		for _, m := range msgs {
			if m.Method == "tools/call" && m.Params.Name != "" && !slices.Contains(names, m.Params.Name) {
				t.Fatalf("strict decoder sees a call to %q; toolCalls reported only %q", m.Params.Name, names)
			}
		}
	})
}

func TestIsToken68(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"abc.DEF-ghi_~+/", true},
		{"abc==", true},
		{"a=b", false},
		{"=", false},
		{"", false},
		{"a b", false},
		{"a\"b", false},
		{"a,b", false},
		{"é", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := isToken68(tt.in); got != tt.want {
				t.Errorf("isToken68(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestChallengeScopes(t *testing.T) {
	tests := []struct {
		name          string
		granted, need []string
		want          string
	}{
		{"union in order", []string{"notes:read"}, []string{"notes:write", "notes:read"}, "notes:read notes:write"},
		{"no grant", nil, []string{"a", "b"}, "a b"},
		{"offline_access dropped", []string{"offline_access", "a"}, []string{"b"}, "a b"},
		{"invalid tokens dropped", []string{`bad"scope`, "a"}, []string{"b"}, "a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(challengeScopes(tt.granted, tt.need), " "); got != tt.want {
				t.Errorf("challengeScopes() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAudienceMatches(t *testing.T) {
	const res = "https://mcp.example.com/mcp"
	tests := []struct {
		name string
		aud  []string
		want bool
	}{
		{"exact", []string{res}, true},
		{"among others", []string{"https://other.example.com", res}, true},
		{"trailing slash on aud", []string{res + "/"}, true},
		{"two trailing slashes", []string{res + "//"}, false},
		{"prefix is not enough", []string{"https://mcp.example.com"}, false},
		{"longer path", []string{res + "/admin"}, false},
		{"case differs", []string{"https://MCP.example.com/mcp"}, false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := audienceMatches(tt.aud, res); got != tt.want {
				t.Errorf("audienceMatches(%q) = %v, want %v", tt.aud, got, tt.want)
			}
		})
	}
	if !audienceMatches([]string{"https://mcp.example.com/mcp"}, "https://mcp.example.com/mcp/") {
		t.Error("resource with trailing slash should accept aud without it")
	}
}
