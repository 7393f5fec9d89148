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
	"context"
	"errors"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

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
}

// NewRegistry returns the registry of tenant's issuers.
func NewRegistry(st Store, tenant string, keys KeySource, now func() time.Time) *Registry {
	return &Registry{st: st, tenant: tenant, keys: keys, now: now}
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
	// Type is the required typ header ("" accepts any but
	// "oauth-id-jag+jwt", which is only ever accepted when asked for).
	Type string
	// SingleUse records the jti (store.UseJTI, namespaced by issuer) so
	// that a second presentation fails.
	SingleUse bool
}

// Assertion is a verified JWT.
type Assertion struct {
	// Issuer is the trusted issuer that signed it.
	Issuer *store.Issuer
	// Type is the typ header.
	Type                        string
	Subject, JTI                string
	Audience                    string
	IssuedAt, NotBefore, Expiry time.Time
	// Claims are all its claims (numbers as json.Number).
	Claims map[string]any
}

// ErrNotImplemented marks the skeleton until the package is built.
var ErrNotImplemented = errors.New("federation: not implemented")

// Verify checks raw against the issuer its iss names and against e; every
// failure is an invalid_grant whose description never contains the token.
func (r *Registry) Verify(ctx context.Context, raw string, e Expect) (*Assertion, error) {
	return nil, oauth.ErrInvalidGrant("trusted issuers are not available yet")
}

// Agent maps a workload assertion to the agent identity the first
// matching rule of its issuer names, and that rule; ok is false when no
// rule matches.
func Agent(a *Assertion) (clientID string, rule *store.IssuerRule, ok bool) {
	return "", nil, false
}
