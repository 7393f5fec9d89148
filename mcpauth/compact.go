package mcpauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"

	"github.com/go-jose/go-jose/v4"
)

// The compact fast path.
//
// Verify checks most tokens without go-jose's general JWS parse, which
// decodes the protected header into maps, re-encodes it and the payload to
// rebuild the signing input, and converts the signature through big.Int.
// The fast path takes only tokens whose form leaves nothing to interpret:
//
//   - all three parts are unpadded base64url without line breaks or other
//     characters (RFC 7515 §2) and canonical (zero trailing bits, the one
//     encoding of their bytes), so the signing input is the token's own
//     text before the second dot, byte for byte what the general parse
//     rebuilds by re-encoding;
//   - the protected header is a JSON object without whitespace whose only
//     members are alg, kid and typ, each at most once, each a string of
//     printable ASCII without escapes (as the hub and go-jose write it);
//   - alg is ES256, ES384, ES512 or EdDSA.
//
// Any other token, well-formed or not, is judged by the general path,
// which then gives the answer (verifyGeneral). On the tokens it takes, the
// fast path applies the same checks in the same order with the same
// errors: the differential fuzz test (FuzzVerifyFastPath) holds both paths
// to one answer.

// compactJWS is a token the fast path takes, its parts decoded.
type compactJWS struct {
	alg, kid, typ string
	// signingInput is the token up to its second dot (RFC 7515 §5.2).
	signingInput string
	payload      []byte
	sig          []byte
}

// maxFastHeader bounds the protected header the fast path decodes on the
// stack; a longer one goes to the general path.
const maxFastHeader = 256

// maxFastSignature is the longest signature the fast path handles: ES512's
// R || S, 66 bytes each (RFC 7518 §3.4).
const maxFastSignature = 2 * 66

// parseCompact splits and decodes token for the fast path, with the
// payload decoded into payloadBuf when it fits and the signature into
// sigBuf. ok is false for any token the fast path leaves to the general
// path. algs are the allowed algorithms, whose names alg is taken from (an
// alg outside them is returned as "", which the caller refuses, as the
// general path does).
func parseCompact(token string, algs []jose.SignatureAlgorithm, payloadBuf []byte, sigBuf *[maxFastSignature]byte) (t compactJWS, ok bool) {
	h64, rest, found := cutDot(token)
	if !found {
		return t, false
	}
	p64, s64, found := cutDot(rest)
	if !found || !isBase64URL(h64) || !isBase64URL(p64) || !isBase64URL(s64) {
		return t, false
	}
	enc := base64.RawURLEncoding.Strict()
	var hbuf [maxFastHeader]byte
	if enc.DecodedLen(len(h64)) > len(hbuf) || enc.DecodedLen(len(s64)) > len(sigBuf) {
		return t, false
	}
	n, err := enc.Decode(hbuf[:], []byte(h64))
	if err != nil {
		return t, false
	}
	alg, kid, typ, ok := parseSimpleHeader(hbuf[:n], algs)
	if !ok {
		return t, false
	}
	if n, err = enc.Decode(sigBuf[:], []byte(s64)); err != nil {
		return t, false
	}
	t.sig = sigBuf[:n]
	if m := enc.DecodedLen(len(p64)); m > len(payloadBuf) {
		payloadBuf = make([]byte, m)
	}
	if n, err = enc.Decode(payloadBuf, []byte(p64)); err != nil {
		return t, false
	}
	t.payload = payloadBuf[:n]
	t.alg, t.kid, t.typ = alg, kid, typ
	t.signingInput = token[:len(h64)+1+len(p64)]
	return t, true
}

// cutDot is strings.Cut(s, ".").
func cutDot(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// isBase64URL reports whether s uses only the base64url alphabet (RFC 4648
// §5), without padding: no '=', no line breaks, no third dot.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseSimpleHeader reads a protected header of the one form the fast
// path takes: {"name":"value",...} without whitespace, names among alg,
// kid and typ, none twice, values of printable ASCII other than '"' and
// '\'. alg is returned as the element of algs it equals, or "" when it
// equals none (then not allowed) — but ok is false when alg is allowed and
// not one the fast path verifies.
func parseSimpleHeader(b []byte, algs []jose.SignatureAlgorithm) (alg, kid, typ string, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return "", "", "", false
	}
	b = b[1 : len(b)-1]
	var seenAlg, seenKid, seenTyp bool
	var algBytes []byte
	for len(b) > 0 {
		name, rest, ok := simpleString(b)
		if !ok || len(rest) == 0 || rest[0] != ':' {
			return "", "", "", false
		}
		value, rest, ok := simpleString(rest[1:])
		if !ok {
			return "", "", "", false
		}
		switch string(name) {
		case "alg":
			if seenAlg {
				return "", "", "", false
			}
			seenAlg, algBytes = true, value
		case "kid":
			if seenKid {
				return "", "", "", false
			}
			seenKid, kid = true, string(value)
		case "typ":
			if seenTyp {
				return "", "", "", false
			}
			seenTyp, typ = true, string(value)
		default:
			return "", "", "", false
		}
		if len(rest) > 0 {
			if rest[0] != ',' || len(rest) == 1 {
				return "", "", "", false
			}
			rest = rest[1:]
		}
		b = rest
	}
	for _, a := range algs {
		if string(algBytes) == string(a) {
			alg = string(a)
			break
		}
	}
	switch alg {
	case "", "ES256", "ES384", "ES512", "EdDSA":
		return alg, kid, typ, true
	}
	return "", "", "", false
}

// simpleString reads a JSON string of printable ASCII without escapes at
// the start of b and returns its contents and what follows it.
func simpleString(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return b[1:i], b[i+1:], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// verifyFastSignature checks sig over input under key with alg, as go-jose
// does for the algorithms the fast path takes (RFC 7518 §3.4, RFC 8037
// §3.1): R || S of the curve's size, and the key's curve must be the
// algorithm's.
func verifyFastSignature(key any, alg, input string, sig []byte) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		var curve elliptic.Curve
		var digest []byte
		switch alg {
		case "ES256":
			curve = elliptic.P256()
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		case "ES384":
			curve = elliptic.P384()
			d := sha512.Sum384([]byte(input))
			digest = d[:]
		case "ES512":
			curve = elliptic.P521()
			d := sha512.Sum512([]byte(input))
			digest = d[:]
		default:
			return false
		}
		size := (curve.Params().BitSize + 7) / 8
		if k.Curve != curve || len(sig) != 2*size {
			return false
		}
		// VerifyASN1 keeps its argument: one small allocation.
		der, ok := derSignature(make([]byte, 0, 9+2*size), sig[:size], sig[size:])
		return ok && ecdsa.VerifyASN1(k, digest, der)
	case ed25519.PublicKey:
		return alg == "EdDSA" && len(k) == ed25519.PublicKeySize && ed25519.Verify(k, []byte(input), sig)
	}
	return false
}

// derSignature appends to dst the ASN.1 DER ECDSA-Sig-Value (RFC 3279
// §2.2.3) of the big-endian integers r and s: what crypto/ecdsa.Verify
// builds from r and s before it verifies. ok is false when either is
// zero, which ecdsa.Verify refuses too.
func derSignature(dst, r, s []byte) ([]byte, bool) {
	r, s = bytes.TrimLeft(r, "\x00"), bytes.TrimLeft(s, "\x00")
	if len(r) == 0 || len(s) == 0 {
		return nil, false
	}
	intLen := func(v []byte) int { return 2 + len(v) + int(v[0]>>7) }
	body := intLen(r) + intLen(s)
	dst = append(dst, 0x30)
	if body >= 0x80 {
		dst = append(dst, 0x81) // body < 256 for every curve here
	}
	dst = append(dst, byte(body))
	for _, v := range [2][]byte{r, s} {
		dst = append(dst, 0x02, byte(len(v)+int(v[0]>>7)))
		if v[0]&0x80 != 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, v...)
	}
	return dst, true
}
