package token

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestMintIDToken: typ JWT (so Verify, for access tokens, refuses it), the
// claims as given, and at_hash with the hash of the key's algorithm (OpenID
// Connect Core §3.1.3.6: SHA-256 for ES256 and RS256, SHA-512 for Ed25519).
func TestMintIDToken(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			clk := newClock()
			k := newTestKeys(t, newMemStore(), testKeyring(t), clk, alg)
			now := clk.Now()
			at := mint(t, k, now)
			raw, err := k.MintIDToken(&IDClaims{Issuer: testIssuer, Subject: "user-1", Audience: "client-1", IssuedAt: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix(), Nonce: "n", AMR: []string{"pwd"}}, at)
			if err != nil {
				t.Fatal(err)
			}
			if h := header(t, raw); h["typ"] != "JWT" || h["alg"] != alg {
				t.Fatalf("header %v", h)
			}
			if _, err := k.Verify(raw, testIssuer); err == nil {
				t.Fatal("an ID token verifies as an access token")
			}
			payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
			var c IDClaims
			if err := json.Unmarshal(payload, &c); err != nil {
				t.Fatal(err)
			}
			var sum []byte
			if alg == AlgEdDSA {
				s := sha512.Sum512([]byte(at))
				sum = s[:32]
			} else {
				s := sha256.Sum256([]byte(at))
				sum = s[:16]
			}
			if c.AccessTokenHash != base64.RawURLEncoding.EncodeToString(sum) || c.Audience != "client-1" || c.Nonce != "n" {
				t.Fatalf("claims %+v", c)
			}
			if _, err := k.MintIDToken(&IDClaims{Issuer: testIssuer, Subject: "user-1", Audience: "client-1", IssuedAt: now.Unix(), Expiry: now.Add(48 * time.Hour).Unix()}, ""); err == nil {
				t.Fatal("an ID token outliving the key's publication was minted")
			}
		})
	}
}
