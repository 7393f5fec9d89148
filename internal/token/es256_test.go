package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

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
	// The nonce is RFC 6979's (no random bytes read): the signature is
	// exactly the deterministic one of the key and the signing input.
	priv := k.state.Load().byKID[kid].es256
	der, err := priv.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var want [64]byte
	if err := rawP256Signature(der, &want); err != nil {
		t.Fatal(err)
	}
	if string(sig) != string(want[:]) {
		t.Fatal("the signature is not RFC 6979's deterministic one")
	}
}

// TestVerifyES256FastPath: Verify's fast path for the hub's own ES256
// tokens decides exactly as the general JWS path does, for the tokens it
// takes on; anything else is left to the general path.
func TestVerifyES256FastPath(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k := newTestKeys(t, st, kr, clk, AlgES256)
	good := mint(t, k, clk.Now())
	p := strings.Split(good, ".")
	other := newTestKeys(t, newMemStore(), testKeyring(t), clk, AlgES256)
	foreign := strings.Split(mint(t, other, clk.Now()), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p[1])
	evil := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "user-1", "admin", 1)))
	// The signature's first character changed: to "A", or to "B" for the
	// one signature in 64 that starts with "A" already.
	flipped := "A" + p[2][1:]
	if p[2][0] == 'A' {
		flipped = "B" + p[2][1:]
	}
	tests := []struct {
		name   string
		raw    string
		issuer string
		fast   bool // the fast path takes it on
		ok     bool
	}{
		{"minted", good, testIssuer, true, true},
		{"wrong issuer", good, "https://other.example.com", true, false},
		{"tampered payload", p[0] + "." + evil + "." + p[2], testIssuer, true, false},
		{"another key's signature under this header", p[0] + "." + p[1] + "." + foreign[2], testIssuer, true, false},
		{"signature bits flipped", p[0] + "." + p[1] + "." + flipped, testIssuer, true, false},
		{"another key's header", foreign[0] + "." + p[1] + "." + p[2], testIssuer, false, false},
		{"padded payload", p[0] + "." + p[1] + "=." + p[2], testIssuer, false, false},
		{"short signature", p[0] + "." + p[1] + "." + p[2][:40], testIssuer, false, false},
		{"four segments", good + ".x", testIssuer, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc, fast, ferr := k.state.Load().verifyES256(tc.raw, tc.issuer, clk.Now())
			if fast != tc.fast {
				t.Fatalf("fast path took it on: %v, want %v", fast, tc.fast)
			}
			gc, gerr := k.verifyJWS(tc.raw, tc.issuer)
			if (gerr == nil) != tc.ok {
				t.Fatalf("general path: %v, want ok=%v", gerr, tc.ok)
			}
			if !fast {
				return
			}
			if (ferr == nil) != tc.ok || ferr != nil && !errors.Is(ferr, ErrInvalidToken) {
				t.Fatalf("fast path: %v, want ok=%v", ferr, tc.ok)
			}
			if tc.ok && !reflect.DeepEqual(fc, gc) {
				t.Fatalf("claims differ: fast %+v, general %+v", fc, gc)
			}
		})
	}
	t.Run("key no longer published", func(t *testing.T) {
		if _, err := k.Rotate(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		clk.Advance(defaultMaxTokenTTL + time.Second)
		if _, fast, err := k.state.Load().verifyES256(good, testIssuer, clk.Now()); fast && !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("fast path accepts a token of a withdrawn key: %v", err)
		}
		if _, err := k.Verify(good, testIssuer); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Verify accepts a token of a withdrawn key: %v", err)
		}
	})
}

// TestReloadKeepsKeyEntries: a key that a reload carries over keeps its ID
// token signer, private key and ES256 fast paths (a rotation reloads while
// the old key still signs).
func TestReloadKeepsKeyEntries(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k := newTestKeys(t, st, kr, clk, AlgES256)
	if _, err := k.Rotate(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	at := mint(t, k, now)
	if _, fast, err := k.state.Load().verifyES256(at, testIssuer, now); !fast || err != nil {
		t.Fatalf("fast path after reload: %v %v", fast, err)
	}
	if _, err := k.MintIDToken(&IDClaims{Issuer: testIssuer, Subject: "user-1", Audience: "client-1", IssuedAt: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix()}, at); err != nil {
		t.Fatalf("ID token after reload: %v", err)
	}
}
