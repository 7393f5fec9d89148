package policy

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const (
	testResource = "https://mcp.example.com/mcp"
	otherTenant  = "acme"
)

var (
	manualAgent  = Agent{ID: "admin-made", RegistrationMethod: store.RegistrationManual, ClientType: "confidential"}
	dcrAgent     = Agent{ID: "dcr-1", RegistrationMethod: store.RegistrationDCR, ClientType: "public"}
	trustedDCR   = Agent{ID: "dcr-2", RegistrationMethod: store.RegistrationDCR, ClientType: "public", Tags: []string{"trusted"}}
	cimdAgent    = Agent{ID: "https://agent.example/meta.json", RegistrationMethod: store.RegistrationCIMD, ClientType: "public"}
	ccAgent      = Agent{ID: "ci-bot", RegistrationMethod: store.RegistrationManual, ClientType: "confidential", Tags: []string{"cc:files:read"}}
	ccDCRAgent   = Agent{ID: "cc-dcr", RegistrationMethod: store.RegistrationDCR, ClientType: "confidential", Tags: []string{"cc:files:delete"}}
	alice        = &User{ID: "alice", TenantID: store.DefaultTenant, Roles: []string{"admin"}}
	mallory      = &User{ID: "mallory", TenantID: otherTenant}
	readScope    = Scope{Name: "files:read"}
	deleteScope  = Scope{Name: "files:delete", Sensitive: true}
	homeResource = Resource{URI: testResource, Name: "Files", TenantID: store.DefaultTenant}
	farResource  = Resource{URI: "https://acme.example.com/mcp", Name: "Acme", TenantID: otherTenant}
)

func defaultSet(t testing.TB) *Set {
	t.Helper()
	s, err := Compile(DefaultFiles())
	if err != nil {
		t.Fatalf("default set does not compile: %v", err)
	}
	return s
}

// TestDefaultPolicy covers each rule of the default set, allowing and
// denying, and checks the determining policy ids.
func TestDefaultPolicy(t *testing.T) {
	const (
		selfReg  = "self-registered-sensitive-requires-trusted"
		tenantID = "user-tenant-only"
		register = "register-within-tenant"
		consent  = "user-consent"
		cc       = "client-credentials-tagged"
	)
	tests := []struct {
		name      string
		action    Action
		agent     Agent
		user      *User
		resource  Resource
		scope     Scope
		grantType string
		allowed   bool
		policies  []string
	}{
		// register
		{name: "register/manual gets sensitive", action: ActionRegister, agent: manualAgent, resource: homeResource, scope: deleteScope, allowed: true, policies: []string{register}},
		{name: "register/dcr gets plain scope", action: ActionRegister, agent: dcrAgent, resource: homeResource, scope: readScope, allowed: true, policies: []string{register}},
		{name: "register/dcr denied sensitive", action: ActionRegister, agent: dcrAgent, resource: homeResource, scope: deleteScope, policies: []string{selfReg}},
		{name: "register/cimd denied sensitive", action: ActionRegister, agent: cimdAgent, resource: homeResource, scope: deleteScope, policies: []string{selfReg}},
		{name: "register/trusted dcr gets sensitive", action: ActionRegister, agent: trustedDCR, resource: homeResource, scope: deleteScope, allowed: true, policies: []string{register}},
		{name: "register/other tenant resource", action: ActionRegister, agent: manualAgent, resource: farResource, scope: readScope},
		// user consent
		{name: "grant/user plain scope", action: ActionGrant, agent: dcrAgent, user: alice, resource: homeResource, scope: readScope, grantType: "authorization_code", allowed: true, policies: []string{consent}},
		{name: "grant/refresh manual sensitive", action: ActionGrant, agent: manualAgent, user: alice, resource: homeResource, scope: deleteScope, grantType: "refresh_token", allowed: true, policies: []string{consent}},
		{name: "grant/dcr denied sensitive", action: ActionGrant, agent: dcrAgent, user: alice, resource: homeResource, scope: deleteScope, grantType: "authorization_code", policies: []string{selfReg}},
		{name: "grant/trusted dcr sensitive", action: ActionGrant, agent: trustedDCR, user: alice, resource: homeResource, scope: deleteScope, grantType: "authorization_code", allowed: true, policies: []string{consent}},
		{name: "exchange/user", action: ActionExchange, agent: manualAgent, user: alice, resource: homeResource, scope: readScope, grantType: grantTypeTokenExchange, allowed: true, policies: []string{consent}},
		{name: "exchange/no user", action: ActionExchange, agent: manualAgent, resource: homeResource, scope: readScope, grantType: grantTypeTokenExchange},
		{name: "connect/user", action: ActionConnect, agent: manualAgent, user: alice, resource: homeResource, scope: readScope, allowed: true, policies: []string{consent}},
		{name: "connect/dcr sensitive", action: ActionConnect, agent: dcrAgent, user: alice, resource: homeResource, scope: deleteScope, policies: []string{selfReg}},
		// tenants
		{name: "grant/user of other tenant", action: ActionGrant, agent: manualAgent, user: mallory, resource: homeResource, scope: readScope, grantType: "authorization_code", policies: []string{tenantID}},
		{name: "grant/resource of other tenant", action: ActionGrant, agent: manualAgent, user: alice, resource: farResource, scope: readScope, grantType: "authorization_code", policies: []string{tenantID}},
		// client credentials
		{name: "cc/untagged denied", action: ActionGrant, agent: manualAgent, resource: homeResource, scope: readScope, grantType: "client_credentials"},
		{name: "cc/tagged scope", action: ActionGrant, agent: ccAgent, resource: homeResource, scope: readScope, grantType: "client_credentials", allowed: true, policies: []string{cc}},
		{name: "cc/untagged scope of tagged agent", action: ActionGrant, agent: ccAgent, resource: homeResource, scope: deleteScope, grantType: "client_credentials"},
		{name: "cc/tagged scope other tenant", action: ActionGrant, agent: ccAgent, resource: farResource, scope: readScope, grantType: "client_credentials"},
		{name: "cc/tag is not a user grant type", action: ActionGrant, agent: ccAgent, resource: homeResource, scope: readScope, grantType: "authorization_code"},
		{name: "cc/dcr tagged sensitive still forbidden", action: ActionGrant, agent: ccDCRAgent, resource: homeResource, scope: deleteScope, grantType: "client_credentials", policies: []string{selfReg}},
	}
	s := defaultSet(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Decide(&Request{
				Action:   tt.action,
				Agent:    tt.agent,
				User:     tt.user,
				Resource: tt.resource,
				Scopes:   []Scope{tt.scope},
				Context:  Context{GrantType: tt.grantType, Time: time.Unix(1700000000, 0), Resource: tt.resource.URI},
			})
			if err != nil {
				t.Fatal(err)
			}
			d := res.Decisions[0]
			if d.Allowed != tt.allowed {
				t.Errorf("allowed = %v, want %v (policies %v, errors %v)", d.Allowed, tt.allowed, d.PolicyIDs, d.Errors)
			}
			if !slices.Equal(d.PolicyIDs, tt.policies) {
				t.Errorf("policies = %q, want %q", d.PolicyIDs, tt.policies)
			}
			if len(d.Errors) > 0 {
				t.Errorf("evaluation errors: %v", d.Errors)
			}
			if want := tt.allowed; slices.Contains(res.Granted, tt.scope.Name) != want {
				t.Errorf("granted = %v", res.Granted)
			}
			if res.Version != 0 {
				t.Errorf("version = %d, want 0 (built-in)", res.Version)
			}
		})
	}
}

func TestDecideOrderAndDuplicates(t *testing.T) {
	s := defaultSet(t)
	res, err := s.Decide(&Request{
		Action: ActionGrant, Agent: dcrAgent, User: alice, Resource: homeResource,
		Scopes:  []Scope{{Name: "b"}, deleteScope, {Name: "a"}, {Name: "b"}},
		Context: Context{GrantType: "authorization_code"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b", "a"}; !slices.Equal(res.Granted, want) {
		t.Errorf("granted = %v, want %v", res.Granted, want)
	}
	if len(res.Decisions) != 4 {
		t.Errorf("%d decisions, want one per requested scope", len(res.Decisions))
	}
}

func TestDecideErrors(t *testing.T) {
	s := defaultSet(t)
	tests := []struct {
		name string
		req  *Request
	}{
		{name: "nil request", req: nil},
		{name: "unknown action", req: &Request{Action: "read", Scopes: []Scope{readScope}}},
		{name: "empty action", req: &Request{Scopes: []Scope{readScope}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Decide(tt.req); err == nil {
				t.Error("Decide succeeded")
			}
		})
	}
}

// TestContextAttributes checks that each request field reaches the policies
// under the documented name.
func TestContextAttributes(t *testing.T) {
	base := func() *Request {
		return &Request{
			Action:   ActionGrant,
			TenantID: store.DefaultTenant,
			Agent: Agent{ID: "a", RegistrationMethod: "dcr", ClientType: "public", SoftwareID: "sw",
				VerifiedDomain: "agent.example", CreatedIP: "192.0.2.7", OwnerUserID: "bob", Tags: []string{"x"}},
			User:     &User{ID: "u", Roles: []string{"r"}, Groups: []string{"g"}, Attributes: map[string]string{"department": "sales"}},
			Resource: Resource{URI: testResource, Name: "Files", Tags: []string{"prod"}},
			Scopes:   []Scope{{Name: "s"}},
			Context: Context{GrantType: "authorization_code", IP: "10.1.2.3", AuthMethod: "none",
				Time: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), AuthAge: 90 * time.Second, ChainDepth: 2, Resource: testResource},
			Service: &Service{Name: "github"},
		}
	}
	tests := []struct {
		name string
		cond string
	}{
		{"agent registration method", `principal.registration_method == "dcr"`},
		{"agent client type", `principal.client_type == "public"`},
		{"agent software id", `principal.software_id == "sw"`},
		{"agent verified domain", `principal.verified_domain == "agent.example"`},
		{"agent created ip", `principal has created_ip && principal.created_ip.isInRange(ip("192.0.2.0/24"))`},
		{"agent owner", `principal.owner == "bob"`},
		{"agent tags", `principal.tags.contains("x")`},
		{"agent in tenant", `principal in Tenant::"default"`},
		{"agent is agent", `principal == Agent::"a"`},
		{"user roles", `context has user && context.user.roles.contains("r")`},
		{"user groups", `context has user && context.user.groups.contains("g")`},
		{"user claim", `context has user && context.user.hasTag("department") && context.user.getTag("department") == "sales"`},
		{"user tenant defaulted", `context has user && context.user.tenant == Tenant::"default"`},
		{"resource uri", `resource.resource.uri == "https://mcp.example.com/mcp"`},
		{"resource name", `resource.resource.name == "Files"`},
		{"resource tags", `resource.resource.tags.contains("prod")`},
		{"scope in resource", `resource in Resource::"https://mcp.example.com/mcp"`},
		{"scope in tenant", `resource in Tenant::"default"`},
		{"scope id", `resource == Scope::"https://mcp.example.com/mcp#s"`},
		{"scope name", `resource.name == "s" && !resource.sensitive`},
		{"grant type", `context.grant_type == "authorization_code"`},
		{"auth method", `context.auth_method == "none"`},
		{"ip", `context has ip && context.ip.isInRange(ip("10.0.0.0/8"))`},
		{"time", `context.time > datetime("2025-02-28") && context.time < datetime("2025-03-02")`},
		{"auth age", `context has auth_age_seconds && context.auth_age_seconds == 90`},
		{"chain depth", `context.chain_depth == 2`},
		{"request resource", `context.resource == "https://mcp.example.com/mcp"`},
		{"tenant", `context.tenant == Tenant::"default"`},
		{"service", `context has service && context.service.name == "github" && context.service in Tenant::"default"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "permit (principal, action, resource) when { " + tt.cond + " };"
			s, err := Compile(map[string]string{"t.cedar": src})
			if err != nil {
				t.Fatalf("policy does not validate: %v", err)
			}
			res, err := s.Decide(base())
			if err != nil {
				t.Fatal(err)
			}
			if d := res.Decisions[0]; !d.Allowed {
				t.Errorf("condition false: %v", d.Errors)
			}
		})
	}
}

func TestEngineDefaultsWithoutStore(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := New(context.Background(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// A policy sees the engine's clock and tenant when the request has none.
	res, err := e.Decide(context.Background(), &Request{
		Action: ActionRegister, Agent: manualAgent, Resource: homeResource, Scopes: []Scope{readScope},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Decisions[0].Allowed || res.Version != 0 {
		t.Errorf("decision = %+v, version %d", res.Decisions[0], res.Version)
	}
}

// TestTrustedTagLiftsSensitiveBan follows a DCR agent through the store: its
// sensitive scope is refused at registration and issuance until an admin
// tags it trusted.
func TestTrustedTagLiftsSensitiveBan(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	c := &store.Client{TenantID: store.DefaultTenant, ID: "dcr-agent", RegistrationMethod: store.RegistrationDCR, TokenEndpointAuthMethod: "none"}
	if err := st.CreateClient(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	r := &store.Resource{TenantID: store.DefaultTenant, ID: "files", URI: testResource, Name: "Files",
		Scopes: []store.Scope{{Name: "files:read"}, {Name: "files:delete", Sensitive: true}}}
	if err := st.CreateResource(ctx, r, nil); err != nil {
		t.Fatal(err)
	}
	e, err := New(ctx, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(t *testing.T, action Action, user *User) []string {
		t.Helper()
		cl, err := st.GetClient(ctx, store.DefaultTenant, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.Decide(ctx, &Request{Action: action, Agent: AgentFromClient(cl), User: user,
			Resource: ResourceFromStore(r), Scopes: ScopesOf(r, []string{"files:read", "files:delete"}),
			Context: Context{GrantType: "authorization_code"}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Granted
	}
	tests := []struct {
		name   string
		tags   []string
		action Action
		user   *User
		want   []string
	}{
		{name: "register untrusted", action: ActionRegister, want: []string{"files:read"}},
		{name: "grant untrusted", action: ActionGrant, user: alice, want: []string{"files:read"}},
		{name: "register trusted", tags: []string{"trusted"}, action: ActionRegister, want: []string{"files:read", "files:delete"}},
		{name: "grant trusted", tags: []string{"trusted"}, action: ActionGrant, user: alice, want: []string{"files:read", "files:delete"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.UpdateClient(ctx, c.TenantID, c.ID, func(c *store.Client) error { c.Tags = tt.tags; return nil }, nil); err != nil {
				t.Fatal(err)
			}
			if got := decide(t, tt.action, tt.user); !slices.Equal(got, tt.want) {
				t.Errorf("granted %v, want %v", got, tt.want)
			}
		})
	}
}
