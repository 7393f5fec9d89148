package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"testing"
)

// TestRawP256Signature: the R || S that Mint puts into an ES256 token is
// the DER signature's two integers, each left-padded to 32 bytes, and it
// verifies; short integers (leading zero bytes) keep their place, and DER
// that is not exactly one ECDSA-Sig-Value of P-256 size is refused.
func TestRawP256Signature(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	type ecdsaSig struct{ R, S *big.Int }
	for i := range 300 {
		digest := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		var want ecdsaSig
		if _, err := asn1.Unmarshal(der, &want); err != nil {
			t.Fatal(err)
		}
		var sig [64]byte
		if err := rawP256Signature(der, &sig); err != nil {
			t.Fatalf("signature %d: %v", i, err)
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if r.Cmp(want.R) != 0 || s.Cmp(want.S) != 0 {
			t.Fatalf("signature %d: R || S = %x, want %x %x", i, sig, want.R, want.S)
		}
		if !ecdsa.Verify(&key.PublicKey, digest[:], r, s) {
			t.Fatalf("signature %d does not verify", i)
		}
	}

	small := func(r, s *big.Int) []byte {
		der, err := asn1.Marshal(ecdsaSig{r, s})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	var sig [64]byte
	for i := range sig {
		sig[i] = 0xee // must be overwritten, padding included
	}
	if err := rawP256Signature(small(big.NewInt(1), big.NewInt(0x0102)), &sig); err != nil {
		t.Fatal(err)
	}
	want := [64]byte{31: 1, 62: 1, 63: 2}
	if sig != want {
		t.Errorf("short integers: %x, want %x", sig, want)
	}

	max32 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)) // 32 bytes of 0xff: DER adds a 0x00
	if err := rawP256Signature(small(max32, max32), &sig); err != nil {
		t.Errorf("32-byte integers with DER's sign byte: %v", err)
	}
	good := small(big.NewInt(7), big.NewInt(9))
	for name, der := range map[string][]byte{
		"empty":          nil,
		"trailing data":  append(append([]byte{}, good...), 0),
		"33-byte R":      small(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(9)),
		"negative S":     small(big.NewInt(7), big.NewInt(-9)),
		"one integer":    {0x30, 0x03, 0x02, 0x01, 0x07},
		"three integers": {0x30, 0x09, 0x02, 0x01, 0x07, 0x02, 0x01, 0x09, 0x02, 0x01, 0x01},
		"not a sequence": {0x31, 0x06, 0x02, 0x01, 0x07, 0x02, 0x01, 0x09},
	} {
		if err := rawP256Signature(der, &sig); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
