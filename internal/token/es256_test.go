package token

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestES256FastPath: Mint's hand-assembled ES256 JWS is what RFC 7515 and
// RFC 7518 §3.4 say: a protected header naming alg, kid and typ, and an R||S
// signature that crypto/ecdsa and go-jose both verify.
func TestES256FastPath(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k := newTestKeys(t, st, kr, clk, AlgES256)
	raw := mint(t, k, clk.Now())
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", raw)
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]string
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	kid := k.List()[0].ID
	if h["alg"] != "ES256" || h["typ"] != "at+jwt" || h["kid"] != kid || len(h) != 3 {
		t.Fatalf("header = %v", h)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature is %d bytes, want 64 (R||S)", len(sig))
	}
	pub := k.state.Load().byKID[kid].pub.(*ecdsa.PublicKey)
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("crypto/ecdsa rejects the signature")
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(pub); err != nil {
		t.Fatalf("go-jose rejects the token: %v", err)
	}
}
