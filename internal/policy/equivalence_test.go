package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/agentid/agentid/internal/store"
)

// policyPool holds policies in the shapes Set.Decide treats specially
// (principal and resource scope constraints, scope-invariant conditions,
// required scope names) and in shapes it must leave to Cedar.
var policyPool = []string{
	`permit (principal, action, resource);`,
	`forbid (principal, action, resource) when { resource.sensitive };`,
	`permit (principal == Agent::"a1", action == Action::"grant", resource);`,
	`forbid (principal == Agent::"a2", action, resource) when { resource.name == "s1" };`,
	`permit (principal in Tenant::"default", action in [Action::"grant", Action::"register"], resource);`,
	`forbid (principal is Agent in Tenant::"acme", action, resource);`,
	`permit (principal, action, resource in Resource::"https://r1.example/mcp");`,
	`forbid (principal, action, resource is Scope in Resource::"https://r2.example/mcp") when { context.grant_type == "client_credentials" };`,
	`permit (principal, action, resource in Tenant::"acme");`,
	`forbid (principal, action, resource == Scope::"https://r1.example/mcp#s2");`,
	`permit (principal, action, resource in Scope::"https://r2.example/mcp#s1");`,
	`permit (principal, action, resource) when { resource.name == "s3" && principal.tags.contains("t") };`,
	`forbid (principal, action, resource) when { principal.tags.contains("t") && "s2" == resource.name };`,
	`forbid (principal, action, resource) unless { resource.name == "s1" };`,
	`permit (principal, action, resource) when { resource.resource.tags.contains("prod") };`,
	`forbid (principal, action, resource) when { resource.tenant != principal.tenant };`,
	`permit (principal, action, resource) when { context has user && context.user.hasTag("dept") && context.user.getTag("dept") == "x" };`,
	// Overflows (an evaluation error) when chain_depth > 1.
	`forbid (principal, action, resource) when { resource.name == "s2" && context.chain_depth * 9223372036854775807 > 0 };`,
	`permit (principal, action, resource) when { resource.resource.name == "R2" && context.chain_depth * 9223372036854775807 > 5 };`,
	`forbid (principal, action, resource) when { resource.name == "s1" || resource.name == "s2" };`,
	`permit (principal, action, resource) when { resource.resource == Resource::"https://r2.example/mcp" && resource.name != "s3" };`,
	`forbid (principal, action, resource) when { resource in Resource::"https://r1.example/mcp" && resource.resource.name == "R1" };`,
	`permit (principal, action == Action::"exchange", resource) when { resource has name };`,
	`forbid (principal, action, resource) when { context.chain_depth > 1 };`,
	`forbid (principal, action, resource) when { context has ip && context.ip.isInRange(ip("10.0.0.0/8")) && resource.name == "s3" };`,
	`permit (principal, action, resource) when { context.actors.contains("a3") };`,
}

func randomRequest(r *rand.Rand) *Request {
	pick := func(list ...string) string { return list[r.IntN(len(list))] }
	req := &Request{
		Action:   actions[r.IntN(len(actions))],
		TenantID: pick(store.DefaultTenant, "acme"),
		Agent:    Agent{ID: pick("a1", "a2", "a3"), RegistrationMethod: pick("manual", "dcr")},
		Resource: Resource{URI: pick("https://r1.example/mcp", "https://r2.example/mcp"), Name: pick("R1", "R2"), TenantID: pick("", "acme")},
		Context:  Context{GrantType: pick("authorization_code", "client_credentials"), ChainDepth: r.IntN(3), Time: time.Unix(1700000000, 0)},
	}
	if r.IntN(2) == 0 {
		req.Agent.Tags = []string{"t"}
	}
	if r.IntN(2) == 0 {
		req.Resource.Tags = []string{"prod"}
	}
	if r.IntN(3) > 0 {
		req.User = &User{ID: "u", TenantID: pick("", "acme")}
		if r.IntN(2) == 0 {
			req.User.Attributes = map[string]string{"dept": pick("x", "y")}
		}
	}
	for n := 1 + r.IntN(4); n > 0; n-- {
		req.Scopes = append(req.Scopes, Scope{Name: pick("s1", "s2", "s3"), Sensitive: r.IntN(3) == 0})
	}
	return req
}

// checkAgainstCedar decides req with s and with plain Cedar over the
// unreduced policies, and fails on any difference in the outcome or the
// determining policies.
func checkAgainstCedar(t *testing.T, files map[string]string, s *Set, req *Request) {
	t.Helper()
	parsed, err := parseSet(files)
	if err != nil {
		t.Fatal(err)
	}
	ps := cedar.NewPolicySet()
	for _, p := range parsed {
		ps.Add(cedar.PolicyID(p.id), p.policy)
	}
	got, err := s.Decide(req)
	if err != nil {
		t.Fatal(err)
	}
	ents := (&entityCache{}).build(req)
	for i := range req.Scopes {
		ents.cur = i
		dec, diag := cedar.Authorize(ps, ents, cedar.Request{
			Principal: ents.agent.UID,
			Action:    types.NewEntityUID(typeAction, types.String(req.Action)),
			Resource:  ents.scopes[i].UID,
			Context:   ents.context,
		})
		var want []string
		for _, r := range diag.Reasons {
			want = append(want, string(r.PolicyID))
		}
		slices.Sort(want)
		d := got.Decisions[i]
		gotIDs := slices.Sorted(slices.Values(d.PolicyIDs))
		if d.Allowed != (dec == cedar.Allow) || !slices.Equal(gotIDs, want) {
			t.Fatalf("scope %d %+v of %+v:\n got allowed=%v %v\nwant allowed=%v %v\nfiles: %v",
				i, req.Scopes[i], req, d.Allowed, gotIDs, dec == cedar.Allow, want, files)
		}
	}
}

func randomFiles(r *rand.Rand) map[string]string {
	files := map[string]string{}
	for i, src := range policyPool {
		if r.IntN(2) == 0 {
			files[fmt.Sprintf("p%02d.cedar", i)] = src
		}
	}
	return files
}

// TestDecideMatchesCedar: the indexing, filtering and once-per-request
// evaluation of scope-invariant policies must never change a decision.
func TestDecideMatchesCedar(t *testing.T) {
	all := map[string]string{}
	for i, src := range policyPool {
		all[fmt.Sprintf("p%02d.cedar", i)] = src
	}
	if err := Validate(all); err != nil {
		t.Fatalf("pool does not validate: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			files := randomFiles(r)
			s, err := Compile(files)
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				checkAgainstCedar(t, files, s, randomRequest(r))
			}
		})
	}
}

// FuzzDecideMatchesCedar explores more policy subsets and requests.
func FuzzDecideMatchesCedar(f *testing.F) {
	f.Add(uint64(0), uint64(0))
	f.Add(uint64(7), uint64(99))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		files := randomFiles(r)
		s, err := Compile(files)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstCedar(t, files, s, randomRequest(r))
	})
}

func TestScopeAnalysis(t *testing.T) {
	tests := []struct {
		src       string
		invariant bool
		name      string
	}{
		{src: `permit (principal, action, resource);`, invariant: true},
		{src: `permit (principal, action, resource in Resource::"r");`, invariant: true},
		{src: `permit (principal, action, resource == Scope::"r#s");`},
		{src: `permit (principal, action, resource) when { resource.resource.tags.contains("x") && resource.tenant == principal.tenant };`, invariant: true},
		{src: `permit (principal, action, resource) when { resource.sensitive };`},
		{src: `permit (principal, action, resource) when { resource has name };`},
		{src: `permit (principal, action, resource) when { principal.tags.contains("a") && resource.name == "s" };`, name: "s"},
		{src: `permit (principal, action, resource) when { "s" == resource.name };`, name: "s"},
		{src: `permit (principal, action, resource) unless { resource.name == "s" };`},
		{src: `permit (principal, action, resource) when { resource.name == "s" || principal.owner == "x" };`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			s, err := Compile(map[string]string{"a.cedar": tt.src})
			if err != nil {
				t.Fatal(err)
			}
			p := s.policies[0]
			if p.invariant != tt.invariant || p.scopeName != tt.name || p.hasName != (tt.name != "") {
				t.Errorf("invariant=%v name=%q(%v), want invariant=%v name=%q", p.invariant, p.scopeName, p.hasName, tt.invariant, tt.name)
			}
		})
	}
}
