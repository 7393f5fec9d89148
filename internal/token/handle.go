package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"io"
)

// handleBytes is the entropy of an opaque handle: 256 bits, so a handle
// cannot be guessed and its SHA-256 is a safe lookup key (docs/design.md §7).
const handleBytes = 32

// idBytes is the entropy of identifiers (jti, grant and client ids): 128
// bits, unique without coordination but not meant as secrets.
const idBytes = 16

// NewHandle returns prefix followed by the unpadded base64url encoding of 32
// bytes read from r (crypto/rand when r is nil). The prefix (for example
// "agt_rt_") only helps humans and secret scanners recognise the value; it
// adds no entropy.
func NewHandle(r io.Reader, prefix string) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [handleBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("token: reading randomness: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Hash returns the SHA-256 of secret, the only form in which bearer secrets
// are stored.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// EqualHash compares two hashes in constant time. Empty hashes never match,
// so a missing stored value cannot equal a missing presented one.
func EqualHash(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(a, b) == 1
}

// idEncoding writes identifiers in lower-case base32 (RFC 4648 §6 alphabet,
// lower-cased, unpadded): letters a–z and digits 2–7 only. An id therefore
// never starts with '-' (which a command line would read as a flag, as one
// base64url id in 64 did) and survives case-insensitive handling.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns 16 bytes from r (crypto/rand when r is nil) as 26
// characters of lower-case base32: 128 bits, starting with a letter or
// digit. It panics only if r fails, which for crypto/rand means the process
// cannot do anything safely anyway.
func NewID(r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	var b [idBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		panic(fmt.Sprintf("token: reading randomness: %v", err))
	}
	return idEncoding.EncodeToString(b[:])
}
