package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestCheckpointRoundTrip: a checkpoint signed with each algorithm
// verifies with the public keys alone and carries the key's kid and the
// checkpoint typ.
func TestCheckpointRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			st, kr, clk := newMemStore(), testKeyring(t), newClock()
			k := newTestKeys(t, st, kr, clk, alg)
			raw, err := k.SignCheckpoint([]byte(`{"tenant":"default","head_id":7}`))
			if err != nil {
				t.Fatal(err)
			}
			if h := header(t, raw); h["typ"] != TypCheckpoint || h["kid"] != k.List()[0].ID || h["alg"] != alg {
				t.Fatalf("header = %v", h)
			}
			pub := k.List()
			for _, r := range pub {
				r.PrivateEnc = nil // the verifier needs the public half only
			}
			payload, kid, err := VerifyCheckpoint(raw, pub)
			if err != nil || string(payload) != `{"tenant":"default","head_id":7}` || kid != pub[0].ID {
				t.Fatalf("VerifyCheckpoint = %s, %q, %v", payload, kid, err)
			}
			// No verifier of the hub's tokens takes a checkpoint.
			if _, err := k.Verify(raw, testIssuer); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify took a checkpoint as an access token: %v", err)
			}
		})
	}
	if _, err := newTestKeys(t, newMemStore(), testKeyring(t), newClock(), AlgES256).SignCheckpoint([]byte(`[1]`)); err == nil {
		t.Error("SignCheckpoint signed a payload that is not a JSON object")
	}
}

// TestVerifyCheckpointRejects: the adversarial table. Only a checkpoint
// signed by a held key, with its alg and the checkpoint typ, passes.
func TestVerifyCheckpointRejects(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k := newTestKeys(t, st, kr, clk, AlgES256)
	kid := k.List()[0].ID
	priv := privateKey(t, st, kr, kid)
	keys := k.List()
	row, _ := rowOf(t, st, kid)
	payload := []byte(`{"tenant":"default","head_id":7,"head_hash":"00"}`)
	good, err := k.SignCheckpoint(payload)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)

	tests := []struct {
		name string
		raw  string
		want error // nil: valid
	}{
		{"control: signed checkpoint", good, nil},
		{"control: forged with the real key", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": TypCheckpoint}, payload), nil},
		{"an access token", mint(t, k, clk.Now()), ErrInvalidCheckpoint},
		{"typ JWT", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": "JWT"}, payload), ErrInvalidCheckpoint},
		{"no typ", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid}, payload), ErrInvalidCheckpoint},
		{"typ in other case", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": strings.ToUpper(TypCheckpoint)}, payload), ErrInvalidCheckpoint},
		{"alg none", b64(`{"alg":"none","typ":"`+TypCheckpoint+`","kid":"`+kid+`"}`) + "." + parts[1] + ".", ErrInvalidCheckpoint},
		{"HS256 keyed with the public JWK", sign(t, jose.HS256, []byte(row.PublicJWK), map[jose.HeaderKey]any{"kid": kid, "typ": TypCheckpoint}, payload), ErrInvalidCheckpoint},
		{"right kid, wrong key", sign(t, jose.ES256, otherEC, map[jose.HeaderKey]any{"kid": kid, "typ": TypCheckpoint}, payload), ErrInvalidCheckpoint},
		{"alg RS256 on an ES256 kid", sign(t, jose.RS256, otherRSA, map[jose.HeaderKey]any{"kid": kid, "typ": TypCheckpoint}, payload), ErrInvalidCheckpoint},
		{"unknown kid", sign(t, jose.ES256, otherEC, map[jose.HeaderKey]any{"kid": "gone", "typ": TypCheckpoint}, payload), ErrCheckpointKeyUnknown},
		{"no kid", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"typ": TypCheckpoint}, payload), ErrCheckpointKeyUnknown},
		{"tampered payload", parts[0] + "." + b64(`{"tenant":"default","head_id":8,"head_hash":"00"}`) + "." + parts[2], ErrInvalidCheckpoint},
		{"missing signature", parts[0] + "." + parts[1] + ".", ErrInvalidCheckpoint},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, ErrInvalidCheckpoint},
		{"empty", "", ErrInvalidCheckpoint},
		{"oversized", strings.Repeat("a", maxCheckpointLen+1), ErrInvalidCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _, err := VerifyCheckpoint(tc.raw, keys)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyCheckpoint = %s, %v; want %v", p, err, tc.want)
			}
		})
	}
}

// FuzzVerifyCheckpoint: checkpoints come from the database, which an
// attacker may have written; no input panics, and nothing but the signed
// checkpoint verifies.
func FuzzVerifyCheckpoint(f *testing.F) {
	st, kr, clk := newMemStore(), testKeyring(f), newClock()
	k := newTestKeys(f, st, kr, clk, AlgES256)
	good, err := k.SignCheckpoint([]byte(`{"tenant":"default"}`))
	if err != nil {
		f.Fatal(err)
	}
	keys := k.List()
	f.Add(good)
	f.Add(mint(f, k, clk.Now()))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		p, _, err := VerifyCheckpoint(raw, keys)
		if err == nil && raw != good && string(p) != `{"tenant":"default"}` {
			t.Fatalf("verified something never signed: %q", raw)
		}
	})
}
