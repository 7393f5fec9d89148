package store

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
)

// scopeVerdict mirrors the audit package's ScopeDecision, whose JSON array
// is the policy_decisions detail.
type scopeVerdict struct {
	Scope     string   `json:"scope"`
	Allowed   bool     `json:"allowed"`
	Reason    string   `json:"reason,omitempty"`
	PolicyIDs []string `json:"policies,omitempty"`
	Errors    []string `json:"errors,omitempty"`
}

func marshalVerdicts(t testing.TB, vs ...scopeVerdict) string {
	b, err := json.Marshal(vs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCompactDecisions(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		stored string // "" when the value is stored as it is
	}{
		{"client credentials", marshalVerdicts(t, scopeVerdict{Scope: "notes.read", Allowed: true, Reason: "policy", PolicyIDs: []string{"client-credentials-tagged"}}),
			"~ap;notes.read;client-credentials-tagged"},
		{"several verdicts", marshalVerdicts(t,
			scopeVerdict{Scope: "a", Allowed: true, Reason: "policy", PolicyIDs: []string{"p1", "p2"}},
			scopeVerdict{Scope: "b", Allowed: false, Reason: "ceiling"},
			scopeVerdict{Scope: "c", Allowed: false, Reason: "consent", PolicyIDs: []string{"p3"}, Errors: []string{"e1", "e2"}},
			scopeVerdict{Scope: "d", Allowed: false},
			scopeVerdict{Scope: "", Allowed: true, Errors: []string{"e"}}),
			"~ap;a;p1,p2|dc;b;|dn;c;p3;e1,e2|d;d;|a;;;e"},
		{"a separator in a scope", marshalVerdicts(t, scopeVerdict{Scope: "a;b", Allowed: true}), ""},
		{"a separator in a policy id", marshalVerdicts(t, scopeVerdict{Scope: "a", Allowed: true, PolicyIDs: []string{"x,y"}}), ""},
		{"a bar in an error", marshalVerdicts(t, scopeVerdict{Scope: "a", Errors: []string{"x|y"}}), ""},
		{"an escaped character", marshalVerdicts(t, scopeVerdict{Scope: "a<b", Allowed: true}), ""},
		{"a character outside ASCII", marshalVerdicts(t, scopeVerdict{Scope: "café", Allowed: true}), ""},
		{"an empty policy id", marshalVerdicts(t, scopeVerdict{Scope: "a", PolicyIDs: []string{""}}), ""},
		{"another reason", marshalVerdicts(t, scopeVerdict{Scope: "a", Reason: "other"}), ""},
		{"no verdict", "[]", ""},
		{"spacing", `[{"scope": "a","allowed":true}]`, ""},
		{"another field order", `[{"allowed":true,"scope":"a"}]`, ""},
		{"an empty reason written out", `[{"scope":"a","allowed":true,"reason":""}]`, ""},
		{"an empty list written out", `[{"scope":"a","allowed":true,"policies":[]}]`, ""},
		{"trailing bytes", `[{"scope":"a","allowed":true}]x`, ""},
		{"not JSON", "scope.a=granted", ""},
		{"a value with the mark", "~ap;a;", "~~ap;a;"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]string{"policy_decisions": tc.in}
			saved, _ := CompactDetails(in)
			want := tc.stored
			if want == "" {
				want = tc.in
			}
			if saved["~d"] != want {
				t.Fatalf("stored %q, want %q", saved["~d"], want)
			}
			back, err := ExpandDetails(saved)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(back, in) {
				t.Errorf("read back %q, want %q", back["policy_decisions"], tc.in)
			}
		})
	}
	// A row written before the compact form (under the coded key, as JSON)
	// reads back as it is.
	old := map[string]string{"~d": `[{"scope":"a","allowed":true}]`}
	if got, err := ExpandDetails(old); err != nil || got["policy_decisions"] != old["~d"] {
		t.Errorf("ExpandDetails(%v) = %v, %v", old, got, err)
	}
}

func TestExpandDecisionsRejects(t *testing.T) {
	for _, v := range []string{"~", "~x;a;", "~a", "~a;b", "~a;b;c;d;e", "~az;a;", "~apx;a;", "~a;a;p,,q", "~a;a;;",
		"~a;a;|", "~a;a<b;", "~ap;a;p|"} {
		if m, err := ExpandDetails(map[string]string{"~d": v}); err == nil {
			t.Errorf("ExpandDetails(%q) = %q, want an error", v, m["policy_decisions"])
		}
	}
}

// FuzzDecisionsRoundTrip: whatever a policy_decisions value is, it reads
// back byte for byte.
func FuzzDecisionsRoundTrip(f *testing.F) {
	f.Add(`[{"scope":"notes.read","allowed":true,"reason":"policy","policies":["p"]}]`)
	f.Add(`[{"scope":"a","allowed":false,"reason":"consent","policies":["p","q"],"errors":["e"]},{"scope":"","allowed":true}]`)
	f.Add("~ap;a;p")
	f.Add("~~")
	f.Fuzz(func(t *testing.T, v string) {
		in := map[string]string{"policy_decisions": v}
		saved, _ := CompactDetails(in)
		back, err := ExpandDetails(saved)
		if err != nil {
			t.Fatalf("%q stored as %q: %v", v, saved["~d"], err)
		}
		if back["policy_decisions"] != v {
			t.Fatalf("%q stored as %q read back as %q", v, saved["~d"], back["policy_decisions"])
		}
	})
}

// FuzzDecisionsCompactWhenPlain: the audit package's JSON of verdicts
// whose strings hold no escaped character and no separator is always
// stored in the compact form.
func FuzzDecisionsCompactWhenPlain(f *testing.F) {
	f.Add("notes.read", true, "policy", "p1", "", "b", false, "ceiling")
	f.Fuzz(func(t *testing.T, scope string, allowed bool, reason, policy, errs, scope2 string, allowed2 bool, reason2 string) {
		vs := []scopeVerdict{{Scope: scope, Allowed: allowed, Reason: reason}, {Scope: scope2, Allowed: allowed2, Reason: reason2}}
		if policy != "" {
			vs[0].PolicyIDs = strings.Split(policy, " ")
		}
		if errs != "" {
			vs[1].Errors = []string{errs}
		}
		v := marshalVerdicts(t, vs...)
		plain := true
		for _, s := range append(append([]string{scope, scope2}, vs[0].PolicyIDs...), vs[1].Errors...) {
			plain = plain && plainDecisionString(s)
		}
		for _, p := range vs[0].PolicyIDs {
			plain = plain && p != ""
		}
		for _, r := range []string{reason, reason2} {
			_, known := decisionReasons[r]
			plain = plain && (r == "" || known)
		}
		saved, _ := CompactDetails(map[string]string{"policy_decisions": v})
		if compact := strings.HasPrefix(saved["~d"], "~") && !strings.HasPrefix(saved["~d"], "~~"); compact != plain {
			t.Fatalf("%s stored as %q (compact %v, want %v)", v, saved["~d"], compact, plain)
		}
		back, err := ExpandDetails(saved)
		if err != nil || back["policy_decisions"] != v {
			t.Fatalf("%s stored as %q read back as %q, %v", v, saved["~d"], back["policy_decisions"], err)
		}
	})
}
