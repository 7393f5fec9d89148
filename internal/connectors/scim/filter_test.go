package scim

import (
	"testing"

	"github.com/scim2/filter-parser/v2"
)

// TestRewriteFilter: the comparisons on multi-valued complex attributes
// become value paths, everything else is written back as it means.
func TestRewriteFilter(t *testing.T) {
	tests := []struct{ in, want string }{
		{`members eq "u1"`, `members[value eq "u1"]`},
		{`id eq "g" and members eq "u\"1"`, `(id eq "g") and (members[value eq "u\"1"])`},
		{`emails.value co "@example.com"`, `emails[value co "@example.com"]`},
		{`not (emails.type eq "work") or userName sw "b"`, `(not (emails[type eq "work"])) or (userName sw "b")`},
		{`urn:ietf:params:scim:schemas:core:2.0:User:emails pr`, `urn:ietf:params:scim:schemas:core:2.0:User:emails[value pr]`},
	}
	for _, tc := range tests {
		e, err := filter.ParseFilter([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		s := userSchema
		if tc.in[0] == 'i' || tc.in[0] == 'm' {
			s = groupSchema
		}
		out, changed := rewriteFilter(e, s)
		if got := formatFilter(out); !changed || got != tc.want {
			t.Errorf("%s: %q (changed %v), want %q", tc.in, got, changed, tc.want)
		}
	}
	for _, in := range []string{`userName eq "bjensen"`, `meta.lastModified gt "2011-05-13T04:42:34Z"`, `emails[type eq "work"]`, `name.familyName co "O'Malley"`} {
		e, _ := filter.ParseFilter([]byte(in))
		if _, changed := rewriteFilter(e, userSchema); changed {
			t.Errorf("%s was rewritten", in)
		}
	}
}

// FuzzFormatFilter: a filter written back parses again to the same
// filter, so a rewrite never changes what the rest of a filter means.
func FuzzFormatFilter(f *testing.F) {
	for _, s := range []string{`userName eq "bjensen"`, `members eq "u1" and not (displayName sw "a\"b")`,
		`emails[type eq "work" and value co "@x"] or active eq true`, `meta.created ge "2020-01-01T00:00:00Z" and title pr`,
		`x eq 1.5 or y eq null or z eq false`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e, err := filter.ParseFilter([]byte(in))
		if err != nil {
			return
		}
		once := formatFilter(e)
		e2, err := filter.ParseFilter([]byte(once))
		if err != nil {
			t.Fatalf("%q written as %q, which does not parse: %v", in, once, err)
		}
		if twice := formatFilter(e2); twice != once {
			t.Fatalf("%q: written %q, then %q", in, once, twice)
		}
	})
}
