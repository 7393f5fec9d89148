package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
)

const testIssuer = "https://id.example.com"

func newTestKeys(t testing.TB, st store.Store, kr *keyring.Keyring, clk *clock, alg string) *Keys {
	t.Helper()
	opts := Options{Store: st, Keyring: kr, Algorithm: alg}
	if clk != nil {
		opts.Now = clk.Now
	}
	k, err := NewKeys(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func claimsAt(now time.Time) *AccessClaims {
	return &AccessClaims{
		Issuer:   testIssuer,
		Subject:  "user-1",
		Audience: []string{"https://mcp.example.com/mcp"},
		ClientID: "client-1",
		Scope:    "files:read",
		JTI:      NewID(nil),
		IssuedAt: now.Unix(),
		Expiry:   now.Add(10 * time.Minute).Unix(),
	}
}

func mint(t testing.TB, k *Keys, now time.Time) string {
	t.Helper()
	raw, err := k.Mint(claimsAt(now))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// header decodes the protected header of a compact JWS without verifying.
func header(t testing.TB, raw string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func kidOf(t testing.TB, raw string) string {
	t.Helper()
	kid, _ := header(t, raw)["kid"].(string)
	return kid
}

func jwksKIDs(t testing.TB, doc []byte) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("JWKS %s: %v", doc, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// privateKey decrypts a stored signing key the way an attacker with the KEK
// and the database would.
func privateKey(t testing.TB, st store.Store, kr *keyring.Keyring, kid string) crypto.Signer {
	t.Helper()
	row, ok := rowOf(t, st, kid)
	if !ok {
		t.Fatalf("no key %q", kid)
	}
	der, err := kr.Open(row.PrivateEnc, "signing_keys|"+kid+"|private")
	if err != nil {
		t.Fatal(err)
	}
	p, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return p.(crypto.Signer)
}

func TestNewKeysCreatesFirstKeyAndPersistsItEncrypted(t *testing.T) {
	forEachBackend(t, testNewKeysCreatesFirstKey)
}

func testNewKeysCreatesFirstKey(t *testing.T, newStore func(testing.TB) store.Store) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			st, kr, clk := newStore(t), testKeyring(t), newClock()
			k := newTestKeys(t, st, kr, clk, alg)
			list := k.List()
			if len(list) != 1 {
				t.Fatalf("%d keys", len(list))
			}
			key := list[0]
			if key.Algorithm != alg || !key.ActivateAt.Equal(clk.Now()) || !key.RetiredAt.IsZero() || !key.ExpiresAt.IsZero() {
				t.Fatalf("first key %+v", key)
			}
			row, _ := rowOf(t, st, key.ID)

			// The stored private key is an envelope, not key material.
			priv := privateKey(t, st, kr, key.ID)
			der, _ := x509.MarshalPKCS8PrivateKey(priv)
			if bytes.Contains(row.PrivateEnc, der) || bytes.Contains(row.PrivateEnc, der[len(der)-32:]) {
				t.Fatal("PrivateEnc contains the private key")
			}
			if !bytes.HasPrefix(row.PrivateEnc, []byte("v1.kek-test.")) {
				t.Fatalf("PrivateEnc is not an envelope: %.20q", row.PrivateEnc)
			}
			if _, err := kr.Open(row.PrivateEnc, "signing_keys|other|private"); !errors.Is(err, keyring.ErrDecrypt) {
				t.Fatalf("opened with another row's AAD: %v", err)
			}
			// And the public JWK carries no private part.
			var jwk jose.JSONWebKey
			if err := jwk.UnmarshalJSON([]byte(row.PublicJWK)); err != nil || !jwk.IsPublic() {
				t.Fatalf("PublicJWK %s: %v", row.PublicJWK, err)
			}
			for _, field := range []string{`"d"`, `"p"`, `"q"`} {
				if strings.Contains(row.PublicJWK, field) {
					t.Fatalf("PublicJWK has %s", field)
				}
			}

			// A second instance reuses the key instead of creating one.
			k2 := newTestKeys(t, st, kr, clk, alg)
			if l := k2.List(); len(l) != 1 || l[0].ID != key.ID {
				t.Fatalf("second instance sees %d keys", len(l))
			}
			raw := mint(t, k2, clk.Now())
			if _, err := k.Verify(raw, testIssuer); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewKeysOptions(t *testing.T) {
	kr := testKeyring(t)
	tests := []struct {
		name string
		opts Options
	}{
		{"no store", Options{Keyring: kr}},
		{"no keyring", Options{Store: newMemStore()}},
		{"unknown algorithm", Options{Store: newMemStore(), Keyring: kr, Algorithm: "HS256"}},
		{"alg none", Options{Store: newMemStore(), Keyring: kr, Algorithm: "none"}},
		{"negative ttl", Options{Store: newMemStore(), Keyring: kr, MaxTokenTTL: -time.Second}},
		{"negative prepublish", Options{Store: newMemStore(), Keyring: kr, PrePublish: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewKeys(context.Background(), tc.opts); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestNewKeysRejectsBadStoredKeys(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k := newTestKeys(t, st, kr, clk, AlgES256)
	good, _ := rowOf(t, st, k.List()[0].ID)

	other := newMemStore()
	otherKeys := newTestKeys(t, other, kr, clk, AlgES256)
	foreign, _ := rowOf(t, other, otherKeys.List()[0].ID)

	tests := []struct {
		name   string
		mutate func(r *store.SigningKey)
		kr     *keyring.Keyring
	}{
		{"wrong KEK", func(*store.SigningKey) {}, testKeyring(t)},
		{"public JWK of another key", func(r *store.SigningKey) {
			r.PublicJWK = strings.Replace(foreign.PublicJWK, foreign.ID, r.ID, 1)
		}, kr},
		{"private key of another row", func(r *store.SigningKey) { r.PrivateEnc = foreign.PrivateEnc }, kr},
		{"kid mismatch in JWK", func(r *store.SigningKey) { r.PublicJWK = strings.Replace(r.PublicJWK, r.ID, "x", 1) }, kr},
		{"algorithm column changed", func(r *store.SigningKey) { r.Algorithm = AlgRS256 }, kr},
		{"unknown algorithm", func(r *store.SigningKey) { r.Algorithm = "HS256" }, kr},
		{"garbage JWK", func(r *store.SigningKey) { r.PublicJWK = "{" }, kr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			tc.mutate(&bad)
			s := newMemStore()
			s.set(bad)
			if _, err := NewKeys(context.Background(), Options{Store: s, Keyring: tc.kr, Now: clk.Now}); err == nil {
				t.Fatal("loaded a bad key")
			}
		})
	}
}

func TestRotationLifecycle(t *testing.T) { forEachBackend(t, testRotationLifecycle) }

func testRotationLifecycle(t *testing.T, newStore func(testing.TB) store.Store) {
	st, kr, clk := newStore(t), testKeyring(t), newClock()
	ctx := context.Background()
	k, err := NewKeys(ctx, Options{Store: st, Keyring: kr, Now: clk.Now, PrePublish: 10 * time.Minute, MaxTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now()
	a := k.List()[0].ID
	tokA := mint(t, k, clk.Now())
	if kidOf(t, tokA) != a {
		t.Fatal("first token not signed by the first key")
	}

	clk.Advance(time.Minute)
	b, err := k.Rotate(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	bActive := t0.Add(11 * time.Minute)
	aExpires := bActive.Add(time.Hour)

	steps := []struct {
		name       string
		at         time.Time
		wantSigner string
		wantJWKS   []string
		aVerifies  bool
	}{
		{"new key published before it signs", t0.Add(time.Minute), a, sorted(a, b.ID), true},
		{"just before activation", bActive.Add(-time.Second), a, sorted(a, b.ID), true},
		{"signer switches at ActivateAt", bActive, b.ID, sorted(a, b.ID), true},
		{"old key kept until ExpiresAt", aExpires.Add(-time.Second), b.ID, sorted(a, b.ID), true},
		{"old key gone at ExpiresAt", aExpires, b.ID, []string{b.ID}, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.at.Sub(clk.Now()))
			if got := kidOf(t, mint(t, k, clk.Now())); got != s.wantSigner {
				t.Fatalf("signed by %q, want %q", got, s.wantSigner)
			}
			if got := jwksKIDs(t, k.JWKS()); !slices.Equal(got, s.wantJWKS) {
				t.Fatalf("JWKS kids %v, want %v", got, s.wantJWKS)
			}
			_, err := k.Verify(tokA, testIssuer)
			if (err == nil) != s.aVerifies {
				t.Fatalf("Verify(token of old key) = %v, want ok=%v", err, s.aVerifies)
			}
		})
	}

	t.Run("stored lifecycle times", func(t *testing.T) {
		row, ok := rowOf(t, st, a)
		if !ok {
			t.Fatal("old key already deleted")
		}
		if !row.RetiredAt.Equal(bActive) || !row.ExpiresAt.Equal(aExpires) {
			t.Fatalf("old key retired %v expires %v", row.RetiredAt, row.ExpiresAt)
		}
		if got := k.List(); len(got) != 1 || got[0].ID != b.ID {
			t.Fatalf("List = %v", got)
		}
	})

	t.Run("immediate rotation signs at once and prunes expired keys", func(t *testing.T) {
		clk.Advance(time.Second)
		c, err := k.Rotate(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if !c.ActivateAt.Equal(clk.Now()) {
			t.Fatalf("ActivateAt %v, want now", c.ActivateAt)
		}
		if got := kidOf(t, mint(t, k, clk.Now())); got != c.ID {
			t.Fatalf("signed by %q", got)
		}
		if _, ok := rowOf(t, st, a); ok {
			t.Fatal("expired key not deleted")
		}
		if got := jwksKIDs(t, k.JWKS()); !slices.Equal(got, sorted(b.ID, c.ID)) {
			t.Fatalf("JWKS %v", got)
		}
	})
}

func TestRotateTwiceBeforeActivation(t *testing.T) {
	forEachBackend(t, testRotateTwiceBeforeActivation)
}

func testRotateTwiceBeforeActivation(t *testing.T, newStore func(testing.TB) store.Store) {
	// A second rotation while the first new key is still pending must retire
	// the pending key too, or it would stay in the JWKS for ever.
	st, kr, clk := newStore(t), testKeyring(t), newClock()
	ctx := context.Background()
	k, err := NewKeys(ctx, Options{Store: st, Keyring: kr, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	a := k.List()[0].ID
	b, err := k.Rotate(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := k.Rotate(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := kidOf(t, mint(t, k, clk.Now())); got != c.ID {
		t.Fatalf("signed by %q, want the immediate key", got)
	}
	for _, id := range []string{a, b.ID} {
		row, _ := rowOf(t, st, id)
		if !row.RetiredAt.Equal(clk.Now()) || !row.ExpiresAt.Equal(clk.Now().Add(defaultMaxTokenTTL)) {
			t.Fatalf("key %s retired %v expires %v", id, row.RetiredAt, row.ExpiresAt)
		}
	}
	clk.Advance(defaultPrePublish) // b's own activation time passes
	if got := kidOf(t, mint(t, k, clk.Now())); got != c.ID {
		t.Fatalf("signed by %q after the pending key's activation time", got)
	}
}

func TestReloadSeesRotationByAnotherReplica(t *testing.T) {
	forEachBackend(t, testReloadSeesRotationByAnotherReplica)
}

func testReloadSeesRotationByAnotherReplica(t *testing.T, newStore func(testing.TB) store.Store) {
	st, kr, clk := newStore(t), testKeyring(t), newClock()
	ctx := context.Background()
	k1 := newTestKeys(t, st, kr, clk, AlgES256)
	k2 := newTestKeys(t, st, kr, clk, AlgES256)
	a := k1.List()[0].ID

	t.Run("reload without change keeps the snapshot", func(t *testing.T) {
		before := k2.state.Load()
		if err := k2.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if k2.state.Load() != before {
			t.Fatal("snapshot rebuilt although nothing changed")
		}
	})

	c, err := k1.Rotate(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	tokC := mint(t, k1, clk.Now())

	t.Run("before reload", func(t *testing.T) {
		if got := kidOf(t, mint(t, k2, clk.Now())); got != a {
			t.Fatalf("k2 signs with %q before reload", got)
		}
		if _, err := k2.Verify(tokC, testIssuer); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("k2 verified a token of a key it has not loaded: %v", err)
		}
	})
	if err := k2.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("after reload", func(t *testing.T) {
		if got := kidOf(t, mint(t, k2, clk.Now())); got != c.ID {
			t.Fatalf("k2 signs with %q after reload, want %q", got, c.ID)
		}
		if _, err := k2.Verify(tokC, testIssuer); err != nil {
			t.Fatal(err)
		}
		if got := jwksKIDs(t, k2.JWKS()); !slices.Equal(got, sorted(a, c.ID)) {
			t.Fatalf("k2 JWKS %v", got)
		}
		// The retired key's entry reuses its decrypted signer.
		if k2.state.Load().byKID[a].signer == nil {
			t.Fatal("lost signer")
		}
	})
}

func TestJWKS(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			k := newTestKeys(t, newMemStore(), testKeyring(t), newClock(), alg)
			doc := k.JWKS()
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(doc, &set); err != nil {
				t.Fatal(err)
			}
			if len(set.Keys) != 1 {
				t.Fatalf("%d keys", len(set.Keys))
			}
			jwk := set.Keys[0]
			wantKty := map[string]string{AlgES256: "EC", AlgEdDSA: "OKP", AlgRS256: "RSA"}[alg]
			if jwk["kid"] != k.List()[0].ID || jwk["alg"] != alg || jwk["use"] != "sig" || jwk["kty"] != wantKty {
				t.Fatalf("JWK %v", jwk)
			}
			if _, ok := jwk["d"]; ok {
				t.Fatal("private part published")
			}
			if again := k.JWKS(); &again[0] != &doc[0] {
				t.Fatal("JWKS re-encoded although nothing changed")
			}
		})
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		t.Run(alg, func(t *testing.T) {
			clk := newClock()
			k := newTestKeys(t, newMemStore(), testKeyring(t), clk, alg)
			in := claimsAt(clk.Now())
			in.AuthTime = clk.Now().Add(-time.Hour).Unix()
			in.Act = &Actor{Subject: "agent-7", Actor: &Actor{Subject: "agent-1"}}
			in.MayAct = &Actor{Subject: "mcp-b"}
			in.Confirmation = &Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
			raw, err := k.Mint(in)
			if err != nil {
				t.Fatal(err)
			}
			h := header(t, raw)
			if h["typ"] != "at+jwt" || h["alg"] != alg || h["kid"] != k.List()[0].ID {
				t.Fatalf("header %v", h)
			}
			out, err := k.Verify(raw, testIssuer)
			if err != nil {
				t.Fatal(err)
			}
			inJSON, _ := json.Marshal(in)
			outJSON, _ := json.Marshal(out)
			if !bytes.Equal(inJSON, outJSON) {
				t.Fatalf("claims changed:\n in %s\nout %s", inJSON, outJSON)
			}
			// Verify does not check exp.
			clk.Advance(2 * time.Hour)
			if _, err := k.Verify(raw, testIssuer); err != nil {
				t.Fatalf("expired token: %v", err)
			}
		})
	}
}

func TestMintRejects(t *testing.T) {
	clk := newClock()
	k, err := NewKeys(context.Background(), Options{Store: newMemStore(), Keyring: testKeyring(t), Now: clk.Now, MaxTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	tests := []struct {
		name   string
		mutate func(c *AccessClaims)
	}{
		{"no iss", func(c *AccessClaims) { c.Issuer = "" }},
		{"no sub", func(c *AccessClaims) { c.Subject = "" }},
		{"no aud", func(c *AccessClaims) { c.Audience = nil }},
		{"empty aud element", func(c *AccessClaims) { c.Audience = []string{""} }},
		{"no client_id", func(c *AccessClaims) { c.ClientID = "" }},
		{"no jti", func(c *AccessClaims) { c.JTI = "" }},
		{"no iat", func(c *AccessClaims) { c.IssuedAt = 0 }},
		{"no exp", func(c *AccessClaims) { c.Expiry = 0 }},
		{"exp before iat", func(c *AccessClaims) { c.Expiry = c.IssuedAt - 1 }},
		{"lifetime beyond MaxTokenTTL", func(c *AccessClaims) { c.Expiry = now.Add(time.Hour + 2*time.Second).Unix() }},
		{"user claim named sub", func(c *AccessClaims) { c.UserClaims = map[string]any{"sub": "someone-else"} }},
		{"user claim named Scope", func(c *AccessClaims) { c.UserClaims = map[string]any{"Scope": "admin"} }},
		{"user claim named act", func(c *AccessClaims) {
			c.UserClaims = map[string]any{"groups": []string{}, "act": map[string]any{"sub": "x"}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := claimsAt(now)
			tc.mutate(c)
			if raw, err := k.Mint(c); err == nil {
				t.Fatalf("minted %s", raw)
			}
		})
	}
	t.Run("lifetime of exactly MaxTokenTTL is fine", func(t *testing.T) {
		c := claimsAt(now)
		c.Expiry = now.Add(time.Hour).Unix()
		if _, err := k.Mint(c); err != nil {
			t.Fatal(err)
		}
	})
}

// sign builds a compact JWS over payload with arbitrary header fields.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, hdr map[jose.HeaderKey]any, payload []byte) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range hdr {
		opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyRejects(t *testing.T) {
	st, kr, clk := newMemStore(), testKeyring(t), newClock()
	k := newTestKeys(t, st, kr, clk, AlgES256)
	kid := k.List()[0].ID
	priv := privateKey(t, st, kr, kid)
	good := mint(t, k, clk.Now())
	payload, _ := json.Marshal(claimsAt(clk.Now()))
	row, _ := rowOf(t, st, kid)

	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	parts := strings.Split(good, ".")
	evil := strings.Replace(string(payload), "user-1", "admin", 1)

	// ok reports whether the case is a valid token (positive controls keep
	// the table honest: the forging helpers do produce verifiable tokens).
	tests := []struct {
		name   string
		raw    string
		issuer string
		ok     bool
	}{
		{"control: minted token", good, testIssuer, true},
		{"control: forged with the real key", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, payload), testIssuer, true},
		{"control: typ application/at+jwt", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": "application/at+jwt"}, payload), testIssuer, true},
		{"wrong issuer", good, "https://other.example.com", false},
		{"issuer with trailing slash", good, testIssuer + "/", false},
		{"typ JWT", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": "JWT"}, payload), testIssuer, false},
		{"no typ", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid}, payload), testIssuer, false},
		{"alg none", b64(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`) + "." + b64(string(payload)) + ".", testIssuer, false},
		{"alg none with original signature", b64(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`) + "." + parts[1] + "." + parts[2], testIssuer, false},
		{"unknown kid", sign(t, jose.ES256, otherEC, map[jose.HeaderKey]any{"kid": "nope", "typ": "at+jwt"}, payload), testIssuer, false},
		{"no kid", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"typ": "at+jwt"}, payload), testIssuer, false},
		{"right kid, wrong key", sign(t, jose.ES256, otherEC, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, payload), testIssuer, false},
		{"alg RS256 on an ES256 kid", sign(t, jose.RS256, otherRSA, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, payload), testIssuer, false},
		{"HS256 keyed with the public JWK", sign(t, jose.HS256, []byte(row.PublicJWK), map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, payload), testIssuer, false},
		{"tampered payload", parts[0] + "." + b64(evil) + "." + parts[2], testIssuer, false},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64("xx") + parts[2][3:], testIssuer, false},
		{"missing signature", parts[0] + "." + parts[1] + ".", testIssuer, false},
		{"two segments", parts[0] + "." + parts[1], testIssuer, false},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, testIssuer, false},
		{"empty", "", testIssuer, false},
		{"garbage", "a.b.c", testIssuer, false},
		{"oversized", strings.Repeat("a", maxTokenLen+1), testIssuer, false},
		{"payload not JSON", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, []byte("hello")), testIssuer, false},
		{"aud of wrong type", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt"}, []byte(`{"iss":"`+testIssuer+`","aud":5}`)), testIssuer, false},
		{"unknown critical header", sign(t, jose.ES256, priv, map[jose.HeaderKey]any{"kid": kid, "typ": "at+jwt", "crit": []string{"exp"}, "exp": 1}, payload), testIssuer, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := k.Verify(tc.raw, tc.issuer)
			if tc.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", c, err)
			}
			if c != nil {
				t.Fatal("claims returned with an error")
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	st, kr, clk := newMemStore(), testKeyring(f), newClock()
	k := newTestKeys(f, st, kr, clk, AlgES256)
	good := mint(f, k, clk.Now())
	parts := strings.Split(good, ".")
	f.Add(good)
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(b64(`{"alg":"none","typ":"at+jwt"}`) + "." + parts[1] + ".")
	f.Add(b64(`{"alg":"HS256","typ":"at+jwt","kid":"x"}`) + "." + parts[1] + "." + parts[2])
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		// The ES256 fast path decides as the general path does.
		if fc, fast, ferr := k.state.Load().verifyES256(raw, testIssuer, clk.Now()); fast {
			gc, gerr := k.verifyJWS(raw, testIssuer)
			if (ferr == nil) != (gerr == nil) || ferr == nil && !reflect.DeepEqual(fc, gc) {
				t.Fatalf("fast path %+v %v, general path %+v %v", fc, ferr, gc, gerr)
			}
		}
		c, err := k.Verify(raw, testIssuer)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) || c != nil {
				t.Fatalf("Verify error %v with claims %v", err, c)
			}
			return
		}
		// Anything that verifies was signed by our key and names our issuer.
		if c.Issuer != testIssuer {
			t.Fatalf("issuer %q", c.Issuer)
		}
	})
}

func BenchmarkMint(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		b.Run(alg, func(b *testing.B) {
			k := newTestKeys(b, newMemStore(), testKeyring(b), nil, alg)
			c := claimsAt(time.Now())
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := k.Mint(c); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgRS256} {
		b.Run(alg, func(b *testing.B) {
			k := newTestKeys(b, newMemStore(), testKeyring(b), nil, alg)
			raw := mint(b, k, time.Now())
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := k.Verify(raw, testIssuer); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func TestSubMicrosecondClock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, newStore func(testing.TB) store.Store) {
		// Stores keep microseconds at most; a key created "now" must still
		// sign now after the round trip through the database.
		clk := &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 999_999_999, time.UTC)}
		ctx := context.Background()
		k, err := NewKeys(ctx, Options{Store: newStore(t), Keyring: testKeyring(t), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		mint(t, k, clk.Now())
		c, err := k.Rotate(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := kidOf(t, mint(t, k, clk.Now())); got != c.ID {
			t.Fatalf("signed by %q, want the immediate key %q", got, c.ID)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	// Mint, Verify and JWKS run lock-free against snapshots while rotations
	// and reloads replace them; run with -race.
	st, kr := newMemStore(), testKeyring(t)
	ctx := context.Background()
	k := newTestKeys(t, st, kr, nil, AlgEdDSA)
	done := make(chan struct{})
	errs := make(chan error, 8)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				raw, err := k.Mint(claimsAt(time.Now()))
				if err == nil {
					_, err = k.Verify(raw, testIssuer)
				}
				if err != nil {
					errs <- err
					return
				}
				if len(k.JWKS()) == 0 || len(k.List()) == 0 {
					errs <- errors.New("empty key set")
					return
				}
			}
		}()
	}
	for range 5 {
		if _, err := k.Rotate(ctx, true); err != nil {
			t.Error(err)
		}
		if err := k.Reload(ctx); err != nil {
			t.Error(err)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
