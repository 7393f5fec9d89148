package store

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var attrKeyRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)

// FuzzCheckUserAccess: what an identity provider or an admin sends as a
// person's attributes and groups is accepted only within the bounds: keys
// of the documented syntax, values and names valid UTF-8 without control
// characters; an accepted attribute reaches a token as it is.
func FuzzCheckUserAccess(f *testing.F) {
	for _, s := range [][3]string{
		{"employment", "contractor", "eng-oncall"}, {"cost center", "x", "g"}, {"k", "a\nb", "g"},
		{"k", "\xff", "g"}, {"9k", "v", "g"}, {"k", "v", ""}, {"dept.eu", "ünï", "CN=Ops,OU=Groups"},
		{"k", "v", "tab\there"}, {"k", "\u0085", "g"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, key, value, group string) {
		u := &User{Attributes: map[string]string{key: value}, Groups: []string{group}}
		if CheckUserAccess(u) != nil {
			return
		}
		if !attrKeyRe.MatchString(key) {
			t.Fatalf("accepted attribute key %q", key)
		}
		for _, s := range []string{value, group} {
			if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }) {
				t.Fatalf("accepted %q", s)
			}
		}
		if group == "" || len(group) > MaxRoleOrGroupNameLen || len(value) > MaxAttributeValueLen {
			t.Fatalf("accepted group %q value of %d bytes", group, len(value))
		}
		got := UserClaimsFor(u, map[string]string{"a": UserClaimAttrPrefix + key, "g": UserClaimGroups})
		if got["a"] != value || got["g"].([]string)[0] != group {
			t.Fatalf("UserClaimsFor = %v", got)
		}
	})
}

// TestReservedClaims: every claim the hub writes into an access token is
// reserved, in any case; ordinary attribute names are not.
func TestReservedClaims(t *testing.T) {
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "auth_time",
		"act", "may_act", "cnf", "SUB", "Scope", "acr", "amr", "azp", "authorization_details"} {
		if !ReservedClaim(name) {
			t.Errorf("%q is not reserved", name)
		}
		if CheckUserClaimName(name) == nil {
			t.Errorf("CheckUserClaimName(%q) accepted it", name)
		}
	}
	for _, name := range []string{"groups", "roles", "department", "email_address", "employment"} {
		if ReservedClaim(name) || CheckUserClaimName(name) != nil {
			t.Errorf("%q is refused", name)
		}
	}
}
