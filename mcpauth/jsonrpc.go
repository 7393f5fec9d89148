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

// toolCalls returns the names of the tools a JSON-RPC request body calls
// (JSON-RPC 2.0 §4, §6: a single request object or a batch array; MCP
// "tools/call" with params.name).
//
// The HTTP layer decides on the tool's scopes before the MCP SDK decodes the
// same bytes, so this parser is deliberately more inclusive than the SDK's:
// member names match case-insensitively and, when a member is repeated, every
// value counts. Whatever tool the SDK could end up calling is therefore in
// the returned list (the fuzz test checks this against a strict decoder).
func toolCalls(body []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, errNotJSONRPC
	}
	var names []string
	switch tok {
	case json.Delim('{'):
		if names, err = messageToolCalls(dec, nil); err != nil {
			return nil, errNotJSONRPC
		}
	case json.Delim('['):
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return nil, errNotJSONRPC
			}
			if t != json.Delim('{') {
				// Not a request object: the SDK rejects it; it calls nothing.
				if err := skipValue(dec, t); err != nil {
					return nil, errNotJSONRPC
				}
				continue
			}
			if names, err = messageToolCalls(dec, names); err != nil {
				return nil, errNotJSONRPC
			}
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, errNotJSONRPC
		}
	default:
		return nil, errNotJSONRPC
	}
	// Only whitespace may follow the message.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotJSONRPC
	}
	return names, nil
}

// messageToolCalls reads the members of one object (its '{' already consumed)
// and appends the tool names it calls.
func messageToolCalls(dec *json.Decoder, names []string) ([]string, error) {
	isCall := false
	var called []string
	for dec.More() {
		key, err := memberName(dec)
		if err != nil {
			return nil, err
		}
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch {
		case strings.EqualFold(key, "method"):
			if s, ok := t.(string); ok && strings.EqualFold(s, "tools/call") {
				isCall = true
			} else if err := skipValue(dec, t); err != nil {
				return nil, err
			}
		case strings.EqualFold(key, "params") && t == json.Delim('{'):
			for dec.More() {
				pkey, err := memberName(dec)
				if err != nil {
					return nil, err
				}
				pt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				if s, ok := pt.(string); ok && strings.EqualFold(pkey, "name") {
					called = append(called, s)
				} else if err := skipValue(dec, pt); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
		default:
			if err := skipValue(dec, t); err != nil {
				return nil, err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	if isCall {
		names = append(names, called...)
	}
	return names, nil
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
