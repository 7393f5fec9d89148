package oauth

import "strings"

// ParseScope splits a scope parameter into its tokens (RFC 6749 §3.3:
// scope = scope-token *( SP scope-token ), scope-token = 1*( %x21 / %x23-5B /
// %x5D-7E )). Runs of spaces are tolerated, duplicates are dropped and the
// first-seen order is kept. An empty (or all-space) string yields nil; any
// other character yields invalid_scope.
func ParseScope(s string) ([]string, *Error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	seen := make(map[string]struct{})
	for tok := range strings.SplitSeq(s, " ") {
		if tok == "" {
			continue
		}
		if !validScopeToken(tok) {
			return nil, ErrInvalidScope("scope contains a character not allowed in a scope token")
		}
		if _, dup := seen[tok]; dup {
			continue
		}
		seen[tok] = struct{}{}
		out = append(out, tok)
	}
	return out, nil
}

// ScopeOfflineAccess asks for a refresh token (OpenID Connect Core §11).
// MCP clients send it with their other scopes; agentid decides about refresh
// tokens by the client's registered grant types, and no resource offers it.
const ScopeOfflineAccess = "offline_access"

// ParseRequestedScope is ParseScope for the scope a client asks for at the
// authorization, token or registration endpoint: offline_access is taken
// out of the list and reported apart, so that the rest are resource scopes.
// A scope of offline_access alone yields nil scopes.
func ParseRequestedScope(s string) (scopes []string, offlineAccess bool, err *Error) {
	scopes, err = ParseScope(s)
	if err != nil {
		return nil, false, err
	}
	for i, sc := range scopes {
		if sc == ScopeOfflineAccess {
			scopes = append(scopes[:i], scopes[i+1:]...)
			offlineAccess = true
			break // ParseScope removed duplicates
		}
	}
	if len(scopes) == 0 {
		scopes = nil
	}
	return scopes, offlineAccess, nil
}

// validScopeToken reports whether tok is a non-empty RFC 6749 §3.3
// scope-token: printable ASCII except space, '"' and '\'.
func validScopeToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// FormatScope joins scope tokens with single spaces (RFC 6749 §3.3).
func FormatScope(scopes []string) string {
	return strings.Join(scopes, " ")
}

// ContainsAll reports whether every scope in want is in have.
func ContainsAll(have, want []string) bool {
	set := make(map[string]struct{}, len(have))
	for _, s := range have {
		set[s] = struct{}{}
	}
	for _, s := range want {
		if _, ok := set[s]; !ok {
			return false
		}
	}
	return true
}

// Intersect returns the scopes of a that are also in b, in the order of a,
// without duplicates. The result is nil when nothing is shared.
func Intersect(a, b []string) []string {
	set := make(map[string]struct{}, len(b))
	for _, s := range b {
		set[s] = struct{}{}
	}
	var out []string
	for _, s := range a {
		if _, ok := set[s]; ok {
			out = append(out, s)
			delete(set, s)
		}
	}
	return out
}
