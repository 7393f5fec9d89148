package oauth

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// CanonicalResource returns the canonical form of an RFC 8707 resource
// indicator, so that the server can compare it with registered resources as a
// plain string. RFC 8707 §2: the value MUST be an absolute URI and MUST NOT
// include a fragment (→ invalid_target). Canonicalisation (RFC 3986 §6.2.2 and
// §6.2.3, plus the MCP rule that the form without a trailing slash is the
// canonical one):
//   - scheme and host are lowercased;
//   - the scheme's default port is removed (443 for https, 80 for http);
//   - a single trailing "/" is removed, so "https://a.example/" becomes
//     "https://a.example" and "https://a.example/mcp/" becomes
//     "https://a.example/mcp"; a path ending in "//" is kept as sent, so the
//     result is a fixed point;
//   - path and query are otherwise kept verbatim.
//
// Only https is accepted, or http on a loopback host (development servers).
// Userinfo, non-ASCII and whitespace are rejected.
func CanonicalResource(raw string) (string, *Error) {
	if raw == "" {
		return "", ErrInvalidTarget("resource must not be empty")
	}
	if len(raw) > maxURILength {
		return "", ErrInvalidTarget("resource is longer than %d characters", maxURILength)
	}
	if !visibleASCII(raw) {
		return "", ErrInvalidTarget("resource must be an ASCII URI without whitespace")
	}
	// RFC 8707 §2: "MUST NOT include a fragment component" — an empty
	// fragment ("#" alone) counts too.
	if strings.Contains(raw, "#") {
		return "", ErrInvalidTarget("resource must not contain a fragment")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return "", ErrInvalidTarget("resource must be an absolute URI with a host")
	}
	if u.User != nil {
		return "", ErrInvalidTarget("resource must not contain userinfo")
	}
	scheme := strings.ToLower(u.Scheme)
	host, port, ok := splitAuthority(u.Host)
	if !ok {
		return "", ErrInvalidTarget("resource has an invalid host or port")
	}
	switch {
	case scheme == "https":
	case scheme == "http" && IsLoopbackHost(host):
	default:
		return "", ErrInvalidTarget("resource must use https (or http on a loopback host)")
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	var b strings.Builder
	b.Grow(len(raw))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	path := u.EscapedPath()
	if strings.HasSuffix(path, "/") && !strings.HasSuffix(path, "//") {
		path = path[:len(path)-1]
	}
	b.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	return b.String(), nil
}

// maxURILength bounds every URI we accept from clients.
const maxURILength = 2000

// visibleASCII reports whether s consists only of printable, non-space
// ASCII, which is all an RFC 3986 URI may contain.
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// uriText reports whether s uses only the characters RFC 3986 §2 allows in
// a URI (unreserved, reserved and percent-encodings of two hex digits).
// Browsers rewrite some others (a backslash becomes "/"), so a URI
// containing them may lead somewhere other than it appears to.
func uriText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:/?#[]@!$&'()*+,;=", c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// splitAuthority splits a URL host[:port] (userinfo already removed) into a
// lowercased host — IPv6 literals keep their brackets — and a normalised
// port ("" when absent). It rejects zones, empty hosts, characters outside
// RFC 3986 reg-name/IP-literal syntax and ports outside 1–65535.
func splitAuthority(hostport string) (host, port string, ok bool) {
	hostport = strings.ToLower(hostport)
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", "", false
		}
		addr, err := netip.ParseAddr(hostport[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", "", false
		}
		host, hostport = hostport[:end+1], hostport[end+1:]
		if hostport != "" && hostport[0] != ':' {
			return "", "", false
		}
		if hostport != "" {
			port = hostport[1:]
		}
	} else {
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			host, port = hostport[:i], hostport[i+1:]
		} else {
			host = hostport
		}
		if host == "" {
			return "", "", false
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
				return "", "", false
			}
		}
	}
	if port != "" {
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return "", "", false
			}
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", "", false
		}
		port = strconv.Itoa(n)
	}
	return host, port, true
}

// IsLoopbackHost reports whether host names the local machine in the forms
// RFC 8252 §7.3 and §8.3 use for loopback redirects: "127.0.0.1", "::1"
// (with or without brackets) or "localhost" (any case). A port must already
// be removed.
func IsLoopbackHost(host string) bool {
	switch strings.ToLower(host) {
	case "127.0.0.1", "::1", "[::1]", "localhost":
		return true
	}
	return false
}
