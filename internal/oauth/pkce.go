package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// PKCEMethodS256 is the only code_challenge_method agentid accepts: OAuth 2.1
// §4.1.1 requires S256 from clients able to use it, and "plain" offers no
// protection against a leaked authorization request.
const PKCEMethodS256 = "S256"

// ValidCodeVerifier reports whether v is an RFC 7636 §4.1 code_verifier:
// 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
func ValidCodeVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// ValidCodeChallenge reports whether c can be an S256 code_challenge
// (RFC 7636 §4.2): BASE64URL(SHA256(verifier)) without padding is exactly 43
// characters that decode canonically to 32 bytes.
func ValidCodeChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// S256Challenge computes the RFC 7636 §4.2 S256 code_challenge of verifier.
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// VerifyPKCE checks a code_verifier against the stored challenge (RFC 7636
// §4.6). Only S256 is accepted; the comparison is constant-time.
func VerifyPKCE(challenge, method, verifier string) bool {
	if method != PKCEMethodS256 || !ValidCodeVerifier(verifier) || !ValidCodeChallenge(challenge) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(S256Challenge(verifier)), []byte(challenge)) == 1
}
