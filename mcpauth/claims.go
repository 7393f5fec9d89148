package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"time"
)

// Claims are the verified contents of an access token (RFC 9068 §2.2).
type Claims struct {
	// Issuer is iss, always the configured hub issuer.
	Issuer string
	// Subject is sub: the user, or the client itself for client-credentials
	// tokens (RFC 9068 §2.2).
	Subject string
	// ClientID is client_id: the agent (OAuth client) the token was issued to.
	ClientID string
	// Scopes is the space-separated scope claim split into its tokens
	// (RFC 9068 §2.2.3).
	Scopes []string
	// Audience is aud, always a list here; it contains this server's resource.
	Audience []string
	// JTI is the token identifier, safe to log in place of the token.
	JTI string
	// ExpiresAt, IssuedAt and AuthTime are exp, iat and auth_time (zero when
	// absent).
	ExpiresAt time.Time
	IssuedAt  time.Time
	AuthTime  time.Time
	// Act is the raw JSON of the act claim (RFC 8693 §4.1) when the token was
	// obtained by delegation, nil otherwise. [Claims.Actors] is the same
	// chain as a list.
	Act json.RawMessage
	// MayAct is the may_act claim (RFC 8693 §4.4): the party allowed to
	// exchange this token as its actor. Nil when absent.
	MayAct *Actor
	// Raw holds every claim as decoded JSON (numbers as json.Number).
	Raw map[string]any

	actors []Actor
	// token is the bearer token these claims were verified from, behind a
	// pointer so that printing Claims (%v, %+v, slog) shows an address, never
	// the token; see [Claims.Token].
	token *bearer
}

type bearer struct{ s string }

// Actor is one party of a delegation chain (RFC 8693 §4.1): who acts, and
// who vouches for it. For actors the hub itself knows, Subject is the
// agent's or MCP server's client_id and Issuer is empty.
type Actor struct {
	// Subject is the actor's sub.
	Subject string
	// Issuer is the actor's iss, when another issuer vouches for it.
	Issuer string
}

// maxActors bounds the act nesting parsed; the hub caps chains far lower
// (tokens.max_delegation_depth).
const maxActors = 32

// Actors returns the delegation chain of the token (RFC 8693 §4.1), the
// current actor first, that is outermost: the party that presented or
// exchanged the token last, then each prior actor. The last element is the
// first actor, for hub tokens the agent the user authorized. It is nil for
// a token obtained without delegation, whose only actor is its ClientID.
// RFC 8693 §4.1 bases access control on the current actor only; the prior
// ones are informational, which [Config.MaxDelegationDepth] and
// [Config.FirstActors] use with care.
func (c *Claims) Actors() []Actor {
	return slices.Clone(c.actors)
}

// Token returns the bearer token these claims were verified from (by
// [Verifier.Verify], [Verifier.Check] or [Middleware]), for passing on to
// [Exchanger.Exchange]; "" for claims made otherwise. Treat it as a secret:
// never log it.
func (c *Claims) Token() string {
	if c.token == nil {
		return ""
	}
	return c.token.s
}

// withToken returns a copy of c remembering token (cached claims are shared,
// so never set on them in place).
func (c *Claims) withToken(token string) *Claims {
	cc := *c
	cc.token = &bearer{s: token}
	return &cc
}

// HasScopes reports whether the token was granted every one of scopes.
func (c *Claims) HasScopes(scopes ...string) bool {
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

type claimsKey struct{}

// ClaimsFromContext returns the claims that [Middleware] stored in a request's
// context.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

func withClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

var errClaimType = errors.New("claim has the wrong JSON type")

// parseClaims decodes a JWT claims set (RFC 7519 §4) or an RFC 7662 §2.2
// introspection response into Claims. It checks only JSON types; the caller
// checks values.
func parseClaims(payload []byte) (*Claims, error) {
	if raw, ok := decodeClaimsMap(payload); ok {
		return claimsFromMap(raw)
	}
	return parseClaimsReference(payload)
}

// parseClaimsReference is parseClaims with encoding/json's decoder alone.
func parseClaimsReference(payload []byte) (*Claims, error) {
	raw, err := decodeClaimsMapReference(payload)
	if err != nil {
		return nil, err
	}
	return claimsFromMap(raw)
}

// decodeClaimsMapReference decodes a claims set with encoding/json.
func decodeClaimsMapReference(payload []byte) (map[string]any, error) {
	var raw map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after claims")
	}
	if raw == nil {
		return nil, errClaimType
	}
	return raw, nil
}

// claimsFromMap reads the claims of a decoded claims set.
func claimsFromMap(raw map[string]any) (*Claims, error) {
	c := &Claims{Raw: raw}
	var err error
	if c.Issuer, err = stringClaim(raw, "iss"); err != nil {
		return nil, err
	}
	if c.Subject, err = stringClaim(raw, "sub"); err != nil {
		return nil, err
	}
	if c.ClientID, err = stringClaim(raw, "client_id"); err != nil {
		return nil, err
	}
	if c.JTI, err = stringClaim(raw, "jti"); err != nil {
		return nil, err
	}
	scope, err := stringClaim(raw, "scope")
	if err != nil {
		return nil, err
	}
	c.Scopes = strings.Fields(scope)
	// RFC 7519 §4.1.3: aud is a string or an array of strings.
	switch aud := raw["aud"].(type) {
	case nil:
	case string:
		c.Audience = []string{aud}
	case []any:
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				return nil, errClaimType
			}
			c.Audience = append(c.Audience, s)
		}
	default:
		return nil, errClaimType
	}
	if c.ExpiresAt, err = timeClaim(raw, "exp"); err != nil {
		return nil, err
	}
	if c.IssuedAt, err = timeClaim(raw, "iat"); err != nil {
		return nil, err
	}
	if c.AuthTime, err = timeClaim(raw, "auth_time"); err != nil {
		return nil, err
	}
	if act, ok := raw["act"]; ok && act != nil {
		if c.actors, err = parseActors(act); err != nil {
			return nil, err
		}
		c.Act, _ = json.Marshal(act)
	}
	if mayAct, ok := raw["may_act"]; ok && mayAct != nil {
		// RFC 8693 §4.4: may_act names one party; a nested act inside it
		// would mean nothing, and is ignored.
		m, isObj := mayAct.(map[string]any)
		if !isObj {
			return nil, errClaimType
		}
		a, _, err := parseActor(m)
		if err != nil {
			return nil, err
		}
		c.MayAct = &a
	}
	return c, nil
}

var errBadActor = errors.New("act claim is not a chain of actors each with a sub")

// parseActors walks the nested act objects (RFC 8693 §4.1), outermost
// first. Every level must be an object with a non-empty string sub, so that a
// chain cannot hide an actor the checks would skip.
func parseActors(v any) ([]Actor, error) {
	var chain []Actor
	for v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errClaimType
		}
		if len(chain) == maxActors {
			return nil, errBadActor
		}
		a, next, err := parseActor(m)
		if err != nil {
			return nil, err
		}
		chain = append(chain, a)
		v = next
	}
	return chain, nil
}

func parseActor(m map[string]any) (Actor, any, error) {
	sub, err := stringClaim(m, "sub")
	if err != nil {
		return Actor{}, nil, err
	}
	if sub == "" {
		return Actor{}, nil, errBadActor
	}
	iss, err := stringClaim(m, "iss")
	if err != nil {
		return Actor{}, nil, err
	}
	return Actor{Subject: sub, Issuer: iss}, m["act"], nil
}

func stringClaim(raw map[string]any, name string) (string, error) {
	v, ok := raw[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", errClaimType
	}
	return s, nil
}

// timeClaim reads a NumericDate (RFC 7519 §2): seconds since the epoch,
// possibly fractional.
func timeClaim(raw map[string]any, name string) (time.Time, error) {
	v, ok := raw[name]
	if !ok || v == nil {
		return time.Time{}, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, errClaimType
	}
	f, err := n.Float64()
	// Bound to years 1970..~5000 so conversions cannot overflow.
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, errClaimType
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// registeredClaims are the claims whose meaning a protocol fixes (RFC 7519
// §4.1, RFC 9068 §2.2, RFC 8693 §4, RFC 7800 §3, RFC 7662 §2.2, OpenID
// Connect Core §2): never a claim about the user, whatever a token holds.
// The hub refuses these names for user claims; the SDK refuses them too.
var registeredClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	"client_id", "scope", "scp", "auth_time", "acr", "amr",
	"act", "may_act", "cnf", "authorization_details",
	"azp", "nonce", "at_hash", "c_hash", "sid", "typ",
	"token_type", "active", "username", "htm", "htu", "ath",
}

func registeredClaim(name string) bool {
	for _, r := range registeredClaims {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// UserClaim returns the string claim name about the user that the hub put
// in the token because this resource asked for it (an administrator's
// `agentid resources update URI --user-claim department=attr:department`),
// as RFC 9068 §2.2.3.1 allows claims about the user beside the registered
// ones. ok is false when the token does not carry it, when it is not a
// string, or when name is a registered claim (sub, scope, act, …), which
// is never a user claim: read those through the fields of Claims.
func (c *Claims) UserClaim(name string) (value string, ok bool) {
	if registeredClaim(name) {
		return "", false
	}
	value, ok = c.Raw[name].(string)
	return value, ok
}

// UserClaimList returns the list claim name about the user (the roles or
// groups claim of RFC 9068 §2.2.3.1, as the resource mapped it): ok is
// false when the token does not carry it, when it is not an array of
// strings, or when name is a registered claim. A user in no group yields
// an empty list and ok true.
func (c *Claims) UserClaimList(name string) (values []string, ok bool) {
	if registeredClaim(name) {
		return nil, false
	}
	l, isList := c.Raw[name].([]any)
	if !isList {
		return nil, false
	}
	values = make([]string, 0, len(l))
	for _, v := range l {
		s, isString := v.(string)
		if !isString {
			return nil, false
		}
		values = append(values, s)
	}
	return values, true
}
