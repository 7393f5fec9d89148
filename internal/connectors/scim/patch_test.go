package scim

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
)

// sampleUser is a User's attributes as userResource builds them.
func sampleUser() map[string]any {
	return map[string]any{
		"userName": "bjensen",
		"active":   true,
		"name":     map[string]any{"formatted": "Barbara Jensen"},
		"emails": []any{
			map[string]any{"value": "bjensen@example.com", "type": "work", "primary": true},
			map[string]any{"value": "babs@example.org", "type": "home"},
		},
		"groups": []any{map[string]any{"value": "g1", "display": "eng"}},
	}
}

func op(t *testing.T, s schema.Schema, o, path string, value any) scim.PatchOperation {
	t.Helper()
	p := scim.PatchOperation{Op: o, Value: value}
	if path != "" {
		v, err := scimfilter.NewPathValidator(path, s)
		if err != nil {
			t.Fatalf("path %q: %v", path, err)
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("path %q: %v", path, err)
		}
		pp := v.Path()
		p.Path = &pp
	}
	return p
}

// TestApplyPatch: each RFC 7644 §3.5.2 form on a User (and members on a
// Group) changes exactly what it says, and the refusals carry their
// scimType.
func TestApplyPatch(t *testing.T) {
	tests := []struct {
		name     string
		s        schema.Schema
		res      map[string]any
		op       string
		path     string
		value    any
		want     map[string]any // the changed attributes (nil: removed)
		scimType scimerrors.ScimType
	}{
		{name: "replace active", s: userSchema, res: sampleUser(), op: "replace", path: "active", value: false, want: map[string]any{"active": false}},
		{name: "replace without path", s: userSchema, res: sampleUser(), op: "replace", value: map[string]any{"Active": false, "displayName": "Babs"},
			want: map[string]any{"active": false, "displayName": "Babs"}},
		{name: "sub-attribute", s: userSchema, res: sampleUser(), op: "add", path: "name.givenName", value: "Barbara",
			want: map[string]any{"name": map[string]any{"formatted": "Barbara Jensen", "givenName": "Barbara"}}},
		{name: "complex merge", s: userSchema, res: sampleUser(), op: "replace", path: "name", value: map[string]any{"familyName": "J"},
			want: map[string]any{"name": map[string]any{"formatted": "Barbara Jensen", "familyName": "J"}}},
		{name: "remove sub-attribute", s: userSchema, res: sampleUser(), op: "remove", path: "name.formatted", want: map[string]any{"name": nil}},
		{name: "filtered sub-attribute", s: userSchema, res: sampleUser(), op: "replace", path: `emails[type eq "home"].value`, value: "b@example.net",
			want: map[string]any{"emails": []any{
				map[string]any{"value": "bjensen@example.com", "type": "work", "primary": true},
				map[string]any{"value": "b@example.net", "type": "home"},
			}}},
		{name: "filtered remove", s: userSchema, res: sampleUser(), op: "remove", path: `emails[type eq "work"]`,
			want: map[string]any{"emails": []any{map[string]any{"value": "babs@example.org", "type": "home"}}}},
		{name: "add keeps a value once", s: userSchema, res: sampleUser(), op: "add", path: "emails", value: []any{map[string]any{"value": "babs@example.org"}, map[string]any{"value": "n@example.com"}},
			want: map[string]any{"emails": []any{
				map[string]any{"value": "bjensen@example.com", "type": "work", "primary": true},
				map[string]any{"value": "babs@example.org", "type": "home"},
				map[string]any{"value": "n@example.com"},
			}}},
		{name: "members add", s: groupSchema, res: map[string]any{"displayName": "eng", "members": []any{map[string]any{"value": "u1"}}}, op: "add", path: "members",
			value: []any{map[string]any{"value": "u2", "display": "Babs"}},
			want:  map[string]any{"members": []any{map[string]any{"value": "u1"}, map[string]any{"value": "u2", "display": "Babs"}}}},
		{name: "members remove by filter", s: groupSchema, res: map[string]any{"displayName": "eng", "members": []any{map[string]any{"value": "u1"}, map[string]any{"value": "u2"}}},
			op: "remove", path: `members[value eq "u1"]`, want: map[string]any{"members": []any{map[string]any{"value": "u2"}}}},
		{name: "members remove all", s: groupSchema, res: map[string]any{"displayName": "eng", "members": []any{map[string]any{"value": "u1"}}},
			op: "remove", path: "members", want: map[string]any{"members": nil}},
		{name: "groups read-only", s: userSchema, res: sampleUser(), op: "add", path: "groups", value: []any{map[string]any{"value": "g2"}}, scimType: scimerrors.ScimTypeMutability},
		{name: "groups read-only without path", s: userSchema, res: sampleUser(), op: "replace", value: map[string]any{"groups": []any{}}, scimType: scimerrors.ScimTypeMutability},
		{name: "no target", s: userSchema, res: sampleUser(), op: "replace", path: `emails[type eq "other"].value`, value: "x", scimType: scimerrors.ScimTypeNoTarget},
		{name: "unknown attribute without path", s: userSchema, res: sampleUser(), op: "add", value: map[string]any{"shoeSize": "9"}, scimType: scimerrors.ScimTypeInvalidPath},
		{name: "value not an object", s: userSchema, res: sampleUser(), op: "replace", value: "x", scimType: scimerrors.ScimTypeInvalidValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := clone(tc.res)
			err := applyPatch(tc.res, tc.s, []scim.PatchOperation{op(t, tc.s, tc.op, tc.path, tc.value)})
			if tc.scimType != "" {
				var se scimerrors.ScimError
				if !errors.As(err, &se) || se.ScimType != tc.scimType {
					t.Fatalf("error %v, want scimType %s", err, tc.scimType)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				got, ok := tc.res[k]
				if v == nil {
					if ok {
						t.Errorf("%s = %v, want removed", k, got)
					}
					continue
				}
				if !reflect.DeepEqual(got, v) {
					t.Errorf("%s = %#v, want %#v", k, got, v)
				}
				delete(tc.res, k)
				delete(before, k)
			}
			for k := range tc.want {
				delete(before, k)
				delete(tc.res, k)
			}
			if !reflect.DeepEqual(before, tc.res) {
				t.Errorf("other attributes changed: %v, was %v", tc.res, before)
			}
		})
	}
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// FuzzApplyPatch: any path the path grammar accepts, with any JSON
// value and operation, applies or fails with a SCIM error, never panics,
// and what it leaves can still be read as a profile or refused as one.
func FuzzApplyPatch(f *testing.F) {
	for _, s := range [][3]string{
		{"replace", "active", "false"},
		{"add", "members", `[{"value":"u1"}]`},
		{"remove", `members[value eq "u1"]`, ""},
		{"replace", `emails[type eq "work" and value co "@example.com"].value`, `"x@example.com"`},
		{"add", "name.givenName", `"B"`},
		{"replace", "", `{"emails":[{"value":"a@b"}],"nickname":"Babs"}`},
		{"remove", `emails[not (type eq "work")]`, ""},
		{"add", "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", `"J"`},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, o, path, value string) {
		var v any
		if value != "" && json.Unmarshal([]byte(value), &v) != nil {
			return
		}
		p := scim.PatchOperation{Op: o, Value: v}
		for _, s := range []schema.Schema{userSchema, groupSchema} {
			if path != "" {
				pv, err := scimfilter.NewPathValidator(path, s)
				if err != nil || pv.Validate() != nil {
					continue
				}
				pp := pv.Path()
				p.Path = &pp
			}
			res := sampleUser()
			if err := applyPatch(res, s, []scim.PatchOperation{p}); err != nil {
				var se scimerrors.ScimError
				if !errors.As(err, &se) {
					t.Fatalf("%s %q: a non-SCIM error %v", o, path, err)
				}
				continue
			}
			_, _ = profileOf(res)
			_, _ = groupSpecOf(res)
		}
	})
}

// FuzzListFilter: a list filter the grammar accepts evaluates on any
// User without panicking.
func FuzzListFilter(f *testing.F) {
	for _, s := range []string{`userName eq "bjensen"`, `emails[type eq "work" and value co "@example.com"]`, `meta.lastModified gt "2011-05-13T04:42:34Z"`,
		`title pr and userType eq "Employee"`, `not (active eq false) or name.familyName sw "J"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		v, err := scimfilter.NewValidator(expr, userSchema)
		if err != nil || v.Validate() != nil {
			return
		}
		r := scim.Resource{ID: "u1", Attributes: sampleUser()}
		_, err = filtered(scim.ListRequestParams{FilterValidator: &v}, []scim.Resource{r})
		var se scimerrors.ScimError
		if err != nil && (!errors.As(err, &se) || se.ScimType != scimerrors.ScimTypeInvalidFilter) {
			t.Fatalf("filter %q: %v", expr, err)
		}
	})
}
