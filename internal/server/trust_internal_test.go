package server

import "testing"

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
