package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds on what a user carries into policy and tokens. They keep a user
// row, a Cedar entity and an access token small whatever an identity
// provider sends: a person in a thousand groups is cut down where the
// groups come in, not at the token endpoint.
const (
	MaxUserAttributes     = 64   // attributes per user
	MaxAttributeKeyLen    = 64   // bytes
	MaxAttributeValueLen  = 1024 // bytes
	MaxUserRoles          = 256  // roles per user
	MaxUserGroups         = 256  // groups per user
	MaxRoleOrGroupNameLen = 256  // bytes
	MaxResourceUserClaims = 16   // claim mappings per resource
	maxUserClaimNameLen   = 64   // bytes
)

// Sources of a resource's user claims (Resource.UserClaims): the user's
// roles or groups (a JSON array), profile fields, or one attribute
// (UserClaimAttrPrefix + key).
const (
	UserClaimRoles      = "roles"
	UserClaimGroups     = "groups"
	UserClaimUsername   = "username"
	UserClaimEmail      = "email"
	UserClaimName       = "name"
	UserClaimAttrPrefix = "attr:"
)

// reservedClaims are the claim names a user claim may never take: the
// registered claims of RFC 7519 §4.1, those RFC 9068 §2.2 and OpenID
// Connect give meaning in an access token, the delegation and
// confirmation claims (RFC 8693 §4, RFC 7800 §3), and what RFC 9396,
// RFC 9449 and ID tokens put beside them. A resource server trusts these
// to say what the hub decided; a person's attribute must never pass for
// one. Compared case-insensitively, so "ISS" cannot confuse a lax reader.
var reservedClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", // RFC 7519 §4.1
	"client_id", "scope", "scp", "auth_time", "acr", "amr", // RFC 9068 §2.2
	"act", "may_act", // RFC 8693 §4.1, §4.4
	"cnf",                                             // RFC 7800 §3
	"authorization_details",                           // RFC 9396 §9
	"azp", "nonce", "at_hash", "c_hash", "sid", "typ", // OpenID Connect Core §2, §3
	"token_type", "active", "username", "htm", "htu", "ath", // RFC 7662 §2.2, RFC 9449 §4.2
}

// ReservedClaim reports whether name is a claim the hub writes itself or a
// protocol gives meaning to, which no user claim may take.
func ReservedClaim(name string) bool {
	for _, r := range reservedClaims {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// CheckAttributeKey refuses an attribute key that is not a name: keys are
// 1–64 characters of letters, digits, '_', '-' and '.', starting with a
// letter, so that they read the same in a Cedar getTag, a claim source
// ("attr:department"), a KEY=VALUE argument and a space-separated audit
// list.
func CheckAttributeKey(k string) error { return checkName("attribute key", k, MaxAttributeKeyLen) }

// checkName refuses a name that is not 1 to max letters, digits, '_', '-'
// or '.', starting with a letter.
func checkName(what, s string, max int) error {
	ok := s != "" && len(s) <= max && isLetter(s[0])
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isLetter(c) || isDigit(c) || c == '_' || c == '-' || c == '.'
	}
	if !ok {
		return fmt.Errorf("store: %s %q: want 1 to %d letters, digits, '_', '-' or '.', starting with a letter: %w", what, clip(s), max, ErrInvalid)
	}
	return nil
}

// checkText refuses a value that is empty (unless allowed), longer than
// max bytes, not UTF-8, or holds a control character.
func checkText(what, v string, max int, emptyOK bool) error {
	switch {
	case v == "" && !emptyOK:
		return fmt.Errorf("store: %s is empty: %w", what, ErrInvalid)
	case len(v) > max:
		return fmt.Errorf("store: %s is longer than %d bytes: %w", what, max, ErrInvalid)
	case !utf8.ValidString(v):
		return fmt.Errorf("store: %s is not UTF-8: %w", what, ErrInvalid)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("store: %s holds a control character: %w", what, ErrInvalid)
		}
	}
	return nil
}

// CheckUserAccess refuses roles, groups and attributes a user cannot hold:
// more than the bounds above, an empty, overlong, non-UTF-8 or
// control-character name or value, a duplicate role or group, or a bad
// attribute key (CheckAttributeKey). Both store backends run it on
// CreateUser and UpdateUser.
func CheckUserAccess(u *User) error {
	if err := checkNames("role", u.Roles, MaxUserRoles); err != nil {
		return err
	}
	if err := checkNames("group", u.Groups, MaxUserGroups); err != nil {
		return err
	}
	if len(u.Attributes) > MaxUserAttributes {
		return fmt.Errorf("store: %d attributes, at most %d: %w", len(u.Attributes), MaxUserAttributes, ErrInvalid)
	}
	for k, v := range u.Attributes {
		if err := CheckAttributeKey(k); err != nil {
			return err
		}
		if err := checkText("attribute "+k, v, MaxAttributeValueLen, true); err != nil {
			return err
		}
	}
	return nil
}

// CheckRoleOrGroup refuses a role or group name a user cannot hold.
func CheckRoleOrGroup(kind, name string) error {
	return checkText(kind+" "+fmt.Sprintf("%q", clip(name)), name, MaxRoleOrGroupNameLen, false)
}

func checkNames(kind string, names []string, max int) error {
	if len(names) > max {
		return fmt.Errorf("store: %d %ss, at most %d: %w", len(names), kind, max, ErrInvalid)
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := CheckRoleOrGroup(kind, n); err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("store: %s %q twice: %w", kind, clip(n), ErrInvalid)
		}
		seen[n] = true
	}
	return nil
}

// CheckUserClaims refuses a resource's user-claim mapping (claim name →
// source) that tokens cannot carry: more than MaxResourceUserClaims
// entries, a claim name that is not 1–64 letters, digits, '_', '-' or '.'
// starting with a letter, a reserved claim (ReservedClaim), or an unknown
// source.
func CheckUserClaims(m map[string]string) error {
	if len(m) > MaxResourceUserClaims {
		return fmt.Errorf("store: %d user claims, at most %d: %w", len(m), MaxResourceUserClaims, ErrInvalid)
	}
	for name, src := range m {
		if err := CheckUserClaimName(name); err != nil {
			return err
		}
		if err := CheckUserClaimSource(src); err != nil {
			return err
		}
	}
	return nil
}

// CheckUserClaimName refuses a name a user claim cannot take.
func CheckUserClaimName(name string) error {
	if err := checkName("claim name", name, maxUserClaimNameLen); err != nil {
		return err
	}
	if ReservedClaim(name) {
		return fmt.Errorf("store: claim name %q is reserved (a registered or protocol claim the hub sets itself): %w", name, ErrInvalid)
	}
	return nil
}

// CheckUserClaimSource refuses an unknown source of a user claim.
func CheckUserClaimSource(src string) error {
	switch src {
	case UserClaimRoles, UserClaimGroups, UserClaimUsername, UserClaimEmail, UserClaimName:
		return nil
	}
	if key, ok := strings.CutPrefix(src, UserClaimAttrPrefix); ok {
		return CheckAttributeKey(key)
	}
	return fmt.Errorf("store: claim source %q: want roles, groups, username, email, name or attr:KEY: %w", clip(src), ErrInvalid)
}

// UserClaimValue is the value of a user claim with source src for u: a
// string, or for roles and groups a list (empty when the user has none).
// ok is false when the user has no value (an attribute not set, an empty
// profile field): the token then omits the claim.
func UserClaimValue(u *User, src string) (v any, ok bool) {
	switch src {
	case UserClaimRoles:
		return nonNil(u.Roles), true
	case UserClaimGroups:
		return nonNil(u.Groups), true
	case UserClaimUsername:
		return u.Username, u.Username != ""
	case UserClaimEmail:
		return u.Email, u.Email != ""
	case UserClaimName:
		return u.Name, u.Name != ""
	}
	if key, found := strings.CutPrefix(src, UserClaimAttrPrefix); found {
		a, ok := u.Attributes[key]
		return a, ok
	}
	return nil, false
}

// UserClaimsFor returns the user claims mapping (claim name → source, a
// Resource.UserClaims) gives u, leaving out those u has no value for; nil
// when none.
func UserClaimsFor(u *User, mapping map[string]string) map[string]any {
	var out map[string]any
	for name, src := range mapping {
		if v, ok := UserClaimValue(u, src); ok {
			if out == nil {
				out = make(map[string]any, len(mapping))
			}
			out[name] = v
		}
	}
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// clip shortens a refused value for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
