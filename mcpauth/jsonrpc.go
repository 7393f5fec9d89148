package mcpauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// errNotJSONRPC means a POST body is not a single JSON object or array.
var errNotJSONRPC = errors.New("mcpauth: request body is not JSON-RPC")

// rpcMessage is what the middleware needs to know of one JSON-RPC message
// (JSON-RPC 2.0 §4): its id, for error replies, and every value its method
// and MCP principal name could have.
//
// The HTTP layer decides before the MCP SDK decodes the same bytes, so the
// parser is deliberately more inclusive than the SDK's: member names match
// case-insensitively and, when a member is repeated, every value counts.
// Whatever the SDK could end up reading is therefore among the values here
// (the fuzz tests check this against a strict decoder).
type rpcMessage struct {
	id      any      // a string or json.Number; nil if absent or neither
	methods []string // the "method" values that are strings
	names   []string // params.name values (tools/call, prompts/get)
	uris    []string // params.uri values (resources/read)
}

// calls reports whether any of the message's methods is method, compared
// case-insensitively (inclusive, as above).
func (m *rpcMessage) calls(method string) bool {
	for _, s := range m.methods {
		if strings.EqualFold(s, method) {
			return true
		}
	}
	return false
}

// parseRPC reads a JSON-RPC request body: a single message object or a
// batch array (JSON-RPC 2.0 §6). Array elements that are not objects are
// skipped (the SDK rejects them; they call nothing).
func parseRPC(body []byte) (msgs []rpcMessage, batch bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, false, errNotJSONRPC
	}
	switch tok {
	case json.Delim('{'):
		m, err := parseMessage(dec)
		if err != nil {
			return nil, false, errNotJSONRPC
		}
		msgs = append(msgs, m)
	case json.Delim('['):
		batch = true
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, false, errNotJSONRPC
			}
			if t != json.Delim('{') {
				if err := skipValue(dec, t); err != nil {
					return nil, false, errNotJSONRPC
				}
				continue
			}
			m, err := parseMessage(dec)
			if err != nil {
				return nil, false, errNotJSONRPC
			}
			msgs = append(msgs, m)
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, false, errNotJSONRPC
		}
	default:
		return nil, false, errNotJSONRPC
	}
	// Only whitespace may follow the message.
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, errNotJSONRPC
	}
	return msgs, batch, nil
}

// toolCalls returns the names of the tools a JSON-RPC request body calls
// (MCP "tools/call" with params.name), single or batched.
func toolCalls(body []byte) ([]string, error) {
	msgs, _, err := parseRPC(body)
	if err != nil {
		return nil, err
	}
	return calledTools(msgs), nil
}

// calledTools returns the tool names of the tools/call messages in msgs.
func calledTools(msgs []rpcMessage) []string {
	var names []string
	for i := range msgs {
		if msgs[i].calls("tools/call") {
			names = append(names, msgs[i].names...)
		}
	}
	return names
}

// parseMessage reads the members of one object, its '{' already consumed.
func parseMessage(dec *json.Decoder) (rpcMessage, error) {
	var m rpcMessage
	for dec.More() {
		key, err := memberName(dec)
		if err != nil {
			return m, err
		}
		t, err := dec.Token()
		if err != nil {
			return m, err
		}
		switch {
		case key == "id" && m.id == nil && isIDToken(t):
			m.id = t
		case strings.EqualFold(key, "method"):
			if s, ok := t.(string); ok {
				m.methods = append(m.methods, s)
			} else if err := skipValue(dec, t); err != nil {
				return m, err
			}
		case strings.EqualFold(key, "params") && t == json.Delim('{'):
			if err := parseParams(dec, &m); err != nil {
				return m, err
			}
		default:
			if err := skipValue(dec, t); err != nil {
				return m, err
			}
		}
	}
	_, err := dec.Token() // '}'
	return m, err
}

// parseParams reads the members of a params object, its '{' consumed.
func parseParams(dec *json.Decoder, m *rpcMessage) error {
	for dec.More() {
		key, err := memberName(dec)
		if err != nil {
			return err
		}
		t, err := dec.Token()
		if err != nil {
			return err
		}
		s, isString := t.(string)
		switch {
		case isString && strings.EqualFold(key, "name"):
			m.names = append(m.names, s)
		case isString && strings.EqualFold(key, "uri"):
			m.uris = append(m.uris, s)
		default:
			if err := skipValue(dec, t); err != nil {
				return err
			}
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func isIDToken(t json.Token) bool {
	switch t.(type) {
	case string, json.Number:
		return true
	}
	return false
}

func memberName(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", errNotJSONRPC
	}
	return s, nil
}

// skipValue consumes the rest of a value whose first token is t.
func skipValue(dec *json.Decoder, t json.Token) error {
	d, ok := t.(json.Delim)
	if !ok || d == '}' || d == ']' {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}
