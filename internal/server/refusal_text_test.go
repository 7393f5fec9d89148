package server

import "testing"

// TestCLIArg: the administrator's command can be pasted into a shell as it
// is shown, whatever the client id or username.
func TestCLIArg(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain id", "oeCWP1Y6B-Thc_UTC_XN8g", "oeCWP1Y6B-Thc_UTC_XN8g"},
		{"URL", "https://mcp.example.com/mcp", "https://mcp.example.com/mcp"},
		{"id starting with a dash", "-abc", "-- -abc"},
		{"space", "a b", "'a b'"},
		{"quote", "it's", `'it'\''s'`},
		{"shell characters", "$(rm -rf /)", "'$(rm -rf /)'"},
		{"non-ASCII", "zoë", "'zoë'"},
		{"empty", "", "''"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cliArg(tc.in); got != tc.want {
				t.Fatalf("cliArg(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
