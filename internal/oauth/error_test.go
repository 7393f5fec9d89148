package oauth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestErrorStatusAndWire(t *testing.T) {
	tests := []struct {
		name       string
		err        *Error
		status     int
		body       string
		authHeader bool
	}{
		{name: "invalid_request", err: ErrInvalidRequest("code is required"), status: 400, body: `{"error":"invalid_request","error_description":"code is required"}`},
		{name: "invalid_client", err: ErrInvalidClient("unknown client"), status: 401, body: `{"error":"invalid_client","error_description":"unknown client"}`, authHeader: true},
		{name: "invalid_grant", err: ErrInvalidGrant("code was already used"), status: 400, body: `{"error":"invalid_grant","error_description":"code was already used"}`},
		{name: "unauthorized_client", err: ErrUnauthorizedClient("no"), status: 400, body: `{"error":"unauthorized_client","error_description":"no"}`},
		{name: "unsupported_grant_type", err: ErrUnsupportedGrantType("grant %s", "password"), status: 400, body: `{"error":"unsupported_grant_type","error_description":"grant password"}`},
		{name: "invalid_token", err: ErrInvalidToken("expired"), status: 401, body: `{"error":"invalid_token","error_description":"expired"}`},
		{name: "access_denied", err: ErrAccessDenied("denied"), status: 403, body: `{"error":"access_denied","error_description":"denied"}`},
		{name: "temporarily_unavailable", err: NewError(CodeTemporarilyUnavailable, ""), status: 503, body: `{"error":"temporarily_unavailable"}`},
		{name: "server error hides cause", err: ErrServer(errors.New("db password=hunter2")), status: 500, body: `{"error":"server_error","error_description":"the server could not complete the request"}`},
		{name: "zero status uses code", err: &Error{Code: CodeInvalidScope}, status: 400, body: `{"error":"invalid_scope"}`},
		// RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
		{name: "description within RFC 6749 characters", err: ErrInvalidScope("scope %q is not offered by %s", "mail.send", "x\\y\n…"), status: 400,
			body: `{"error":"invalid_scope","error_description":"scope 'mail.send' is not offered by x y ..."}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, tt.err)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if got := strings.TrimSpace(w.Body.String()); got != tt.body {
				t.Fatalf("body %s, want %s", got, tt.body)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v", w.Header())
			}
			if (w.Header().Get("WWW-Authenticate") != "") != tt.authHeader {
				t.Fatalf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// TestErrorExtensions: extension parameters (RFC 6749 §8.2) travel beside
// error and error_description, never in their place, and With copies.
func TestErrorExtensions(t *testing.T) {
	base := NewError(CodeConnectionRequired, "connect first")
	e := base.With("connect_uri", "https://hub.example/connections/connect/cal?intent=x").With("provider", "cal")
	tests := []struct {
		name   string
		err    *Error
		status int
		body   string
	}{
		{name: "extension error with parameters", err: e, status: 400,
			body: `{"connect_uri":"https://hub.example/connections/connect/cal?intent=x","error":"connection_required","error_description":"connect first","provider":"cal"}`},
		{name: "reserved names are not overridden", err: ErrInvalidGrant("no").With("error", "x").With("error_description", "y").With("error_uri", "z").With("k", "v"), status: 400,
			body: `{"error":"invalid_grant","error_description":"no","k":"v"}`},
		{name: "no description", err: (&Error{Code: CodeConnectionRequired}).With("provider", "cal"), status: 400,
			body: `{"error":"connection_required","provider":"cal"}`},
		{name: "with Retry-After", err: NewError(CodeTemporarilyUnavailable, "later").With("provider", "cal"), status: 503,
			body: `{"error":"temporarily_unavailable","error_description":"later","provider":"cal"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, tt.err)
			if w.Code != tt.status || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d headers %v", w.Code, w.Header())
			}
			if got := strings.TrimSpace(w.Body.String()); got != tt.body {
				t.Fatalf("body %s, want %s", got, tt.body)
			}
		})
	}
	if base.Extra != nil {
		t.Fatal("With changed the error it was called on")
	}
	if !errors.Is(e, &Error{Code: CodeConnectionRequired}) {
		t.Fatal("an error with parameters must still match its code")
	}
}

func TestErrorMatching(t *testing.T) {
	cause := errors.New("cause")
	e := ErrInvalidGrant("refresh token reused").WithCause(cause)
	wrapped := error(e)
	tests := []struct {
		name string
		ok   bool
	}{
		{"errors.Is by code", errors.Is(wrapped, &Error{Code: CodeInvalidGrant})},
		{"errors.Is other code", !errors.Is(wrapped, &Error{Code: CodeInvalidClient})},
		{"errors.Is cause", errors.Is(wrapped, cause)},
		{"Unwrap", errors.Unwrap(wrapped) == cause},
		{"message has no cause", e.Error() == "invalid_grant: refresh token reused"},
		{"bare code message", (&Error{Code: CodeInvalidScope}).Error() == "invalid_scope"},
		{"WithCause copies", ErrInvalidGrant("x").Unwrap() == nil},
		{"server error message", !strings.Contains(ErrServer(errors.New("secret")).Error(), "secret")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Fail()
			}
		})
	}
	if http.StatusText(statusFor(CodeInsufficientScope)) != "Forbidden" {
		t.Fatal("insufficient_scope must be 403")
	}
}
