package store

import (
	"errors"
	"testing"
)

// TestUsernameKey: the forms a person reads as one name fold to one key,
// and different names stay apart.
func TestUsernameKey(t *testing.T) {
	same := [][2]string{
		{"alice", "ALICE"},
		{"alice", "Alice"},
		{"alice", "\uff41\uff4c\uff49\uff43\uff45"}, // fullwidth
		{"strasse", "STRAßE"},
		{"josé", "JOSE\u0301"},    // composed and decomposed
		{"office", "o\ufb03ce"},   // the ffi ligature
		{"ⅸ", "ix"},               // a compatibility roman numeral
		{"σοφία", "ΣΟΦΊΑ"},        // final and medial sigma
		{"kelvin", "\u212aelvin"}, // KELVIN SIGN
		{"a@example.com", "A@EXAMPLE.COM"},
	}
	for _, p := range same {
		if UsernameKey(p[0]) != UsernameKey(p[1]) {
			t.Errorf("%q and %q fold apart: %q, %q", p[0], p[1], UsernameKey(p[0]), UsernameKey(p[1]))
		}
		if err := UsernameFree(p[1], []string{"bob", p[0]}); !errors.Is(err, ErrConflict) {
			t.Errorf("UsernameFree(%q) beside %q: %v", p[1], p[0], err)
		}
	}
	for _, p := range [][2]string{{"alice", "alicia"}, {"bob", "b0b"}, {"a.b", "a-b"}} {
		if UsernameKey(p[0]) == UsernameKey(p[1]) {
			t.Errorf("%q and %q fold together", p[0], p[1])
		}
		if err := UsernameFree(p[1], []string{p[0]}); err != nil {
			t.Errorf("UsernameFree(%q) beside %q: %v", p[1], p[0], err)
		}
	}
}
