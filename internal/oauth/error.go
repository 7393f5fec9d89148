// Package oauth holds the wire types and rules of the OAuth protocols agentid
// speaks: typed requests parsed once, the one protocol Error type, PKCE,
// redirect-URI and loopback rules, resource canonicalisation (RFC 8707),
// scope strings, client authentication including private_key_jwt assertions
// (RFC 7523), client metadata (RFC 7591) and server metadata (RFC 8414).
// It does no storage, no serving and has no clock or randomness of its own.
package oauth

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Error codes from RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2,
// RFC 8707 §2 and RFC 7009 §2.2.1.
const (
	CodeInvalidRequest          = "invalid_request"
	CodeInvalidClient           = "invalid_client"
	CodeInvalidGrant            = "invalid_grant"
	CodeUnauthorizedClient      = "unauthorized_client"
	CodeUnsupportedGrantType    = "unsupported_grant_type"
	CodeInvalidScope            = "invalid_scope"
	CodeAccessDenied            = "access_denied"
	CodeUnsupportedResponseType = "unsupported_response_type"
	CodeServerError             = "server_error"
	CodeTemporarilyUnavailable  = "temporarily_unavailable"
	CodeInvalidTarget           = "invalid_target"
	CodeInvalidToken            = "invalid_token"
	CodeInsufficientScope       = "insufficient_scope"
	CodeInvalidRedirectURI      = "invalid_redirect_uri"
	CodeInvalidClientMetadata   = "invalid_client_metadata"
	CodeUnsupportedTokenType    = "unsupported_token_type"
	CodeLoginRequired           = "login_required"
	CodeConsentRequired         = "consent_required"
	// CodeInteractionRequired: OpenID Connect Core §3.1.2.6, for prompt=none
	// when the person must confirm something.
	CodeInteractionRequired = "interaction_required"
	// CodeConnectionRequired is agentid's extension error (RFC 6749 §8.5)
	// of credential retrieval: the person holds no usable connection to
	// the provider; the error's connect_uri is where they make one.
	CodeConnectionRequired = "connection_required"
)

// Error is the one protocol error type. Only an *Error reaches the wire;
// its cause is for logs and never serialised.
type Error struct {
	Code        string
	Description string
	// Status is the HTTP status for direct responses (token, registration,
	// revocation, introspection endpoints).
	Status int
	// RetryAfter, when positive, is sent as Retry-After (RFC 9110 §10.2.3)
	// in whole seconds, rounded up.
	RetryAfter time.Duration
	// Extra are extension parameters of the error response (RFC 6749
	// §8.2), sent beside error and error_description, which they never
	// replace. Their values are public: nothing secret goes here.
	Extra map[string]string
	cause error
}

// Error implements error. It does not include the cause's text, which may be
// internal; use errors.Unwrap for logging.
func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is makes errors.Is(err, &Error{Code: X}) match on code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Description == "" && t.Status == 0
}

// WithCause returns a copy of e that wraps cause (for logs only).
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// With returns a copy of e carrying the extension parameter name=value.
func (e *Error) With(name, value string) *Error {
	c := *e
	c.Extra = make(map[string]string, len(e.Extra)+1)
	for k, v := range e.Extra {
		c.Extra[k] = v
	}
	c.Extra[name] = value
	return &c
}

// NewError builds an error with the status RFC 6749 assigns to code.
func NewError(code, format string, args ...any) *Error {
	desc := format
	if len(args) > 0 {
		desc = fmt.Sprintf(format, args...)
	}
	// Built within RFC 6749 §5.2's characters, so that the description a
	// command line prints is the one the wire carries.
	return &Error{Code: code, Description: sanitizeDescription(desc), Status: statusFor(code)}
}

func statusFor(code string) int {
	switch code {
	case CodeInvalidClient, CodeInvalidToken:
		return http.StatusUnauthorized
	case CodeInsufficientScope, CodeAccessDenied:
		return http.StatusForbidden
	case CodeServerError:
		return http.StatusInternalServerError
	case CodeTemporarilyUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadRequest
	}
}

// ErrTooManyRequests is a 429 (RFC 6585 §4) telling the caller to come back
// after retryAfter; the code is temporarily_unavailable, the closest RFC
// 6749 has.
func ErrTooManyRequests(retryAfter time.Duration, format string, args ...any) *Error {
	e := NewError(CodeTemporarilyUnavailable, format, args...)
	e.Status, e.RetryAfter = http.StatusTooManyRequests, retryAfter
	return e
}

// Constructors for the common codes.
func ErrInvalidRequest(format string, args ...any) *Error {
	return NewError(CodeInvalidRequest, format, args...)
}
func ErrInvalidClient(format string, args ...any) *Error {
	return NewError(CodeInvalidClient, format, args...)
}
func ErrInvalidGrant(format string, args ...any) *Error {
	return NewError(CodeInvalidGrant, format, args...)
}
func ErrUnauthorizedClient(format string, args ...any) *Error {
	return NewError(CodeUnauthorizedClient, format, args...)
}
func ErrUnsupportedGrantType(format string, args ...any) *Error {
	return NewError(CodeUnsupportedGrantType, format, args...)
}
func ErrInvalidScope(format string, args ...any) *Error {
	return NewError(CodeInvalidScope, format, args...)
}
func ErrInvalidTarget(format string, args ...any) *Error {
	return NewError(CodeInvalidTarget, format, args...)
}
func ErrAccessDenied(format string, args ...any) *Error {
	return NewError(CodeAccessDenied, format, args...)
}
func ErrInvalidRedirectURI(format string, args ...any) *Error {
	return NewError(CodeInvalidRedirectURI, format, args...)
}
func ErrInvalidClientMetadata(format string, args ...any) *Error {
	return NewError(CodeInvalidClientMetadata, format, args...)
}
func ErrInvalidToken(format string, args ...any) *Error {
	return NewError(CodeInvalidToken, format, args...)
}

// ErrServer is the fixed server_error every unexpected failure becomes on the
// wire; cause is kept for the log.
func ErrServer(cause error) *Error {
	return &Error{Code: CodeServerError, Description: "the server could not complete the request", Status: http.StatusInternalServerError, cause: cause}
}

// errorBody is the RFC 6749 §5.2 JSON error body.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// WriteError writes e as an RFC 6749 §5.2 JSON response with Cache-Control:
// no-store. For invalid_client it adds WWW-Authenticate (RFC 6749 §5.2 says the
// server MUST when the client used the Authorization header; we always send
// it with a 401, which clients tolerate).
func WriteError(w http.ResponseWriter, e *Error) {
	status := e.Status
	if status == 0 {
		status = statusFor(e.Code)
	}
	if e.Code == CodeInvalidClient {
		w.Header().Set("WWW-Authenticate", `Basic realm="agentid", charset="UTF-8"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(e.RetryAfter.Seconds())))))
	}
	body := errorBody{Error: e.Code, Description: sanitizeDescription(e.Description)}
	if len(e.Extra) == 0 {
		WriteJSON(w, status, body)
		return
	}
	m := make(map[string]string, len(e.Extra)+2)
	for k, v := range e.Extra {
		if !reservedErrorParam(k) {
			m[k] = v
		}
	}
	m["error"] = body.Error
	if body.Description != "" {
		m["error_description"] = body.Description
	}
	WriteJSON(w, status, m)
}

// reservedErrorParam reports whether name is a parameter RFC 6749 §5.2
// defines, which an extension parameter may not stand in for.
func reservedErrorParam(name string) bool {
	return name == "error" || name == "error_description" || name == "error_uri"
}

// WriteJSON writes v as JSON with the no-store headers every token-endpoint
// response carries (RFC 6749 §5.1).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	writeJSONHeader(w, status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONHeader writes status with WriteJSON's headers.
func writeJSONHeader(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
}
