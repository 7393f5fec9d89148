package oauth

import (
	"slices"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		code string
	}{
		{name: "empty", in: "", want: nil},
		{name: "only spaces", in: "   ", want: nil},
		{name: "single", in: "read", want: []string{"read"}},
		{name: "several keep order", in: "write read openid", want: []string{"write", "read", "openid"}},
		{name: "duplicates dropped", in: "read write read", want: []string{"read", "write"}},
		{name: "extra spaces tolerated", in: " read  write ", want: []string{"read", "write"}},
		{name: "url-like scope", in: "https://api.example.com/files.read mcp:tools", want: []string{"https://api.example.com/files.read", "mcp:tools"}},
		{name: "all allowed punctuation", in: "!#$%&'()*+,-./:;<=>?@[]^_`{|}~", want: []string{"!#$%&'()*+,-./:;<=>?@[]^_`{|}~"}},
		{name: "double quote", in: `read "write"`, code: CodeInvalidScope},
		{name: "backslash", in: `read\write`, code: CodeInvalidScope},
		{name: "tab separator", in: "read\twrite", code: CodeInvalidScope},
		{name: "newline", in: "read\n", code: CodeInvalidScope},
		{name: "non-ascii", in: "lecture écriture", code: CodeInvalidScope},
		{name: "del", in: "read\x7f", code: CodeInvalidScope},
		{name: "nul", in: "read\x00", code: CodeInvalidScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			wantCode(t, err, tt.code)
			if tt.code == "" && !slices.Equal(got, tt.want) {
				t.Fatalf("ParseScope(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRequestedScope(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		offline bool
		code    string
	}{
		{name: "absent", in: "", want: nil},
		{name: "resource scopes only", in: "notes.read notes.write", want: []string{"notes.read", "notes.write"}},
		{name: "offline_access taken out", in: "notes.read offline_access notes.write", want: []string{"notes.read", "notes.write"}, offline: true},
		{name: "offline_access first and repeated", in: "offline_access notes.read offline_access", want: []string{"notes.read"}, offline: true},
		{name: "offline_access alone is no scope", in: "offline_access", want: nil, offline: true},
		{name: "invalid token", in: "offline_access \"x\"", code: CodeInvalidScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, offline, err := ParseRequestedScope(tt.in)
			wantCode(t, err, tt.code)
			if tt.code != "" {
				return
			}
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) || offline != tt.offline {
				t.Fatalf("ParseRequestedScope(%q) = %q, %v; want %q, %v", tt.in, got, offline, tt.want, tt.offline)
			}
		})
	}
}

func TestFormatScope(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{name: "nil", in: nil, want: ""},
		{name: "one", in: []string{"read"}, want: "read"},
		{name: "several", in: []string{"read", "write", "offline_access"}, want: "read write offline_access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatScope(tt.in); got != tt.want {
				t.Fatalf("FormatScope(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestContainsAll(t *testing.T) {
	tests := []struct {
		name       string
		have, want []string
		ok         bool
	}{
		{name: "empty want", have: []string{"a"}, want: nil, ok: true},
		{name: "both empty", ok: true},
		{name: "subset", have: []string{"a", "b", "c"}, want: []string{"c", "a"}, ok: true},
		{name: "equal", have: []string{"a", "b"}, want: []string{"b", "a"}, ok: true},
		{name: "missing one", have: []string{"a", "b"}, want: []string{"a", "d"}, ok: false},
		{name: "empty have", have: nil, want: []string{"a"}, ok: false},
		{name: "case matters", have: []string{"Read"}, want: []string{"read"}, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContainsAll(tt.have, tt.want); got != tt.ok {
				t.Fatalf("ContainsAll(%q, %q) = %v, want %v", tt.have, tt.want, got, tt.ok)
			}
		})
	}
}

func TestIntersect(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
		want []string
	}{
		{name: "disjoint", a: []string{"a"}, b: []string{"b"}, want: nil},
		{name: "order of a", a: []string{"c", "a", "b"}, b: []string{"a", "b", "c"}, want: []string{"c", "a", "b"}},
		{name: "partial", a: []string{"read", "write", "admin"}, b: []string{"admin", "read"}, want: []string{"read", "admin"}},
		{name: "duplicates in a once", a: []string{"x", "x"}, b: []string{"x"}, want: []string{"x"}},
		{name: "nil a", a: nil, b: []string{"x"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Intersect(tt.a, tt.b); !slices.Equal(got, tt.want) {
				t.Fatalf("Intersect(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// FuzzParseScope checks that parsing never panics, accepted tokens are
// valid and unique, and FormatScope round-trips: parse(format(parse(s))) ==
// parse(s).
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"", "read", "openid profile email offline_access", "mcp:tools mcp:resources",
		"files:read files:read", "  a  b ", "a\tb", `"quoted"`, "é", "https://api.example.com/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, err := ParseScope(s)
		if err != nil {
			if err.Code != CodeInvalidScope {
				t.Fatalf("error code %s", err.Code)
			}
			return
		}
		seen := map[string]bool{}
		for _, tok := range scopes {
			if !validScopeToken(tok) || seen[tok] {
				t.Fatalf("bad or duplicate token %q in %q", tok, scopes)
			}
			seen[tok] = true
		}
		again, err := ParseScope(FormatScope(scopes))
		if err != nil || !slices.Equal(again, scopes) {
			t.Fatalf("round trip of %q: got %q, %v", scopes, again, err)
		}
		if !ContainsAll(scopes, again) || !slices.Equal(Intersect(scopes, again), scopes) {
			t.Fatalf("set helpers disagree on %q", scopes)
		}
	})
}
