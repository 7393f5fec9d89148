package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
)

// Envelope encryption of connections (docs/design.md §5).
//
// Every connection has a data key of its own: 32 random bytes, sealed by
// the keyring (the KEK) into Connection.DataKey with the AAD
//
//	"connection-data-key|" + binding
//
// and Connection.KEKID naming the KEK. The credential is JSON (secret
// below) sealed with AES-256-GCM under the data key into
// Connection.Secret (purpose "secret") or Connection.PreviousSecret
// (purpose "previous-secret", a rotated-out API key):
//
//	v1.<base64url(nonce)>.<base64url(ciphertext||tag)>
//
// with the additional data "agentid-connection-v1\x00" + purpose + "|" +
// binding. The binding names the row:
//
//	len:tenant|len:provider|len:owner-kind|len:owner-id|len:connection-id
//
// each field prefixed by its length in bytes, so no choice of ids makes two
// rows' bindings equal. A ciphertext copied to another connection, another
// provider, another owner or the other purpose does not open; neither does
// a data key moved to another row. The version is part of the additional
// data too, so a later format cannot be downgraded into this one.
//
// A provider's client secret needs no data key (it is one small value per
// provider and re-wrapped with the signing keys): the keyring seals it
// directly with the AAD "provider-client-secret|" + len:tenant|len:provider
// + "|client-secret".
const (
	secretVersion = "v1"
	secretAADTag  = "agentid-connection-v1\x00"
	dataKeyLen    = 32 // AES-256
	nonceLen      = 12
	tagLen        = 16

	purposeSecret         = "secret"
	purposePreviousSecret = "previous-secret"
)

// secret is a connection's credential as sealed. OAuth 2 connections hold
// the tokens, API-key connections the key.
type secret struct {
	AccessToken  string `json:"access_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type,omitempty"`
	APIKey       string `json:"api_key,omitempty"`
}

// clear overwrites the strings' references; the bytes behind them are
// immutable and left to the collector, so this only shortens how long the
// secret stays reachable.
func (s *secret) clear() { *s = secret{} }

func appendField(b []byte, f string) []byte {
	b = strconv.AppendInt(b, int64(len(f)), 10)
	b = append(b, ':')
	return append(b, f...)
}

// binding names a connection row unambiguously.
func binding(c *store.Connection) string {
	var b []byte
	for i, f := range []string{c.TenantID, c.ProviderID, c.OwnerKind, c.OwnerID, c.ID} {
		if i > 0 {
			b = append(b, '|')
		}
		b = appendField(b, f)
	}
	return string(b)
}

// dataKeyAAD is the keyring AAD of a connection's data key; a KEK rotation
// (Rewrap) re-wraps Connection.DataKey under it.
func dataKeyAAD(c *store.Connection) string {
	return "connection-data-key|" + binding(c)
}

// providerSecretAAD is the keyring AAD of a provider's client secret; a KEK
// rotation re-wraps Provider.ClientSecret under it.
func providerSecretAAD(tenantID, providerID string) string {
	b := []byte("provider-client-secret|")
	b = appendField(b, tenantID)
	b = append(b, '|')
	b = appendField(b, providerID)
	return string(b) + "|client-secret"
}

func secretAAD(purpose string, c *store.Connection) []byte {
	return []byte(secretAADTag + purpose + "|" + binding(c))
}

// SealProviderSecret seals a provider's client secret for
// store.Provider.ClientSecret, bound to tenant and provider.
func (v *Vault) SealProviderSecret(tenantID, providerID, secret string) ([]byte, error) {
	if tenantID == "" || providerID == "" {
		return nil, errors.New("vault: sealing a client secret needs tenant and provider")
	}
	if secret == "" {
		return nil, errors.New("vault: empty client secret (a public client has none: leave ClientSecret nil)")
	}
	return v.cfg.Keyring.Seal(v.cfg.Rand, []byte(secret), providerSecretAAD(tenantID, providerID))
}

// providerSecret opens p's client secret ("" for a public client).
func (v *Vault) providerSecret(p *store.Provider) (string, error) {
	if len(p.ClientSecret) == 0 {
		return "", nil
	}
	pt, err := v.cfg.Keyring.Open(p.ClientSecret, providerSecretAAD(p.TenantID, p.ID))
	if err != nil {
		return "", fmt.Errorf("%w: client secret of provider %s: %w", ErrDecrypt, p.ID, err)
	}
	s := string(pt)
	clear(pt)
	return s, nil
}

// newDataKey makes c's data key, seals it into c.DataKey and sets c.KEKID.
// The caller must clear the returned key when done.
func (v *Vault) newDataKey(c *store.Connection) ([]byte, error) {
	key := make([]byte, dataKeyLen)
	if _, err := io.ReadFull(v.cfg.Rand, key); err != nil {
		return nil, fmt.Errorf("vault: reading randomness: %w", err)
	}
	wrapped, err := v.cfg.Keyring.Seal(v.cfg.Rand, key, dataKeyAAD(c))
	if err != nil {
		clear(key)
		return nil, err
	}
	kekID, err := keyring.KEKID(wrapped)
	if err != nil {
		clear(key)
		return nil, err
	}
	c.DataKey, c.KEKID = wrapped, kekID
	return key, nil
}

// openDataKey unwraps c's data key; the caller clears it when done.
func (v *Vault) openDataKey(c *store.Connection) ([]byte, error) {
	key, err := v.cfg.Keyring.Open(c.DataKey, dataKeyAAD(c))
	if err != nil {
		return nil, fmt.Errorf("%w: data key of connection %s: %w", ErrDecrypt, c.ID, err)
	}
	if len(key) != dataKeyLen {
		clear(key)
		return nil, fmt.Errorf("%w: data key of connection %s has the wrong length", ErrDecrypt, c.ID)
	}
	return key, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealSecret seals s for c under dataKey with the purpose's AAD.
func (v *Vault) sealSecret(dataKey []byte, purpose string, c *store.Connection, s *secret) ([]byte, error) {
	pt, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("vault: encoding credential: %w", err)
	}
	defer clear(pt)
	aead, err := newGCM(dataKey)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceLen)
	if _, err := io.ReadFull(v.cfg.Rand, nonce); err != nil {
		return nil, fmt.Errorf("vault: reading randomness: %w", err)
	}
	ct := aead.Seal(nil, nonce, pt, secretAAD(purpose, c))
	return formatSecretEnvelope(nonce, ct), nil
}

// openSecret opens a ciphertext sealSecret made for c and purpose.
func openSecret(dataKey []byte, purpose string, c *store.Connection, ct []byte) (*secret, error) {
	nonce, sealed, err := parseSecretEnvelope(ct)
	if err != nil {
		return nil, fmt.Errorf("%w: %s of connection %s: %w", ErrDecrypt, purpose, c.ID, err)
	}
	aead, err := newGCM(dataKey)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, nonce, sealed, secretAAD(purpose, c))
	if err != nil {
		return nil, fmt.Errorf("%w: %s of connection %s", ErrDecrypt, purpose, c.ID)
	}
	defer clear(pt)
	var s secret
	if err := json.Unmarshal(pt, &s); err != nil {
		return nil, fmt.Errorf("%w: %s of connection %s is not a credential", ErrDecrypt, purpose, c.ID)
	}
	return &s, nil
}

func formatSecretEnvelope(nonce, ct []byte) []byte {
	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(secretVersion)+2+enc.EncodedLen(len(nonce))+enc.EncodedLen(len(ct)))
	out = append(out, secretVersion...)
	out = append(out, '.')
	out = enc.AppendEncode(out, nonce)
	out = append(out, '.')
	return enc.AppendEncode(out, ct)
}

// errEnvelope is why an envelope does not parse; it names no content.
var errEnvelope = errors.New("malformed envelope")

// parseSecretEnvelope splits a v1 envelope into nonce and sealed bytes.
// Only the canonical encoding parses (strict unpadded base64url), so an
// envelope has exactly one spelling.
func parseSecretEnvelope(b []byte) (nonce, sealed []byte, err error) {
	version, rest, ok := bytes.Cut(b, []byte{'.'})
	if !ok {
		return nil, nil, errEnvelope
	}
	if string(version) != secretVersion {
		if len(version) > 0 && len(version) <= 8 && strings.HasPrefix(string(version), "v") {
			return nil, nil, fmt.Errorf("%w: unknown version", errEnvelope)
		}
		return nil, nil, errEnvelope
	}
	n64, c64, ok := bytes.Cut(rest, []byte{'.'})
	if !ok || bytes.IndexByte(c64, '.') >= 0 {
		return nil, nil, errEnvelope
	}
	enc := base64.RawURLEncoding.Strict()
	nonce, err = enc.AppendDecode(nil, n64)
	if err != nil || len(nonce) != nonceLen {
		return nil, nil, fmt.Errorf("%w: nonce", errEnvelope)
	}
	sealed, err = enc.AppendDecode(nil, c64)
	if err != nil || len(sealed) < tagLen {
		return nil, nil, fmt.Errorf("%w: ciphertext", errEnvelope)
	}
	return nonce, sealed, nil
}

// sealNew gives a new connection c its data key and seals s into
// c.Secret.
func (v *Vault) sealNew(c *store.Connection, s *secret) error {
	key, err := v.newDataKey(c)
	if err != nil {
		return err
	}
	defer clear(key)
	c.Secret, err = v.sealSecret(key, purposeSecret, c, s)
	return err
}

// open opens c's current credential.
func (v *Vault) open(c *store.Connection) (*secret, error) {
	return v.openPurpose(c, purposeSecret, c.Secret)
}

func (v *Vault) openPurpose(c *store.Connection, purpose string, ct []byte) (*secret, error) {
	key, err := v.openDataKey(c)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return openSecret(key, purpose, c, ct)
}
