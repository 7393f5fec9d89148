package mcpauth

import (
	"slices"
	"strings"
)

// ToolScopes declares which scopes each MCP tool needs: tool name → scopes,
// all of which the token must carry. Tools not listed need none beyond
// authentication.
//
// [Middleware] enforces it at the HTTP layer, answering a tools/call that
// lacks scopes with 403 and an insufficient_scope challenge (RFC 6750 §3.1),
// the step-up signal of the MCP authorization specification. [RequireScopes]
// enforces the same inside the MCP server as defence in depth.
type ToolScopes map[string][]string

// required returns the union of the scopes the named tools need, in
// declaration order, without duplicates.
func (ts ToolScopes) required(tools []string) []string {
	var out []string
	for _, t := range tools {
		for _, s := range ts[t] {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// missingScopes returns the scopes in need that granted lacks.
func missingScopes(granted, need []string) []string {
	var out []string
	for _, s := range need {
		if !slices.Contains(granted, s) {
			out = append(out, s)
		}
	}
	return out
}

// challengeScopes is the scope attribute of an insufficient_scope challenge:
// every scope the operation needs, i.e. the token's current scopes followed
// by the required ones it lacks. The MCP specification lets the server send
// only the needed scopes; sending the union as well means a client that
// simply replaces its scope request still keeps what it had.
// offline_access is left out: it is not a resource scope (MCP authorization
// §"Refresh tokens": servers SHOULD NOT challenge for it).
func challengeScopes(granted, need []string) []string {
	var out []string
	for _, s := range slices.Concat(granted, need) {
		if s != "offline_access" && validScopeToken(s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// validScopeToken checks RFC 6749 §3.3 scope-token syntax, which also makes
// it safe inside a quoted-string (no '"' or '\').
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

func joinScopes(scopes []string) string {
	var valid []string
	for _, s := range scopes {
		if validScopeToken(s) {
			valid = append(valid, s)
		}
	}
	return strings.Join(valid, " ")
}
