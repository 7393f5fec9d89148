// Package token owns agentid's token material: the access-token signing keys
// (generated, sealed at rest by package keyring, rotated with a
// pre-publication and a grace period, published as a JWKS), minting and
// verifying RFC 9068 JWT access tokens, and opaque random handles for codes,
// refresh tokens and other bearer secrets that are stored only as SHA-256.
//
// It decides nothing about what to grant; callers build the claims.
package token
