package mcpauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// The differential tests of the compact fast path (compact.go): for every
// token, Verifier.verifyJWT (fast path, general path for what it leaves)
// and the reference verifier (go-jose's general parse with the reference
// claims decoder, verifyGeneral with parseClaimsReference) give the same
// answer: the same error kind and description, or equal claims.

const (
	fpIssuer   = "https://hub.example"
	fpResource = "https://mcp.example/mcp"
)

var fpNow = time.Unix(1_900_000_000, 0)

// fpKeys are the signing keys of the differential tests, one per kind the
// verifier handles, made once (RSA key generation is slow).
var fpKeys = sync.OnceValue(func() (k struct {
	p256, p256b, p384, p521 *ecdsa.PrivateKey
	ed                      ed25519.PrivateKey
	rsa                     *rsa.PrivateKey
}) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var err error
	k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.p256b, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.p521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	return k
})

// fpVerifier is a verifier with a warm key set of every kind of key and no
// hub: the set is never refetched (the clock stands still, so a refetch is
// always rate-limited and an unknown kid stays unknown).
func fpVerifier(t testing.TB) *Verifier {
	t.Helper()
	k := fpKeys()
	keys := []jose.JSONWebKey{
		{Key: &k.p256.PublicKey, KeyID: "es256", Algorithm: "ES256"},
		{Key: &k.p256b.PublicKey}, // no kid, no alg: a candidate for any ES256 token
		{Key: &k.p384.PublicKey, KeyID: "es384"},
		{Key: &k.p521.PublicKey, KeyID: "es512"},
		{Key: k.ed.Public(), KeyID: "ed"},
		{Key: &k.rsa.PublicKey, KeyID: "rsa"},
	}
	now := func() time.Time { return fpNow }
	return &Verifier{
		issuer:   fpIssuer,
		resource: fpResource,
		leeway:   defaultLeeway,
		algs:     []jose.SignatureAlgorithm{"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"},
		now:      now,
		logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		keys:     &keySet{keys: keys, gen: 1, fetchedAt: fpNow, lastAttempt: fpNow, now: now, logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
	}
}

// fpSign makes a compact JWS of header and payload signed by the test key
// which: 0 P-256 (ES256), 1 the kid-less P-256 key, 2 P-384 (ES384),
// 3 P-521 (ES512), 4 Ed25519, 5 RSA (RS256), 6 RSA (PS256), otherwise a
// signature of garbage bytes.
func fpSign(t testing.TB, header, payload []byte, which byte) string {
	t.Helper()
	k := fpKeys()
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	ec := func(key *ecdsa.PrivateKey, digest []byte) []byte {
		r, s, err := ecdsa.Sign(rand.Reader, key, digest)
		if err != nil {
			t.Fatal(err)
		}
		size := (key.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig
	}
	h256, h384, h512 := sha256.Sum256([]byte(input)), sha512.Sum384([]byte(input)), sha512.Sum512([]byte(input))
	var sig []byte
	var err error
	switch which % 8 {
	case 0:
		sig = ec(k.p256, h256[:])
	case 1:
		sig = ec(k.p256b, h256[:])
	case 2:
		sig = ec(k.p384, h384[:])
	case 3:
		sig = ec(k.p521, h512[:])
	case 4:
		sig = ed25519.Sign(k.ed, []byte(input))
	case 5:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, h256[:])
	case 6:
		sig, err = rsa.SignPSS(rand.Reader, k.rsa, crypto.SHA256, h256[:], nil)
	default:
		sig = h512[:64]
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// fpMutate changes token as op says at position pos: 0 nothing, 1 flips a
// bit, 2 inserts a line break, 3 appends padding to the signature, 4
// drops the last character, 5 sets the payload's trailing bits, 6 makes
// the signature's R zero, 7 makes it R + n (P-256).
func fpMutate(token string, op byte, pos uint16) string {
	if token == "" {
		return token
	}
	i := int(pos) % len(token)
	b := []byte(token)
	switch op % 8 {
	case 1:
		b[i] ^= 1 << (pos % 7)
	case 2:
		b = append(b[:i:i], append([]byte{'\n'}, b[i:]...)...)
	case 3:
		b = append(b, '=', '=')
	case 4:
		b = b[:len(b)-1]
	case 5:
		first, last := strings.IndexByte(token, '.'), strings.LastIndexByte(token, '.')
		if first >= 0 && last > first+1 {
			// The last character of the payload part with its low bits set:
			// a non-canonical encoding of (nearly) the same bytes.
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			if j := strings.IndexByte(alphabet, b[last-1]); j >= 0 {
				b[last-1] = alphabet[j|3]
			}
		}
	case 6, 7:
		last := strings.LastIndexByte(token, '.')
		sig, err := base64.RawURLEncoding.DecodeString(token[last+1:])
		if err != nil || len(sig) != 64 {
			return token
		}
		clear(sig[:32])
		if op%8 == 7 {
			elliptic.P256().Params().N.FillBytes(sig[:32])
		}
		return token[:last+1] + base64.RawURLEncoding.EncodeToString(sig)
	}
	return string(b)
}

// fpCompare fails t unless the fast and the reference verifier agree on
// token.
func fpCompare(t *testing.T, v *Verifier, token string) (accepted bool) {
	t.Helper()
	ctx := context.Background()
	got, gotErr := v.verifyJWT(ctx, token)
	want, wantErr := v.verifyGeneral(ctx, token, parseClaimsReference)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("token %q: fast path says %v, reference %v", token, gotErr, wantErr)
	}
	if gotErr != nil {
		g, gok := errors.AsType[*TokenError](gotErr)
		w, wok := errors.AsType[*TokenError](wantErr)
		if !gok || !wok || g.Kind != w.Kind || g.Description != w.Description {
			t.Fatalf("token %q: fast path says %v, reference %v", token, gotErr, wantErr)
		}
		return false
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("token %q: fast path claims %+v, reference %+v", token, got, want)
	}
	return true
}

// fpSeeds are headers and claims sets for the differential tests: the
// hub's and go-jose's forms and every kind of refusal.
var fpSeeds = struct{ headers, claims []string }{
	headers: []string{
		`{"alg":"ES256","kid":"es256","typ":"at+jwt"}`,
		`{"alg":"ES256","typ":"at+jwt"}`,
		`{"typ":"application/AT+JWT","kid":"es256","alg":"ES256"}`,
		`{"alg":"ES384","kid":"es384","typ":"at+jwt"}`,
		`{"alg":"ES512","kid":"es512","typ":"at+jwt"}`,
		`{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}`,
		`{"alg":"RS256","kid":"rsa","typ":"at+jwt"}`,
		`{"alg":"PS256","kid":"rsa","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"es384","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"ed","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"nope","typ":"at+jwt"}`,
		`{"alg":"none","kid":"es256","typ":"at+jwt"}`,
		`{"alg":"HS256","kid":"es256","typ":"at+jwt"}`,
		`{"alg":"RS384","kid":"rsa","typ":"at+jwt"}`,
		`{"kid":"es256","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"es256"}`,
		`{"alg":"ES256","kid":"es256","typ":"JWT"}`,
		`{"alg":"ES256","kid":"es256","typ":7}`,
		`{"alg":"ES256","kid":7,"typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","crit":["exp"],"exp":1}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","crit":null}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","crit":"exp"}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","b64":"false"}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","cty":"JWT"}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","b64":false,"crit":["b64"]}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","b64":true}`,
		`{"alg":"ES256","alg":"none","kid":"es256","typ":"at+jwt"}`,
		`{"alg":"none","alg":"ES256","kid":"es256","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","typ":"JWT"}`,
		`{"ALG":"ES256","kid":"es256","typ":"at+jwt"}`,
		`{ "alg":"ES256","kid":"es256","typ":"at+jwt"}`,
		`{"alg":"ES\u0032\u0035\u0036","kid":"es256","typ":"at+jwt"}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","nonce":1}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","x5c":["AAAA"]}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt","jwk":{"kty":"oct","k":"AAAA"}}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt",}`,
		`{"alg":"ES256","kid":"es256","typ":"at+jwt"}x`,
		`{}`, `[]`, `null`, ``,
	},
	claims: []string{
		`{"iss":"https://hub.example","sub":"u","aud":"https://mcp.example/mcp","exp":1900000300,"iat":1900000000,"scope":"a b","jti":"j","client_id":"c"}`,
		`{"iss":"https://hub.example","sub":"u","aud":["x","https://mcp.example/mcp/"],"exp":1900000300.5,"nbf":1899999990,"client_id":"c","act":{"sub":"agent","act":{"sub":"inner","iss":"https://other"}},"may_act":{"sub":"m"},"cnf":{"jkt":"abc"},"groups":["eng"],"name":"Jos\u00e9 \u003cR&D\u003e"}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1899999000}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1900000300,"nbf":1900001000}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1900000300,"iat":1900001000}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp"}`,
		`{"iss":"https://evil.example","aud":"https://mcp.example/mcp","exp":1900000300}`,
		`{"iss":"https://hub.example","aud":"https://other.example/mcp","exp":1900000300}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":"1900000300"}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1900000300,"act":{"iss":"x"}}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1900000300} {}`,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1900000300}}`,
		`{"iss":"https://hub.example","iss":"https://evil.example","aud":"https://mcp.example/mcp","exp":1900000300}`,
		` {"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1900000300,"x":[1,-2.5e3,true,false,null,{"y":[]}]} `,
		`{"iss":"https://hub.example","aud":"https://mcp.example/mcp","exp":1900000300,"bad":"\ud800"}`,
		"{\"iss\":\"https://hub.example\",\"aud\":\"https://mcp.example/mcp\",\"exp\":1900000300,\"bad\":\"\xff\"}",
		`null`, `[]`, `{`, ``, `{"exp":01}`,
	},
}

// TestFastPathTakesHubTokens: the fast path takes the tokens the hub and
// go-jose write (so the benchmarks measure it), and leaves the others.
func TestFastPathTakesHubTokens(t *testing.T) {
	v := fpVerifier(t)
	claims := []byte(fpSeeds.claims[0])
	for _, tc := range []struct {
		header string
		which  byte
		fast   bool
	}{
		{`{"alg":"ES256","kid":"es256","typ":"at+jwt"}`, 0, true},
		{`{"alg":"ES384","kid":"es384","typ":"at+jwt"}`, 2, true},
		{`{"alg":"ES512","kid":"es512","typ":"at+jwt"}`, 3, true},
		{`{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}`, 4, true},
		{`{"alg":"none","kid":"es256","typ":"at+jwt"}`, 0, true}, // refused by the fast path itself
		{`{"alg":"RS256","kid":"rsa","typ":"at+jwt"}`, 5, false},
		{`{"alg":"ES256","kid":"es256","typ":"at+jwt","crit":["exp"]}`, 0, false},
		{`{"alg":"ES256","kid":"es256","typ":"at+jwt","b64":false}`, 0, false},
		{`{"alg":"ES256","alg":"none","kid":"es256","typ":"at+jwt"}`, 0, false},
		{`{"alg":"ES\u0032\u0035\u0036","kid":"es256","typ":"at+jwt"}`, 0, false},
		{`{"alg": "ES256","kid":"es256","typ":"at+jwt"}`, 0, false},
	} {
		token := fpSign(t, []byte(tc.header), claims, tc.which)
		var pbuf [fastPayloadBuf]byte
		var sbuf [maxFastSignature]byte
		if _, fast := parseCompact(token, v.algs, pbuf[:], &sbuf); fast != tc.fast {
			t.Errorf("%s: fast path takes it: %v, want %v", tc.header, fast, tc.fast)
		}
		fpCompare(t, v, token)
	}
	// The test hub signs with go-jose's general signer, as hubs other than
	// agentid's own fast minting do.
	hub := mcpauthtest.NewServer(t)
	var pbuf [fastPayloadBuf]byte
	var sbuf [maxFastSignature]byte
	if c, fast := parseCompact(hub.Token(fpResource, "a"), v.algs, pbuf[:], &sbuf); !fast || c.alg != "ES256" || c.kid == "" || c.typ != "at+jwt" {
		t.Errorf("the fast path does not take go-jose's token: %v %+v", fast, c)
	}
	// Non-canonical base64 is left to the general path.
	token := fpSign(t, []byte(`{"alg":"ES256","kid":"es256","typ":"at+jwt"}`), claims, 0)
	for _, op := range []byte{2, 3, 5} {
		var pbuf [fastPayloadBuf]byte
		var sbuf [maxFastSignature]byte
		if m := fpMutate(token, op, 20); m != token {
			if _, fast := parseCompact(m, v.algs, pbuf[:], &sbuf); fast {
				t.Errorf("mutation %d: fast path takes %q", op, m)
			}
		}
	}
}

// TestFastPathAgreesOnSeeds runs every seed header with every key, and
// every seed claims set with the hub's header, through both verifiers,
// and checks that the hub's form is accepted at all (a differential test
// of two paths that refuse everything would prove nothing).
func TestFastPathAgreesOnSeeds(t *testing.T) {
	v := fpVerifier(t)
	accepted := map[byte]bool{}
	for _, h := range fpSeeds.headers {
		for which := range byte(8) {
			if fpCompare(t, v, fpSign(t, []byte(h), []byte(fpSeeds.claims[0]), which)) {
				accepted[which] = true
			}
		}
	}
	for _, c := range fpSeeds.claims {
		for i, which := range []byte{0, 4} {
			h := []byte(fpSeeds.headers[5*i])
			fpCompare(t, v, fpSign(t, h, []byte(c), which))
			for op := range byte(8) {
				fpCompare(t, v, fpMutate(fpSign(t, h, []byte(c), which), op, uint16(len(c))))
			}
		}
	}
	for which := range byte(7) {
		if !accepted[which] {
			t.Errorf("no token signed by test key %d was accepted", which)
		}
	}
}

// FuzzVerifyFastPath: the fast path and the reference verifier agree on
// every token, whether signed by one of the keys or not, well-formed or
// not.
func FuzzVerifyFastPath(f *testing.F) {
	for i, h := range fpSeeds.headers {
		c := fpSeeds.claims[i%len(fpSeeds.claims)]
		f.Add([]byte(h), []byte(c), byte(i), byte(0), uint16(0))
		f.Add([]byte(h), []byte(fpSeeds.claims[0]), byte(i), byte(i), uint16(i*7))
	}
	for i, c := range fpSeeds.claims {
		f.Add([]byte(fpSeeds.headers[0]), []byte(c), byte(0), byte(i), uint16(i*13))
	}
	v := fpVerifier(f)
	f.Fuzz(func(t *testing.T, header, claims []byte, which, op byte, pos uint16) {
		fpCompare(t, v, fpMutate(fpSign(t, header, claims, which), op, pos))
	})
}

// claimsMapSeeds are claims sets for the decoder tests: the hub's forms
// and the corners of JSON.
var claimsMapSeeds = []string{
	`{"iss":"https://hub.example","sub":"u","aud":"https://mcp.example/mcp","exp":1900000300,"iat":1900000000,"scope":"a b","jti":"j","client_id":"c"}`,
	`{"act":{"sub":"agent","act":{"sub":"inner","iss":"https://other"}},"may_act":{"sub":"m"},"cnf":{"jkt":"abc"},"groups":["eng",""],"roles":[]}`,
	`{"name":"Jos\u00e9 \u003cR&D\u003e \"q\" \\ \/ \b\f\n\r\t","emoji":"\ud83d\ude00","lone":"\ud800x","raw":"Zoë 日本"}`,
	"{\"bad\":\"\xff\xfe\",\"k\xc3\":1}",
	` { "a" : [ 1 , -0 , 0.5 , -1.5e+3 , 2E-2 , 1e400 , true , false , null , { } , [ ] ] , "a" : "last" } ` + "\n\t\r",
	`{"dup":1,"dup":{"x":null}}`, `{"":""}`, `{"n":-0.0e0}`,
	`{}`, `{} {}`, `{}}`, `{}]`, `{} x`, `[]`, `null`, `""`, `1`, ``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":+1}`, `{"a":tru}`, `{"a":nul}`, `{"a":True}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"tab	in"}`, "{\"a\":\"nl\nin\"}", `{"a":"\`, `{"a":"x`, `{"a":[1,]}`, `{"a":[,1]}`,
	`{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":{"l":{"m":{"n":{"o":{"p":{"q":{"r":{"s":{"t":{"u":{"v":{"w":{"x":{"y":{"z":{"A":{"B":{"C":{"D":{"E":{"F":{"G":{"H":{"I":{"J":{"K":{"L":{"M":{"N":1}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}`,
	"\xef\xbb\xbf{}",
}

// TestDecodeClaimsMapTakesHubClaims: the fast decoder takes the claims
// the hub writes, escapes and non-ASCII included (so the benchmarks
// measure it), and agrees with encoding/json on every seed.
func TestDecodeClaimsMapTakesHubClaims(t *testing.T) {
	for _, s := range claimsMapSeeds[:8] {
		if _, ok := decodeClaimsMap([]byte(s)); !ok {
			t.Errorf("fast decoder leaves %q to the reference", s)
		}
	}
	for _, s := range claimsMapSeeds {
		compareClaimsMaps(t, []byte(s))
	}
}

func compareClaimsMaps(t *testing.T, payload []byte) {
	t.Helper()
	got, ok := decodeClaimsMap(payload)
	if !ok {
		return // the reference decides
	}
	want, err := decodeClaimsMapReference(payload)
	if err != nil {
		t.Fatalf("%q: fast decoder accepts, encoding/json says %v", payload, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: fast decoder %#v, encoding/json %#v", payload, got, want)
	}
}

// FuzzDecodeClaimsMap: whatever the fast decoder accepts, encoding/json
// accepts too, with the same map.
func FuzzDecodeClaimsMap(f *testing.F) {
	for _, s := range claimsMapSeeds {
		f.Add([]byte(s))
	}
	for _, s := range fpSeeds.claims {
		f.Add([]byte(s))
	}
	f.Fuzz(compareClaimsMaps)
}
