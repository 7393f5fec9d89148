package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
)

// Supported signing algorithms (docs/design.md §7). ES256 is the default.
const (
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
	AlgRS256 = "RS256"
)

// supportedAlgs is the allowlist handed to the JWS parser: a token with any
// other alg (none, HS256, …) is rejected before a key is looked at.
var supportedAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

const (
	defaultMaxTokenTTL = time.Hour
	defaultPrePublish  = 10 * time.Minute
	rsaBits            = 2048
	// typAccessToken is the JWT "typ" of access tokens (RFC 9068 §2.1).
	typAccessToken = "at+jwt"
	// maxTokenLen bounds what Verify parses; our tokens are far smaller.
	maxTokenLen = 16 << 10
)

var (
	// ErrNoSigningKey: no key may sign at this moment (all retired or not yet
	// active). NewKeys prevents this at start; Rotate keeps a signer.
	ErrNoSigningKey = errors.New("token: no active signing key")
	// ErrInvalidToken: Verify rejected the token. The wrapped text says why
	// for logs; it never contains the token.
	ErrInvalidToken = errors.New("token: invalid access token")
)

// Options configure Keys. Store and Keyring are required; zero values of the
// other fields mean the documented defaults.
type Options struct {
	Store   store.SigningKeys
	Keyring *keyring.Keyring
	// Algorithm of newly created keys: "ES256" (default), "EdDSA" or "RS256".
	// Existing keys keep their algorithm; rotate to switch.
	Algorithm string
	Rand      io.Reader        // nil → crypto/rand
	Now       func() time.Time // nil → time.Now
	// MaxTokenTTL is the longest access-token lifetime (default 1h). A key
	// stays in the JWKS this long after it stops signing, and Mint refuses
	// tokens that would outlive it.
	MaxTokenTTL time.Duration
	// PrePublish is how long a rotated-in key is published before it signs
	// (default 10m), so verifiers caching the JWKS learn it first.
	PrePublish time.Duration
	Logger     *slog.Logger // nil → discard
}

// Keys manages the access-token signing keys: it keeps every published key
// decrypted in memory with a ready signer, mints and verifies access tokens
// and serves the JWKS. It is safe for concurrent use; Mint, Verify and JWKS
// take no lock.
type Keys struct {
	store      store.SigningKeys
	keyring    *keyring.Keyring
	alg        string
	rand       io.Reader
	now        func() time.Time
	maxTTL     time.Duration
	prePublish time.Duration
	log        *slog.Logger

	mu    sync.Mutex // serialises Reload and Rotate
	state atomic.Pointer[keyState]
	jwks  atomic.Pointer[jwksCache]
	// verifications counts the tokens Verify judged (SignatureChecks).
	verifications atomic.Uint64
}

// keyState is an immutable snapshot of the loaded keys.
type keyState struct {
	keys  []*keyEntry // by ActivateAt, then CreatedAt, then ID
	byKID map[string]*keyEntry
	// byHeader finds an ES256 key by the encoded protected header Mint
	// writes for it (keyEntry.header), for the fast path of Verify.
	byHeader map[string]*keyEntry
}

type keyEntry struct {
	rec    store.SigningKey
	alg    jose.SignatureAlgorithm
	pub    crypto.PublicKey
	signer jose.Signer
	// idSigner signs ID tokens: the same key, header typ "JWT".
	idSigner jose.Signer
	// priv is the private key, for the rarer token types (MintIDJAG).
	priv crypto.Signer
	// es256 and header serve the ES256 fast path of Mint: the encoded
	// protected header is the same for every token of the key.
	es256  *ecdsa.PrivateKey
	header string
}

// jwksCache is the encoded JWKS of a snapshot, valid for now in [from, until).
type jwksCache struct {
	state       *keyState
	from, until time.Time // zero until: no later change
	doc         []byte
}

// NewKeys loads the signing keys from the store, decrypting each with the
// keyring, and creates a first key, active at once, when none can sign now.
func NewKeys(ctx context.Context, opts Options) (*Keys, error) {
	var problems []error
	if opts.Store == nil {
		problems = append(problems, errors.New("token: Options.Store is required"))
	}
	if opts.Keyring == nil {
		problems = append(problems, errors.New("token: Options.Keyring is required"))
	}
	if opts.Algorithm == "" {
		opts.Algorithm = AlgES256
	}
	if _, ok := algorithm(opts.Algorithm); !ok {
		problems = append(problems, fmt.Errorf("token: unsupported signing algorithm %q (want ES256, EdDSA or RS256)", opts.Algorithm))
	}
	if opts.MaxTokenTTL < 0 {
		problems = append(problems, errors.New("token: Options.MaxTokenTTL must not be negative"))
	}
	if opts.PrePublish < 0 {
		problems = append(problems, errors.New("token: Options.PrePublish must not be negative (rotate with immediate=true instead)"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	k := &Keys{
		store: opts.Store, keyring: opts.Keyring, alg: opts.Algorithm, rand: opts.Rand, now: opts.Now,
		maxTTL: opts.MaxTokenTTL, prePublish: opts.PrePublish, log: opts.Logger,
	}
	if k.rand == nil {
		k.rand = rand.Reader
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.maxTTL == 0 {
		k.maxTTL = defaultMaxTokenTTL
	}
	if k.prePublish == 0 {
		k.prePublish = defaultPrePublish
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(ctx); err != nil {
		return nil, err
	}
	now := storeTime(k.now())
	if cur := k.state.Load().signerAt(now); cur != nil {
		if cur.rec.Algorithm != k.alg {
			k.log.InfoContext(ctx, "signing key algorithm differs from the configured one; rotate keys to switch",
				"kid", cur.rec.ID, "key_alg", cur.rec.Algorithm, "configured_alg", k.alg)
		}
		return k, nil
	}
	rec, err := k.createKeyLocked(ctx, now, now)
	if err != nil {
		return nil, err
	}
	k.log.InfoContext(ctx, "created first signing key", "kid", rec.ID, "alg", rec.Algorithm)
	if err := k.reloadLocked(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

func algorithm(name string) (jose.SignatureAlgorithm, bool) {
	switch name {
	case AlgES256:
		return jose.ES256, true
	case AlgEdDSA:
		return jose.EdDSA, true
	case AlgRS256:
		return jose.RS256, true
	}
	return "", false
}

// storeTime drops the monotonic reading and sub-microsecond digits, which
// the databases do not keep (PostgreSQL even rounds them up): a key stored as
// active "now" must read back as active now, not half a microsecond later.
func storeTime(t time.Time) time.Time { return t.Round(0).Truncate(time.Microsecond) }

// PrivateKeyAAD is the AAD a signing key's private half is sealed with
// (keyring.Seal): it binds the ciphertext to the key's row, so a KEK
// rotation (vault.Rewrap) re-wraps it with the same AAD.
func PrivateKeyAAD(kid string) string { return "signing_keys|" + kid + "|private" }

// Reload re-reads the keys from the store, so a rotation made by another
// replica takes effect here. Keys already loaded are not decrypted again;
// when nothing changed the snapshot is kept as is.
func (k *Keys) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(ctx)
}

func (k *Keys) reloadLocked(ctx context.Context) error {
	recs, err := k.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: listing signing keys: %w", err)
	}
	now := k.now()
	recs = slices.DeleteFunc(recs, func(r *store.SigningKey) bool { return !published(r, now) })
	cur := k.state.Load()
	if cur != nil && cur.sameAs(recs) {
		return nil
	}
	next := &keyState{byKID: make(map[string]*keyEntry, len(recs)), byHeader: make(map[string]*keyEntry)}
	for _, r := range recs {
		if _, dup := next.byKID[r.ID]; dup {
			return fmt.Errorf("token: duplicate signing key id %q in store", r.ID)
		}
		var e *keyEntry
		if cur != nil {
			if old := cur.byKID[r.ID]; old != nil && old.rec.PublicJWK == r.PublicJWK && bytes.Equal(old.rec.PrivateEnc, r.PrivateEnc) {
				// The whole entry: its ID-token signer, private key and
				// ES256 fast path too, with the row's new lifecycle times.
				kept := *old
				kept.rec = *r
				e = &kept
			}
		}
		if e == nil {
			if e, err = k.loadKey(r); err != nil {
				return err
			}
		}
		next.keys = append(next.keys, e)
		next.byKID[r.ID] = e
		if e.header != "" {
			next.byHeader[e.header] = e
		}
	}
	slices.SortStableFunc(next.keys, func(a, b *keyEntry) int {
		if c := a.rec.ActivateAt.Compare(b.rec.ActivateAt); c != 0 {
			return c
		}
		if c := a.rec.CreatedAt.Compare(b.rec.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.rec.ID, b.rec.ID)
	})
	k.state.Store(next)
	return nil
}

// sameAs reports whether recs describe exactly the keys of s with the same
// lifecycle times.
func (s *keyState) sameAs(recs []*store.SigningKey) bool {
	if len(recs) != len(s.keys) {
		return false
	}
	for _, r := range recs {
		e := s.byKID[r.ID]
		if e == nil || !e.rec.ActivateAt.Equal(r.ActivateAt) || !e.rec.RetiredAt.Equal(r.RetiredAt) ||
			!e.rec.ExpiresAt.Equal(r.ExpiresAt) || !e.rec.CreatedAt.Equal(r.CreatedAt) ||
			e.rec.PublicJWK != r.PublicJWK || !bytes.Equal(e.rec.PrivateEnc, r.PrivateEnc) {
			return false
		}
	}
	return true
}

// published: a key is in the JWKS from creation until ExpiresAt.
func published(r *store.SigningKey, now time.Time) bool {
	return r.ExpiresAt.IsZero() || now.Before(r.ExpiresAt)
}

// signing: a key signs from ActivateAt until RetiredAt.
func signing(r *store.SigningKey, now time.Time) bool {
	return !now.Before(r.ActivateAt) && (r.RetiredAt.IsZero() || now.Before(r.RetiredAt))
}

// signerAt is the newest key that may sign at now.
func (s *keyState) signerAt(now time.Time) *keyEntry {
	if s == nil {
		return nil
	}
	for i := len(s.keys) - 1; i >= 0; i-- {
		if e := s.keys[i]; signing(&e.rec, now) {
			return e
		}
	}
	return nil
}

// loadKey parses the public JWK, decrypts the private key and checks that
// the two belong together, so a tampered public_jwk column cannot publish a
// key the hub does not hold.
func (k *Keys) loadKey(r *store.SigningKey) (*keyEntry, error) {
	alg, ok := algorithm(r.Algorithm)
	if !ok {
		return nil, fmt.Errorf("token: signing key %q has unsupported algorithm %q", r.ID, r.Algorithm)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(r.PublicJWK)); err != nil {
		return nil, fmt.Errorf("token: signing key %q: public JWK: %w", r.ID, err)
	}
	if jwk.KeyID != r.ID || jwk.Algorithm != r.Algorithm || !jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("token: signing key %q: public JWK does not match the key row", r.ID)
	}
	der, err := k.keyring.Open(r.PrivateEnc, PrivateKeyAAD(r.ID))
	if err != nil {
		return nil, fmt.Errorf("token: signing key %q: %w", r.ID, err)
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("token: signing key %q: private key does not parse", r.ID)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok || !matchesAlg(priv, r.Algorithm) {
		return nil, fmt.Errorf("token: signing key %q: private key type does not match %s", r.ID, r.Algorithm)
	}
	eq, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(jwk.Key) {
		return nil, fmt.Errorf("token: signing key %q: public JWK does not match the private key", r.ID)
	}
	return newEntry(r, alg, priv)
}

func matchesAlg(priv crypto.Signer, alg string) bool {
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		return alg == AlgES256 && p.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		return alg == AlgEdDSA
	case *rsa.PrivateKey:
		return alg == AlgRS256 && p.N.BitLen() >= rsaBits
	}
	return false
}

func newEntry(r *store.SigningKey, alg jose.SignatureAlgorithm, priv crypto.Signer) (*keyEntry, error) {
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: r.ID}},
		(&jose.SignerOptions{}).WithType(typAccessToken), // RFC 9068 §2.1
	)
	if err != nil {
		return nil, fmt.Errorf("token: signing key %q: %w", r.ID, err)
	}
	idSigner, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: r.ID}},
		(&jose.SignerOptions{}).WithType(typIDToken),
	)
	if err != nil {
		return nil, fmt.Errorf("token: signing key %q: %w", r.ID, err)
	}
	e := &keyEntry{rec: *r, alg: alg, pub: priv.Public(), signer: signer, idSigner: idSigner, priv: priv}
	if k, ok := priv.(*ecdsa.PrivateKey); ok && alg == jose.ES256 && k.Curve == elliptic.P256() {
		h, err := json.Marshal(struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
			Typ string `json:"typ"`
		}{string(alg), r.ID, typAccessToken})
		if err != nil {
			return nil, err
		}
		e.es256, e.header = k, base64.RawURLEncoding.EncodeToString(h)
	}
	return e, nil
}

// signES256 makes the compact JWS of payload (RFC 7515 §7.1) with an ES256
// key: the signature is R || S, each 32 bytes big-endian (RFC 7518 §3.4).
// It is what the general signer produces, without its per-token header
// encoding and allocations, on the hub's hottest path.
//
// The nonce is RFC 6979's: derived from the key and the digest with
// HMAC-SHA-256, so signing reads no randomness and a bad random source
// cannot leak the key. Every token's payload differs (its jti), so no two
// tokens share a nonce. The result is an ordinary ECDSA signature; it
// verifies as any other ES256 signature does. The hedged default
// (ecdsa.SignASN1: HMAC-SHA-512 over the key, the digest and fresh random
// bytes) costs about a quarter more per token (BenchmarkSignatureFloor).
func (e *keyEntry) signES256(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	n := len(e.header) + 1 + enc.EncodedLen(len(payload))
	buf := make([]byte, n, n+1+enc.EncodedLen(64))
	copy(buf, e.header)
	buf[len(e.header)] = '.'
	enc.Encode(buf[len(e.header)+1:], payload)
	digest := sha256.Sum256(buf)
	der, err := e.es256.Sign(nil, digest[:], crypto.SHA256) // nil: RFC 6979
	if err != nil {
		return "", err
	}
	var sig [64]byte
	if err := rawP256Signature(der, &sig); err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig[:])
	// buf was sized for the whole token above and is never written again:
	// the string can be its bytes, without a copy (as strings.Builder does).
	return unsafe.String(unsafe.SliceData(buf), len(buf)), nil
}

// rawP256Signature turns the ASN.1 DER ECDSA-Sig-Value that
// ecdsa.SignASN1 returns (SEQUENCE { r INTEGER, s INTEGER }, RFC 3279
// §2.2.3) into JWS's R || S (RFC 7518 §3.4), each left-padded to 32
// bytes: what ecdsa.Sign would give as two big.Ints, without them.
func rawP256Signature(der []byte, sig *[64]byte) error {
	var seq cryptobyte.String
	in := cryptobyte.String(der)
	var r, s []byte
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() ||
		len(r) > 32 || len(s) > 32 {
		return errors.New("token: malformed ECDSA signature from crypto/ecdsa")
	}
	clear(sig[:])
	copy(sig[32-len(r):32], r)
	copy(sig[64-len(s):], s)
	return nil
}

func generateKey(alg string, r io.Reader) (crypto.Signer, error) {
	switch alg {
	case AlgES256:
		return ecdsa.GenerateKey(elliptic.P256(), r)
	case AlgEdDSA:
		_, priv, err := ed25519.GenerateKey(r)
		return priv, err
	case AlgRS256:
		return rsa.GenerateKey(r, rsaBits)
	}
	return nil, fmt.Errorf("token: unsupported signing algorithm %q", alg)
}

// createKeyLocked generates a key of the configured algorithm, seals its
// private half and stores it.
func (k *Keys) createKeyLocked(ctx context.Context, now, activate time.Time) (*store.SigningKey, error) {
	priv, err := generateKey(k.alg, k.rand)
	if err != nil {
		return nil, fmt.Errorf("token: generating signing key: %w", err)
	}
	kid := NewID(k.rand)
	pub, err := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: k.alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("token: encoding public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("token: encoding private key: %w", err)
	}
	enc, err := k.keyring.Seal(k.rand, der, PrivateKeyAAD(kid))
	clear(der)
	if err != nil {
		return nil, err
	}
	rec := &store.SigningKey{
		ID: kid, Algorithm: k.alg, PublicJWK: string(pub), PrivateEnc: enc,
		ActivateAt: activate, CreatedAt: now,
	}
	if err := k.store.CreateSigningKey(ctx, rec); err != nil {
		return nil, fmt.Errorf("token: storing signing key: %w", err)
	}
	return rec, nil
}

// Rotate creates the next signing key. It is published in the JWKS at once
// and signs from now+PrePublish (from now if immediate). Every key that
// would still sign after that moment is retired at it and leaves the JWKS
// MaxTokenTTL later, when the last token it signed has expired. Keys past
// their ExpiresAt are deleted from the store.
func (k *Keys) Rotate(ctx context.Context, immediate bool) (*store.SigningKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	// Start from the store's view: another replica may have rotated.
	if err := k.reloadLocked(ctx); err != nil {
		return nil, err
	}
	now := storeTime(k.now())
	activate := now
	if !immediate {
		activate = now.Add(k.prePublish)
	}
	rec, err := k.createKeyLocked(ctx, now, activate)
	if err != nil {
		return nil, err
	}
	for _, e := range k.state.Load().keys {
		if e.rec.RetiredAt.IsZero() || e.rec.RetiredAt.After(activate) {
			upd := e.rec
			upd.RetiredAt = activate
			upd.ExpiresAt = activate.Add(k.maxTTL)
			if err := k.store.UpdateSigningKey(ctx, &upd); err != nil {
				// The new key is stored; a retry of Rotate would add yet
				// another one, which is harmless.
				return nil, fmt.Errorf("token: retiring signing key %q: %w", e.rec.ID, err)
			}
		}
	}
	if err := k.store.DeleteExpiredSigningKeys(ctx, now); err != nil {
		k.log.WarnContext(ctx, "deleting expired signing keys", "err", err)
	}
	k.log.InfoContext(ctx, "rotated signing key", "kid", rec.ID, "alg", rec.Algorithm, "activate_at", activate)
	if err := k.reloadLocked(ctx); err != nil {
		return nil, err
	}
	out := *rec
	return &out, nil
}

// List returns the published keys, oldest activation first.
func (k *Keys) List() []*store.SigningKey {
	s := k.state.Load()
	now := k.now()
	out := make([]*store.SigningKey, 0, len(s.keys))
	for _, e := range s.keys {
		if published(&e.rec, now) {
			r := e.rec
			out = append(out, &r)
		}
	}
	return out
}

// JWKS returns the JSON Web Key Set (RFC 7517 §5) of the published public
// keys. The document is cached and re-encoded only when the set changes;
// callers must not modify it.
func (k *Keys) JWKS() []byte {
	s := k.state.Load()
	now := k.now()
	if c := k.jwks.Load(); c != nil && c.state == s && !now.Before(c.from) && (c.until.IsZero() || now.Before(c.until)) {
		return c.doc
	}
	c := &jwksCache{state: s}
	var buf bytes.Buffer
	buf.WriteString(`{"keys":[`)
	n := 0
	for _, e := range s.keys {
		exp := e.rec.ExpiresAt
		if !published(&e.rec, now) {
			if exp.After(c.from) {
				c.from = exp
			}
			continue
		}
		if !exp.IsZero() && (c.until.IsZero() || exp.Before(c.until)) {
			c.until = exp
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		buf.WriteString(e.rec.PublicJWK)
	}
	buf.WriteString(`]}`)
	c.doc = buf.Bytes()
	k.jwks.Store(c)
	return c.doc
}

// CanSign reports whether a loaded key may sign at this moment: false
// when every key retired or none is active yet (readiness).
func (k *Keys) CanSign() bool { return k.state.Load().signerAt(k.now()) != nil }

// Mint signs c as an RFC 9068 JWT access token with the current signing key
// (header typ "at+jwt", alg and kid of the key). The claims RFC 9068 §2.2
// requires must be set, and exp must not lie more than MaxTokenTTL ahead.
func (k *Keys) Mint(c *AccessClaims) (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	now := k.now()
	// A key leaves the JWKS MaxTokenTTL after it retires; a longer-lived
	// token would outlive its key. One second of slack covers rounding.
	if c.Expiry > now.Unix()+int64(k.maxTTL/time.Second)+1 {
		return "", fmt.Errorf("token: access token lifetime exceeds the maximum of %s", k.maxTTL)
	}
	e := k.state.Load().signerAt(now)
	if e == nil {
		return "", ErrNoSigningKey
	}
	payload, err := c.payload()
	if err != nil {
		return "", fmt.Errorf("token: encoding claims: %w", err)
	}
	if e.es256 != nil {
		tok, err := e.signES256(payload)
		if err != nil {
			return "", fmt.Errorf("token: signing: %w", err)
		}
		return tok, nil
	}
	jws, err := e.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	return jws.CompactSerialize()
}

// Verify checks an access token issued by this hub: compact JWS, alg on the
// allowlist and equal to the key's, kid of a published key, a valid
// signature, typ "at+jwt" (RFC 9068 §4) and iss equal to issuer. It does not
// check exp or aud: introspection reports an expired token inactive,
// revocation accepts it. Every failure wraps ErrInvalidToken.
func (k *Keys) Verify(raw, issuer string) (*AccessClaims, error) {
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	k.verifications.Add(1)
	if c, ok, err := k.state.Load().verifyES256(raw, issuer, k.now()); ok {
		return c, err
	}
	return k.verifyJWS(raw, issuer)
}

// SignatureChecks is how many tokens Verify has judged (each by its
// signature, unless it was refused before one was looked at), whether
// called directly or by VerifyRecorded. VerifyRecorded's own acceptances
// are not counted.
func (k *Keys) SignatureChecks() uint64 { return k.verifications.Load() }

// VerifyRecorded is Verify for an access token whose SHA-256 the hub may
// have recorded when it minted it (store.AccessToken.Digest). recorded is
// called with the jti of the still unauthenticated payload and returns the
// digest recorded for that jti, or nil (no record, none recorded, the
// record could not be read). When the SHA-256 of raw equals it (compared
// in constant time), raw is byte for byte a token this hub signed, so its
// signature is not checked again; everything else Verify checks still is:
// the header names a key still published (a token of a key removed from
// the key set is refused as by Verify, whatever its record says), with its
// alg and typ at+jwt, and the claims decode and name issuer. Any other
// token, a mismatch included, is judged by Verify, so the answer is
// Verify's in every case: nothing of an unauthenticated payload but its
// jti, as a lookup key, is used.
//
// recorded must not act on the jti beyond reading the record: it is not
// yet known who wrote the token.
func (k *Keys) VerifyRecorded(raw, issuer string, recorded func(jti string) []byte) (*AccessClaims, error) {
	if len(raw) > maxTokenLen {
		return k.Verify(raw, issuer)
	}
	header, rest, ok := strings.Cut(raw, ".")
	if !ok || !k.state.Load().mintedBy(header, k.now()) {
		return k.Verify(raw, issuer)
	}
	payload64, _, ok := strings.Cut(rest, ".")
	if !ok {
		return k.Verify(raw, issuer)
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(payload64)
	if err != nil {
		return k.Verify(raw, issuer)
	}
	c, err := decodeClaims(payload)
	if err != nil || c.JTI == "" {
		return k.Verify(raw, issuer)
	}
	want := recorded(c.JTI)
	if len(want) != sha256.Size || !EqualHash(Hash(raw), want) {
		return k.Verify(raw, issuer)
	}
	if c.Issuer != issuer {
		return nil, fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	}
	return c, nil
}

// MintedHeader reports whether raw's protected header is one Mint writes
// for a key of the key set published now (its alg, typ at+jwt): the check
// VerifyRecorded makes, per token, before a record may vouch for it. It
// says nothing about the rest of raw.
func (k *Keys) MintedHeader(raw string) bool {
	if len(raw) > maxTokenLen {
		return false
	}
	header, _, ok := strings.Cut(raw, ".")
	return ok && k.state.Load().mintedBy(header, k.now())
}

// mintedBy reports whether header64, an encoded protected header, names a
// key of s published at now with its algorithm and typ at+jwt, as every
// header Mint writes does; the header of any token Verify accepts does too.
func (s *keyState) mintedBy(header64 string, now time.Time) bool {
	e := s.byHeader[header64]
	if e == nil {
		b, err := base64.RawURLEncoding.Strict().DecodeString(header64)
		if err != nil {
			return false
		}
		var h struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
			Typ string `json:"typ"`
		}
		if json.Unmarshal(b, &h) != nil {
			return false
		}
		if e = s.byKID[h.Kid]; e == nil || h.Alg != string(e.alg) ||
			!strings.EqualFold(h.Typ, typAccessToken) && !strings.EqualFold(h.Typ, "application/"+typAccessToken) {
			return false
		}
	}
	return published(&e.rec, now)
}

// verifyJWS is Verify for any token: a general JWS parse.
func (k *Keys) verifyJWS(raw, issuer string) (*AccessClaims, error) {
	jws, err := jose.ParseSignedCompact(raw, supportedAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want exactly one signature", ErrInvalidToken)
	}
	h := jws.Signatures[0].Protected
	e := k.state.Load().byKID[h.KeyID]
	if e == nil || !published(&e.rec, k.now()) {
		return nil, fmt.Errorf("%w: unknown kid", ErrInvalidToken)
	}
	if h.Algorithm != string(e.alg) {
		return nil, fmt.Errorf("%w: alg %q does not match the key", ErrInvalidToken, h.Algorithm)
	}
	// RFC 9068 §4: typ must be at+jwt or application/at+jwt; media type
	// names compare case-insensitively (RFC 7515 §4.1.9).
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, typAccessToken) && !strings.EqualFold(typ, "application/"+typAccessToken) {
		return nil, fmt.Errorf("%w: typ is not at+jwt", ErrInvalidToken)
	}
	payload, err := jws.Verify(e.pub)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalidToken, err)
	}
	return verifiedClaims(payload, issuer)
}

// verifiedClaims decodes the payload of a verified access token and checks
// its issuer.
func verifiedClaims(payload []byte, issuer string) (*AccessClaims, error) {
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	if c.Issuer != issuer {
		return nil, fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	}
	return c, nil
}

// verifyES256 is Verify for the tokens signES256 writes, the hub's own,
// without a general JWS parse. It applies only when the protected header
// is, byte for byte, the one Mint writes for one of the loaded ES256 keys:
// alg, kid and typ are then that key's, and no other header parameter
// (crit, b64, jwk, …) is present. What remains is what Verify checks
// after the header: the key still published, the signature (R || S, RFC
// 7518 §3.4) and the claims. ok is false for any other token (another
// algorithm or header, a non-canonical encoding), which the general path
// then judges.
func (s *keyState) verifyES256(raw, issuer string, now time.Time) (c *AccessClaims, ok bool, err error) {
	header, rest, found := strings.Cut(raw, ".")
	e := s.byHeader[header]
	if !found || e == nil {
		return nil, false, nil
	}
	payload64, sig64, found := strings.Cut(rest, ".")
	enc := base64.RawURLEncoding.Strict()
	if !found || len(sig64) != enc.EncodedLen(64) {
		return nil, false, nil
	}
	var sig [64]byte
	if n, err := enc.Decode(sig[:], []byte(sig64)); err != nil || n != len(sig) {
		return nil, false, nil
	}
	payload, err := enc.DecodeString(payload64)
	if err != nil {
		return nil, false, nil
	}
	if !published(&e.rec, now) {
		return nil, true, fmt.Errorf("%w: unknown kid", ErrInvalidToken)
	}
	pub, isEC := e.pub.(*ecdsa.PublicKey)
	if !isEC {
		return nil, false, nil
	}
	digest := sha256.Sum256([]byte(raw[:len(header)+1+len(payload64)]))
	r, sv := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, sv) {
		return nil, true, fmt.Errorf("%w: signature: invalid", ErrInvalidToken)
	}
	c, err = verifiedClaims(payload, issuer)
	return c, true, err
}
