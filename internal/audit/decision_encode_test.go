package audit

import (
	"encoding/json"
	"testing"
)

// TestEncodeScopesIsJSONMarshal: the reflection-free encoding of a
// decision's verdicts is byte for byte what json.Marshal writes, and gives
// way to it whenever a string needs escaping.
func TestEncodeScopesIsJSONMarshal(t *testing.T) {
	tests := []struct {
		name     string
		scopes   []ScopeDecision
		fallback bool
	}{
		{name: "one granted by policy", scopes: []ScopeDecision{{Scope: "notes.read", Allowed: true, Reason: ReasonPolicy, PolicyIDs: []string{"client-credentials-tagged"}}}},
		{name: "every field", scopes: []ScopeDecision{
			{Scope: "notes.read", Allowed: true, Reason: ReasonPolicy, PolicyIDs: []string{"a", "b"}},
			{Scope: "notes.write", Reason: ReasonConsent},
			{Scope: "notes.delete", Reason: ReasonCeiling},
			{Scope: "admin", Reason: ReasonPolicy, PolicyIDs: []string{"x,y"}, Errors: []string{"while evaluating policy `p`: error"}},
		}},
		{name: "no reason (read back from an old event)", scopes: []ScopeDecision{{Scope: "a", Allowed: true}}},
		{name: "empty lists are left out", scopes: []ScopeDecision{{Scope: "a", PolicyIDs: []string{}, Errors: []string{}}}},
		{name: "quote in a policy id", scopes: []ScopeDecision{{Scope: "a", PolicyIDs: []string{`say "no"`}}}, fallback: true},
		{name: "backslash in an error", scopes: []ScopeDecision{{Scope: "a", Errors: []string{`c:\policy`}}}, fallback: true},
		{name: "html characters", scopes: []ScopeDecision{{Scope: "a", Errors: []string{"<b>&</b>"}}}, fallback: true},
		{name: "non-ASCII", scopes: []ScopeDecision{{Scope: "a", PolicyIDs: []string{"règle"}}}, fallback: true},
		{name: "control character", scopes: []ScopeDecision{{Scope: "a", Errors: []string{"line\nbreak"}}}, fallback: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.scopes)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := encodeScopes(tc.scopes)
			if ok == tc.fallback {
				t.Fatalf("encodeScopes ok = %v, want %v", ok, !tc.fallback)
			}
			if ok && got != string(want) {
				t.Fatalf("encodeScopes = %s\njson.Marshal = %s", got, want)
			}
			details := map[string]string{}
			Decision{Scopes: tc.scopes}.put(details)
			if details[DetailPolicyDecisions] != string(want) {
				t.Fatalf("put stored %s, want %s", details[DetailPolicyDecisions], want)
			}
		})
	}
}

// FuzzEncodeScopes: whenever the fast encoding claims success it equals
// json.Marshal.
func FuzzEncodeScopes(f *testing.F) {
	f.Add("notes.read", true, "policy", "p1", "")
	f.Add("a b", false, "", `"`, "\x00")
	f.Fuzz(func(t *testing.T, scope string, allowed bool, reason, policy, errText string) {
		scopes := []ScopeDecision{{Scope: scope, Allowed: allowed, Reason: Reason(reason)}}
		if policy != "" {
			scopes[0].PolicyIDs = []string{policy, policy}
		}
		if errText != "" {
			scopes[0].Errors = []string{errText}
		}
		want, err := json.Marshal(scopes)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := encodeScopes(scopes); ok && got != string(want) {
			t.Fatalf("encodeScopes = %s\njson.Marshal = %s", got, want)
		}
	})
}
