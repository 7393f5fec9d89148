package policy

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const cimdID = "https://app.example.com/oauth/client.json"

// TestDefaultPolicyDomainTrust: under the default set a trusted domain lifts
// the ban on sensitive scopes for a CIMD agent as the "trusted" tag does,
// allowed (and no decision at all) does not, blocked gets nothing, and an
// agent without a verified domain cannot claim a domain's trust.
func TestDefaultPolicyDomainTrust(t *testing.T) {
	s := defaultSet(t)
	cimd := func(trust string) Agent {
		return Agent{ID: cimdID, RegistrationMethod: store.RegistrationCIMD, ClientType: "public", VerifiedDomain: "app.example.com", DomainTrust: trust}
	}
	tests := []struct {
		name    string
		agent   Agent
		granted []string
		// deniedBy is the forbid that keeps files:delete (or everything).
		deniedBy string
	}{
		{"trusted domain", cimd(store.DomainTrusted), []string{"files:delete", "files:read"}, ""},
		{"allowed domain", cimd(store.DomainAllowed), []string{"files:read"}, "self-registered-sensitive-requires-trusted"},
		{"no decision is allowed", cimd(""), []string{"files:read"}, "self-registered-sensitive-requires-trusted"},
		{"blocked domain", cimd(store.DomainBlocked), nil, "blocked-domain"},
		{"dcr agent cannot claim a domain's trust", Agent{ID: "dcr-9", RegistrationMethod: store.RegistrationDCR, ClientType: "public", DomainTrust: store.DomainTrusted},
			[]string{"files:read"}, "self-registered-sensitive-requires-trusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, action := range []Action{ActionRegister, ActionGrant} {
				req := &Request{Action: action, Agent: tt.agent, User: alice, Resource: homeResource,
					Scopes: []Scope{deleteScope, readScope}, Context: Context{GrantType: "authorization_code", Time: time.Unix(1e9, 0)}}
				if action == ActionRegister {
					req.User, req.Context.GrantType = nil, ""
				}
				res, err := s.Decide(req)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(res.Granted, tt.granted) {
					t.Errorf("%s: granted %v, want %v", action, res.Granted, tt.granted)
				}
				if tt.deniedBy != "" && !slices.Contains(res.Decisions[0].PolicyIDs, tt.deniedBy) {
					t.Errorf("%s: files:delete denied by %v, want %s", action, res.Decisions[0].PolicyIDs, tt.deniedBy)
				}
			}
		})
	}
}

// fakeDomains is a store.Domains in memory.
type fakeDomains struct {
	mu    sync.Mutex
	list  []*store.Domain
	reads int
}

func (f *fakeDomains) PutDomain(_ context.Context, d *store.Domain, _ *store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = slices.DeleteFunc(f.list, func(x *store.Domain) bool { return x.Pattern == d.Pattern })
	f.list = append(f.list, d)
	return nil
}

func (f *fakeDomains) ListDomains(context.Context, string) ([]*store.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return slices.Clone(f.list), nil
}

func (f *fakeDomains) DeleteDomain(_ context.Context, _, pattern string, _ *store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = slices.DeleteFunc(f.list, func(x *store.Domain) bool { return x.Pattern == pattern })
	return nil
}

// TestEngineDomainTrust: the engine gives a CIMD agent the trust of its
// domain from the store, re-read with the policy set (a moving clock), so
// that `agentid domains add` reaches a running hub within the refresh
// interval, wildcards included; Reload picks a change up at once.
func TestEngineDomainTrust(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	ds := &fakeDomains{}
	e, err := New(ctx, Options{Store: newFakeStore(), Domains: ds, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	client := &store.Client{ID: cimdID, RegistrationMethod: store.RegistrationCIMD, TokenEndpointAuthMethod: "none"}
	grants := func() []string {
		t.Helper()
		req := &Request{Action: ActionGrant, Agent: AgentFromClient(client), User: alice, Resource: homeResource,
			Scopes: []Scope{deleteScope, readScope}, Context: Context{GrantType: "authorization_code"}}
		res, err := e.Decide(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.Granted
	}
	if got := grants(); !slices.Equal(got, []string{"files:read"}) {
		t.Fatalf("no domains: granted %v", got)
	}
	if err := ds.PutDomain(ctx, &store.Domain{Pattern: "*.example.com", Trust: store.DomainTrusted}, nil); err != nil {
		t.Fatal(err)
	}
	if got := grants(); !slices.Equal(got, []string{"files:read"}) {
		t.Fatalf("before the refresh interval: granted %v", got)
	}
	clk.Add(3 * time.Second)
	if got := grants(); !slices.Equal(got, []string{"files:delete", "files:read"}) {
		t.Fatalf("trusted wildcard after refresh: granted %v", got)
	}
	if a := e.AgentFromClient(ctx, client); a.DomainTrust != store.DomainTrusted {
		t.Errorf("Engine.AgentFromClient: trust %q", a.DomainTrust)
	}
	// The exact host beats the wildcard.
	if err := ds.PutDomain(ctx, &store.Domain{Pattern: "app.example.com", Trust: store.DomainBlocked}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := grants(); len(got) != 0 {
		t.Fatalf("blocked host: granted %v", got)
	}
	// The ceiling sees the domain's trust too.
	if err := ds.DeleteDomain(ctx, "", "app.example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	probe := *client
	probe.RequestedScopes = []string{"files:delete", "files:read"}
	res := &store.Resource{URI: testResource, Name: "Files", TenantID: store.DefaultTenant,
		Scopes: []store.Scope{{Name: "files:read"}, {Name: "files:delete", Sensitive: true}}}
	cl, err := e.Ceiling(ctx, &probe, []*store.Resource{res}, Context{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cl.Scopes, []string{"files:read", "files:delete"}) {
		t.Errorf("ceiling with a trusted domain: %v", cl.Scopes)
	}
	// A trust set by the caller is kept.
	req := &Request{Action: ActionGrant, Agent: AgentFromClient(client), User: alice, Resource: homeResource,
		Scopes: []Scope{deleteScope}, Context: Context{GrantType: "authorization_code"}}
	req.Agent.DomainTrust = store.DomainAllowed
	if r, err := e.Decide(ctx, req); err != nil || len(r.Granted) != 0 {
		t.Errorf("caller's trust overridden: %v %v", r, err)
	}
}

func TestNormalizeDomainPattern(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "App.Example.COM", want: "app.example.com"},
		{in: "app.example.com.", want: "app.example.com"},
		{in: "*.example.com", want: "*.example.com"},
		{in: "*.Apps.Example.com", want: "*.apps.example.com"},
		{in: "localhost", want: "localhost"},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{in: "", err: "empty"},
		{in: "https://app.example.com", err: "no scheme"},
		{in: "app.example.com/client.json", err: "without a path"},
		{in: "app.example.com:8443", err: "without a port"},
		{in: "user@app.example.com", err: "user info"},
		{in: "127.0.0.1", err: "IP addresses"},
		{in: "[::1]", err: "IP addresses"},
		{in: "*", err: "whole first label"},
		{in: "*.com", err: "at least two labels"},
		{in: "a.*.example.com", err: "whole first label"},
		{in: "*example.com", err: "whole first label"},
		{in: "**.example.com", err: "whole first label"},
		{in: "-bad.example.com", err: "not a valid host name label"},
		{in: "bad_.example.com", err: "not a valid host name label"},
		{in: "a..example.com", err: "not a valid host name label"},
		{in: "bücher.example", err: "not a valid host name label"},
		{in: strings.Repeat("a", 64) + ".example", err: "not a valid host name label"},
	}
	for _, tt := range tests {
		got, err := NormalizeDomainPattern(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case tt.err == "" && got != tt.want:
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want one saying %q", tt.in, err, tt.err)
		}
	}
}

// FuzzNormalizeDomainPattern: an accepted pattern is stable (normalising
// it again gives itself), lower-case LDH labels with at most a leading
// "*." wildcard, and an exact pattern matches its own host.
func FuzzNormalizeDomainPattern(f *testing.F) {
	for _, s := range []string{"app.example.com", "*.Example.com.", "https://x", "a:1", "[::1]", "*.com", "a..b", "xn--d.example", "\u212a.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := NormalizeDomainPattern(in)
		if err != nil {
			return
		}
		if again, err := NormalizeDomainPattern(p); err != nil || again != p {
			t.Fatalf("%q → %q → %q, %v", in, p, again, err)
		}
		host := strings.TrimPrefix(p, "*.")
		if strings.ContainsAny(host, "*:/@[]") || host != strings.ToLower(host) {
			t.Fatalf("%q accepted as %q", in, p)
		}
		for _, r := range host {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				t.Fatalf("%q accepted as %q with %q", in, p, r)
			}
		}
		d := &store.Domain{Pattern: p, Trust: store.DomainBlocked}
		if !strings.HasPrefix(p, "*.") && MatchDomain([]*store.Domain{d}, p) != d {
			t.Fatalf("pattern %q does not match its own host", p)
		}
		if strings.HasPrefix(p, "*.") && (MatchDomain([]*store.Domain{d}, "x."+host) != d || MatchDomain([]*store.Domain{d}, host) != nil) {
			t.Fatalf("wildcard %q matches wrongly", p)
		}
	})
}

// TestDryRunDomainTrust: a dry run replays a CIMD agent's grants with its
// domain's trust as it is now, so trusting a domain shows the sensitive
// scopes its agents were denied coming back.
func TestDryRunDomainTrust(t *testing.T) {
	ctx := context.Background()
	st := dryRunStore(t)
	if err := st.CreateClient(ctx, &store.Client{TenantID: store.DefaultTenant, ID: cimdID, RegistrationMethod: store.RegistrationCIMD, TokenEndpointAuthMethod: "none"}, nil); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := st.AppendAudit(ctx, &store.AuditEvent{TenantID: store.DefaultTenant, Type: EventTokenIssued, Outcome: "success", Time: t0,
		ClientID: cimdID, UserID: "alice", Resource: testResource, Scopes: []string{"files:read"},
		Details: map[string]string{"grant_type": "authorization_code",
			"scope.files:read":   "granted:user-consent",
			"scope.files:delete": "denied:self-registered-sensitive-requires-trusted"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		trust string
		added []string
	}{
		{store.DomainAllowed, nil},
		{store.DomainTrusted, []string{"files:delete"}},
	} {
		if err := st.PutDomain(ctx, &store.Domain{TenantID: store.DefaultTenant, Pattern: "app.example.com", Trust: tc.trust, CreatedAt: t0, UpdatedAt: t0}, nil); err != nil {
			t.Fatal(err)
		}
		rep, err := DryRun(ctx, st, DefaultFiles(), t0.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var added []string
		for _, c := range rep.Changes {
			added = append(added, c.Added...)
		}
		if !slices.Equal(added, tc.added) {
			t.Errorf("%s domain: dry run adds %v, want %v", tc.trust, added, tc.added)
		}
	}
}
