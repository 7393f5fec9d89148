package mcpauth

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// MCP request headers. Since MCP 2026-07-28 (SEP-2243) a client mirrors the
// JSON-RPC method and the request's principal name (the tool or prompt
// name, the resource URI) into Mcp-Method and Mcp-Name, so that
// intermediaries can act on a request without parsing its body.
const (
	headerProtocolVersion = "Mcp-Protocol-Version"
	headerMethod          = "Mcp-Method"
	headerName            = "Mcp-Name"
)

// revisionStateless is the first MCP revision without sessions, and the
// first whose clients must send Mcp-Method and Mcp-Name. Revisions are
// dates, so they order as strings.
const revisionStateless = "2026-07-28"

// mirroredTool checks the Mcp-Method and Mcp-Name headers of a POST against
// its parsed body, and returns the tool the headers name (empty when they
// name none). The headers are trusted only once they agree with the body:
// the MCP server executes the body, so authorizing on headers that differ
// from it would let a caller present one tool and run another.
//
// A request that names MCP 2026-07-28 or later in Mcp-Protocol-Version must
// carry the headers its message requires (SEP-2243: Mcp-Method always,
// Mcp-Name for tools/call, prompts/get and resources/read). An older
// request may omit them, but what it sends must agree too.
//
// A non-empty reason means the request must be refused with 400 and the
// JSON-RPC error HeaderMismatch.
func mirroredTool(h http.Header, msgs []rpcMessage, batch bool) (tool, reason string) {
	methods, names := h.Values(headerMethod), h.Values(headerName)
	modern := h.Get(headerProtocolVersion) >= revisionStateless
	if len(methods) == 0 && len(names) == 0 && !modern {
		return "", ""
	}
	if len(methods) > 1 || len(names) > 1 {
		return "", "Mcp-Method and Mcp-Name may each be sent once"
	}
	if batch || len(msgs) != 1 || len(msgs[0].methods) == 0 {
		if len(methods)+len(names) > 0 {
			return "", "Mcp-Method and Mcp-Name describe a single request, which the body is not"
		}
		// A modern batch or response without the headers: nothing to
		// mirror here; the MCP server decides what it accepts.
		return "", ""
	}
	m := &msgs[0]

	if len(methods) == 0 {
		return "", "the Mcp-Method header is required"
	}
	method := methods[0]
	for _, s := range m.methods {
		if s != method {
			return "", "the Mcp-Method header does not match the body's method"
		}
	}

	var principal []string
	switch method {
	case "tools/call", "prompts/get":
		principal = m.names
	case "resources/read":
		principal = m.uris
	default:
		// No principal name to mirror; an Mcp-Name here names nothing
		// and decides nothing.
		return "", ""
	}
	if len(names) == 0 {
		if modern {
			return "", "the Mcp-Name header is required for " + method
		}
		return "", ""
	}
	name, ok := decodeHeaderValue(names[0])
	if !ok {
		return "", "the Mcp-Name header is not validly encoded"
	}
	if len(principal) == 0 {
		return "", "the Mcp-Name header does not match the body"
	}
	for _, s := range principal {
		if s != name {
			return "", "the Mcp-Name header does not match the body"
		}
	}
	if method == "tools/call" {
		tool = name
	}
	return tool, ""
}

// SEP-2243 header value encoding: a value that cannot travel as plain
// header text (non-ASCII, control characters, surrounding white space) is
// sent as "=?base64?" + base64(UTF-8 bytes) + "?=". The markers are
// case-sensitive.
const (
	base64Prefix = "=?base64?"
	base64Suffix = "?="
)

// decodeHeaderValue returns the value a mirrored header carries; false means
// a value in the base64 wrapper whose content is not standard padded base64.
func decodeHeaderValue(v string) (string, bool) {
	inner, ok := strings.CutPrefix(v, base64Prefix)
	if !ok {
		return v, true
	}
	inner, ok = strings.CutSuffix(inner, base64Suffix)
	if !ok {
		return v, true
	}
	// Strict decoding still skips CR and LF; a header value has none.
	b, err := base64.StdEncoding.Strict().DecodeString(inner)
	if err != nil || strings.ContainsAny(inner, "\r\n") {
		return "", false
	}
	return string(b), true
}
