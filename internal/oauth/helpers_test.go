package oauth

import (
	"errors"
	"testing"
)

// wantCode fails the test unless err carries code (or is nil when code is
// ""). It matches with errors.As, as callers of this package do.
func wantCode(t *testing.T, err *Error, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var e *Error
	if !errors.As(error(err), &e) || e.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
	if e.Status == 0 {
		t.Fatalf("error %v has no HTTP status", err)
	}
}
