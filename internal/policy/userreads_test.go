package policy

import (
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"
)

func workforceSet(t *testing.T) *Set {
	t.Helper()
	src, err := os.ReadFile("testdata/workforce.cedar")
	if err != nil {
		t.Fatal(err)
	}
	files := DefaultFiles()
	files["workforce.cedar"] = string(src)
	s, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUserReadsOfPolicies(t *testing.T) {
	s := workforceSet(t)
	tests := []struct {
		id   string
		want UserReads
	}{
		{"deploy-write-oncall-only", UserReads{Groups: true}},
		{"contractors-read-only", UserReads{Attributes: []string{"employment"}}},
		{"user-consent", UserReads{}},
		{"client-credentials-tagged", UserReads{}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			info, ok := s.Policy(tt.id)
			if !ok {
				t.Fatalf("no policy %q", tt.id)
			}
			if !reflect.DeepEqual(info.UserReads, tt.want) {
				t.Errorf("UserReads = %+v, want %+v", info.UserReads, tt.want)
			}
		})
	}
	dyn, err := Compile(map[string]string{"p.cedar": `@id("dyn") permit (principal, action, resource)
when { context has user && context.user.hasTag(resource.name) && context.user.roles.contains("x") };`})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := dyn.Policy("dyn")
	if want := (UserReads{Roles: true, AnyAttribute: true}); !reflect.DeepEqual(info.UserReads, want) {
		t.Errorf("computed tag key: UserReads = %+v, want %+v", info.UserReads, want)
	}
}

// TestExplainUserFacts: the decision on each scope depends on the person's
// groups and attributes as the request carries them, and the explanation
// names the facts that decided it, with the user's values.
func TestExplainUserFacts(t *testing.T) {
	s := workforceSet(t)
	deployWrite, deployRead := Scope{Name: "deploy.write"}, Scope{Name: "deploy.read"}
	user := func(groups []string, attrs map[string]string) *User {
		return &User{ID: "u1", TenantID: homeResource.TenantID, Groups: groups, Attributes: maps.Clone(attrs)}
	}
	tests := []struct {
		name  string
		user  *User
		allow map[string]bool
		want  []string
	}{
		{
			name:  "on-call staff gets both",
			user:  user([]string{"eng", "eng-oncall"}, map[string]string{"employment": "staff"}),
			allow: map[string]bool{"deploy.write": true, "deploy.read": true},
			want:  []string{`deploy.write  ALLOW  permitted by "user-consent"`},
		},
		{
			name:  "not on call: write forbidden by the group rule",
			user:  user([]string{"eng"}, nil),
			allow: map[string]bool{"deploy.write": false, "deploy.read": true},
			want: []string{
				`deploy.write  DENY  forbidden by "deploy-write-oncall-only"`,
				`  decided on user "u1": groups [eng]`,
			},
		},
		{
			name:  "on-call contractor: read only",
			user:  user([]string{"eng-oncall"}, map[string]string{"employment": "contractor"}),
			allow: map[string]bool{"deploy.write": false, "deploy.read": true},
			want: []string{
				`deploy.write  DENY  forbidden by "contractors-read-only"`,
				`  decided on user "u1": attribute employment="contractor"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := Explain(s, &Request{Action: ActionGrant, Agent: manualAgent, User: tt.user, Resource: homeResource,
				Scopes: []Scope{deployWrite, deployRead}, Context: Context{GrantType: "authorization_code"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, se := range x.Scopes {
				if se.Allowed != tt.allow[se.Scope] {
					t.Errorf("%s allowed = %v, want %v", se.Scope, se.Allowed, tt.allow[se.Scope])
				}
			}
			out := x.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("explanation lacks %q:\n%s", w, out)
				}
			}
		})
	}

	// A default deny shows what the permits read: here a permit on a role.
	only, err := Compile(map[string]string{"p.cedar": `@id("admins") permit (principal, action, resource)
when { context has user && context.user.roles.contains("admin") };`})
	if err != nil {
		t.Fatal(err)
	}
	x, err := Explain(only, &Request{Action: ActionGrant, Agent: manualAgent, User: user(nil, nil), Resource: homeResource,
		Scopes: []Scope{deployRead}, Context: Context{GrantType: "authorization_code"}})
	if err != nil {
		t.Fatal(err)
	}
	if out, w := x.String(), `no permit matched; the permits read user "u1": roles []`; !strings.Contains(out, w) {
		t.Errorf("default deny explanation lacks %q:\n%s", w, out)
	}
}
