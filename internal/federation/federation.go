// Package federation verifies JWTs from the trusted issuers an admin
// registered (store.Issuer): identity assertion grants (ID-JAG) from an
// enterprise identity provider, workload identity tokens from a platform
// (Kubernetes, SPIFFE, a CI provider), RFC 7523 assertions and subject
// tokens to exchange. It owns the checks every such JWT passes (issuer
// known and enabled, signature under the issuer's keys and algorithms,
// audience, lifetime, single use) and the mapping of a workload's claims to
// an agent identity; what a verified JWT may obtain is the server's
// pipeline's and the policy's business.
package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

const (
	// MaxSize bounds the work spent on a hostile JWT (bytes of its compact
	// serialization).
	MaxSize = 16 << 10
	// Leeway tolerates clock skew between the issuer and the hub.
	Leeway = 30 * time.Second
	// DefaultMaxLifetime bounds exp - iat when the issuer sets no
	// MaxLifetime.
	DefaultMaxLifetime = time.Hour
	// TypeIDJAG is the typ header of an identity assertion authorization
	// grant (draft-ietf-oauth-identity-assertion-authz-grant §3).
	TypeIDJAG = "oauth-id-jag+jwt"
	// issuersTTL is how long a registry that follows no change feed
	// trusts its copy of the issuers: a disabled or deleted issuer stops
	// being trusted on every replica within it.
	issuersTTL = 2 * time.Second
	// maxCandidateKeys bounds the keys tried for a JWT without a kid.
	maxCandidateKeys = 16
	// maxJTI bounds the jti recorded in the store.
	maxJTI = 256
)

// asymmetric are the only JWS algorithms ever accepted: never "none", and
// never an HMAC, which would let anyone holding the issuer's public key
// (used as an HMAC secret) sign as the issuer.
var asymmetric = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Asymmetric reports whether alg is a JWS algorithm an issuer may be
// configured with (asymmetric signatures only).
func Asymmetric(alg string) bool {
	return slices.Contains(asymmetric, jose.SignatureAlgorithm(alg))
}

// DefaultAlgorithms are accepted from an issuer that names none.
var DefaultAlgorithms = []string{"ES256", "RS256"}

// explicitTypes are typ values of JWTs made for another purpose: a JWT
// carrying one is refused unless the caller asks for exactly that type
// (RFC 8725 §3.11, explicit typing against cross-JWT confusion).
var explicitTypes = []string{
	TypeIDJAG, "dpop+jwt", "secevent+jwt", "logout+jwt", "token-introspection+jwt",
	"oauth-authz-req+jwt", "entity-statement+jwt", "txntoken+jwt",
}

// KeySource fetches a remote JSON Web Key Set (fetch.KeySets): cached,
// refreshed on an unknown kid at a bounded rate.
type KeySource interface {
	Get(ctx context.Context, uri, kid string) (*jose.JSONWebKeySet, error)
}

// Store is what the registry reads and writes: the issuers, and the
// single-use record of every assertion's jti.
type Store interface {
	ListIssuers(ctx context.Context, tenantID string) ([]*store.Issuer, error)
	UseJTI(ctx context.Context, key, jti string, exp, now time.Time) error
}

// Registry verifies JWTs against a tenant's trusted issuers, re-reading
// them from the store at most every couple of seconds, so a disabled
// issuer stops being trusted on every replica within that time.
type Registry struct {
	st     Store
	tenant string
	keys   KeySource
	now    func() time.Time

	mu sync.Mutex
	// list is the tenant's issuers as last read, at at; never modified.
	list   []*store.Issuer
	at     time.Time
	loaded bool
	// gen counts invalidations: a read an invalidation overtook is not
	// kept.
	gen uint64
	// fresh, when set (FollowChanges), replaces issuersTTL.
	fresh func() bool
	// static caches each issuer's parsed static JWKS, by issuer ID; an
	// entry is replaced when the text changes.
	static map[string]staticKeys
}

type staticKeys struct {
	src string
	set *jose.JSONWebKeySet
}

// NewRegistry returns the registry of tenant's issuers. keys may be nil
// when no issuer uses a jwks_uri; now nil is time.Now.
func NewRegistry(st Store, tenant string, keys KeySource, now func() time.Time) *Registry {
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	if now == nil {
		now = time.Now
	}
	return &Registry{st: st, tenant: tenant, keys: keys, now: now, static: make(map[string]staticKeys)}
}

// Expect is what a caller requires of a JWT besides the issuer's own
// rules.
type Expect struct {
	// Use is the store.IssuerUse… the JWT is presented for; an issuer
	// without it is not trusted for this JWT.
	Use string
	// Audiences are the aud values this use accepts when the issuer names
	// none of its own (Issuer.Audiences); aud must be exactly one value.
	Audiences []string
	// Type is the required typ header ("" accepts a JWT without typ or
	// with a generic one — JWT, at+jwt, … — but never one made for another
	// purpose, such as "oauth-id-jag+jwt", which is only ever accepted
	// when asked for).
	Type string
	// SingleUse records the jti (store.UseJTI, namespaced by issuer) so
	// that a second presentation fails.
	SingleUse bool
}

// Assertion is a verified JWT.
type Assertion struct {
	// Issuer is the trusted issuer that signed it (shared: never modify).
	Issuer *store.Issuer
	// Type is the typ header.
	Type                        string
	Subject, JTI                string
	Audience                    string
	IssuedAt, NotBefore, Expiry time.Time
	// Claims are all its claims (numbers as json.Number).
	Claims map[string]any
}

// String returns the claim name as a string, "" when absent or not a
// string.
func (a *Assertion) String(name string) string {
	s, _ := a.Claims[name].(string)
	return s
}

// Has reports whether the claim name is present (with any value).
func (a *Assertion) Has(name string) bool {
	_, ok := a.Claims[name]
	return ok
}

func invalid(format string, args ...any) error {
	return oauth.ErrInvalidGrant(format, args...)
}

// Peek returns the unverified iss claim and typ header of raw, for a
// caller that must choose how to verify it (which use, which audience).
// Nothing it returns is trusted; a raw value that is not a compact JWS
// signed with an asymmetric algorithm is invalid_grant.
func Peek(raw string) (iss, typ string, err error) {
	jws, hdr, err := parse(raw)
	if err != nil {
		return "", "", err
	}
	claims, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return "", "", err
	}
	iss, _ = claims["iss"].(string)
	return iss, headerType(hdr), nil
}

// parse checks size and shape: a compact JWS with exactly one signature
// under an asymmetric algorithm.
func parse(raw string) (*jose.JSONWebSignature, *jose.Header, error) {
	if raw == "" || len(raw) > MaxSize {
		return nil, nil, invalid("the assertion is missing or larger than %d bytes", MaxSize)
	}
	jws, err := jose.ParseSignedCompact(raw, asymmetric)
	if err != nil {
		return nil, nil, oauth.ErrInvalidGrant("the assertion is not a compact JWS signed with an asymmetric algorithm").WithCause(err)
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, invalid("the assertion must carry exactly one signature")
	}
	return jws, &jws.Signatures[0].Protected, nil
}

// decodeClaims decodes a JWT claims set: one JSON object, numbers kept as
// json.Number.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, invalid("the assertion's claims are not a JSON object")
	}
	// Only white space may follow the object (RFC 8259 §2); dec.More
	// would report nothing more before a closing ']' or '}'.
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("the assertion's claims are not a JSON object")
	}
	return claims, nil
}

// headerType is the typ header, "" when absent or not a string.
func headerType(h *jose.Header) string {
	t, _ := h.ExtraHeaders[jose.HeaderType].(string)
	return t
}

// SameType reports whether typ headers a and b name the same type.
func SameType(a, b string) bool { return normalType(a) == normalType(b) }

// Consume records the assertion's jti as used (what Expect.SingleUse
// does), for a caller that checks more before spending it; a second
// presentation is invalid_grant.
func (r *Registry) Consume(ctx context.Context, a *Assertion) error {
	err := r.st.UseJTI(ctx, "jwt:"+a.Issuer.Issuer, a.JTI, a.Expiry.Add(Leeway), r.now())
	if errors.Is(err, store.ErrConflict) {
		return invalid("the assertion was already used")
	}
	return err
}

// normalType compares media types as RFC 7515 §4.1.9 says: case-
// insensitively, "application/" omitted.
func normalType(t string) string {
	t = strings.ToLower(t)
	return strings.TrimPrefix(t, "application/")
}

// Lookup returns the issuer whose iss value is iss, or nil when the
// tenant has none (disabled issuers included: the caller checks).
func (r *Registry) Lookup(ctx context.Context, iss string) (*store.Issuer, error) {
	list, err := r.issuers(ctx)
	if err != nil {
		return nil, err
	}
	for _, is := range list {
		if is.Issuer == iss {
			return is, nil
		}
	}
	return nil, nil
}

// Invalidate drops the registry's copy of the issuers, after a change made
// through this process or reported by the change feed.
func (r *Registry) Invalidate() {
	r.mu.Lock()
	r.loaded = false
	r.gen++
	r.mu.Unlock()
}

// FollowChanges makes the registry keep its copy of the issuers until
// Invalidate, served while fresh reports true (changefeed.Feed.Fresh),
// instead of for issuersTTL. Call it before the registry is used; the
// caller invalidates the copy when the change feed reports an issuer
// changed (store.ChangeIssuer).
func (r *Registry) FollowChanges(fresh func() bool) {
	r.mu.Lock()
	r.fresh = fresh
	r.mu.Unlock()
}

// issuers returns the tenant's issuers: the copy while it is current (the
// change feed fresh, or younger than issuersTTL), else read again.
func (r *Registry) issuers(ctx context.Context) ([]*store.Issuer, error) {
	now := r.now()
	r.mu.Lock()
	if r.loaded && r.currentLocked(now) {
		list := r.list
		r.mu.Unlock()
		return list, nil
	}
	gen := r.gen
	r.mu.Unlock()
	list, err := r.st.ListIssuers(ctx, r.tenant)
	if err != nil {
		return nil, fmt.Errorf("federation: issuers: %w", err)
	}
	r.mu.Lock()
	if r.gen == gen {
		r.list, r.at, r.loaded = list, now, true
	}
	r.mu.Unlock()
	return list, nil
}

func (r *Registry) currentLocked(now time.Time) bool {
	if r.fresh != nil {
		return r.fresh()
	}
	return now.Sub(r.at) < issuersTTL && !now.Before(r.at)
}

// Verify checks raw against the issuer its iss names and against e; every
// failure is an invalid_grant whose description never contains the token.
// Store failures are returned as they are.
func (r *Registry) Verify(ctx context.Context, raw string, e Expect) (*Assertion, error) {
	jws, hdr, err := parse(raw)
	if err != nil {
		return nil, err
	}
	unverified, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil, err
	}
	iss, _ := unverified["iss"].(string)
	if iss == "" {
		return nil, invalid("the assertion has no iss")
	}
	is, err := r.Lookup(ctx, iss)
	if err != nil {
		return nil, err
	}
	if is == nil {
		return nil, invalid("the assertion's issuer is not trusted")
	}
	if is.Disabled {
		return nil, invalid("the assertion's issuer is disabled")
	}
	if e.Use == "" || !slices.Contains(is.Uses, e.Use) {
		return nil, invalid("the assertion's issuer is not trusted for this use")
	}
	algs := is.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	if !slices.Contains(algs, hdr.Algorithm) || !Asymmetric(hdr.Algorithm) {
		return nil, invalid("the assertion's signing algorithm is not accepted from its issuer")
	}
	typ := headerType(hdr)
	if e.Type != "" {
		if normalType(typ) != normalType(e.Type) {
			return nil, invalid("the assertion's typ must be %s", e.Type)
		}
	} else if slices.Contains(explicitTypes, normalType(typ)) {
		return nil, invalid("the assertion's typ %s is not accepted here", truncate(typ, 40))
	}
	payload, err := r.verifySignature(ctx, jws, hdr, is)
	if err != nil {
		return nil, err
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	a, err := r.checkClaims(claims, is, e)
	if err != nil {
		return nil, err
	}
	a.Type = typ
	if e.SingleUse {
		if err := r.Consume(ctx, a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// verifySignature verifies jws with the issuer's keys and returns the
// payload: the key the kid names, or without a kid at most the first
// maxCandidateKeys keys; a key restricted to another use or algorithm never
// verifies it.
func (r *Registry) verifySignature(ctx context.Context, jws *jose.JSONWebSignature, hdr *jose.Header, is *store.Issuer) ([]byte, error) {
	set, err := r.keySet(ctx, is, hdr.KeyID)
	if err != nil {
		return nil, oauth.ErrInvalidGrant("the keys of the assertion's issuer are not available").WithCause(err)
	}
	candidates := set.Keys
	if hdr.KeyID != "" {
		candidates = set.Key(hdr.KeyID)
		if len(candidates) == 0 {
			return nil, invalid("no key of the assertion's issuer matches its kid")
		}
	}
	candidates = candidates[:min(len(candidates), maxCandidateKeys)]
	for i := range candidates {
		k := candidates[i].Public()
		if !k.Valid() || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != hdr.Algorithm) {
			continue
		}
		if payload, err := jws.Verify(k.Key); err == nil {
			return payload, nil
		}
	}
	return nil, invalid("the assertion's signature does not verify with its issuer's keys")
}

// keySet returns the issuer's keys: its static JWKS (parsed once per
// text), or the set at its jwks_uri through the key source.
func (r *Registry) keySet(ctx context.Context, is *store.Issuer, kid string) (*jose.JSONWebKeySet, error) {
	if is.JWKS == "" {
		if is.JWKSURI == "" || r.keys == nil {
			return nil, errors.New("the issuer has no keys")
		}
		return r.keys.Get(ctx, is.JWKSURI, kid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.static[is.ID]; ok && e.src == is.JWKS {
		return e.set, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(is.JWKS), &set); err != nil {
		return nil, fmt.Errorf("the issuer's static JWKS does not parse: %w", err)
	}
	if len(r.static) > 1000 {
		clear(r.static)
	}
	r.static[is.ID] = staticKeys{src: is.JWKS, set: &set}
	return &set, nil
}

// checkClaims checks the verified claims against the issuer and e.
func (r *Registry) checkClaims(claims map[string]any, is *store.Issuer, e Expect) (*Assertion, error) {
	now := r.now()
	a := &Assertion{Issuer: is, Claims: claims}
	if iss, _ := claims["iss"].(string); iss != is.Issuer {
		return nil, invalid("the assertion's iss does not match its issuer")
	}
	a.Subject, _ = claims["sub"].(string)
	if a.Subject == "" {
		return nil, invalid("the assertion has no sub")
	}
	aud, ok := singleAudience(claims["aud"])
	if !ok {
		return nil, invalid("the assertion's aud must be a single value naming this authorization server")
	}
	accepted := is.Audiences
	if len(accepted) == 0 {
		accepted = e.Audiences
	}
	if !slices.Contains(accepted, aud) {
		return nil, invalid("the assertion's aud does not name this authorization server")
	}
	a.Audience = aud
	var err error
	if a.Expiry, ok, err = numericDate(claims, "exp"); err != nil {
		return nil, err
	} else if !ok {
		return nil, invalid("the assertion has no exp")
	}
	if !now.Before(a.Expiry.Add(Leeway)) {
		return nil, invalid("the assertion has expired")
	}
	if a.IssuedAt, ok, err = numericDate(claims, "iat"); err != nil {
		return nil, err
	} else if !ok {
		return nil, invalid("the assertion has no iat")
	}
	if a.IssuedAt.After(now.Add(Leeway)) {
		return nil, invalid("the assertion's iat is in the future")
	}
	maxLife := is.MaxLifetime
	if maxLife <= 0 {
		maxLife = DefaultMaxLifetime
	}
	if a.Expiry.Sub(a.IssuedAt) > maxLife {
		return nil, invalid("the assertion's lifetime (exp - iat) is longer than its issuer allows")
	}
	if !a.Expiry.After(a.IssuedAt) {
		return nil, invalid("the assertion's exp is not after its iat")
	}
	if a.NotBefore, ok, err = numericDate(claims, "nbf"); err != nil {
		return nil, err
	} else if ok && a.NotBefore.After(now.Add(Leeway)) {
		return nil, invalid("the assertion is not valid yet (nbf)")
	}
	jti, _ := claims["jti"].(string)
	if jti == "" || len(jti) > maxJTI {
		return nil, invalid("the assertion must carry a jti of at most %d characters", maxJTI)
	}
	a.JTI = jti
	return a, nil
}

// singleAudience returns aud when it is one non-empty string, alone or as
// a one-element array (RFC 7519 §4.1.3; several values are refused
// against audience injection, RFC 7523bis).
func singleAudience(v any) (string, bool) {
	switch aud := v.(type) {
	case string:
		return aud, aud != ""
	case []any:
		if len(aud) != 1 {
			return "", false
		}
		s, ok := aud[0].(string)
		return s, ok && s != ""
	}
	return "", false
}

// numericDate reads a NumericDate claim (RFC 7519 §2): absent is ok false,
// anything but a number in a sane range is invalid.
func numericDate(claims map[string]any, name string) (time.Time, bool, error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, false, invalid("the assertion's %s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false, invalid("the assertion's %s is not a valid date", name)
	}
	return time.Unix(int64(f), 0), true, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
