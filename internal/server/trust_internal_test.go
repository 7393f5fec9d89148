package server

import (
	"strings"
	"testing"
	"unicode"
)

// TestDisplayName: a client-chosen name shown beside a host loses what
// could reorder or hide text around it (bidirectional overrides and
// isolates, other format characters, control characters) and its runs
// of white space.
func TestDisplayName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Example MCP Client", "Example MCP Client"},
		{"Google\u202e Drive", "Google Drive"},
		{"\u2067evil\u2069 app", "evil app"},
		{"a\u200bb\u00adc", "abc"},
		{"  tabs\tand\nlines  ", "tabs and lines"},
		{"bell\x07", "bell"},
		{"Ünïcødé 名前", "Ünïcødé 名前"},
	} {
		if got := displayName(tc.in); got != tc.want {
			t.Errorf("displayName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzDisplayName: whatever a document calls itself, the name shown has
// no format or control character and no leading, trailing or doubled
// space.
func FuzzDisplayName(f *testing.F) {
	for _, s := range []string{"Example", "Google\u202e Drive", "\u2067x\u2069", "a\tb", " \u00a0 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := displayName(in)
		for _, r := range out {
			if unicode.Is(unicode.Cf, r) || unicode.IsControl(r) {
				t.Fatalf("displayName(%q) = %q keeps %U", in, out, r)
			}
		}
		if strings.TrimSpace(out) != out || strings.Contains(out, "  ") {
			t.Fatalf("displayName(%q) = %q", in, out)
		}
	})
}
