package server

import (
	"strings"
	"testing"
)

func TestSafeReturnConnections(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/connections", "/connections"},
		{"/connections/connect/calendar?intent=v1.k1.abc_-.def%3D", "/connections/connect/calendar?intent=v1.k1.abc_-.def%3D"},
		{"/connections/", "/account"},
		{"/connections?x=1", "/account"},
		{"/connections/connect/calendar", "/account"},
		{"/connections/connect/calendar?intent=", "/account"},
		{"/connections/connect/Calendar?intent=abc", "/account"},
		{"/connections/connect/../account?intent=abc", "/account"},
		{"/connections/connect/calendar?intent=abc&next=//evil.example", "/account"},
		{"/connections/connect/calendar?intent=abc/..", "/account"},
		{"/connections/connect/calendar?intent=a\r\nSet-Cookie:x", "/account"},
		{"/connections/connect/calendar?intent=" + strings.Repeat("a", 4097), "/account"},
		{"//evil.example/connections", "/account"},
		{"https://evil.example/connections", "/account"},
	} {
		if got := safeReturn(tt.in); got != tt.want {
			t.Errorf("safeReturn(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSafeReturn: whatever a login link carries, the redirect after
// sign-in stays on one of the hub's own pages: a path starting with a
// single slash, without a backslash, line break or second slash at the
// start that a browser would read as another host.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/connections", "/connections/connect/calendar?intent=v1.a.b.c", "/authorize?client_id=x", "/account", "//x", "/\\x", "/connections/connect/a?intent=%0d%0a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := safeReturn(in)
		if got == "/account" {
			return
		}
		if got != in || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("safeReturn(%q) = %q", in, got)
		}
		if strings.HasPrefix(got, "/connections/connect/") {
			_, q, _ := strings.Cut(got, "?intent=")
			if strings.ContainsAny(q, "&#/?=") {
				t.Fatalf("safeReturn(%q) lets %q through", in, got)
			}
		}
	})
}

func TestKeyLabel(t *testing.T) {
	for _, tt := range []struct{ name, key, want string }{
		{"", "sk_live_0123456789abcd", "…abcd"},
		{"Work", "sk_live_0123456789abcd", "Work …abcd"},
		{"", "short_key_1", "…"},
		{"", "twelve_chars", "…hars"},
	} {
		if got := keyLabel(tt.name, tt.key); got != tt.want {
			t.Errorf("keyLabel(%q, %q) = %q, want %q", tt.name, tt.key, got, tt.want)
		}
	}
}

func TestValidAPIKey(t *testing.T) {
	for key, want := range map[string]bool{
		"sk_live_abc":             true,
		"a.b-c_d~e+f/g=":          true,
		"":                        false,
		"with space":              false,
		"tab\there":               false,
		"nl\n":                    false,
		"del\x7f":                 false,
		"é-non-ascii":             false,
		strings.Repeat("k", 4096): true,
		strings.Repeat("k", 4097): false,
	} {
		if got := validAPIKey(key); got != want {
			t.Errorf("validAPIKey(%.20q) = %v, want %v", key, got, want)
		}
	}
}
