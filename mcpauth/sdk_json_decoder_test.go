package mcpauth

import (
	"bytes"
	"slices"
	"testing"

	sjson "github.com/segmentio/encoding/json"
)

// FuzzToolCallsSDKDecoder checks toolCalls against the decoder the MCP
// Go SDK v1.8 really uses for JSON-RPC messages and tool-call params
// (segmentio/encoding/json with case-sensitive field matching): every tool
// the SDK would call must be in toolCalls' list.
func FuzzToolCallsSDKDecoder(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_notes"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"a","name":"b"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"w\u0072ite"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\ud800"}}`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xff\"}}",
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`,
		` {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}} `,
	} {
		f.Add([]byte(s))
	}
	type params struct {
		Name string `json:"name"`
	}
	type wire struct {
		Method sjson.RawMessage `json:"method"`
		Params sjson.RawMessage `json:"params"`
	}
	decode := func(data []byte, v any) error {
		d := sjson.NewDecoder(bytes.NewReader(data))
		d.DontMatchCaseInsensitiveStructFields()
		return d.Decode(v)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		names, err := toolCalls(body)
		if err != nil {
			return
		}
		var w wire
		if decode(body, &w) != nil || len(w.Method) == 0 {
			return
		}
		var method string
		if decode(w.Method, &method) != nil || method != "tools/call" {
			return
		}
		var p params
		if decode(w.Params, &p) != nil {
			return
		}
		if p.Name != "" && !slices.Contains(names, p.Name) {
			t.Fatalf("the SDK's decoder calls %q; toolCalls reported %q", p.Name, names)
		}
	})
}
