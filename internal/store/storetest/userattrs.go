package storetest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/store"
)

// testUserAttributes: roles, groups and attributes round-trip through
// CreateUser, GetUser, ListUsers and UpdateUser (which replaces them
// whole), and what CheckUserAccess refuses is ErrInvalid with no event
// written and the stored user untouched.
func testUserAttributes(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	u := &store.User{TenantID: tn, ID: "ua1", Username: "ada", PasswordHash: "x", CreatedAt: base(), UpdatedAt: base()}
	must(t, "CreateUser", s.CreateUser(ctx(t), u, nil))
	got, err := s.GetUser(ctx(t), tn, u.ID)
	must(t, "GetUser", err)
	if got.Attributes != nil || got.Roles != nil || got.Groups != nil {
		t.Fatalf("a user created without any reads back %v %v %v, want nil", got.Roles, got.Groups, got.Attributes)
	}

	upd := *got
	upd.Roles = []string{"oncall", "Release Manager"}
	upd.Groups = []string{"eng-oncall", "CN=Ops,OU=Groups"}
	upd.Attributes = map[string]string{"employment": "contractor", "cost-center": "", "region.eu": "ünïcode"}
	ev := event(tn, "user.updated")
	must(t, "UpdateUser", s.UpdateUser(ctx(t), &upd, ev))
	wantAudit(t, s, ev)
	got, err = s.GetUser(ctx(t), tn, u.ID)
	must(t, "GetUser", err)
	checkEqual(t, "user after update", &upd, got)
	byName, err := s.GetUserByUsername(ctx(t), tn, u.Username)
	must(t, "GetUserByUsername", err)
	checkEqual(t, "user by name", &upd, byName)
	list, err := s.ListUsers(ctx(t), tn)
	must(t, "ListUsers", err)
	for _, l := range list {
		if l.ID == u.ID {
			checkEqual(t, "listed user", &upd, l)
		}
	}

	cleared := upd
	cleared.Roles, cleared.Groups, cleared.Attributes = nil, nil, map[string]string{}
	must(t, "UpdateUser", s.UpdateUser(ctx(t), &cleared, nil))
	got, err = s.GetUser(ctx(t), tn, u.ID)
	must(t, "GetUser", err)
	if got.Attributes != nil || got.Roles != nil || got.Groups != nil {
		t.Fatalf("after clearing: %v %v %v, want nil", got.Roles, got.Groups, got.Attributes)
	}
	must(t, "UpdateUser", s.UpdateUser(ctx(t), &upd, nil))

	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	manyAttrs := map[string]string{}
	for i := range store.MaxUserAttributes + 1 {
		manyAttrs[fmt.Sprintf("k%d", i)] = "v"
	}
	bad := []struct {
		name string
		edit func(u *store.User)
	}{
		{"attribute key with space", func(u *store.User) { u.Attributes = map[string]string{"cost center": "x"} }},
		{"attribute key with =", func(u *store.User) { u.Attributes = map[string]string{"a=b": "x"} }},
		{"attribute key starting with digit", func(u *store.User) { u.Attributes = map[string]string{"1a": "x"} }},
		{"empty attribute key", func(u *store.User) { u.Attributes = map[string]string{"": "x"} }},
		{"long attribute key", func(u *store.User) {
			u.Attributes = map[string]string{"k" + strings.Repeat("x", store.MaxAttributeKeyLen): "x"}
		}},
		{"long attribute value", func(u *store.User) {
			u.Attributes = map[string]string{"k": strings.Repeat("x", store.MaxAttributeValueLen+1)}
		}},
		{"control character in value", func(u *store.User) { u.Attributes = map[string]string{"k": "a\nb"} }},
		{"value not UTF-8", func(u *store.User) { u.Attributes = map[string]string{"k": "\xff"} }},
		{"too many attributes", func(u *store.User) { u.Attributes = manyAttrs }},
		{"empty group", func(u *store.User) { u.Groups = []string{""} }},
		{"duplicate role", func(u *store.User) { u.Roles = []string{"a", "a"} }},
		{"long group", func(u *store.User) { u.Groups = []string{strings.Repeat("g", store.MaxRoleOrGroupNameLen+1)} }},
		{"too many groups", func(u *store.User) {
			u.Groups = many(store.MaxUserGroups+1, func(i int) string { return fmt.Sprint("g", i) })
		}},
		{"too many roles", func(u *store.User) {
			u.Roles = many(store.MaxUserRoles+1, func(i int) string { return fmt.Sprint("r", i) })
		}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			w := upd
			tc.edit(&w)
			ev := event(tn, "user.updated")
			wantErr(t, "UpdateUser", s.UpdateUser(ctx(t), &w, ev), store.ErrInvalid)
			wantNoAudit(t, s, ev)
			got, err := s.GetUser(ctx(t), tn, u.ID)
			must(t, "GetUser", err)
			checkEqual(t, "user after refused update", &upd, got)
			w.ID, w.Username = "ua-new", "ada-new"
			ev = event(tn, "user.created")
			wantErr(t, "CreateUser", s.CreateUser(ctx(t), &w, ev), store.ErrInvalid)
			wantNoAudit(t, s, ev)
		})
	}
}

// testResourceUserClaims: a resource's user claims round-trip, are
// replaced by UpdateResource and cleared by an empty map; a reserved claim
// name, a bad name or an unknown source is ErrInvalid with nothing written.
func testResourceUserClaims(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	r := &store.Resource{TenantID: tn, ID: "rc1", URI: "https://claims.example.com/mcp", CreatedAt: base(),
		Scopes: []store.Scope{{Name: "read"}}}
	must(t, "CreateResource", s.CreateResource(ctx(t), r, nil))
	got, err := s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	if got.UserClaims != nil {
		t.Fatalf("UserClaims of a resource created without = %v", got.UserClaims)
	}
	upd := *got
	upd.UserClaims = map[string]string{"department": "attr:department", "roles": "roles", "email_address": "email", "who": "username", "display": "name"}
	must(t, "UpdateResource", s.UpdateResource(ctx(t), &upd, nil))
	got, err = s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	checkEqual(t, "resource with user claims", &upd, got)

	for _, bad := range []map[string]string{
		{"sub": "username"},
		{"ISS": "groups"},
		{"scope": "groups"},
		{"client_id": "groups"},
		{"act": "groups"},
		{"cnf": "groups"},
		{"groups": "everything"},
		{"groups": "attr:"},
		{"groups": "attr:bad key"},
		{"bad name": "groups"},
		{"": "groups"},
	} {
		t.Run(fmt.Sprint(bad), func(t *testing.T) {
			w := upd
			w.UserClaims = bad
			ev := event(tn, "resource.updated")
			wantErr(t, "UpdateResource", s.UpdateResource(ctx(t), &w, ev), store.ErrInvalid)
			wantNoAudit(t, s, ev)
			w.ID, w.URI = "rc-new", "https://claims-new.example.com/mcp"
			wantErr(t, "CreateResource", s.CreateResource(ctx(t), &w, nil), store.ErrInvalid)
		})
	}
	got, err = s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	checkEqual(t, "resource after refused updates", &upd, got)

	upd.UserClaims = map[string]string{}
	must(t, "UpdateResource", s.UpdateResource(ctx(t), &upd, nil))
	got, err = s.GetResource(ctx(t), tn, r.URI)
	must(t, "GetResource", err)
	if got.UserClaims != nil {
		t.Fatalf("UserClaims after clearing = %v", got.UserClaims)
	}
}
