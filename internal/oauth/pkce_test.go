package oauth

import (
	"strings"
	"testing"
)

// RFC 7636 Appendix B test vector.
const (
	rfc7636Verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfc7636Challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func TestS256ChallengeRFC7636AppendixB(t *testing.T) {
	if got := S256Challenge(rfc7636Verifier); got != rfc7636Challenge {
		t.Fatalf("S256Challenge = %q, want %q", got, rfc7636Challenge)
	}
}

func TestValidCodeVerifier(t *testing.T) {
	tests := []struct {
		name, v string
		want    bool
	}{
		{"rfc vector", rfc7636Verifier, true},
		{"min length", strings.Repeat("a", 43), true},
		{"max length", strings.Repeat("Z", 128), true},
		{"all unreserved", strings.Repeat("aZ09-._~", 6), true},
		{"too short", strings.Repeat("a", 42), false},
		{"too long", strings.Repeat("a", 129), false},
		{"plus", strings.Repeat("a", 42) + "+", false},
		{"slash", strings.Repeat("a", 42) + "/", false},
		{"space", strings.Repeat("a", 42) + " ", false},
		{"padding", strings.Repeat("a", 42) + "=", false},
		{"non-ascii", strings.Repeat("a", 42) + "é", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidCodeVerifier(tt.v); got != tt.want {
				t.Fatalf("ValidCodeVerifier(%q) = %v", tt.v, got)
			}
		})
	}
}

func TestValidCodeChallenge(t *testing.T) {
	tests := []struct {
		name, c string
		want    bool
	}{
		{"rfc vector", rfc7636Challenge, true},
		{"computed", S256Challenge(strings.Repeat("x", 64)), true},
		{"42 chars", rfc7636Challenge[:42], false},
		{"44 chars", rfc7636Challenge + "A", false},
		{"padded", rfc7636Challenge[:42] + "=", false},
		{"standard alphabet", strings.Replace(rfc7636Challenge, "-", "+", 1), false},
		{"non-canonical last char", rfc7636Challenge[:42] + "N", false},
		{"plain verifier as challenge", rfc7636Verifier + "abc", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidCodeChallenge(tt.c); got != tt.want {
				t.Fatalf("ValidCodeChallenge(%q) = %v", tt.c, got)
			}
		})
	}
}

func TestVerifyPKCE(t *testing.T) {
	other := strings.Repeat("b", 43)
	tests := []struct {
		name, challenge, method, verifier string
		want                              bool
	}{
		{"rfc vector", rfc7636Challenge, "S256", rfc7636Verifier, true},
		{"wrong verifier", rfc7636Challenge, "S256", other, false},
		{"plain method", rfc7636Verifier, "plain", rfc7636Verifier, false},
		{"plain with s256 challenge", rfc7636Challenge, "plain", rfc7636Verifier, false},
		{"empty method", rfc7636Challenge, "", rfc7636Verifier, false},
		{"lowercase method", rfc7636Challenge, "s256", rfc7636Verifier, false},
		{"malformed verifier", rfc7636Challenge, "S256", rfc7636Verifier + "!", false},
		{"empty challenge", "", "S256", rfc7636Verifier, false},
		{"empty verifier", rfc7636Challenge, "S256", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyPKCE(tt.challenge, tt.method, tt.verifier); got != tt.want {
				t.Fatalf("VerifyPKCE = %v, want %v", got, tt.want)
			}
		})
	}
}
