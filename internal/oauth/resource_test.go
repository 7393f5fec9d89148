package oauth

import (
	"strings"
	"testing"
)

func TestCanonicalResource(t *testing.T) {
	tests := []struct {
		name, in, want, code string
	}{
		{name: "plain", in: "https://mcp.example.com/mcp", want: "https://mcp.example.com/mcp"},
		{name: "origin only", in: "https://mcp.example.com", want: "https://mcp.example.com"},
		{name: "origin with slash (TS SDK)", in: "https://mcp.example.com/", want: "https://mcp.example.com"},
		{name: "trailing slash on path", in: "https://mcp.example.com/mcp/", want: "https://mcp.example.com/mcp"},
		{name: "double trailing slash kept", in: "https://mcp.example.com/mcp//", want: "https://mcp.example.com/mcp//"},
		{name: "uppercase scheme and host", in: "HTTPS://MCP.Example.COM/Mcp", want: "https://mcp.example.com/Mcp"},
		{name: "default https port", in: "https://mcp.example.com:443/mcp", want: "https://mcp.example.com/mcp"},
		{name: "non-default port", in: "https://mcp.example.com:8443", want: "https://mcp.example.com:8443"},
		{name: "port leading zeros", in: "https://mcp.example.com:08443/x", want: "https://mcp.example.com:8443/x"},
		{name: "empty port", in: "https://mcp.example.com:/x", want: "https://mcp.example.com/x"},
		{name: "query verbatim", in: "https://mcp.example.com/mcp?tenant=A&x=%2F", want: "https://mcp.example.com/mcp?tenant=A&x=%2F"},
		{name: "slash before query", in: "https://mcp.example.com/?a=1", want: "https://mcp.example.com?a=1"},
		{name: "empty query kept", in: "https://mcp.example.com/mcp?", want: "https://mcp.example.com/mcp?"},
		{name: "escaped path verbatim", in: "https://mcp.example.com/a%2Fb/", want: "https://mcp.example.com/a%2Fb"},
		{name: "nested path", in: "https://mcp.example.com/server/mcp", want: "https://mcp.example.com/server/mcp"},
		{name: "http localhost", in: "http://localhost:3000/mcp", want: "http://localhost:3000/mcp"},
		{name: "http 127.0.0.1 default port", in: "http://127.0.0.1:80/mcp/", want: "http://127.0.0.1/mcp"},
		{name: "http ipv6 loopback", in: "http://[::1]:8080/mcp", want: "http://[::1]:8080/mcp"},
		{name: "https ipv6", in: "https://[2001:DB8::1]/mcp", want: "https://[2001:db8::1]/mcp"},
		{name: "empty", in: "", code: CodeInvalidTarget},
		{name: "fragment", in: "https://mcp.example.com/mcp#frag", code: CodeInvalidTarget},
		{name: "empty fragment", in: "https://mcp.example.com/mcp#", code: CodeInvalidTarget},
		{name: "relative", in: "/mcp", code: CodeInvalidTarget},
		{name: "no scheme", in: "mcp.example.com/mcp", code: CodeInvalidTarget},
		{name: "urn", in: "urn:example:mcp", code: CodeInvalidTarget},
		{name: "http non-loopback", in: "http://mcp.example.com/mcp", code: CodeInvalidTarget},
		{name: "http private ip", in: "http://10.0.0.1/mcp", code: CodeInvalidTarget},
		{name: "ftp", in: "ftp://mcp.example.com/", code: CodeInvalidTarget},
		{name: "userinfo", in: "https://user@mcp.example.com/mcp", code: CodeInvalidTarget},
		{name: "space", in: "https://mcp.example.com/a b", code: CodeInvalidTarget},
		{name: "non-ascii host", in: "https://mcp.exämple.com/", code: CodeInvalidTarget},
		{name: "percent in host", in: "https://mcp%2eexample.com/", code: CodeInvalidTarget},
		{name: "port out of range", in: "https://mcp.example.com:70000/", code: CodeInvalidTarget},
		{name: "port zero", in: "https://mcp.example.com:0/", code: CodeInvalidTarget},
		{name: "ipv6 zone", in: "http://[::1%25eth0]/", code: CodeInvalidTarget},
		{name: "missing host", in: "https:///mcp", code: CodeInvalidTarget},
		{name: "too long", in: "https://mcp.example.com/" + strings.Repeat("a", 2000), code: CodeInvalidTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalResource(tt.in)
			wantCode(t, err, tt.code)
			if got != tt.want {
				t.Fatalf("CanonicalResource(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true}, {"::1", true}, {"[::1]", true}, {"localhost", true}, {"LocalHost", true},
		{"127.0.0.2", false}, {"localhost.example.com", false}, {"example.com", false},
		{"0.0.0.0", false}, {"", false}, {"127.0.0.1:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := IsLoopbackHost(tt.host); got != tt.want {
				t.Fatalf("IsLoopbackHost(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

// FuzzCanonicalResource checks idempotence — canonical(canonical(x)) ==
// canonical(x) — and that only invalid_target is ever returned.
func FuzzCanonicalResource(f *testing.F) {
	for _, s := range []string{
		"https://mcp.example.com/mcp", "https://mcp.example.com/", "https://MCP.example.com:443/mcp/",
		"http://localhost:3000/mcp", "http://127.0.0.1:8080/", "http://[::1]/mcp", "https://a//",
		"https://a.example/mcp?x=1", "https://a.example/mcp#f", "urn:x", "https://a.example:/", "https://a.example/%2F/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalResource(s)
		if err != nil {
			if err.Code != CodeInvalidTarget {
				t.Fatalf("error code %s", err.Code)
			}
			return
		}
		c2, err := CanonicalResource(c)
		if err != nil || c2 != c {
			t.Fatalf("not idempotent: %q → %q → %q (%v)", s, c, c2, err)
		}
	})
}
