package token

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// typIDToken is the header typ of ID tokens: plain "JWT", so that no
// verifier of access tokens (RFC 9068 §4: at+jwt) accepts one.
const typIDToken = "JWT"

// IDClaims is the payload of an OpenID Connect ID token (OpenID Connect
// Core §2).
type IDClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"` // the client_id
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	AuthTime int64  `json:"auth_time,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
	// ACR and AMR say how the person signed in (§2, RFC 8176 §2).
	ACR string   `json:"acr,omitempty"`
	AMR []string `json:"amr,omitempty"`
	// AccessTokenHash is at_hash (§3.1.3.6), which MintIDToken fills.
	AccessTokenHash string `json:"at_hash,omitempty"`
	// UserClaims are the profile and email claims asked for (§5.4).
	*UserClaims
}

// UserClaims are the standard claims about a person that the profile and
// email scopes ask for (OpenID Connect Core §5.1, §5.4); empty ones are
// left out.
type UserClaims struct {
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

// MintIDToken signs c as an ID token with the current signing key (header
// typ "JWT"), with at_hash of accessToken when it is not empty: the left
// half of the hash of its ASCII octets, with the hash of the key's alg
// (SHA-256 for ES256 and RS256, SHA-512 for EdDSA over Ed25519), base64url
// encoded (OpenID Connect Core §3.1.3.6).
func (k *Keys) MintIDToken(c *IDClaims, accessToken string) (string, error) {
	if c.Issuer == "" || c.Subject == "" || c.Audience == "" || c.IssuedAt == 0 || c.Expiry <= c.IssuedAt {
		return "", errors.New("token: ID token needs iss, sub, aud, iat and a later exp")
	}
	now := k.now()
	if c.Expiry > now.Unix()+int64(k.maxTTL/time.Second)+1 {
		return "", fmt.Errorf("token: ID token lifetime exceeds the maximum of %s", k.maxTTL)
	}
	e := k.state.Load().signerAt(now)
	if e == nil {
		return "", ErrNoSigningKey
	}
	out := *c
	if accessToken != "" {
		out.AccessTokenHash = leftHalfHash(e.alg, accessToken)
	}
	payload, err := json.Marshal(&out)
	if err != nil {
		return "", fmt.Errorf("token: encoding claims: %w", err)
	}
	jws, err := e.idSigner.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	return jws.CompactSerialize()
}

func leftHalfHash(alg jose.SignatureAlgorithm, s string) string {
	var h hash.Hash
	if alg == jose.EdDSA {
		h = sha512.New()
	} else {
		h = sha256.New()
	}
	h.Write([]byte(s))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
