package store

import (
	"fmt"
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// MaxUsernameLen is the longest username.
const MaxUsernameLen = 64

// CheckUsername accepts 1–64 letters, digits and . _ - @ +: enough for
// names and e-mail addresses, nothing that confuses a terminal or a page.
// The admin CLI and SCIM provisioning check a new user's name with it.
func CheckUsername(s string) error {
	if len(s) == 0 || len(s) > MaxUsernameLen {
		return fmt.Errorf("username must be 1 to %d characters", MaxUsernameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-@+", c) >= 0) {
			return fmt.Errorf("username %q may contain only letters, digits and . _ - @ +", s)
		}
	}
	return nil
}

// UsernameKey is the form under which two usernames are the same
// account's: Unicode compatibility normalization and full case folding
// (NFKC, fold, NFKC again — the shape of Unicode's NFKC_Casefold), so
// "Alice", "ALICE", "ａｌｉｃｅ" (fullwidth) and "alice" are one key. No
// two users of a tenant may share a key: every backend refuses a new
// user whose key another user of the tenant has (ErrConflict), whichever
// path creates it (the CLI, SCIM, a connector's first sign-in). A sign-in
// still finds the username exactly as stored.
func UsernameKey(s string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(s)))
}

// UsernameFree refuses name when one of taken (a tenant's usernames) is
// the same under UsernameKey: ErrConflict, naming the account it reads as.
func UsernameFree(name string, taken []string) error {
	key := UsernameKey(name)
	for _, t := range taken {
		if UsernameKey(t) == key {
			return fmt.Errorf("%w: username %q is the same as %q under case and compatibility folding", ErrConflict, name, t)
		}
	}
	return nil
}
