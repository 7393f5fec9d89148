package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agentid/agentid/internal/oauth"
)

// RFC 7591 §2.3 software statements: a JWT, signed by a party the hub
// trusts, asserting metadata of the client software. The hub accepts one
// only from a configured trusted issuer, verifies it, and lets its claims
// override the same metadata in the registration request.

// statementAlgorithms are the accepted signature algorithms: asymmetric
// only, as the verifying key is the issuer's public key.
var statementAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

const (
	// maxStatementLength bounds the work spent on a hostile statement.
	maxStatementLength = 8 << 10
	// statementLeeway tolerates clock skew with the issuer.
	statementLeeway = time.Minute
	// maxStatementKeys bounds the keys tried for a statement without kid.
	maxStatementKeys = 10
)

// TrustedIssuer is an issuer whose software statements are accepted, with
// its keys: Keys inline, or JWKSURI fetched through the KeySource.
type TrustedIssuer struct {
	Issuer  string
	Keys    *jose.JSONWebKeySet
	JWKSURI string
}

// KeySource fetches and caches remote JWK sets; *fetch.KeySets is one. It
// returns the set at uri, refetched when kid (if not empty) is unknown.
type KeySource interface {
	Get(ctx context.Context, uri, kid string) (*jose.JSONWebKeySet, error)
}

// Statements verifies software statements against the trusted issuers.
type Statements struct {
	issuers map[string]TrustedIssuer
	remote  KeySource
	now     func() time.Time
}

// NewStatements returns a verifier of the issuers' statements. remote may
// be nil when no issuer has a JWKSURI; now nil means time.Now.
func NewStatements(issuers []TrustedIssuer, remote KeySource, now func() time.Time) (*Statements, error) {
	s := &Statements{issuers: make(map[string]TrustedIssuer, len(issuers)), remote: remote, now: now}
	if s.now == nil {
		s.now = time.Now
	}
	for _, ti := range issuers {
		switch {
		case ti.Issuer == "":
			return nil, errors.New("clients: a trusted issuer needs its issuer")
		case (ti.Keys == nil) == (ti.JWKSURI == ""):
			return nil, fmt.Errorf("clients: trusted issuer %s needs exactly one of keys and jwks_uri", ti.Issuer)
		case ti.JWKSURI != "" && remote == nil:
			return nil, fmt.Errorf("clients: trusted issuer %s has a jwks_uri but the hub has no fetcher", ti.Issuer)
		}
		s.issuers[ti.Issuer] = ti
	}
	return s, nil
}

// Statement is a verified software statement.
type Statement struct {
	Issuer string
	// Metadata are the statement's client metadata claims (JWT claims
	// such as iss, exp and iat removed), as raw JSON values by name.
	Metadata map[string]json.RawMessage
}

// jwtClaims are the registered JWT claims (RFC 7519 §4.1), which describe
// the statement rather than the client.
var jwtClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// Verify checks a software statement: a compact JWS with one signature of
// an accepted asymmetric algorithm, whose iss is a trusted issuer and whose
// signature verifies with that issuer's keys (the key named by kid, or
// without kid each of the first few); exp, if present, not past and nbf
// and iat, if present, not in the future (a minute's leeway each). Every
// failure is invalid_software_statement; descriptions never quote it.
func (s *Statements) Verify(ctx context.Context, raw string) (*Statement, error) {
	if s == nil {
		return nil, oauth.ErrInvalidSoftwareStatement("this server trusts no software statement issuer")
	}
	if raw == "" || len(raw) > maxStatementLength {
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement is empty or longer than %d bytes", maxStatementLength)
	}
	tok, err := jwt.ParseSigned(raw, statementAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement is not a JWT with one signature of an accepted asymmetric algorithm")
	}
	var peek jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&peek); err != nil {
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement's claims are malformed")
	}
	ti, ok := s.issuers[peek.Issuer]
	if !ok {
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement's issuer is not trusted by this server")
	}
	hdr := tok.Headers[0]
	keys := ti.Keys
	if ti.JWKSURI != "" {
		keys, err = s.remote.Get(ctx, ti.JWKSURI, hdr.KeyID)
		if err != nil {
			return nil, oauth.ErrInvalidSoftwareStatement("the keys of the software statement's issuer cannot be fetched").WithCause(err)
		}
	}
	candidates := keys.Keys
	if hdr.KeyID != "" {
		candidates = keys.Key(hdr.KeyID)
	}
	candidates = candidates[:min(len(candidates), maxStatementKeys)]
	var (
		claims jwt.Claims
		all    map[string]json.RawMessage
		good   bool
	)
	for i := range candidates {
		k := candidates[i].Public()
		if !k.Valid() || k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &claims, &all); err == nil {
			good = true
			break
		}
	}
	if !good {
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement's signature does not verify with its issuer's keys")
	}
	now := s.now()
	switch {
	case claims.Expiry != nil && !now.Before(claims.Expiry.Time().Add(statementLeeway)):
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement has expired")
	case claims.NotBefore != nil && now.Add(statementLeeway).Before(claims.NotBefore.Time()):
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement is not valid yet")
	case claims.IssuedAt != nil && now.Add(statementLeeway).Before(claims.IssuedAt.Time()):
		return nil, oauth.ErrInvalidSoftwareStatement("the software statement was issued in the future")
	}
	for _, c := range jwtClaims {
		delete(all, c)
	}
	delete(all, "software_statement")
	return &Statement{Issuer: claims.Issuer, Metadata: all}, nil
}

// MergeStatement returns the registration body with the statement's
// metadata claims put over the request's (RFC 7591 §2.3: values in the
// statement take precedence) and software_statement removed, for
// oauth.ParseClientMetadata. body must be a JSON object.
func MergeStatement(body []byte, st *Statement) ([]byte, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, oauth.ErrInvalidClientMetadata("the request body must be a JSON object")
	}
	delete(fields, "software_statement")
	keys := make([]string, 0, len(st.Metadata))
	for k := range st.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fields[k] = st.Metadata[k]
	}
	return json.Marshal(fields)
}
