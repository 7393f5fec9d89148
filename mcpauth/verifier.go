package mcpauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// maxTokenBytes bounds what is parsed at all; real access tokens are a few
// hundred bytes, delegation chains a few kilobytes.
const maxTokenBytes = 16 << 10

// Verifier checks access tokens issued by the hub for one resource (this MCP
// server). It is safe for concurrent use.
type Verifier struct {
	issuer   string
	resource string
	leeway   time.Duration
	algs     []jose.SignatureAlgorithm
	now      func() time.Time
	logger   *slog.Logger
	keys     *keySet
	intro    *introspector // nil unless introspection mode

	maxDepth    int      // Config.MaxDelegationDepth
	firstActors []string // Config.FirstActors
}

// NewVerifier validates cfg and discovers the hub eagerly: it fetches the
// hub's RFC 8414 metadata (falling back to OpenID Connect discovery), checks
// that its issuer is identical to cfg.Issuer (RFC 8414 §3.3), and loads the
// key set from its jwks_uri, all within ctx. It fails if the hub cannot be
// reached, so a misconfigured server stops at start-up rather than answering
// 401 to everyone; start the hub first (or retry). After that, keys are
// refetched lazily: when a token names an unknown kid (at most once per 10
// seconds, one fetch shared by all waiting requests) and hourly.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = defaultLeeway
	}
	algNames := cfg.Algorithms
	if algNames == nil {
		algNames = defaultAlgorithms
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(algNames))
	for _, a := range algNames {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}

	md, err := discover(ctx, client, cfg.Issuer)
	if err != nil {
		return nil, err
	}
	v := &Verifier{
		issuer:   cfg.Issuer,
		resource: cfg.Resource,
		leeway:   leeway,
		algs:     algs,
		now:      now,
		logger:   logger,
		keys:     &keySet{url: md.JWKSURI, client: client, now: now, logger: logger},

		maxDepth:    cfg.MaxDelegationDepth,
		firstActors: slices.Clone(cfg.FirstActors),
	}
	if ic := cfg.Introspection; ic != nil {
		if md.IntrospectionEndpoint == "" {
			return nil, errors.New("mcpauth: introspection configured but the hub metadata has no introspection_endpoint")
		}
		ttl := ic.CacheTTL
		if ttl == 0 {
			ttl = defaultCacheTTL
		}
		v.intro = &introspector{
			endpoint: md.IntrospectionEndpoint,
			clientID: ic.ClientID,
			secret:   ic.ClientSecret,
			ttl:      ttl,
			client:   client,
			now:      now,
			cache:    make(map[[sha256.Size]byte]cached),
		}
	}
	if err := v.keys.refresh(ctx, 0, true); err != nil {
		return nil, fmt.Errorf("mcpauth: loading hub key set: %w", err)
	}
	return v, nil
}

// Verify checks an access token and returns its claims. Every error is a
// *TokenError whose Kind is one of this package's sentinels; messages never
// contain the token.
//
// The checks are those of RFC 9068 §4: the JWS (compact serialization only)
// is signed with an allowed asymmetric algorithm by a key from the hub's key
// set whose type fits that algorithm; the typ header is "at+jwt" (or
// "application/at+jwt", compared case-insensitively, RFC 7515 §4.1.9); iss is
// the configured issuer exactly; aud contains this resource (RFC 8707 §2; one
// trailing slash of difference is tolerated); exp is present and not past,
// nbf and iat not in the future, each with the configured leeway. In
// introspection mode the hub must then also report the token active
// (RFC 7662 §2.2); a token that is not a JWT at all is accepted in that mode
// only on the strength of the introspection response, whose aud, iss and exp
// are checked the same way.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, tokenErr(ErrNoToken, "", nil)
	}
	if len(token) > maxTokenBytes {
		return nil, tokenErr(ErrTokenInvalid, "token too large", nil)
	}
	if strings.Count(token, ".") != 2 {
		if v.intro != nil {
			return v.verifyOpaque(ctx, token)
		}
		return nil, tokenErr(ErrTokenInvalid, "token is not a signed JWT", nil)
	}
	c, err := v.verifyJWT(ctx, token)
	if err != nil {
		return nil, err
	}
	if v.intro != nil {
		if _, err := v.intro.introspect(ctx, token, c.ExpiresAt); err != nil {
			if te, ok := errors.AsType[*TokenError](err); ok && errors.Is(te.Kind, ErrTokenRevoked) {
				// A copy: the introspector may hand the same error out again.
				cp := *te
				cp.claims = c
				return nil, &cp
			}
			return nil, err
		}
	}
	// c is this call's own: no copy needed to remember the token.
	c.token = &bearer{s: token}
	return c, nil
}

// fastPayloadBuf is the size of the stack buffer the fast path decodes a
// payload into; hub access tokens' claims fit, larger ones are decoded
// onto the heap.
const fastPayloadBuf = 1024

// verifyJWT checks a compact JWS access token and its claims: through the
// fast path when it takes the token (compact.go), through the general
// path otherwise. Both give the same answer for every token.
func (v *Verifier) verifyJWT(ctx context.Context, token string) (*Claims, error) {
	var pbuf [fastPayloadBuf]byte
	var sbuf [maxFastSignature]byte
	t, ok := parseCompact(token, v.algs, pbuf[:], &sbuf)
	if !ok {
		return v.verifyGeneral(ctx, token, parseClaims)
	}
	if t.alg == "" {
		return nil, tokenErr(ErrTokenInvalid, "signing algorithm not allowed", nil)
	}
	if err := checkType(t.typ); err != nil {
		return nil, err
	}
	// The header has no crit and no b64 (parseSimpleHeader takes alg, kid
	// and typ only).
	err := v.verifySignature(ctx, t.kid, t.alg, func(k *jose.JSONWebKey) bool {
		return verifyFastSignature(k.Key, t.alg, t.signingInput, t.sig)
	})
	if err != nil {
		return nil, err
	}
	// Called directly, not through verifiedClaims' func value, so that
	// pbuf stays on the stack.
	c, err := parseClaims(t.payload)
	if err != nil {
		return nil, tokenErr(ErrTokenInvalid, "malformed claims", err)
	}
	if err := v.checkClaims(c); err != nil {
		return nil, err
	}
	return c, nil
}

// verifyGeneral is verifyJWT for any token, through go-jose's general
// JWS parse, with decode for the claims. The differential fuzz test runs
// it with the reference claims decoder as the reference verifier.
func (v *Verifier) verifyGeneral(ctx context.Context, token string, decode func([]byte) (*Claims, error)) (*Claims, error) {
	jws, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			// Covers "none" and HMAC (RFC 8725 §3.1, §2.1).
			return nil, tokenErr(ErrTokenInvalid, "signing algorithm not allowed", nil)
		}
		return nil, tokenErr(ErrTokenInvalid, "malformed token", nil)
	}
	if len(jws.Signatures) != 1 {
		return nil, tokenErr(ErrTokenInvalid, "malformed token", nil)
	}
	hdr := jws.Signatures[0].Protected
	if !slices.Contains(v.algs, jose.SignatureAlgorithm(hdr.Algorithm)) {
		return nil, tokenErr(ErrTokenInvalid, "signing algorithm not allowed", nil)
	}
	typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string)
	if err := checkType(typ); err != nil {
		return nil, err
	}
	// RFC 7515 §4.1.11: extensions we do not implement must not be ignored.
	if _, ok := hdr.ExtraHeaders["crit"]; ok {
		return nil, tokenErr(ErrTokenInvalid, "unsupported critical header", nil)
	}
	if _, ok := hdr.ExtraHeaders["b64"]; ok {
		return nil, tokenErr(ErrTokenInvalid, "unsupported header", nil)
	}
	var payload []byte
	err = v.verifySignature(ctx, hdr.KeyID, hdr.Algorithm, func(k *jose.JSONWebKey) bool {
		p, verr := jws.Verify(k.Key)
		if verr != nil {
			return false
		}
		payload = p
		return true
	})
	if err != nil {
		return nil, err
	}
	return v.verifiedClaims(payload, decode)
}

// checkType applies RFC 9068 §4: typ MUST be at+jwt; RFC 7515 §4.1.9
// makes the "application/" prefix optional and the comparison
// case-insensitive.
func checkType(typ string) error {
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return tokenErr(ErrTokenInvalid, "token type is not at+jwt", nil)
	}
	return nil
}

// verifiedClaims decodes the payload of a token whose signature verified
// and applies the claim checks.
func (v *Verifier) verifiedClaims(payload []byte, decode func([]byte) (*Claims, error)) (*Claims, error) {
	c, err := decode(payload)
	if err != nil {
		return nil, tokenErr(ErrTokenInvalid, "malformed claims", err)
	}
	if err := v.checkClaims(c); err != nil {
		return nil, err
	}
	return c, nil
}

// verifySignature finds the keys that may have signed a token with kid
// and alg, refetching the key set when none does or it is stale, and
// reports whether verify accepts the signature under one of them.
func (v *Verifier) verifySignature(ctx context.Context, kid, alg string, verify func(*jose.JSONWebKey) bool) error {
	keys, gen, stale := v.keys.candidates(kid, alg)
	if len(keys) == 0 || stale {
		// An unknown kid may mean the hub rotated keys (RFC 7517 §4.5); a
		// stale set may still hold keys the hub has withdrawn.
		err := v.keys.refresh(ctx, gen, false)
		if err == nil || len(keys) == 0 {
			keys, _, _ = v.keys.candidates(kid, alg)
		}
		if len(keys) == 0 {
			if errors.Is(err, ErrUnavailable) || err != nil && !errors.Is(err, errRateLimited) {
				return tokenErr(ErrUnavailable, "hub key set unavailable", err)
			}
			return tokenErr(ErrTokenInvalid, "unknown signing key", nil)
		}
	}
	for i := range keys {
		if verify(&keys[i]) {
			return nil
		}
	}
	return tokenErr(ErrTokenInvalid, "signature verification failed", nil)
}

// checkClaims applies the RFC 9068 §4 claim checks shared by JWTs and
// introspection responses.
func (v *Verifier) checkClaims(c *Claims) error {
	if c.Issuer != v.issuer {
		return tokenErr(ErrWrongIssuer, "token was not issued by the configured hub", nil)
	}
	if !audienceMatches(c.Audience, v.resource) {
		return tokenErr(ErrWrongAudience, "token was not issued for this resource", nil)
	}
	now := v.now()
	if c.ExpiresAt.IsZero() {
		return tokenErr(ErrTokenInvalid, "token has no expiry", nil)
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return tokenErr(ErrTokenExpired, "token expired", nil)
	}
	nbf, err := timeClaim(c.Raw, "nbf")
	if err != nil {
		return tokenErr(ErrTokenInvalid, "malformed claims", err)
	}
	if !nbf.IsZero() && now.Add(v.leeway).Before(nbf) {
		return tokenErr(ErrTokenNotYetValid, "token not yet valid", nil)
	}
	if !c.IssuedAt.IsZero() && now.Add(v.leeway).Before(c.IssuedAt) {
		return tokenErr(ErrTokenNotYetValid, "token issued in the future", nil)
	}
	return v.checkDelegation(c)
}

// checkDelegation applies Config.MaxDelegationDepth and Config.FirstActors.
func (v *Verifier) checkDelegation(c *Claims) error {
	depth := len(c.actors)
	switch {
	case v.maxDepth == NoDelegation && depth > 0:
		return tokenErr(ErrDelegationRefused, "delegated tokens are not accepted", nil)
	case v.maxDepth > 0 && depth > v.maxDepth:
		return tokenErr(ErrDelegationRefused, "delegation chain too long", nil)
	}
	if len(v.firstActors) == 0 {
		return nil
	}
	// The first actor is the innermost act; without act, the client the
	// token was issued to acts directly for the user.
	first := Actor{Subject: c.ClientID}
	if depth > 0 {
		first = c.actors[depth-1]
	}
	// An actor vouched for by another issuer is not the hub's client of the
	// same name.
	if first.Subject == "" || first.Issuer != "" && first.Issuer != v.issuer || !slices.Contains(v.firstActors, first.Subject) {
		return tokenErr(ErrDelegationRefused, "the token's first actor is not accepted", nil)
	}
	return nil
}

// verifyOpaque accepts a non-JWT token on the hub's word alone (RFC 7662).
func (v *Verifier) verifyOpaque(ctx context.Context, token string) (*Claims, error) {
	c, err := v.intro.introspect(ctx, token, time.Time{})
	if err != nil {
		return nil, err
	}
	// RFC 7662 §2.2 leaves iss optional; the hub always sends it.
	if c.Issuer == "" {
		return nil, tokenErr(ErrWrongIssuer, "introspection response names no issuer", nil)
	}
	if err := v.checkClaims(c); err != nil {
		return nil, err
	}
	return c.withToken(token), nil
}

// audienceMatches reports whether aud names resource, tolerating exactly one
// trailing slash of difference (MCP clients disagree on it, see RFC 8707 §2
// and the MCP canonical-URI rules).
func audienceMatches(aud []string, resource string) bool {
	for _, a := range aud {
		if a == resource || a == resource+"/" || a+"/" == resource {
			return true
		}
	}
	return false
}

// bearerToken extracts the token from the Authorization header (RFC 6750
// §2.1). Only that method is supported; a token in the query (§2.3) is an
// invalid request.
func bearerToken(r *http.Request) (string, error) {
	if r.URL != nil && r.URL.Query().Has("access_token") {
		return "", tokenErr(ErrInvalidRequest, "tokens are accepted only in the Authorization header", nil)
	}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", tokenErr(ErrNoToken, "", nil)
	}
	if len(values) > 1 {
		return "", tokenErr(ErrInvalidRequest, "more than one Authorization header", nil)
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Another scheme is no bearer token at all (RFC 6750 §3.1).
		return "", tokenErr(ErrNoToken, "", nil)
	}
	token := strings.TrimLeft(rest, " ")
	if !isToken68(token) {
		return "", tokenErr(ErrInvalidRequest, "malformed bearer token", nil)
	}
	return token, nil
}

// isToken68 checks RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// Check authenticates r: it takes the bearer token from the Authorization
// header and verifies it. It is what [Middleware] runs before anything else;
// use it directly in handlers that are not behind the middleware.
func (v *Verifier) Check(r *http.Request) (*Claims, error) {
	token, err := bearerToken(r)
	if err != nil {
		return nil, err
	}
	return v.Verify(r.Context(), token)
}
