package oauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	testClientID = "https://app.example.com/client.json"
	testIssuer   = "https://id.example.com"
	testTokenURL = "https://id.example.com/token"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type testKeys struct {
	ec      *ecdsa.PrivateKey
	ec2     *ecdsa.PrivateKey
	rsa     *rsa.PrivateKey
	ed      ed25519.PrivateKey
	public  *jose.JSONWebKeySet
	onlyEC2 *jose.JSONWebKeySet
}

func newTestKeys(t testing.TB) *testKeys {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKeys{
		ec: ec, ec2: ec2, rsa: rk, ed: ed,
		public: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &ec.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
			{Key: &rk.PublicKey, KeyID: "rsa-1"},
			{Key: ed.Public(), KeyID: "ed-1"},
		}},
		onlyEC2: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ec2.PublicKey, KeyID: "ec-1"}}},
	}
}

func validClaims() map[string]any {
	return map[string]any{
		"iss": testClientID,
		"sub": testClientID,
		"aud": testIssuer,
		"exp": testNow.Add(5 * time.Minute).Unix(),
		"iat": testNow.Unix(),
		"jti": "jti-1",
	}
}

func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyClientAssertion(t *testing.T) {
	k := newTestKeys(t)
	with := func(mod func(c map[string]any)) map[string]any {
		c := validClaims()
		mod(c)
		return c
	}
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"iss":"`+testClientID+`","sub":"`+testClientID+`","aud":"`+testIssuer+`","exp":9999999999,"jti":"x"}`)) + "."

	tests := []struct {
		name      string
		assertion string
		keys      *jose.JSONWebKeySet
		audiences []string
		code      string
	}{
		{name: "es256 with kid", assertion: sign(t, jose.ES256, k.ec, "ec-1", validClaims())},
		{name: "es256 without kid tries all keys", assertion: sign(t, jose.ES256, k.ec, "", validClaims())},
		{name: "rs256", assertion: sign(t, jose.RS256, k.rsa, "rsa-1", validClaims())},
		{name: "ps256", assertion: sign(t, jose.PS256, k.rsa, "rsa-1", validClaims())},
		{name: "eddsa", assertion: sign(t, jose.EdDSA, k.ed, "ed-1", validClaims())},
		{name: "aud is token endpoint", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["aud"] = testTokenURL }))},
		{name: "aud one-element array", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["aud"] = []string{testIssuer} }))},
		{name: "expired within leeway", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["exp"] = testNow.Add(-20 * time.Second).Unix() }))},
		{name: "iat slightly ahead", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["iat"] = testNow.Add(20 * time.Second).Unix() }))},
		{name: "no iat", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { delete(c, "iat") }))},

		{name: "expired", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["exp"] = testNow.Add(-time.Minute).Unix() })), code: CodeInvalidClient},
		{name: "no exp", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { delete(c, "exp") })), code: CodeInvalidClient},
		{name: "exp too far ahead", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["exp"] = testNow.Add(2 * time.Hour).Unix() })), code: CodeInvalidClient},
		{name: "nbf in future", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["nbf"] = testNow.Add(5 * time.Minute).Unix() })), code: CodeInvalidClient},
		{name: "iat in future", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["iat"] = testNow.Add(5 * time.Minute).Unix() })), code: CodeInvalidClient},
		{name: "no jti", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { delete(c, "jti") })), code: CodeInvalidClient},
		{name: "wrong iss", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["iss"] = "other" })), code: CodeInvalidClient},
		{name: "wrong sub", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["sub"] = "other" })), code: CodeInvalidClient},
		{name: "wrong aud", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { c["aud"] = "https://evil.example" })), code: CodeInvalidClient},
		{name: "no aud", assertion: sign(t, jose.ES256, k.ec, "ec-1", with(func(c map[string]any) { delete(c, "aud") })), code: CodeInvalidClient},
		{name: "no audiences configured", assertion: sign(t, jose.ES256, k.ec, "ec-1", validClaims()), audiences: []string{""}, code: CodeInvalidClient},
		{name: "wrong key same kid", assertion: sign(t, jose.ES256, k.ec2, "ec-1", validClaims()), code: CodeInvalidClient},
		{name: "wrong key no kid", assertion: sign(t, jose.ES256, k.ec2, "", validClaims()), code: CodeInvalidClient},
		{name: "unknown kid", assertion: sign(t, jose.ES256, k.ec, "nope", validClaims()), code: CodeInvalidClient},
		{name: "key bound to other alg", assertion: sign(t, jose.ES256, k.ec, "ec-1", validClaims()),
			keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.ec.PublicKey, KeyID: "ec-1", Algorithm: "ES384"}}}, code: CodeInvalidClient},
		{name: "key for encryption", assertion: sign(t, jose.ES256, k.ec, "ec-1", validClaims()),
			keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.ec.PublicKey, KeyID: "ec-1", Use: "enc"}}}, code: CodeInvalidClient},
		{name: "hs256", assertion: sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "", validClaims()), code: CodeInvalidClient},
		{name: "es512 not allowed", assertion: func() string {
			p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
			return sign(t, jose.ES512, p521, "", validClaims())
		}(), code: CodeInvalidClient},
		{name: "alg none", assertion: unsigned, code: CodeInvalidClient},
		{name: "garbage", assertion: "not-a-jwt", code: CodeInvalidClient},
		{name: "empty", assertion: "", code: CodeInvalidClient},
		{name: "too long", assertion: strings.Repeat("a", 20000), code: CodeInvalidClient},
		{name: "tampered payload", assertion: func() string {
			s := sign(t, jose.ES256, k.ec, "ec-1", validClaims())
			parts := strings.Split(s, ".")
			c := validClaims()
			c["sub"] = "x"
			other := strings.Split(sign(t, jose.ES256, k.ec2, "ec-1", c), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}(), code: CodeInvalidClient},
		{name: "nil keys", assertion: sign(t, jose.ES256, k.ec, "ec-1", validClaims()), keys: &jose.JSONWebKeySet{}, code: CodeInvalidClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := tt.keys
			if keys == nil {
				keys = k.public
			}
			aud := tt.audiences
			if aud == nil {
				aud = []string{testIssuer, testTokenURL}
			}
			claims, err := VerifyClientAssertion(tt.assertion, keys, testClientID, aud, testNow)
			wantCode(t, err, tt.code)
			if err != nil {
				if tt.assertion != "" && strings.Contains(err.Error(), tt.assertion) {
					t.Fatal("error contains the assertion")
				}
				return
			}
			if claims.Issuer != testClientID || claims.Subject != testClientID || claims.JTI == "" || claims.Expiry.IsZero() {
				t.Fatalf("claims = %+v", claims)
			}
		})
	}
	t.Run("nil key set", func(t *testing.T) {
		_, err := VerifyClientAssertion(sign(t, jose.ES256, k.ec, "ec-1", validClaims()), nil, testClientID, []string{testIssuer}, testNow)
		wantCode(t, err, CodeInvalidClient)
	})
	t.Run("other client", func(t *testing.T) {
		_, err := VerifyClientAssertion(sign(t, jose.ES256, k.ec, "ec-1", validClaims()), k.public, "someone-else", []string{testIssuer}, testNow)
		wantCode(t, err, CodeInvalidClient)
	})
	t.Run("private key in set verifies through its public half", func(t *testing.T) {
		keys := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.ec, KeyID: "ec-1"}}}
		_, err := VerifyClientAssertion(sign(t, jose.ES256, k.ec, "ec-1", validClaims()), keys, testClientID, []string{testIssuer}, testNow)
		wantCode(t, err, "")
	})
}

// TestClientAssertionAudience: aud must be this server's issuer or token
// endpoint, alone, as a string or a one-element array; other values and
// multi-valued aud are refused (RFC 7523bis, audience injection).
func TestClientAssertionAudience(t *testing.T) {
	k := newTestKeys(t)
	for _, tt := range []struct {
		name string
		aud  any
		ok   bool
	}{
		{"issuer string", testIssuer, true},
		{"token endpoint string", testTokenURL, true},
		{"issuer in a one-element array", []string{testIssuer}, true},
		{"token endpoint in a one-element array", []string{testTokenURL}, true},
		{"issuer and token endpoint", []string{testIssuer, testTokenURL}, false},
		{"issuer and another server", []string{"https://other.example", testIssuer}, false},
		{"issuer twice", []string{testIssuer, testIssuer}, false},
		{"another server", "https://other.example", false},
		{"issuer with a trailing slash", testIssuer + "/", false},
		{"token endpoint of another path", testIssuer + "/introspect", false},
		{"empty string", "", false},
		{"empty array", []string{}, false},
		{"array with an empty string", []string{""}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validClaims()
			c["aud"] = tt.aud
			_, err := VerifyClientAssertion(sign(t, jose.ES256, k.ec, "ec-1", c), k.public, testClientID, []string{testIssuer, testTokenURL}, testNow)
			want := CodeInvalidClient
			if tt.ok {
				want = ""
			}
			wantCode(t, err, want)
		})
	}
}

func TestPeekAssertionSubject(t *testing.T) {
	k := newTestKeys(t)
	onlyIss := validClaims()
	delete(onlyIss, "sub")
	neither := validClaims()
	delete(neither, "sub")
	delete(neither, "iss")
	tests := []struct {
		name, assertion, want, code string
	}{
		{name: "sub", assertion: sign(t, jose.ES256, k.ec, "", validClaims()), want: testClientID},
		{name: "iss when no sub", assertion: sign(t, jose.ES256, k.ec, "", onlyIss), want: testClientID},
		{name: "unverified signature is still peeked", assertion: sign(t, jose.ES256, k.ec2, "", validClaims()), want: testClientID},
		{name: "neither", assertion: sign(t, jose.ES256, k.ec, "", neither), code: CodeInvalidClient},
		{name: "hs256", assertion: sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "", validClaims()), code: CodeInvalidClient},
		{name: "garbage", assertion: "a.b.c", code: CodeInvalidClient},
		{name: "empty", assertion: "", code: CodeInvalidClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PeekAssertionSubject(tt.assertion)
			wantCode(t, err, tt.code)
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAssertionSigningAlgorithms(t *testing.T) {
	got := AssertionSigningAlgorithms()
	for _, a := range got {
		if a == "none" || strings.HasPrefix(a, "HS") {
			t.Fatalf("symmetric or none algorithm %s advertised", a)
		}
	}
	got[0] = "none"
	if AssertionSigningAlgorithms()[0] == "none" {
		t.Fatal("caller can change the allowlist")
	}
}

// FuzzPeekAssertionSubject checks that untrusted assertions never panic the
// parser and that failures are invalid_client.
func FuzzPeekAssertionSubject(f *testing.F) {
	k := newTestKeys(f)
	f.Add(sign(f, jose.ES256, k.ec, "ec-1", validClaims()))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := PeekAssertionSubject(s); err != nil && err.Code != CodeInvalidClient {
			t.Fatalf("code %s", err.Code)
		}
		if _, err := VerifyClientAssertion(s, k.public, testClientID, []string{testIssuer}, testNow); err != nil && err.Code != CodeInvalidClient {
			t.Fatalf("code %s", err.Code)
		}
	})
}
