package oauth

import (
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// assertionAlgorithms are the signature algorithms accepted for client
// assertions: asymmetric only, so "none" and HMAC (which would let anyone
// holding a shared secret sign as the client) are never accepted.
var assertionAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA,
}

// AssertionSigningAlgorithms lists the accepted client assertion algorithms
// for token_endpoint_auth_signing_alg_values_supported (RFC 8414 §2).
func AssertionSigningAlgorithms() []string {
	out := make([]string, len(assertionAlgorithms))
	for i, a := range assertionAlgorithms {
		out[i] = string(a)
	}
	return out
}

const (
	// assertionLeeway tolerates clock skew between client and server.
	assertionLeeway = 30 * time.Second
	// AssertionReplayWindow is how long after its exp an assertion is still
	// accepted: a jti must be remembered at least this long (RFC 7523 §3
	// item 7), leeway included.
	AssertionReplayWindow = assertionLeeway
	// maxAssertionLifetime bounds how far in the future exp may lie, so a
	// stolen assertion is short-lived and the jti replay cache stays small.
	maxAssertionLifetime = time.Hour
	// maxAssertionLength bounds the work spent on a hostile assertion.
	maxAssertionLength = 16 << 10
)

// PeekAssertionSubject returns the unverified "sub" (or, if absent, "iss")
// of a client assertion, so the server can find the client whose keys will
// verify it (RFC 7523 §3: both are the client_id). A malformed JWT is
// invalid_client. The result is untrusted until VerifyClientAssertion
// succeeds.
func PeekAssertionSubject(assertion string) (string, *Error) {
	tok, err := parseAssertion(assertion)
	if err != nil {
		return "", err
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return "", ErrInvalidClient("client assertion claims are malformed")
	}
	if c.Subject != "" {
		return c.Subject, nil
	}
	if c.Issuer != "" {
		return c.Issuer, nil
	}
	return "", ErrInvalidClient("client assertion has no sub")
}

func parseAssertion(assertion string) (*jwt.JSONWebToken, *Error) {
	if assertion == "" || len(assertion) > maxAssertionLength {
		return nil, ErrInvalidClient("client assertion is missing or too long")
	}
	tok, err := jwt.ParseSigned(assertion, assertionAlgorithms)
	if err != nil {
		return nil, ErrInvalidClient("client assertion is not a JWT signed with an accepted algorithm").WithCause(err)
	}
	if len(tok.Headers) != 1 {
		return nil, ErrInvalidClient("client assertion must have exactly one signature")
	}
	return tok, nil
}

// AssertionClaims are the verified claims of a client assertion the server
// needs afterwards: JTI and Expiry for replay protection (store.UseJTI).
type AssertionClaims struct {
	Issuer, Subject, JTI string
	Expiry               time.Time
}

// VerifyClientAssertion verifies a private_key_jwt client assertion
// (RFC 7523 §3, OpenID Connect Core §9):
//   - the signature verifies with one of keys under an accepted algorithm;
//     when the header names a kid only the key with that kid is tried, and
//     without a kid at most the first MaxClientKeys keys (a set stored
//     before registration bounded it may be longer);
//   - iss and sub both equal clientID;
//   - aud is exactly one of audiences (the issuer or the token endpoint
//     URL), as a string or a one-element array;
//   - exp is present, not past (30 s leeway) and at most one hour ahead;
//   - nbf and iat, if present, are not in the future beyond the leeway;
//   - jti is present (the caller records it to refuse replays).
//
// Every failure is invalid_client; descriptions never contain the token.
func VerifyClientAssertion(assertion string, keys *jose.JSONWebKeySet, clientID string, audiences []string, now time.Time) (*AssertionClaims, *Error) {
	tok, e := parseAssertion(assertion)
	if e != nil {
		return nil, e
	}
	if keys == nil || len(keys.Keys) == 0 {
		return nil, ErrInvalidClient("the client has no registered keys")
	}
	hdr := tok.Headers[0]
	candidates := keys.Keys
	if hdr.KeyID != "" {
		candidates = keys.Key(hdr.KeyID)
		if len(candidates) == 0 {
			return nil, ErrInvalidClient("no registered key matches the assertion's kid")
		}
	}
	// The work per assertion stays bounded whatever the stored set holds.
	candidates = candidates[:min(len(candidates), MaxClientKeys)]
	var (
		c        jwt.Claims
		verified bool
	)
	for i := range candidates {
		k := candidates[i].Public()
		if !k.Valid() {
			continue
		}
		// RFC 7517 §4.2 and §4.4: a key restricted to another use or
		// algorithm must not verify this signature.
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &c); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, ErrInvalidClient("client assertion signature does not verify with the client's keys")
	}

	if c.Issuer != clientID || c.Subject != clientID {
		return nil, ErrInvalidClient("client assertion iss and sub must both be the client_id")
	}
	// RFC 7523bis (audience injection): an assertion whose aud lists
	// several values may have been made for another server and replayed
	// here, so aud must be a single value naming this server.
	if len(c.Audience) != 1 {
		return nil, ErrInvalidClient("client assertion aud must be a single value naming this authorization server")
	}
	if c.Audience[0] == "" || !slices.Contains(audiences, c.Audience[0]) {
		return nil, ErrInvalidClient("client assertion aud does not name this authorization server")
	}
	if c.Expiry == nil {
		return nil, ErrInvalidClient("client assertion has no exp")
	}
	exp := c.Expiry.Time()
	if !now.Before(exp.Add(assertionLeeway)) {
		return nil, ErrInvalidClient("client assertion has expired")
	}
	if exp.After(now.Add(maxAssertionLifetime + assertionLeeway)) {
		return nil, ErrInvalidClient("client assertion exp is more than one hour ahead")
	}
	if c.NotBefore != nil && c.NotBefore.Time().After(now.Add(assertionLeeway)) {
		return nil, ErrInvalidClient("client assertion is not valid yet (nbf)")
	}
	if c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(assertionLeeway)) {
		return nil, ErrInvalidClient("client assertion iat is in the future")
	}
	if c.ID == "" {
		return nil, ErrInvalidClient("client assertion has no jti")
	}
	return &AssertionClaims{Issuer: c.Issuer, Subject: c.Subject, JTI: c.ID, Expiry: exp}, nil
}
