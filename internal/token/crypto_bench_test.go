package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
)

// BenchmarkSignatureFloor is the physical limit of the hub's token work:
// the standard library's ES256 (P-256 ECDSA over SHA-256) and EdDSA
// (Ed25519) signing and verification of a signing input the size of an
// access token's, with no JWS encoding or claims around it. Minting
// (BenchmarkMint) and verification (BenchmarkVerify, mcpauth's) are
// measured against it: go test -run '^$' -bench SignatureFloor ./internal/token
func BenchmarkSignatureFloor(b *testing.B) {
	// About the length of header.claims of a hub access token.
	input := []byte(strings.Repeat("eyJhbGciOiJFUzI1NiIsImtpZCI6I", 12))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	edPub, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(input)
	ecSig, err := ecdsa.SignASN1(rand.Reader, ec, sum[:])
	if err != nil {
		b.Fatal(err)
	}
	edSig := ed25519.Sign(ed, input)

	b.Run("ES256-sign", func(b *testing.B) {
		for b.Loop() {
			sum := sha256.Sum256(input)
			if _, err := ecdsa.SignASN1(rand.Reader, ec, sum[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The hub's own ES256 signatures (keyEntry.signES256): RFC 6979's
	// deterministic nonce, no random bytes read.
	b.Run("ES256-sign-rfc6979", func(b *testing.B) {
		for b.Loop() {
			sum := sha256.Sum256(input)
			if _, err := ec.Sign(nil, sum[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ES256-verify", func(b *testing.B) {
		for b.Loop() {
			sum := sha256.Sum256(input)
			if !ecdsa.VerifyASN1(&ec.PublicKey, sum[:], ecSig) {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("EdDSA-sign", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(ed, input)
		}
	})
	b.Run("EdDSA-verify", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(edPub, input, edSig) {
				b.Fatal("does not verify")
			}
		}
	})
}
