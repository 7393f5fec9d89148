package federation_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/federation"
	"github.com/agentid/agentid/internal/store"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"system:serviceaccount:prod:*", "system:serviceaccount:prod:agent", true},
		{"system:serviceaccount:prod:*", "system:serviceaccount:production:agent", false},
		{"system:serviceaccount:*:agent", "system:serviceaccount:x:y:agent", true},
		{"repo:acme/*:ref:refs/heads/main", "repo:acme/tools:ref:refs/heads/main", true},
		{"repo:acme/*:ref:refs/heads/main", "repo:acme/tools:ref:refs/heads/dev", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"*a", "bbba", true},
		{"a**", "a", true},
		{"?", "x", false}, // only * is special
		{"spiffe://acme.com/ns/*/sa/agent", "spiffe://acme.com/ns/prod/sa/agent", true},
	}
	for _, tc := range cases {
		if got := federation.Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
	// Linear enough on a hostile pattern.
	if federation.Glob(strings.Repeat("*a", 50)+"b", strings.Repeat("a", 10000)) {
		t.Fatal("matched")
	}
}

// k8sClaims are the claims of a Kubernetes projected service-account token.
func k8sClaims(t *testing.T, ns, sa string) map[string]any {
	raw := `{"iss":"https://k8s.example.com","sub":"system:serviceaccount:` + ns + `:` + sa + `","aud":["https://hub.example.com"],
	"kubernetes.io":{"namespace":"` + ns + `","serviceaccount":{"name":"` + sa + `","uid":"u-1"}},"jti":"j","exp":2,"iat":1}`
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAgent(t *testing.T) {
	is := &store.Issuer{ID: "k8s", Rules: []store.IssuerRule{
		{Claims: map[string]string{"sub": "system:serviceaccount:prod:*", "kubernetes.io/namespace": "prod"}, Agent: "k8s.{kubernetes.io/namespace}.{kubernetes.io/serviceaccount/name}", Scopes: []string{"read"}},
		{Claims: map[string]string{"kubernetes.io/namespace": "bad"}, Agent: "k8s:{sub}"},
		{Claims: map[string]string{"kubernetes.io/namespace": "missing"}, Agent: "k8s.{nope}"},
		{Claims: map[string]string{"kubernetes.io/namespace": "*"}, Agent: "k8s.other.{kubernetes.io/serviceaccount/name}"},
	}}
	cases := []struct {
		name, ns, sa string
		want         string
		ok           bool
		rule         int
	}{
		{name: "first rule", ns: "prod", sa: "agent", want: "k8s.prod.agent", ok: true, rule: 0},
		{name: "template yields an invalid client id", ns: "bad", sa: "agent", ok: false, rule: 1},
		{name: "template names a missing claim", ns: "missing", sa: "agent", ok: false, rule: 2},
		{name: "later rule", ns: "dev", sa: "bot", want: "k8s.other.bot", ok: true, rule: 3},
		{name: "claim value breaks the id", ns: "dev", sa: "a b", ok: false, rule: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &federation.Assertion{Issuer: is, Claims: k8sClaims(t, tc.ns, tc.sa)}
			id, rule, ok := federation.Agent(a)
			if id != tc.want || ok != tc.ok || rule != &is.Rules[tc.rule] {
				t.Fatalf("Agent = %q %v %v", id, rule, ok)
			}
		})
	}
	// No rule: not even the catch-all matches a token without the claim.
	a := &federation.Assertion{Issuer: is, Claims: map[string]any{"sub": "x"}}
	if id, rule, ok := federation.Agent(a); ok || rule != nil || id != "" {
		t.Fatalf("Agent = %q %v %v", id, rule, ok)
	}
	// A rule with no claims never matches.
	empty := &store.Issuer{Rules: []store.IssuerRule{{Agent: "anyone"}}}
	if _, _, ok := federation.Agent(&federation.Assertion{Issuer: empty, Claims: map[string]any{"sub": "x"}}); ok {
		t.Fatal("a rule without claims matched")
	}
	// Only string claims match: a number or object never does.
	num := &store.Issuer{Rules: []store.IssuerRule{{Claims: map[string]string{"n": "*"}, Agent: "x"}}}
	if _, _, ok := federation.Agent(&federation.Assertion{Issuer: num, Claims: map[string]any{"n": json.Number("1")}}); ok {
		t.Fatal("a number claim matched")
	}
}

func TestExpand(t *testing.T) {
	claims := map[string]any{"sub": "s", "repository": "acme/tools", "empty": ""}
	cases := []struct {
		tmpl, want string
		ok         bool
	}{
		{"plain", "plain", true},
		{"gh.{sub}", "gh.s", true},
		{"{sub}{sub}", "ss", true},
		{"gh.{repository}", "gh.acme/tools", true}, // expands; ValidClientID refuses it
		{"{sub", "", false},
		{"sub}", "", false},
		{"{{sub}}", "", false},
		{"{missing}", "", false},
		{"{empty}", "", false},
	}
	for _, tc := range cases {
		got, ok := federation.Expand(tc.tmpl, claims)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Expand(%q) = %q %v, want %q %v", tc.tmpl, got, ok, tc.want, tc.ok)
		}
	}
	if federation.ValidClientID("gh.acme/tools") || !federation.ValidClientID("gh.acme_tools") || federation.ValidClientID(strings.Repeat("a", 129)) {
		t.Fatal("ValidClientID")
	}
}

func FuzzExpand(f *testing.F) {
	f.Add("k8s.{kubernetes.io/namespace}.{sub}", "system:serviceaccount:a:b")
	f.Fuzz(func(t *testing.T, tmpl, sub string) {
		claims := map[string]any{"sub": sub, "kubernetes.io": map[string]any{"namespace": "ns"}}
		out, ok := federation.Expand(tmpl, claims)
		if !ok && out != "" {
			t.Fatal("output on failure")
		}
		if !strings.Contains(tmpl, "*") && federation.Glob(tmpl, sub) != (tmpl == sub) {
			t.Fatal("a pattern without * must match exactly itself")
		}
		if !federation.Glob("*"+sub+"*", "x"+sub+"y") && !strings.Contains(sub, "*") {
			t.Fatal("*s* must match xsy")
		}
	})
}
