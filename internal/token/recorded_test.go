package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// records is the hub's record of minted tokens as VerifyRecorded reads it:
// the digest per jti, and the jtis it was asked for.
type records struct {
	digest map[string][]byte
	asked  []string
}

func (r *records) add(raw string) {
	if r.digest == nil {
		r.digest = map[string][]byte{}
	}
	r.digest[jtiOf(raw)] = Hash(raw)
}

func (r *records) lookup(jti string) []byte {
	r.asked = append(r.asked, jti)
	return r.digest[jti]
}

// jtiOf reads the jti of a token without verifying it (test only).
func jtiOf(raw string) string {
	parts := strings.Split(raw, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(b, &c)
	return c.JTI
}

// signES256Raw signs header64.payload64 with key as ES256 (R || S).
func signES256Raw(t testing.TB, key *ecdsa.PrivateKey, header64, payload64 string) string {
	t.Helper()
	digest := sha256.Sum256([]byte(header64 + "." + payload64))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return header64 + "." + payload64 + "." + base64.RawURLEncoding.EncodeToString(sig[:])
}

// TestVerifyRecorded: a token whose SHA-256 is the one recorded for its jti
// is accepted without a signature check; every other token is judged by
// Verify — a forgery naming a recorded jti is refused, whatever key signed
// it, and a token without a recorded digest still verifies by signature.
func TestVerifyRecorded(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			st, kr, clk := newMemStore(), testKeyring(t), newClock()
			k := newTestKeys(t, st, kr, clk, alg)
			genuine := mint(t, k, clk.Now())
			unrecorded := mint(t, k, clk.Now())
			var rec records
			rec.add(genuine)

			parts := strings.Split(genuine, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			altered := b64(strings.Replace(string(payload), `"user-1"`, `"admin"`, 1))
			foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			wrongIssuer, err := k.Mint(&AccessClaims{Issuer: "https://other.example", Subject: "user-1",
				Audience: []string{"https://mcp.example.com/mcp"}, ClientID: "client-1", JTI: NewID(nil),
				IssuedAt: clk.Now().Unix(), Expiry: clk.Now().Add(time.Minute).Unix()})
			if err != nil {
				t.Fatal(err)
			}
			rec.add(wrongIssuer)

			tests := []struct {
				name       string
				raw        string
				wantOK     bool
				wantChecks uint64 // signature checks (Verify calls)
			}{
				{"recorded, as minted", genuine, true, 0},
				{"no digest recorded", unrecorded, true, 1},
				{"altered payload, foreign signature", signES256Raw(t, foreign, parts[0], altered), false, 1},
				{"altered payload, signature stripped", parts[0] + "." + altered + ".", false, 1},
				{"altered payload, genuine signature", parts[0] + "." + altered + "." + parts[2], false, 1},
				{"genuine, signature stripped", parts[0] + "." + parts[1] + ".", false, 1},
				{"genuine, trailing byte", genuine + "A", false, 1},
				{"recorded, another issuer", wrongIssuer, false, 0},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := k.SignatureChecks()
					c, err := k.VerifyRecorded(tt.raw, testIssuer, rec.lookup)
					if tt.wantOK != (err == nil) {
						t.Fatalf("VerifyRecorded = %v, want ok=%v", err, tt.wantOK)
					}
					if err != nil && (!errors.Is(err, ErrInvalidToken) || c != nil) {
						t.Fatalf("error %v with claims %v", err, c)
					}
					if got := k.SignatureChecks() - before; got != tt.wantChecks {
						t.Fatalf("%d signature checks, want %d", got, tt.wantChecks)
					}
					want, werr := k.Verify(tt.raw, testIssuer)
					if (werr == nil) != (err == nil) || !reflect.DeepEqual(c, want) {
						t.Fatalf("VerifyRecorded %+v %v, Verify %+v %v", c, err, want, werr)
					}
				})
			}
		})
	}
}

// TestVerifyRecordedRotation: a recorded token of a retired key is
// accepted while the key is published, as Verify accepts it, and refused
// once the key has left the key set, whatever its record says.
func TestVerifyRecordedRotation(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k, err := NewKeys(context.Background(), Options{Store: st, Keyring: kr, Now: clk.Now, MaxTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	old := mint(t, k, clk.Now())
	var rec records
	rec.add(old)
	if _, err := k.Rotate(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name  string
		after time.Duration
		ok    bool
	}{
		{"retired, still published", 59 * time.Minute, true},
		{"expired, gone from the key set", time.Hour, false},
	} {
		t.Run(step.name, func(t *testing.T) {
			clk.Advance(step.after - clk.Now().Sub(newClock().Now()))
			_, err := k.VerifyRecorded(old, testIssuer, rec.lookup)
			_, verr := k.Verify(old, testIssuer)
			if (err == nil) != step.ok || (verr == nil) != step.ok {
				t.Fatalf("VerifyRecorded = %v, Verify = %v, want ok=%v", err, verr, step.ok)
			}
		})
	}
}

// TestVerifyRecordedAsksOnlyForOurTokens: the record is read only for a
// token whose header names a published key of the hub, by its jti.
func TestVerifyRecordedAsksOnlyForOurTokens(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k := newTestKeys(t, st, kr, clk, AlgES256)
	genuine := mint(t, k, clk.Now())
	parts := strings.Split(genuine, ".")
	foreignHeader := b64(`{"alg":"ES256","kid":"someone-else","typ":"at+jwt"}`)
	var rec records
	for _, raw := range []string{foreignHeader + "." + parts[1] + "." + parts[2], "..", "not a token", parts[0] + ".!!." + parts[2]} {
		_, _ = k.VerifyRecorded(raw, testIssuer, rec.lookup)
	}
	if len(rec.asked) != 0 {
		t.Fatalf("record read for %v", rec.asked)
	}
	_, _ = k.VerifyRecorded(genuine, testIssuer, rec.lookup)
	if len(rec.asked) != 1 || rec.asked[0] != jtiOf(genuine) {
		t.Fatalf("asked %v, want the token's jti", rec.asked)
	}
}

// TestMintedHeader: MintedHeader accepts exactly the headers of tokens the
// hub mints with a key still published: not another key's, another alg or
// typ, a header that does not decode, and not once the key has left the
// key set.
func TestMintedHeader(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k, err := NewKeys(context.Background(), Options{Store: st, Keyring: kr, Now: clk.Now, MaxTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	genuine := mint(t, k, clk.Now())
	parts := strings.Split(genuine, ".")
	var h struct{ Alg, Kid, Typ string }
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	rest := "." + parts[1] + "." + parts[2]
	for _, tt := range []struct {
		name string
		raw  string
		want bool
	}{
		{"as minted", genuine, true},
		{"application/at+jwt", b64(`{"alg":"`+h.Alg+`","kid":"`+h.Kid+`","typ":"application/at+jwt"}`) + rest, true},
		{"another key", b64(`{"alg":"`+h.Alg+`","kid":"someone-else","typ":"at+jwt"}`) + rest, false},
		{"another alg", b64(`{"alg":"RS256","kid":"`+h.Kid+`","typ":"at+jwt"}`) + rest, false},
		{"another typ", b64(`{"alg":"`+h.Alg+`","kid":"`+h.Kid+`","typ":"JWT"}`) + rest, false},
		{"no typ", b64(`{"alg":"`+h.Alg+`","kid":"`+h.Kid+`"}`) + rest, false},
		{"not base64", "!!" + rest, false},
		{"no dot", parts[0], false},
		{"too long", genuine + strings.Repeat("A", maxTokenLen), false},
	} {
		if got := k.MintedHeader(tt.raw); got != tt.want {
			t.Errorf("%s: MintedHeader = %v, want %v", tt.name, got, tt.want)
		}
	}
	if _, err := k.Rotate(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Minute)
	if !k.MintedHeader(genuine) {
		t.Error("retired key, still published: MintedHeader = false")
	}
	clk.Advance(time.Minute)
	if k.MintedHeader(genuine) {
		t.Error("key gone from the key set: MintedHeader = true")
	}
}

// FuzzVerifyRecorded: with the record of the tokens the hub minted,
// VerifyRecorded answers as Verify for any input.
func FuzzVerifyRecorded(f *testing.F) {
	st, kr, clk := newMemStore(), testKeyring(f), newClock()
	k := newTestKeys(f, st, kr, clk, AlgES256)
	var rec records
	good := mint(f, k, clk.Now())
	rec.add(good)
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(mint(f, k, clk.Now()))
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "=")
	f.Add(b64(`{"alg":"none","typ":"at+jwt"}`) + "." + parts[1] + ".")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := k.VerifyRecorded(raw, testIssuer, rec.lookup)
		want, werr := k.Verify(raw, testIssuer)
		if (err == nil) != (werr == nil) || !reflect.DeepEqual(c, want) {
			t.Fatalf("VerifyRecorded %+v %v, Verify %+v %v", c, err, want, werr)
		}
	})
}
