package oauth

import (
	"net/url"
	"strconv"
	"strings"
)

// Application types from OpenID Connect Dynamic Client Registration §2,
// which MCP clients send with RFC 7591 registrations.
const (
	ApplicationTypeWeb    = "web"
	ApplicationTypeNative = "native"
)

// forbiddenSchemes can run code or read local data in the user agent and are
// never acceptable redirect targets (OAuth 2.1 §7.12, RFC 6819 §4.2.4).
var forbiddenSchemes = map[string]bool{
	"javascript": true, "data": true, "vbscript": true, "file": true,
	"about": true, "blob": true, "filesystem": true,
}

// ValidateRedirectURI applies the registration rules for one redirect URI
// and returns invalid_redirect_uri (RFC 7591 §3.2.2) on any violation:
//   - absolute, at most 2000 characters, ASCII without whitespace, no
//     fragment (RFC 6749 §3.1.2), no userinfo;
//   - https with a host for any client; http only on a loopback host
//     (127.0.0.1, [::1], localhost — RFC 8252 §7.3; MCP clients register
//     http://localhost:PORT/callback without saying they are native, so web
//     clients get the same allowance);
//   - native clients may also use a private-use scheme in reverse-DNS form,
//     i.e. containing a "." (RFC 8252 §7.1);
//   - never javascript:, data:, file: and the like.
//
// applicationType is "web", "native" or "" (meaning web).
func ValidateRedirectURI(uri, applicationType string) *Error {
	native := false
	switch applicationType {
	case "", ApplicationTypeWeb:
	case ApplicationTypeNative:
		native = true
	default:
		return ErrInvalidRedirectURI("unknown application_type")
	}
	if uri == "" {
		return ErrInvalidRedirectURI("redirect URI must not be empty")
	}
	if len(uri) > maxURILength {
		return ErrInvalidRedirectURI("redirect URI is longer than %d characters", maxURILength)
	}
	if !uriText(uri) {
		return ErrInvalidRedirectURI("redirect URI must be an RFC 3986 URI: ASCII without whitespace, quotes, backslashes or stray percent signs")
	}
	if strings.Contains(uri, "#") {
		return ErrInvalidRedirectURI("redirect URI must not contain a fragment")
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return ErrInvalidRedirectURI("redirect URI must be an absolute URI")
	}
	scheme := strings.ToLower(u.Scheme)
	if forbiddenSchemes[scheme] {
		return ErrInvalidRedirectURI("redirect URI scheme %q is not allowed", scheme)
	}
	if u.User != nil {
		return ErrInvalidRedirectURI("redirect URI must not contain userinfo")
	}
	switch scheme {
	case "https", "http":
		if u.Opaque != "" || u.Host == "" {
			return ErrInvalidRedirectURI("redirect URI must have a host")
		}
		host, _, ok := splitAuthority(u.Host)
		if !ok {
			return ErrInvalidRedirectURI("redirect URI has an invalid host or port")
		}
		if scheme == "http" && !IsLoopbackHost(host) {
			return ErrInvalidRedirectURI("http redirect URIs are allowed only on loopback hosts (127.0.0.1, [::1], localhost)")
		}
		// OAuth 2.1 §2.3.1 and RFC 8252 §8.3: the loopback exception is for
		// native apps; a web client's redirect URIs use https.
		if scheme == "http" && !native {
			return ErrInvalidRedirectURI("http loopback redirect URIs are for native clients: register with application_type native, or use https")
		}
		return nil
	}
	if !native {
		return ErrInvalidRedirectURI("web clients must use https redirect URIs (http only on loopback hosts)")
	}
	// RFC 8252 §7.1: private-use schemes are reverse domain names the
	// client controls, e.g. com.example.app:/callback.
	if !strings.Contains(scheme, ".") {
		return ErrInvalidRedirectURI("private-use redirect URI schemes must be in reverse-DNS form (containing a \".\")")
	}
	return nil
}

// MatchRedirectURI reports whether requested is one of the registered
// redirect URIs. Matching is by exact string comparison (OAuth 2.1 §4.1.1,
// RFC 9700 §2.1), with one exception: when both are http URIs on the same
// loopback host, the port is ignored and everything else must still match
// exactly (RFC 8252 §7.3, OAuth 2.1 §8.4.2), because native apps listen on
// an ephemeral port chosen at run time.
func MatchRedirectURI(registered []string, requested string) bool {
	if requested == "" {
		return false
	}
	for _, r := range registered {
		if r == requested {
			return true
		}
	}
	reqHost, reqRest, ok := loopbackParts(requested)
	if !ok {
		return false
	}
	for _, r := range registered {
		host, rest, ok := loopbackParts(r)
		if ok && host == reqHost && rest == reqRest {
			return true
		}
	}
	return false
}

// loopbackParts splits an http loopback URI into its host and everything
// after the authority (path and query), dropping the port. ok is false for
// anything that is not a plain http://loopback[:port] URI.
func loopbackParts(uri string) (host, rest string, ok bool) {
	const prefix = "http://"
	if !strings.HasPrefix(uri, prefix) || strings.ContainsAny(uri, "#@\\") || !visibleASCII(uri) {
		return "", "", false
	}
	authority := uri[len(prefix):]
	if i := strings.IndexAny(authority, "/?"); i >= 0 {
		authority, rest = authority[:i], authority[i:]
	}
	var port string
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", "", false
		}
		host, port = authority[:end+1], authority[end+1:]
		if port != "" && port[0] != ':' {
			return "", "", false
		}
	} else {
		host = authority
		if i := strings.LastIndexByte(authority, ':'); i >= 0 {
			host, port = authority[:i], authority[i:]
		}
	}
	if port != "" {
		if n, err := strconv.Atoi(port[1:]); err != nil || n < 1 || n > 65535 || port[1] == '+' || port[1] == '-' {
			return "", "", false
		}
	}
	if !IsLoopbackHost(host) {
		return "", "", false
	}
	return host, rest, true
}

// IsNativeRedirect reports whether uri is a redirect URI only native apps
// use: http on a loopback host, or a private-use scheme (RFC 8252 §7.1,
// §7.3). Any program on the device may receive what is sent there (RFC 8252
// §8.6).
func IsNativeRedirect(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return false
	case "http":
		host, _, ok := splitAuthority(u.Host)
		return ok && IsLoopbackHost(host)
	default:
		return u.Scheme != "" && !forbiddenSchemes[strings.ToLower(u.Scheme)]
	}
}

// InstallationURI is the redirect URI as it names one installation of a
// client: an http loopback URI without its port (RFC 8252 §7.3 lets a
// native client take any port each time it runs), any other URI as it is.
// Deduplication of registrations and installation-scoped revocation
// compare redirect URIs through it.
func InstallationURI(uri string) string {
	host, rest, ok := loopbackParts(uri)
	if !ok {
		return uri
	}
	return "http://" + host + rest
}
