package store

import (
	"fmt"
	"strings"
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
