package oauth

import (
	"strings"
	"testing"
)

func TestValidateRedirectURI(t *testing.T) {
	tests := []struct {
		name, uri, appType, code string
	}{
		{name: "https web", uri: "https://app.example.com/callback", appType: "web"},
		{name: "https default type", uri: "https://app.example.com/callback?x=1", appType: ""},
		{name: "https native", uri: "https://app.example.com/cb", appType: "native"},
		{name: "https port", uri: "https://app.example.com:8443/cb", appType: "web"},
		{name: "localhost port web", uri: "http://localhost:3000/callback", appType: "web", code: CodeInvalidRedirectURI},
		{name: "localhost port default type is web", uri: "http://localhost:33418/callback", appType: "", code: CodeInvalidRedirectURI},
		{name: "localhost port native (MCP clients)", uri: "http://localhost:3000/callback", appType: "native"},
		{name: "127.0.0.1 native", uri: "http://127.0.0.1:53682/callback", appType: "native"},
		{name: "ipv6 loopback native", uri: "http://[::1]:8080/cb", appType: "native"},
		{name: "loopback without port", uri: "http://127.0.0.1/callback", appType: "native"},
		{name: "private-use scheme native", uri: "com.example.app:/oauth2redirect", appType: "native"},
		{name: "private-use scheme with host", uri: "com.example.app://callback", appType: "native"},
		{name: "private-use scheme web", uri: "com.example.app:/cb", appType: "web", code: CodeInvalidRedirectURI},
		{name: "private-use scheme without dot", uri: "myapp://callback", appType: "native", code: CodeInvalidRedirectURI},
		{name: "http non-loopback", uri: "http://app.example.com/callback", appType: "web", code: CodeInvalidRedirectURI},
		{name: "http non-loopback native", uri: "http://192.168.1.10/callback", appType: "native", code: CodeInvalidRedirectURI},
		{name: "http localhost suffix", uri: "http://localhost.evil.com/cb", appType: "native", code: CodeInvalidRedirectURI},
		{name: "fragment", uri: "https://app.example.com/cb#x", appType: "web", code: CodeInvalidRedirectURI},
		{name: "empty fragment", uri: "https://app.example.com/cb#", appType: "web", code: CodeInvalidRedirectURI},
		{name: "relative", uri: "/callback", appType: "web", code: CodeInvalidRedirectURI},
		{name: "empty", uri: "", appType: "web", code: CodeInvalidRedirectURI},
		{name: "javascript", uri: "javascript:alert(1)", appType: "native", code: CodeInvalidRedirectURI},
		{name: "javascript mixed case", uri: "JavaScript://x.y/%0aalert(1)", appType: "native", code: CodeInvalidRedirectURI},
		{name: "data", uri: "data:text/html,hi", appType: "native", code: CodeInvalidRedirectURI},
		{name: "file", uri: "file:///etc/passwd", appType: "native", code: CodeInvalidRedirectURI},
		{name: "vbscript", uri: "vbscript:msgbox", appType: "native", code: CodeInvalidRedirectURI},
		{name: "userinfo", uri: "https://user:pw@app.example.com/cb", appType: "web", code: CodeInvalidRedirectURI},
		{name: "userinfo on loopback", uri: "http://evil.com@127.0.0.1/cb", appType: "native", code: CodeInvalidRedirectURI},
		{name: "https no host", uri: "https:/cb", appType: "web", code: CodeInvalidRedirectURI},
		{name: "whitespace", uri: "https://app.example.com/c b", appType: "web", code: CodeInvalidRedirectURI},
		{name: "non-ascii", uri: "https://app.example.com/é", appType: "web", code: CodeInvalidRedirectURI},
		{name: "too long", uri: "https://app.example.com/" + strings.Repeat("a", 2000), appType: "web", code: CodeInvalidRedirectURI},
		{name: "bad port", uri: "https://app.example.com:99999/cb", appType: "web", code: CodeInvalidRedirectURI},
		{name: "unknown application type", uri: "https://app.example.com/cb", appType: "desktop", code: CodeInvalidRedirectURI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, ValidateRedirectURI(tt.uri, tt.appType), tt.code)
		})
	}
}

func TestMatchRedirectURI(t *testing.T) {
	registered := []string{
		"https://app.example.com/callback",
		"https://app.example.com/cb?tenant=a",
		"http://127.0.0.1:3000/callback",
		"http://localhost/callback",
		"http://[::1]:1234/cb",
		"com.example.app:/oauth2redirect",
	}
	tests := []struct {
		name, requested string
		want            bool
	}{
		{"exact https", "https://app.example.com/callback", true},
		{"exact with query", "https://app.example.com/cb?tenant=a", true},
		{"exact private-use", "com.example.app:/oauth2redirect", true},
		{"loopback other port", "http://127.0.0.1:53682/callback", true},
		{"loopback same port", "http://127.0.0.1:3000/callback", true},
		{"loopback no port", "http://127.0.0.1/callback", true},
		{"localhost port added", "http://localhost:8080/callback", true},
		{"ipv6 other port", "http://[::1]:9999/cb", true},
		{"https trailing slash", "https://app.example.com/callback/", false},
		{"https different case", "https://APP.example.com/callback", false},
		{"https extra query", "https://app.example.com/callback?x=1", false},
		{"https other port", "https://app.example.com:444/callback", false},
		{"https other query", "https://app.example.com/cb?tenant=b", false},
		{"loopback other path", "http://127.0.0.1:53682/other", false},
		{"loopback extra query", "http://127.0.0.1:53682/callback?x=1", false},
		{"loopback other host", "http://localhost:3000/cb", false},
		{"127 vs localhost", "http://localhost:3000/callback", true},
		{"localhost registered as 127 only", "http://127.0.0.1:1/cb", false},
		{"loopback https scheme", "https://127.0.0.1:3000/callback", false},
		{"loopback userinfo", "http://x@127.0.0.1:3000/callback", false},
		{"loopback fragment", "http://127.0.0.1:3000/callback#x", false},
		{"loopback non-numeric port", "http://127.0.0.1:abc/callback", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchRedirectURI(registered, tt.requested); got != tt.want {
				t.Fatalf("MatchRedirectURI(%q) = %v, want %v", tt.requested, got, tt.want)
			}
		})
	}
}

var redirectSeeds = []string{
	"https://app.example.com/callback", "http://localhost:3000/callback", "http://127.0.0.1:53682/callback",
	"http://[::1]:8080/cb", "com.example.app:/oauth2redirect", "javascript:alert(1)", "https://a.example/cb#x",
	"http://evil.com@127.0.0.1/", "http://127.0.0.1:/cb", "HTTP://LOCALHOST:1/cb", "data:,x",
}

// FuzzValidateRedirectURI checks that validation never panics, returns only
// invalid_redirect_uri, and that every valid URI matches itself.
func FuzzValidateRedirectURI(f *testing.F) {
	for _, s := range redirectSeeds {
		f.Add(s, "web")
		f.Add(s, "native")
	}
	f.Fuzz(func(t *testing.T, uri, appType string) {
		err := ValidateRedirectURI(uri, appType)
		if err != nil {
			if err.Code != CodeInvalidRedirectURI {
				t.Fatalf("error code %s", err.Code)
			}
			return
		}
		if !MatchRedirectURI([]string{uri}, uri) {
			t.Fatalf("valid URI %q does not match itself", uri)
		}
		if strings.ContainsAny(uri, "# \t\n") || len(uri) > maxURILength {
			t.Fatalf("accepted %q", uri)
		}
	})
}

// FuzzMatchRedirectURI checks that matching never panics, that an exact
// string always matches, and that a non-exact match is only ever a loopback
// port difference (same scheme, host, path and query).
func FuzzMatchRedirectURI(f *testing.F) {
	for _, a := range redirectSeeds {
		f.Add(a, "http://127.0.0.1:9999/callback")
		f.Add(a, a)
	}
	f.Fuzz(func(t *testing.T, registered, requested string) {
		if requested != "" && !MatchRedirectURI([]string{requested}, requested) {
			t.Fatalf("%q does not match itself", requested)
		}
		if !MatchRedirectURI([]string{registered}, requested) || registered == requested {
			return
		}
		h1, r1, ok1 := loopbackParts(registered)
		h2, r2, ok2 := loopbackParts(requested)
		if !ok1 || !ok2 || h1 != h2 || r1 != r2 || !IsLoopbackHost(h2) || !strings.HasPrefix(requested, "http://") {
			t.Fatalf("%q matched %q without being a loopback port variant", requested, registered)
		}
		if ValidateRedirectURI(registered, "native") == nil && ValidateRedirectURI(requested, "native") != nil {
			t.Fatalf("a valid registration %q matched invalid request %q", registered, requested)
		}
	})
}

func TestInstallationURI(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:53122/callback":  "http://127.0.0.1/callback",
		"http://[::1]:8080/cb?x=1":         "http://[::1]/cb?x=1",
		"http://localhost:3000/callback":   "http://localhost/callback",
		"https://app.example.com/callback": "https://app.example.com/callback",
		"com.example.app:/oauth":           "com.example.app:/oauth",
	} {
		if got := InstallationURI(in); got != want {
			t.Errorf("InstallationURI(%q) = %q, want %q", in, got, want)
		}
	}
}
