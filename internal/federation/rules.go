package federation

import (
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// Agent maps a workload assertion to the agent identity the first
// matching rule of its issuer names, and that rule; ok is false when no
// rule matches, or when the first rule that matches yields no valid client
// id (a claim its template names is missing or not a string, or the result
// is not 1–128 RFC 3986 unreserved characters): a bad template refuses
// rather than falling through to a later, possibly broader, rule.
//
// A rule matches when every claim it names is a string claim of the
// assertion matching its pattern ("*" matches any run of characters).
// A claim name is a top-level claim, or a path through JSON objects with
// "/" between names ("kubernetes.io/namespace",
// "kubernetes.io/serviceaccount/name") when no top-level claim has that
// exact name.
func Agent(a *Assertion) (clientID string, rule *store.IssuerRule, ok bool) {
	if a == nil || a.Issuer == nil {
		return "", nil, false
	}
	for i := range a.Issuer.Rules {
		r := &a.Issuer.Rules[i]
		if !matches(r, a.Claims) {
			continue
		}
		id, ok := Expand(r.Agent, a.Claims)
		if !ok || !ValidClientID(id) {
			return "", r, false
		}
		return id, r, true
	}
	return "", nil, false
}

// matches reports whether every claim of rule r matches.
func matches(r *store.IssuerRule, claims map[string]any) bool {
	if len(r.Claims) == 0 {
		return false
	}
	for name, pattern := range r.Claims {
		v, ok := StringClaim(claims, name)
		if !ok || !Glob(pattern, v) {
			return false
		}
	}
	return true
}

// StringClaim returns the string claim name: the top-level claim of that
// name, or else the value at the "/"-separated path through JSON objects.
func StringClaim(claims map[string]any, name string) (string, bool) {
	if v, ok := claims[name]; ok {
		s, isStr := v.(string)
		return s, isStr
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[part]; !ok {
			return "", false
		}
	}
	s, ok := cur.(string)
	return s, ok
}

// Glob reports whether s matches pattern, where "*" matches any run of
// characters (none included) and every other character only itself.
// Linear in practice: the classic backtrack to the last star.
func Glob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Expand replaces every "{claim}" in template by that string claim
// (StringClaim); ok is false for a claim that is absent or not a string,
// an empty one, or an unbalanced brace.
func Expand(template string, claims map[string]any) (string, bool) {
	var b strings.Builder
	rest := template
	for {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			b.WriteString(rest)
			return b.String(), true
		}
		if rest[open] == '}' {
			return "", false
		}
		b.WriteString(rest[:open])
		rest = rest[open+1:]
		end := strings.IndexAny(rest, "{}")
		if end < 0 || rest[end] != '}' {
			return "", false
		}
		v, ok := StringClaim(claims, rest[:end])
		if !ok || v == "" {
			return "", false
		}
		b.WriteString(v)
		rest = rest[end+1:]
	}
}

// ValidClientID reports whether id is 1–128 RFC 3986 unreserved
// characters, the client ids the hub accepts (internal/clients).
func ValidClientID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}
