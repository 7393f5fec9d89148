package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// ecKeys returns n P-256 key pairs.
func ecKeys(t testing.TB, n int) []*ecdsa.PrivateKey {
	t.Helper()
	out := make([]*ecdsa.PrivateKey, n)
	for i := range out {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	return out
}

// publicSet is the JWK set of keys' public halves, with kids k0, k1, …
func publicSet(keys []*ecdsa.PrivateKey) *jose.JSONWebKeySet {
	set := &jose.JSONWebKeySet{}
	for i, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: fmt.Sprintf("k%d", i), Algorithm: "ES256", Use: "sig"})
	}
	return set
}

func marshalSet(t testing.TB, set *jose.JSONWebKeySet) []byte {
	t.Helper()
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rsaJWK is an RSA public JWK with a modulus of the given size; the number
// need not be a real RSA modulus for the size check.
func rsaJWK(bits int) string {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.SetBit(n, 0, 1)
	k := jose.JSONWebKey{Key: &rsa.PublicKey{N: n, E: 65537}, KeyID: fmt.Sprintf("rsa-%d", bits)}
	b, _ := json.Marshal(k)
	return string(b)
}

// TestParsePublicJWKSBounds: a registered key set is bounded in keys, size
// and RSA modulus, and its kids are distinct.
func TestParsePublicJWKSBounds(t *testing.T) {
	keys := ecKeys(t, MaxClientKeys+1)
	dup := publicSet(keys[:2])
	dup.Keys[1].KeyID = dup.Keys[0].KeyID
	noKids := publicSet(keys[:3])
	for i := range noKids.Keys {
		noKids.Keys[i].KeyID = ""
	}
	for _, tt := range []struct {
		name string
		raw  string
		ok   bool
	}{
		{"one key", string(marshalSet(t, publicSet(keys[:1]))), true},
		{"at the bound", string(marshalSet(t, publicSet(keys[:MaxClientKeys]))), true},
		{"over the bound", string(marshalSet(t, publicSet(keys))), false},
		{"keys without kid", string(marshalSet(t, noKids)), true},
		{"two keys with one kid", string(marshalSet(t, dup)), false},
		{"rsa 2048", `{"keys":[` + rsaJWK(2048) + `]}`, true},
		{"rsa 4096", `{"keys":[` + rsaJWK(4096) + `]}`, true},
		{"rsa 1024", `{"keys":[` + rsaJWK(1024) + `]}`, false},
		{"rsa 8192", `{"keys":[` + rsaJWK(8192) + `]}`, false},
		{"over 32 KiB", `{"keys":[` + rsaJWK(2048) + `],"pad":"` + strings.Repeat("x", 32<<10) + `"}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePublicJWKS([]byte(tt.raw))
			want := CodeInvalidClientMetadata
			if tt.ok {
				want = ""
			}
			wantCode(t, err, want)
		})
	}
}

// TestClientAssertionKeySelection: an assertion naming a kid is checked
// against that key alone; one without a kid against at most MaxClientKeys
// keys, even when the stored set (from before the bound) is longer.
func TestClientAssertionKeySelection(t *testing.T) {
	keys := ecKeys(t, 2*MaxClientKeys)
	set := publicSet(keys)
	last := keys[len(keys)-1]
	lastKid := set.Keys[len(keys)-1].KeyID
	for _, tt := range []struct {
		name string
		key  *ecdsa.PrivateKey
		kid  string
		ok   bool
	}{
		{"kid names the signing key", last, lastKid, true},
		{"kid names another key", last, "k0", false},
		{"no kid, signing key among the first keys", keys[MaxClientKeys-1], "", true},
		{"no kid, signing key beyond the bound", last, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := sign(t, jose.ES256, tt.key, tt.kid, validClaims())
			_, err := VerifyClientAssertion(a, set, testClientID, []string{testIssuer}, testNow)
			want := CodeInvalidClient
			if tt.ok {
				want = ""
			}
			wantCode(t, err, want)
		})
	}
}
