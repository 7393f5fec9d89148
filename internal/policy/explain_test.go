package policy

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	s := defaultSet(t)
	tests := []struct {
		name string
		req  *Request
		// want are substrings the rendered explanation must contain.
		want []string
	}{
		{
			name: "forbid names the deciding policy with its source",
			req: &Request{Action: ActionGrant, Agent: dcrAgent, User: alice, Resource: homeResource,
				Scopes: []Scope{deleteScope, readScope}, Context: Context{GrantType: "authorization_code"}},
			want: []string{
				"policy set: built-in default (version 0)",
				`request: grant by agent "dcr-1" (dcr) for user "alice" on https://mcp.example.com/mcp, grant_type authorization_code`,
				`files:delete  DENY  forbidden by "self-registered-sensitive-requires-trusted"`,
				`forbid "self-registered-sensitive-requires-trusted" at default.cedar:`,
				`    @id("self-registered-sensitive-requires-trusted")`,
				`      principal.domain_trust == "trusted"`,
				`files:read  ALLOW  permitted by "user-consent"`,
				`permit "user-consent" at default.cedar:`,
			},
		},
		{
			name: "default deny names no policy",
			req: &Request{Action: ActionGrant, Agent: manualAgent, Resource: homeResource,
				Scopes: []Scope{readScope}, Context: Context{GrantType: "client_credentials"}},
			want: []string{"without a user", "files:read  DENY  no policy permits it (default deny)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := Explain(s, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			out := x.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("explanation lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestExplainStructure(t *testing.T) {
	s := defaultSet(t)
	x, err := Explain(s, &Request{Action: ActionRegister, Agent: cimdAgent, Resource: homeResource, Scopes: []Scope{deleteScope}})
	if err != nil {
		t.Fatal(err)
	}
	se := x.Scopes[0]
	if se.Allowed || len(se.Policies) != 1 || se.Policies[0].ID != "self-registered-sensitive-requires-trusted" || se.Policies[0].Effect != "forbid" {
		t.Errorf("explanation = %+v", se)
	}
	if _, err := Explain(s, &Request{Action: "bogus"}); err == nil {
		t.Error("Explain accepted an unknown action")
	}
}
