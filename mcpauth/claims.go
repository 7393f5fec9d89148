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
	// obtained by delegation, nil otherwise.
	Act json.RawMessage
	// Raw holds every claim as decoded JSON (numbers as json.Number).
	Raw map[string]any
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
		if _, isObj := act.(map[string]any); !isObj {
			return nil, errClaimType
		}
		c.Act, _ = json.Marshal(act)
	}
	return c, nil
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
