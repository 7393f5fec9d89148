package mcpauth

import (
	"context"
	"errors"
	"testing"
)

// TestClaimsTrailingData: a claims set is one JSON object (RFC 7519 §7.2
// step 10, RFC 8259 §2) with nothing but white space after it. A closing
// bracket or brace after the object is not JSON either: both claims
// decoders refuse it, and so does Verify for a token whose signature is
// good, on the fast path and the general one.
func TestClaimsTrailingData(t *testing.T) {
	const claims = `{"iss":"https://hub.example","sub":"u","aud":"https://mcp.example/mcp","exp":1900000300,"client_id":"c"}`
	for _, tail := range []string{"]", "}", " ]", "\n}", "]]", "}{", " } "} {
		payload := []byte(claims + tail)
		if _, err := parseClaims(payload); err == nil {
			t.Errorf("parseClaims accepts %q", payload)
		}
		if _, err := parseClaimsReference(payload); err == nil {
			t.Errorf("parseClaimsReference accepts %q", payload)
		}
	}
	v := fpVerifier(t)
	for _, h := range []string{
		`{"alg":"ES256","kid":"es256","typ":"at+jwt"}`,  // the fast path's form
		`{"alg":"ES256", "kid":"es256","typ":"at+jwt"}`, // left to the general path
	} {
		if _, err := v.verifyJWT(context.Background(), fpSign(t, []byte(h), []byte(claims), 0)); err != nil {
			t.Fatalf("%s: the claims without a tail: %v", h, err)
		}
		for _, tail := range []string{"]", "}"} {
			_, err := v.verifyJWT(context.Background(), fpSign(t, []byte(h), []byte(claims+tail), 0))
			if te, ok := errors.AsType[*TokenError](err); !ok || !errors.Is(te.Kind, ErrTokenInvalid) || te.Description != "malformed claims" {
				t.Errorf("%s, claims ending in %q: %v, want malformed claims", h, tail, err)
			}
		}
	}
	// White space after the object is allowed (RFC 8259 §2).
	if _, err := parseClaims([]byte(claims + " \t\r\n")); err != nil {
		t.Errorf("trailing white space: %v", err)
	}
}
