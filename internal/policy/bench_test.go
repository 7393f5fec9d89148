package policy

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// benchFiles is the default set plus generated policies, 100 in all, in the
// shapes admins write: per-agent permits, tag and role conditions on
// resources, IP and time restrictions.
func benchFiles(tb testing.TB) map[string]string {
	files := DefaultFiles()
	var b strings.Builder
	n := len(defaultSet(tb).Policies())
	for i := 0; n < 100; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "@id(\"agent-%d\")\npermit (principal == Agent::\"agent-%d\", action == Action::\"grant\", resource in Resource::\"https://r%d.example.com/mcp\")\nwhen { context.grant_type == \"client_credentials\" && resource.name == \"tool:%d\" };\n", i, i, i, i)
		case 1:
			fmt.Fprintf(&b, "@id(\"blocked-%d\")\nforbid (principal, action, resource in Resource::\"https://r%d.example.com/mcp\")\nwhen { principal.tags.contains(\"blocked-%d\") };\n", i, i, i)
		case 2:
			fmt.Fprintf(&b, "@id(\"role-%d\")\nforbid (principal, action in [Action::\"grant\", Action::\"exchange\"], resource)\nwhen { resource.name == \"admin:%d\" && context has user && !context.user.roles.contains(\"admin-%d\") };\n", i, i, i)
		case 3:
			fmt.Fprintf(&b, "@id(\"net-%d\")\nforbid (principal, action == Action::\"grant\", resource)\nwhen { resource.resource.tags.contains(\"internal-%d\") && context has ip && !context.ip.isInRange(ip(\"10.%d.0.0/16\")) };\n", i, i, i%256)
		}
		n++
	}
	files["generated.cedar"] = b.String()
	return files
}

func benchRequest() *Request {
	scopes := make([]Scope, 10)
	for i := range scopes {
		scopes[i] = Scope{Name: fmt.Sprintf("tool:%d", i), Sensitive: i%5 == 0}
	}
	return &Request{
		Action:   ActionGrant,
		TenantID: store.DefaultTenant,
		Agent:    Agent{ID: "agent-4", RegistrationMethod: store.RegistrationDCR, ClientType: "public", Tags: []string{"trusted"}},
		User:     &User{ID: "alice", TenantID: store.DefaultTenant, Roles: []string{"dev"}},
		Resource: Resource{URI: "https://r4.example.com/mcp", Name: "R4", TenantID: store.DefaultTenant, Tags: []string{"internal-7"}},
		Scopes:   scopes,
		Context: Context{GrantType: "authorization_code", IP: "10.7.1.2", AuthMethod: "none",
			Time: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), AuthAge: time.Minute, Resource: "https://r4.example.com/mcp"},
	}
}

func TestBenchSetIsRealistic(t *testing.T) {
	s, err := Compile(benchFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Policies()); n != 100 {
		t.Fatalf("%d policies, want 100", n)
	}
	res, err := s.Decide(benchRequest())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Granted) != 10 {
		t.Errorf("granted %v, want all 10 (the benchmark should exercise permits)", res.Granted)
	}
	for _, d := range res.Decisions {
		if len(d.Errors) > 0 {
			t.Errorf("%s: %v", d.Scope, d.Errors)
		}
	}
}

// BenchmarkDecide measures one token's policy decision: 100 policies, 10
// requested scopes, through the Engine as the token endpoint calls it.
func BenchmarkDecide(b *testing.B) {
	ctx := context.Background()
	st := newFakeStore()
	if err := st.CreatePolicySet(ctx, &store.PolicySet{Files: benchFiles(b)}, nil); err != nil {
		b.Fatal(err)
	}
	e, err := New(ctx, Options{Store: st, RefreshInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	req := benchRequest()
	b.ReportAllocs()
	// The wall clock of a shared machine says little; process CPU time per
	// decision is reported beside it.
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := e.Decide(ctx, req)
		if err != nil || len(res.Granted) != 10 {
			b.Fatal(err, res)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDecideAsRemembered is the token endpoint's call (grant and
// register, DecideAs) on BenchmarkDecide's set and request when the set
// remembers the answer (decisions.go): the cost of a repeated request.
// BenchmarkDecide, through Decide, is the cost of a new one.
func BenchmarkDecideAsRemembered(b *testing.B) {
	ctx := context.Background()
	st := newFakeStore()
	if err := st.CreatePolicySet(ctx, &store.PolicySet{Files: benchFiles(b)}, nil); err != nil {
		b.Fatal(err)
	}
	e, err := New(ctx, Options{Store: st, RefreshInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if !e.Active(ctx).cached {
		b.Fatal("the bench set is not cached")
	}
	req := benchRequest()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := e.DecideAs(ctx, req, ActionGrant, ActionRegister)
		if err != nil || len(res[0].Granted) != 10 {
			b.Fatal(err, res)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
