package fetch

// Reasons of an Error. They are stable strings: callers may log them and
// tests compare them.
const (
	ReasonInvalidURL  = "invalid_url"
	ReasonScheme      = "scheme"
	ReasonUserinfo    = "userinfo"
	ReasonResolve     = "resolve"
	ReasonAddress     = "address"
	ReasonConnect     = "connect"
	ReasonTLS         = "tls"
	ReasonRedirect    = "redirect"
	ReasonStatus      = "status"
	ReasonContentType = "content_type"
	ReasonTooLarge    = "too_large"
	ReasonTimeout     = "timeout"
	ReasonInvalid     = "invalid" // the body is not what the caller asked for (KeySets: not a JWK set)
)

// Error is every refusal or failure of Get. Its message names the host and
// the reason in words fit for an error page; it never contains the body.
type Error struct {
	Reason string // one of the Reason constants
	Host   string // the URL's host ("" when the URL did not parse)
	Detail string // a short explanation (e.g. "10.0.0.1 is a private address (RFC 1918)")
	Status int    // the HTTP status for ReasonStatus and ReasonRedirect
	Err    error  // the underlying error, if any
}

func (e *Error) Error() string {
	return "fetch: " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }
