package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

const selfRegID = "self-registered-sensitive-requires-trusted"

// ceilingResources are two MCP servers of the default tenant and one of
// another tenant; "files:read" exists on two of them.
func ceilingResources() []*store.Resource {
	return []*store.Resource{
		{TenantID: store.DefaultTenant, URI: testResource, Name: "Files", Scopes: []store.Scope{
			{Name: "files:read"}, {Name: "files:write"}, {Name: "files:delete", Sensitive: true},
		}},
		{TenantID: store.DefaultTenant, URI: "https://mail.example.com/mcp", Name: "Mail", Scopes: []store.Scope{
			{Name: "mail:send", Sensitive: true}, {Name: "files:read"},
		}},
		{TenantID: otherTenant, URI: "https://acme.example.com/mcp", Name: "Acme", Scopes: []store.Scope{
			{Name: "acme:admin"},
		}},
	}
}

func TestSetCeiling(t *testing.T) {
	s := defaultSet(t)
	tests := []struct {
		name        string
		client      store.Client
		want        []string
		bounded     bool
		denied      []string // scope names
		deniedBy    string   // the policy denying the first of them ("" for default deny)
		unknown     []string
		wantVersion int64
	}{
		{
			name:    "manual client without requested scopes is unbounded",
			client:  store.Client{ID: "m", RegistrationMethod: store.RegistrationManual},
			bounded: false,
		},
		{
			name:    "manual client gets sensitive scopes it asked for",
			client:  store.Client{ID: "m", RegistrationMethod: store.RegistrationManual, RequestedScopes: []string{"files:delete", "files:read"}},
			want:    []string{"files:read", "files:delete"},
			bounded: true,
		},
		{
			name:     "dcr client loses sensitive scopes",
			client:   store.Client{ID: "d", RegistrationMethod: store.RegistrationDCR, RequestedScopes: []string{"files:read", "files:delete", "mail:send"}},
			want:     []string{"files:read"},
			bounded:  true,
			denied:   []string{"files:delete", "mail:send"},
			deniedBy: selfRegID,
		},
		{
			name:    "trusted dcr client keeps them",
			client:  store.Client{ID: "d", RegistrationMethod: store.RegistrationDCR, Tags: []string{"trusted"}, RequestedScopes: []string{"files:read", "files:delete", "mail:send"}},
			want:    []string{"files:read", "files:delete", "mail:send"},
			bounded: true,
		},
		{
			name:     "dcr client asking only for sensitive scopes may hold nothing",
			client:   store.Client{ID: "d", RegistrationMethod: store.RegistrationDCR, RequestedScopes: []string{"files:delete"}},
			bounded:  true,
			denied:   []string{"files:delete"},
			deniedBy: selfRegID,
		},
		{
			name:    "unknown scopes are reported, not granted",
			client:  store.Client{ID: "m", RegistrationMethod: store.RegistrationManual, RequestedScopes: []string{"files:read", "nope"}},
			want:    []string{"files:read"},
			bounded: true,
			unknown: []string{"nope"},
		},
		{
			name:    "scope of another tenant's resource is default-denied",
			client:  store.Client{ID: "m", RegistrationMethod: store.RegistrationManual, RequestedScopes: []string{"acme:admin"}},
			bounded: true,
			denied:  []string{"acme:admin"},
		},
		{
			name:    "repeats and empty names are ignored",
			client:  store.Client{ID: "m", RegistrationMethod: store.RegistrationManual, RequestedScopes: []string{"files:read", "", "files:read"}},
			want:    []string{"files:read"},
			bounded: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Ceiling(&tt.client, ceilingResources(), Context{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Scopes, tt.want) || c.Bounded != tt.bounded || !slices.Equal(c.Unknown, tt.unknown) {
				t.Fatalf("ceiling %v bounded %t unknown %v; want %v %t %v", c.Scopes, c.Bounded, c.Unknown, tt.want, tt.bounded, tt.unknown)
			}
			var denied []string
			for _, d := range c.Denied {
				denied = append(denied, d.Scope)
				if d.Allowed {
					t.Errorf("denied decision %+v is allowed", d)
				}
			}
			if !slices.Equal(denied, tt.denied) {
				t.Fatalf("denied %v, want %v", denied, tt.denied)
			}
			if len(c.Denied) > 0 {
				if got := strings.Join(c.Denied[0].PolicyIDs, ","); got != tt.deniedBy {
					t.Fatalf("denied by %q, want %q", got, tt.deniedBy)
				}
			}
		})
	}
}

// TestCeilingContext: register decisions see the address the client
// registered from, and no grant type.
func TestCeilingContext(t *testing.T) {
	files := DefaultFiles()
	files["net.cedar"] = `@id("office-only")
forbid (principal, action == Action::"register", resource)
unless { context has ip && context.ip.isInRange(ip("192.0.2.0/24")) && context.grant_type == "" };`
	s, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ip   string
		want []string
	}{
		{"from the office", "192.0.2.7", []string{"files:read"}},
		{"from elsewhere", "198.51.100.1", nil},
		{"unknown address", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &store.Client{ID: "m", RegistrationMethod: store.RegistrationManual, CreatedIP: tt.ip, RequestedScopes: []string{"files:read"}}
			got, err := s.Ceiling(c, ceilingResources(), Context{GrantType: "authorization_code"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Scopes, tt.want) {
				t.Fatalf("ceiling %v, want %v", got.Scopes, tt.want)
			}
		})
	}
}

func TestWithinCeiling(t *testing.T) {
	tests := []struct {
		name   string
		client store.Client
		scope  string
		want   bool
	}{
		{"unbounded", store.Client{}, "anything", true},
		{"in the ceiling", store.Client{Scopes: []string{"a", "b"}, RequestedScopes: []string{"a", "b"}}, "b", true},
		{"above the ceiling", store.Client{Scopes: []string{"a"}, RequestedScopes: []string{"a", "b"}}, "b", false},
		{"empty ceiling of a client that asked", store.Client{RequestedScopes: []string{"b"}}, "b", false},
		{"ceiling without a recorded request", store.Client{Scopes: []string{"a"}}, "b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WithinCeiling(&tt.client, tt.scope); got != tt.want {
				t.Fatalf("WithinCeiling = %t, want %t", got, tt.want)
			}
		})
	}
}

// seedCeilingStore stores the resources and a DCR client whose ceiling was
// computed at registration.
func seedCeilingStore(t *testing.T, st store.Store) *Engine {
	t.Helper()
	ctx := context.Background()
	for _, r := range ceilingResources() {
		r.ID = r.Name
		if err := st.CreateResource(ctx, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(ctx, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Client{TenantID: store.DefaultTenant, ID: "dcr-1", RegistrationMethod: store.RegistrationDCR,
		TokenEndpointAuthMethod: "none", RequestedScopes: []string{"files:read", "files:delete"}}
	cl, err := e.Ceiling(ctx, c, ceilingResources(), Context{})
	if err != nil {
		t.Fatal(err)
	}
	c.Scopes = cl.Scopes
	if err := st.CreateClient(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	m := &store.Client{TenantID: store.DefaultTenant, ID: "manual-1", RegistrationMethod: store.RegistrationManual, TokenEndpointAuthMethod: "none"}
	if err := st.CreateClient(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTagClient(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	e := seedCeilingStore(t, st)
	steps := []struct {
		name         string
		add, remove  []string
		wantTags     []string
		wantCeiling  []string
		wantAdded    []string
		wantRemoved  []string
		wantEvent    bool
		wantErrIsNF  bool
		clientID     string
		wantTagsDiff string // Details["tags_added"]
	}{
		{name: "trusted lifts the ban", add: []string{"trusted"}, wantTags: []string{"trusted"},
			wantCeiling: []string{"files:read", "files:delete"}, wantAdded: []string{"files:delete"}, wantEvent: true, wantTagsDiff: "trusted"},
		{name: "tagging again changes nothing", add: []string{"trusted"}, wantTags: []string{"trusted"},
			wantCeiling: []string{"files:read", "files:delete"}},
		{name: "an empty tag is refused", add: []string{"beta", ""}},
		{name: "untag takes it back", remove: []string{"trusted"}, wantTags: nil,
			wantCeiling: []string{"files:read"}, wantRemoved: []string{"files:delete"}, wantEvent: true},
		{name: "unknown client", clientID: "nobody", add: []string{"x"}, wantErrIsNF: true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			id := s.clientID
			if id == "" {
				id = "dcr-1"
			}
			before, _ := st.ListAudit(ctx, store.AuditFilter{Type: "client.updated", Limit: 100})
			c, ch, err := e.TagClient(ctx, id, s.add, s.remove, &audit.Meta{Actor: "test"})
			switch {
			case s.wantErrIsNF:
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
				return
			case slices.Contains(s.add, ""):
				if err == nil {
					t.Fatal("an empty tag was accepted")
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			stored, err := st.GetClient(ctx, store.DefaultTenant, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range []*store.Client{c, stored} {
				if !slices.Equal(got.Tags, s.wantTags) || !slices.Equal(got.Scopes, s.wantCeiling) {
					t.Fatalf("tags %v ceiling %v; want %v %v", got.Tags, got.Scopes, s.wantTags, s.wantCeiling)
				}
			}
			if !slices.Equal(ch.Added, s.wantAdded) || !slices.Equal(ch.Removed, s.wantRemoved) {
				t.Fatalf("change %+v; want added %v removed %v", ch, s.wantAdded, s.wantRemoved)
			}
			after, _ := st.ListAudit(ctx, store.AuditFilter{Type: "client.updated", Limit: 100})
			if wrote := len(after) > len(before); wrote != s.wantEvent {
				t.Fatalf("audit event written: %t, want %t", wrote, s.wantEvent)
			}
			if s.wantEvent {
				got := after[0]
				if got.ClientID != id || !slices.Equal(got.Scopes, s.wantCeiling) || got.Details["actor"] != "test" ||
					got.Details["tags_added"] != s.wantTagsDiff || got.Details["ceiling_added"] != strings.Join(s.wantAdded, " ") ||
					got.Details["ceiling_removed"] != strings.Join(s.wantRemoved, " ") {
					t.Fatalf("event %+v", got)
				}
				if err := audit.Check(got); err != nil {
					t.Error(err)
				}
				if d, ok, err := audit.DecisionOf(got); err != nil || !ok || d.PolicyVersion != 0 || !slices.Equal(d.Granted(), s.wantCeiling) {
					t.Errorf("decision %+v %v %v: want version 0 allowing %v", d, ok, err, s.wantCeiling)
				}
			}
		})
	}
}

func TestApplyRecomputeRollback(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	e := seedCeilingStore(t, st)

	// A set that keeps files:read from self-registered agents at
	// registration.
	tight := DefaultFiles()
	tight["tight.cedar"] = `@id("no-dcr-read")
forbid (principal, action == Action::"register", resource)
when { principal.registration_method == "dcr" && resource.name == "files:read" };`

	t.Run("invalid set is refused and nothing changes", func(t *testing.T) {
		bad := DefaultFiles()
		bad["bad.cedar"] = "permit (principal, action, resource) when { principal.nope };"
		err := Apply(ctx, st, &store.PolicySet{Files: bad, CreatedBy: "test"}, &audit.Meta{Time: time.Now()})
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) == 0 || ve.Problems[0].File != "bad.cedar" || ve.Problems[0].Line != 1 {
			t.Fatalf("err = %v, want a located *ValidationError", err)
		}
		if _, err := st.ActivePolicySet(ctx, store.DefaultTenant); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a policy set was stored: %v", err)
		}
		if evs, _ := st.ListAudit(ctx, store.AuditFilter{Type: "policy.applied"}); len(evs) != 0 {
			t.Fatal("audit event written for a refused set")
		}
	})

	var v1 int64
	t.Run("apply stores, recompute narrows", func(t *testing.T) {
		ps := &store.PolicySet{Files: tight, Comment: "tighten", CreatedBy: "test"}
		if err := Apply(ctx, st, ps, &audit.Meta{Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		v1 = ps.Version
		evs, _ := st.ListAudit(ctx, store.AuditFilter{Type: "policy.applied"})
		if len(evs) != 1 || evs[0].Details["sha256"] != Digest(tight) || evs[0].Details["comment"] != "tighten" || evs[0].Details["files"] != "default.cedar tight.cedar" {
			t.Fatalf("policy.applied events %+v", evs)
		}
		changes, err := e.RecomputeCeilings(ctx, &audit.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || changes[0].ClientID != "dcr-1" || !slices.Equal(changes[0].Removed, []string{"files:read"}) {
			t.Fatalf("changes %+v", changes)
		}
		c, _ := st.GetClient(ctx, store.DefaultTenant, "dcr-1")
		if len(c.Scopes) != 0 || WithinCeiling(c, "files:read") {
			t.Fatalf("dcr-1 ceiling %v after tightening, want empty and binding", c.Scopes)
		}
		m, _ := st.GetClient(ctx, store.DefaultTenant, "manual-1")
		if len(m.Scopes) != 0 || !WithinCeiling(m, "files:delete") {
			t.Fatal("the unbounded manual client changed")
		}
		evs, _ = st.ListAudit(ctx, store.AuditFilter{Type: "client.updated", ClientID: "dcr-1"})
		if len(evs) != 1 || evs[0].Details["ceiling_removed"] != "files:read" || evs[0].Details["reason"] != "policy set version 1" ||
			evs[0].Details["change"] != audit.ChangeCeiling || evs[0].Details[audit.DetailPolicyVersion] != "1" {
			t.Fatalf("client.updated events %+v", evs)
		}
	})

	t.Run("a second apply and rollback restore the ceiling", func(t *testing.T) {
		if err := Apply(ctx, st, &store.PolicySet{Files: DefaultFiles(), CreatedBy: "test"}, nil); err != nil {
			t.Fatal(err)
		}
		ps, err := Rollback(ctx, st, "", v1, &audit.Meta{Time: time.Now()})
		if err != nil || ps.Version != v1 || !ps.Active {
			t.Fatalf("Rollback = %+v, %v", ps, err)
		}
		evs, _ := st.ListAudit(ctx, store.AuditFilter{Type: "policy.applied", Limit: 1})
		if len(evs) != 1 || evs[0].Details["operation"] != "rollback" || evs[0].Details["version"] != "1" {
			t.Fatalf("rollback events %+v", evs)
		}
		active, _ := st.ActivePolicySet(ctx, store.DefaultTenant)
		if active.Version != v1 {
			t.Fatalf("active version %d, want %d", active.Version, v1)
		}
		if _, err := Rollback(ctx, st, "", 99, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rollback to an unknown version: %v", err)
		}
		// Back to the default set: the ceiling grows again.
		if err := Apply(ctx, st, &store.PolicySet{Files: DefaultFiles(), CreatedBy: "test"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := e.RecomputeCeilings(ctx, nil); err != nil {
			t.Fatal(err)
		}
		c, _ := st.GetClient(ctx, store.DefaultTenant, "dcr-1")
		if !slices.Equal(c.Scopes, []string{"files:read"}) {
			t.Fatalf("ceiling %v, want files:read back", c.Scopes)
		}
	})
}

func TestRollbackRefusesAnInvalidStoredSet(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	bad := createPolicySet(t, st, map[string]string{"x.cedar": "permit (principal, action, resource) when { principal.nope };"})
	createPolicySet(t, st, DefaultFiles())
	var ve *ValidationError
	if _, err := Rollback(ctx, st, "", bad, nil); !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	if active, _ := st.ActivePolicySet(ctx, store.DefaultTenant); active.Version == bad {
		t.Fatal("the invalid version became active")
	}
}

func TestDigest(t *testing.T) {
	tests := []struct {
		name string
		a, b map[string]string
		same bool
	}{
		{"same set", map[string]string{"a": "x", "b": "y"}, map[string]string{"b": "y", "a": "x"}, true},
		{"content differs", map[string]string{"a": "x"}, map[string]string{"a": "y"}, false},
		{"boundary moved", map[string]string{"ab": "c"}, map[string]string{"a": "bc"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Digest(tt.a) == Digest(tt.b); got != tt.same {
				t.Fatalf("same digest: %t, want %t", got, tt.same)
			}
		})
	}
}

func TestExplainQuery(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	e := seedCeilingStore(t, st)
	now := time.Now()
	if err := st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-alice", Username: "alice", CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		q       Query
		want    []string // substrings of the String form
		wantErr error
		errText string
	}{
		{
			name: "dcr agent, sensitive scope, by username",
			q:    Query{AgentID: "dcr-1", User: "alice", Resource: testResource, Scopes: []string{"files:read", "files:delete"}},
			want: []string{
				`request: grant by agent "dcr-1" (dcr) for user "u-alice" on ` + testResource + `, grant_type authorization_code`,
				`files:read  ALLOW  permitted by "user-consent"`,
				`files:delete  DENY  forbidden by "` + selfRegID + `"`,
				`forbid "` + selfRegID + `" at default.cedar:`,
				"above the agent's ceiling",
			},
		},
		{
			name: "no user means client credentials",
			q:    Query{AgentID: "manual-1", Resource: testResource, Scopes: []string{"files:read"}},
			want: []string{"without a user", "grant_type client_credentials", "files:read  DENY  no policy permits it (default deny)"},
		},
		{
			name: "register action, every scope",
			q:    Query{Action: ActionRegister, AgentID: "dcr-1", Resource: testResource},
			want: []string{"request: register by agent", "files:write  ALLOW", "files:delete  DENY"},
		},
		{name: "unknown agent", q: Query{AgentID: "nobody", Resource: testResource}, wantErr: store.ErrNotFound},
		{name: "unknown user", q: Query{AgentID: "dcr-1", User: "bob", Resource: testResource}, wantErr: store.ErrNotFound},
		{name: "unknown resource", q: Query{AgentID: "dcr-1", Resource: "https://nope.example/mcp"}, wantErr: store.ErrNotFound},
		{name: "unknown scope", q: Query{AgentID: "dcr-1", Resource: testResource, Scopes: []string{"files:nope"}}, errText: `scope "files:nope" is not offered`},
		{name: "unknown action", q: Query{Action: "fly", AgentID: "dcr-1", Resource: testResource}, errText: `unknown action "fly"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := e.ExplainQuery(ctx, tt.q)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %q", err, tt.errText)
				}
				return
			case err != nil:
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

func TestAgentFromClientVerifiedDomain(t *testing.T) {
	tests := []struct {
		name   string
		client store.Client
		want   string
	}{
		{"cimd", store.Client{ID: "https://agent.example/meta.json", RegistrationMethod: store.RegistrationCIMD}, "agent.example"},
		{"cimd without path", store.Client{ID: "https://agent.example", RegistrationMethod: store.RegistrationCIMD}, ""},
		{"cimd with user info", store.Client{ID: "https://good.example@evil.example/meta.json", RegistrationMethod: store.RegistrationCIMD}, ""},
		{"cimd with port", store.Client{ID: "https://agent.example:8443/meta.json", RegistrationMethod: store.RegistrationCIMD}, "agent.example"},
		{"cimd over http", store.Client{ID: "http://agent.example/meta.json", RegistrationMethod: store.RegistrationCIMD}, ""},
		{"dcr", store.Client{ID: "https://agent.example/meta.json", RegistrationMethod: store.RegistrationDCR}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AgentFromClient(&tt.client).VerifiedDomain; got != tt.want {
				t.Fatalf("VerifiedDomain = %q, want %q", got, tt.want)
			}
		})
	}
}
