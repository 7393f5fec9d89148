package mcpauth

import (
	"errors"
	"net/http"
)

// Sentinel errors returned (wrapped in a [*TokenError]) by [Verifier.Verify],
// [Verifier.Check], and behind the responses of [Middleware]. Match them
// with errors.Is.
//
// Every error that means "the presented token must not be accepted" also
// matches [ErrTokenInvalid], so callers that do not care about the reason can
// test for that one.
var (
	// ErrNoToken: the request carries no bearer token. RFC 6750 §3.1 says the
	// challenge then carries no error code.
	ErrNoToken = errors.New("mcpauth: no bearer token")
	// ErrInvalidRequest: the Authorization header is malformed, repeated, or
	// the token was also sent another way (RFC 6750 §3.1 invalid_request).
	ErrInvalidRequest = errors.New("mcpauth: malformed bearer token request")
	// ErrTokenInvalid: the token must not be accepted (RFC 6750 §3.1
	// invalid_token): malformed, bad signature, disallowed algorithm, unknown
	// key, wrong type, or any of the more specific errors below.
	ErrTokenInvalid = errors.New("mcpauth: invalid token")
	// ErrTokenExpired: exp is in the past (beyond the leeway).
	ErrTokenExpired = errors.New("mcpauth: token expired")
	// ErrTokenNotYetValid: nbf or iat is in the future (beyond the leeway).
	ErrTokenNotYetValid = errors.New("mcpauth: token not yet valid")
	// ErrWrongAudience: aud does not name this resource (RFC 8707 §2,
	// RFC 9068 §4). Accepting it would allow token passthrough.
	ErrWrongAudience = errors.New("mcpauth: token audience is not this resource")
	// ErrWrongIssuer: iss is not the configured hub (RFC 9068 §4).
	ErrWrongIssuer = errors.New("mcpauth: token issuer is not the configured hub")
	// ErrTokenRevoked: the hub's introspection endpoint reports the token
	// inactive (RFC 7662 §2.2).
	ErrTokenRevoked = errors.New("mcpauth: token revoked or inactive")
	// ErrDelegationRefused: the token's delegation chain (RFC 8693 §4.1 act)
	// is longer than [Config.MaxDelegationDepth] allows, or its first actor
	// is not in [Config.FirstActors]. It is an invalid_token (401): the
	// token is not acceptable at this resource, as with a wrong audience;
	// insufficient_scope (403) would make MCP clients ask for more scopes,
	// which cannot cure a chain.
	ErrDelegationRefused = errors.New("mcpauth: delegation chain not accepted")
	// ErrInsufficientScope: the token is valid but lacks scopes the operation
	// needs (RFC 6750 §3.1 insufficient_scope).
	ErrInsufficientScope = errors.New("mcpauth: insufficient scope")
	// ErrUnavailable: the hub could not be reached to decide (key set or
	// introspection fetch failed). The token is neither accepted nor declared
	// invalid; the middleware answers 503.
	ErrUnavailable = errors.New("mcpauth: authorization server unavailable")
)

// TokenError is the error type returned by verification. Its message is a
// fixed description that never contains the token or any value taken from it,
// so it is safe to log and to send as error_description.
type TokenError struct {
	// Kind is one of the sentinel errors of this package.
	Kind error
	// Description is a short human-readable reason, safe for the wire.
	Description string
	// Scopes is set for ErrInsufficientScope: every scope the operation
	// needs, the value of the challenge's scope attribute (RFC 6750 §3).
	Scopes []string

	cause error
	// claims are the verified claims of a token refused only because the
	// hub no longer considers it active (ErrTokenRevoked after the JWT
	// verified): its jti is known, so [Middleware] can report the refused
	// call.
	claims *Claims
}

func (e *TokenError) Error() string {
	if e.Description == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Description
}

// Unwrap exposes the kind, ErrTokenInvalid for every kind that rejects the
// token, and the underlying cause (which may be a library error and is never
// put on the wire by this package).
func (e *TokenError) Unwrap() []error {
	errs := []error{e.Kind}
	if rejectsToken(e.Kind) && e.Kind != ErrTokenInvalid {
		errs = append(errs, ErrTokenInvalid)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func rejectsToken(kind error) bool {
	switch kind {
	case ErrTokenInvalid, ErrTokenExpired, ErrTokenNotYetValid, ErrWrongAudience, ErrWrongIssuer, ErrTokenRevoked, ErrDelegationRefused:
		return true
	}
	return false
}

// status is the HTTP status and RFC 6750 §3.1 error code for an error kind.
func status(err error) (code int, oauthError string) {
	switch {
	case errors.Is(err, ErrNoToken):
		return http.StatusUnauthorized, ""
	case errors.Is(err, ErrInvalidRequest):
		return http.StatusBadRequest, "invalid_request"
	case errors.Is(err, ErrInsufficientScope):
		return http.StatusForbidden, "insufficient_scope"
	case errors.Is(err, ErrTokenInvalid):
		return http.StatusUnauthorized, "invalid_token"
	default:
		// ErrUnavailable and anything unexpected: do not tell the client its
		// token is bad (it would re-authorize in vain); fail closed.
		return http.StatusServiceUnavailable, "temporarily_unavailable"
	}
}

func tokenErr(kind error, desc string, cause error) *TokenError {
	return &TokenError{Kind: kind, Description: desc, cause: cause}
}
