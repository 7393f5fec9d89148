package fetch

import (
	"fmt"
	"net/http"
	"net/netip"
)

// Reasons of an Error. They are stable strings: callers may log them and
// tests compare them.
const (
	ReasonInvalidURL  = "invalid_url"  // not an absolute URL with a host
	ReasonScheme      = "scheme"       // not https
	ReasonUserinfo    = "userinfo"     // user name or password in the URL
	ReasonResolve     = "resolve"      // the name did not resolve
	ReasonAddress     = "address"      // an address of the name is not public
	ReasonConnect     = "connect"      // no TCP connection (or it broke)
	ReasonTLS         = "tls"          // handshake or certificate failure
	ReasonRedirect    = "redirect"     // a 3xx answer; never followed
	ReasonStatus      = "status"       // any other non-200 answer
	ReasonContentType = "content_type" // not a JSON type (or text/plain when allowed)
	ReasonTooLarge    = "too_large"    // body over the cap
	ReasonTimeout     = "timeout"      // the total deadline passed
	ReasonInvalid     = "invalid"      // the body is not what the caller asked for (KeySets: not a JWK set)
)

// Error is every refusal or failure of Get and KeySets.Get. Its message names
// the host and the reason in words fit for an error page; it never contains
// the body or the URL's path and query.
type Error struct {
	Reason string     // one of the Reason constants
	Host   string     // the URL's host ("" when the URL did not parse)
	Detail string     // a short explanation, e.g. "it resolves to a private address (RFC 1918)"
	Status int        // the HTTP status for ReasonStatus and ReasonRedirect
	Addr   netip.Addr // the refused address for ReasonAddress (for logs; not in the message)
	Err    error      // the underlying error, if any (for logs; not in the message)
}

func (e *Error) Error() string {
	where := "the URL"
	if e.Host != "" {
		where = e.Host
	}
	msg := ""
	switch e.Reason {
	case ReasonInvalidURL:
		msg = "not an absolute URL"
	case ReasonScheme:
		msg = "only https URLs are fetched"
	case ReasonUserinfo:
		msg = "URLs with a user name or password are not fetched"
	case ReasonResolve:
		msg = "the name does not resolve"
	case ReasonAddress:
		msg = "only public addresses are fetched"
	case ReasonConnect:
		msg = "cannot connect"
	case ReasonTLS:
		msg = "TLS failed"
	case ReasonRedirect:
		msg = fmt.Sprintf("answered %d %s; redirects are not followed", e.Status, http.StatusText(e.Status))
	case ReasonStatus:
		msg = fmt.Sprintf("answered %d %s; only 200 is accepted", e.Status, http.StatusText(e.Status))
	case ReasonContentType:
		msg = "the content type is not JSON"
	case ReasonTooLarge:
		msg = "the document is too large"
	case ReasonTimeout:
		msg = "no complete answer in time"
	case ReasonInvalid:
		msg = "the document is not valid"
	default:
		msg = e.Reason
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return "fetching from " + where + ": " + msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }
