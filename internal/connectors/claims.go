package connectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/store"
)

// Identity is a person as a connector's provider describes them.
type Identity struct {
	// Subject is the ID token's sub: who the person is at the provider.
	Subject       string
	Username      string
	Email         string
	EmailVerified bool
	Name          string
	// Groups and Roles are nil when the mapping names no claim for them
	// (the user's stored ones stay); otherwise the claim's values, empty
	// when the claim is absent (the user's are cleared).
	Groups []string
	Roles  []string
	// Attributes are the mapped claims present, as strings: nil when the
	// mapping names no attribute (the user's stored ones stay), else the
	// user's attributes from now on.
	Attributes map[string]string
}

// Default claim names.
const (
	DefaultUsernameClaim = "preferred_username"
	DefaultEmailClaim    = "email"
	DefaultNameClaim     = "name"
)

// Bounds of what a provider's claims may put into a user.
const (
	maxValue      = 256  // a username, email, name, group or role
	maxAttrValue  = 1024 // an attribute's value
	maxListValues = 256  // groups or roles
)

// MapClaims reads a person from an ID token's claims with the mapping m.
// A claim name is looked up as is, then, if it has dots and is absent, as
// a path into nested objects ("realm_access.roles"). The username is the
// username claim, else the email; one of them is required. Groups and
// roles take an array of strings or one string; attributes take strings,
// numbers and booleans (others are left out). Values over the bounds are
// refused, not cut.
func MapClaims(m store.ClaimMapping, claims map[string]any) (*Identity, error) {
	id := &Identity{}
	var err error
	// OpenID Connect Core §5.6.2: a claim named in _claim_names is held
	// elsewhere (aggregated or distributed; Entra ID sends its groups so
	// when a person has many). It is not absent — reading it as absent
	// would clear the person's groups, and a policy that forbids by group
	// would stop applying — and the hub does not fetch it: refused.
	if names, ok := claims["_claim_names"].(map[string]any); ok && len(names) > 0 {
		mapped := []string{emailClaimName(m), or(m.Name, DefaultNameClaim), or(m.Username, DefaultUsernameClaim), m.Groups, m.Roles}
		for _, c := range m.Attributes {
			mapped = append(mapped, c)
		}
		for _, c := range mapped {
			if c == "" {
				continue
			}
			top, _, _ := strings.Cut(c, ".")
			for _, k := range []string{c, top} {
				if _, held := names[k]; held {
					return nil, fmt.Errorf("claim %q is held by another source (aggregated or distributed), which this hub does not read", k)
				}
			}
		}
	}
	emailClaim := emailClaimName(m)
	if id.Email, err = stringClaim(claims, emailClaim, maxValue); err != nil {
		return nil, err
	}
	if id.Email != "" && emailClaim == DefaultEmailClaim {
		// OIDC Core §5.1: email_verified qualifies the email claim only.
		id.EmailVerified, _ = claims["email_verified"].(bool)
	}
	if id.Name, err = stringClaim(claims, or(m.Name, DefaultNameClaim), maxValue); err != nil {
		return nil, err
	}
	if id.Username, err = stringClaim(claims, or(m.Username, DefaultUsernameClaim), maxValue); err != nil {
		return nil, err
	}
	if id.Username == "" {
		id.Username = id.Email
	}
	if id.Username == "" {
		return nil, errors.New("no user name or email address")
	}
	if err := CheckUsername(id.Username); err != nil {
		return nil, err
	}
	if m.Groups != "" {
		if id.Groups, err = listClaim(claims, m.Groups); err != nil {
			return nil, err
		}
	}
	if m.Roles != "" {
		if id.Roles, err = listClaim(claims, m.Roles); err != nil {
			return nil, err
		}
	}
	if len(m.Attributes) > 0 {
		id.Attributes = map[string]string{}
	}
	for attr, claim := range m.Attributes {
		v, ok := lookup(claims, claim)
		if !ok {
			continue
		}
		s, ok := scalar(v)
		if !ok {
			continue
		}
		if len(s) > maxAttrValue || !utf8.ValidString(s) {
			return nil, fmt.Errorf("claim %q is too long or not text", claim)
		}
		id.Attributes[attr] = s
	}
	return id, nil
}

func emailClaimName(m store.ClaimMapping) string { return or(m.Email, DefaultEmailClaim) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lookup finds a claim by its name, else by a dotted path.
func lookup(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringClaim returns a string claim ("" when absent); another type is an
// error.
func stringClaim(claims map[string]any, name string, limit int) (string, error) {
	v, ok := lookup(claims, name)
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %q is not a string", name)
	}
	s = strings.TrimSpace(s)
	if len(s) > limit || !PlainText(s) {
		return "", fmt.Errorf("claim %q is too long or not plain text", name)
	}
	return s, nil
}

// listClaim returns the strings of an array claim or the one string of a
// string claim; absent is an empty, non-nil list.
func listClaim(claims map[string]any, name string) ([]string, error) {
	v, ok := lookup(claims, name)
	out := []string{}
	if !ok || v == nil {
		return out, nil
	}
	var items []any
	switch v := v.(type) {
	case string:
		items = []any{v}
	case []any:
		items = v
	default:
		return nil, fmt.Errorf("claim %q is not a list of strings", name)
	}
	if len(items) > maxListValues {
		return nil, fmt.Errorf("claim %q has more than %d values", name, maxListValues)
	}
	seen := map[string]bool{}
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, fmt.Errorf("claim %q is not a list of strings", name)
		}
		if s == "" || len(s) > maxValue || !PlainText(s) {
			return nil, fmt.Errorf("claim %q has a value that is empty, too long or not plain text", name)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// PlainText reports whether s is UTF-8 without control characters (C0,
// DEL, C1): what a provider may put into a username, email, name, group
// or role, which pages, logs and the command line show.
func PlainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// CheckUsername refuses a username with a format character (Unicode Cf:
// zero-width spaces and joiners, soft hyphens, bidirectional overrides),
// which would let it read on pages and in listings as another account's
// name while being a different string.
//
// It also refuses letters of several scripts mixed in one name, such as a
// Cyrillic "а" among Latin letters ("аlice" reads as "alice" but is
// another account's name; case and compatibility folding,
// store.UsernameKey, cannot see it). The mixtures that writing systems
// need are allowed, as in Unicode UTS #39's highly restrictive level:
// Latin with Han, Hiragana and Katakana; with Han and Bopomofo; with Han
// and Hangul.
func CheckUsername(s string) error {
	seen := map[string]bool{}
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("the user name holds an invisible or direction character (U+%04X)", r)
		}
		if !unicode.IsLetter(r) && !unicode.IsNumber(r) {
			continue
		}
		for name, table := range unicode.Scripts {
			if name != "Common" && name != "Inherited" && unicode.Is(table, r) {
				seen[name] = true
				break
			}
		}
	}
	if len(seen) > 1 && !singleWritingSystem(seen) {
		return fmt.Errorf("the user name mixes letters of several scripts (%s)", strings.Join(slices.Sorted(maps.Keys(seen)), ", "))
	}
	return nil
}

// singleWritingSystem reports whether the scripts are one writing
// system's (UTS #39 §5.2, highly restrictive).
func singleWritingSystem(scripts map[string]bool) bool {
	for _, allowed := range [][]string{
		{"Latin", "Han", "Hiragana", "Katakana"},
		{"Latin", "Han", "Bopomofo"},
		{"Latin", "Han", "Hangul"},
	} {
		ok := true
		for s := range scripts {
			if !slices.Contains(allowed, s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// scalar renders a string, number or boolean claim as a string.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return v.String(), true
	}
	return "", false
}
