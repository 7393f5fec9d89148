package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TypIDJAG is the header typ of an Identity Assertion JWT Authorization
// Grant (draft-ietf-oauth-identity-assertion-authz-grant §3.1): a JWT the
// hub, as an enterprise IdP, issues for another authorization server.
const TypIDJAG = "oauth-id-jag+jwt"

// IDJAGClaims is the payload of an ID-JAG (draft-ietf-oauth-identity-
// assertion-authz-grant §3.1; MCP enterprise-managed authorization).
type IDJAGClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"` // the target authorization server's issuer
	// ClientID is the client's identifier at the target authorization
	// server, which the admin configured.
	ClientID string `json:"client_id"`
	JTI      string `json:"jti"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	Resource string `json:"resource,omitempty"`
	Scope    string `json:"scope,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
	// Optional user claims, only those the admin chose to disclose.
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
	Name              string `json:"name,omitempty"`
}

// MintIDJAG signs c as an ID-JAG with the current signing key (header typ
// oauth-id-jag+jwt, alg and kid of the key), so that neither an access
// token verifier (at+jwt) nor an ID token verifier (JWT) of this hub ever
// accepts it. The required claims must be set and exp must not lie more
// than MaxTokenTTL ahead (the key would leave the JWKS first).
func (k *Keys) MintIDJAG(c *IDJAGClaims) (string, error) {
	if c.Issuer == "" || c.Subject == "" || c.Audience == "" || c.ClientID == "" || c.JTI == "" || c.IssuedAt == 0 || c.Expiry <= c.IssuedAt {
		return "", errors.New("token: ID-JAG needs iss, sub, aud, client_id, jti, iat and a later exp")
	}
	now := k.now()
	if c.Expiry > now.Unix()+int64(k.maxTTL/time.Second)+1 {
		return "", fmt.Errorf("token: ID-JAG lifetime exceeds the maximum of %s", k.maxTTL)
	}
	e := k.state.Load().signerAt(now)
	if e == nil {
		return "", ErrNoSigningKey
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("token: encoding claims: %w", err)
	}
	// Not the hot path: a signer per assertion keeps keyEntry small.
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: e.alg, Key: jose.JSONWebKey{Key: e.priv, KeyID: e.rec.ID}},
		(&jose.SignerOptions{}).WithType(TypIDJAG),
	)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	return jws.CompactSerialize()
}

// ErrInvalidIDToken: VerifyIDToken rejected the token. The wrapped text says
// why for logs; it never contains the token.
var ErrInvalidIDToken = errors.New("token: invalid ID token")

// VerifyIDToken checks an ID token this hub issued (MintIDToken): compact
// JWS with one signature, alg on the allowlist and equal to the key's, kid
// of a published key, a valid signature, header typ "JWT" exactly (so that
// neither an access token nor an ID-JAG passes for one) and iss equal to
// issuer. It does not check exp or aud: the caller does, against its own
// clock and client. Every failure wraps ErrInvalidIDToken.
func (k *Keys) VerifyIDToken(raw, issuer string) (*IDClaims, error) {
	if len(raw) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrInvalidIDToken)
	}
	jws, err := jose.ParseSignedCompact(raw, supportedAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidIDToken, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want exactly one signature", ErrInvalidIDToken)
	}
	h := jws.Signatures[0].Protected
	e := k.state.Load().byKID[h.KeyID]
	if e == nil || !published(&e.rec, k.now()) {
		return nil, fmt.Errorf("%w: unknown kid", ErrInvalidIDToken)
	}
	if h.Algorithm != string(e.alg) {
		return nil, fmt.Errorf("%w: alg %q does not match the key", ErrInvalidIDToken, h.Algorithm)
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != typIDToken {
		return nil, fmt.Errorf("%w: typ is not JWT", ErrInvalidIDToken)
	}
	payload, err := jws.Verify(e.pub)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalidIDToken, err)
	}
	var c IDClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrInvalidIDToken, err)
	}
	if c.Issuer != issuer {
		return nil, fmt.Errorf("%w: wrong issuer", ErrInvalidIDToken)
	}
	if strings.TrimSpace(c.Subject) == "" || c.Audience == "" || c.Expiry == 0 {
		return nil, fmt.Errorf("%w: sub, aud and exp are required", ErrInvalidIDToken)
	}
	return &c, nil
}
