package token

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentid/agentid/internal/store"
)

// TypCheckpoint is the header typ of an audit checkpoint: a JWS over a
// chain head of the audit trail (package audit builds the payload). Its own
// typ keeps every verifier of access tokens (at+jwt), ID tokens (JWT) and
// ID-JAGs from accepting one, and a checkpoint verifier from accepting them
// (RFC 8725 §3.11).
const TypCheckpoint = "audit-checkpoint+jwt"

var (
	// ErrInvalidCheckpoint: VerifyCheckpoint rejected the JWS. The wrapped
	// text says why.
	ErrInvalidCheckpoint = errors.New("token: invalid audit checkpoint")
	// ErrCheckpointKeyUnknown: the checkpoint names a kid none of the
	// given keys has (a key deleted after it expired, or a forgery).
	ErrCheckpointKeyUnknown = errors.New("token: audit checkpoint signed by an unknown key")
)

// maxCheckpointLen bounds what VerifyCheckpoint parses.
const maxCheckpointLen = 8 << 10

// SignCheckpoint signs payload, a JSON object, as a compact JWS with the
// current signing key: header alg and kid of the key, typ TypCheckpoint.
// Anyone holding the published JWKS can verify it.
func (k *Keys) SignCheckpoint(payload []byte) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return "", fmt.Errorf("token: checkpoint payload is not a JSON object: %w", err)
	}
	e := k.state.Load().signerAt(k.now())
	if e == nil {
		return "", ErrNoSigningKey
	}
	// Rare (once per checkpoint): a signer per call keeps keyEntry small.
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: e.alg, Key: jose.JSONWebKey{Key: e.priv, KeyID: e.rec.ID}},
		(&jose.SignerOptions{}).WithType(TypCheckpoint),
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

// VerifyCheckpoint checks a checkpoint JWS against the public halves of
// keys (private halves are not needed; expired keys still in the store
// count): compact serialization, one signature, alg on the allowlist and
// equal to the key's, typ exactly TypCheckpoint, a valid signature. It
// returns the payload and the kid. A kid that none of keys has is
// ErrCheckpointKeyUnknown; every other failure wraps ErrInvalidCheckpoint.
func VerifyCheckpoint(raw string, keys []*store.SigningKey) (payload []byte, kid string, err error) {
	if len(raw) > maxCheckpointLen {
		return nil, "", fmt.Errorf("%w: too long", ErrInvalidCheckpoint)
	}
	jws, err := jose.ParseSignedCompact(raw, supportedAlgs)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrInvalidCheckpoint, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", fmt.Errorf("%w: want exactly one signature", ErrInvalidCheckpoint)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != TypCheckpoint {
		return nil, h.KeyID, fmt.Errorf("%w: typ is not %s", ErrInvalidCheckpoint, TypCheckpoint)
	}
	var rec *store.SigningKey
	for _, k := range keys {
		if k.ID == h.KeyID && h.KeyID != "" {
			rec = k
			break
		}
	}
	if rec == nil {
		return nil, h.KeyID, fmt.Errorf("%w: kid %q", ErrCheckpointKeyUnknown, h.KeyID)
	}
	if h.Algorithm != rec.Algorithm {
		return nil, h.KeyID, fmt.Errorf("%w: alg %q does not match the key", ErrInvalidCheckpoint, h.Algorithm)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(rec.PublicJWK)); err != nil || !jwk.IsPublic() || !jwk.Valid() {
		return nil, h.KeyID, fmt.Errorf("%w: key %q has no usable public JWK", ErrInvalidCheckpoint, h.KeyID)
	}
	payload, err = jws.Verify(jwk.Key)
	if err != nil {
		return nil, h.KeyID, fmt.Errorf("%w: signature: %v", ErrInvalidCheckpoint, err)
	}
	return payload, h.KeyID, nil
}
