package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"time"
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

// jtiTimeBytes is how much of a jti is its issue time: milliseconds since
// the Unix epoch, 48 bits (enough until the year 10889).
const jtiTimeBytes = 6

// jtiEncoding is idEncoding's alphabet in byte order (digits before
// letters), so that jtis compare as their bytes do.
var jtiEncoding = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// NewJTI returns the id of a token issued at now: 26 characters of the
// same lower-case letters and digits as NewID, whose first 48 bits are the
// time in milliseconds and whose other 80 are read from r (crypto/rand when
// r is nil), encoded so that byte order is time order. The hub records each
// access token under its jti; ids that grow with time go to the right edge
// of the jti index instead of a random page of it, which keeps the pages a
// commit writes few (docs/benchmarks.md, "The write path of an issued
// token"). The time is
// not a secret (the token's iat says the same) and neither is the id; 80
// random bits make two ids of one millisecond collide with negligible
// probability (RFC 7519 §4.1.7). It panics only if r fails, as NewID.
func NewJTI(now time.Time, r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	var b [idBytes]byte
	ms := uint64(max(now.UnixMilli(), 0))
	binary.BigEndian.PutUint64(b[:8], ms<<16) // the low 48 bits, first
	if _, err := io.ReadFull(r, b[jtiTimeBytes:]); err != nil {
		panic(fmt.Sprintf("token: reading randomness: %v", err))
	}
	return jtiEncoding.EncodeToString(b[:])
}
