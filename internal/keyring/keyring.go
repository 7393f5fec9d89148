// Package keyring holds agentid's key-encryption keys (KEKs): it seals small
// secrets (signing keys, the vault's per-record data keys, a provider's client
// secret) under the current KEK with AES-256-GCM and opens what any KEK it
// holds sealed, so a KEK can be rotated by re-wrapping while the old one still
// reads. It knows nothing of what it seals; the caller's AAD names the row and
// purpose.
package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Envelope format (docs/design.md §7). A sealed value is ASCII text:
//
//	v1.<kek-id>.<base64url(nonce)>.<base64url(ciphertext||tag)>
//
// without padding. The KEK id alphabet excludes '.', so the four fields split
// unambiguously. The version and KEK id are also authenticated: the GCM
// additional data is "agentid-envelope-v1\x00" + kek-id + "\x00" + caller AAD.
// The caller's AAD names the row and purpose (e.g. "signing_keys|<kid>|private")
// so a ciphertext copied to another row or column does not open.
const (
	envelopeVersion = "v1"
	envelopeAADTag  = "agentid-envelope-v1\x00"
	kekKeyLen       = 32 // AES-256
	kekMaxIDLen     = 64
	gcmNonceLen     = 12
	gcmTagLen       = 16
)

// Errors of Keyring.Open. They never carry plaintext or key material.
var (
	// ErrUnknownKEK: the ciphertext names a KEK that is not in the keyring.
	ErrUnknownKEK = errors.New("keyring: ciphertext sealed under an unknown key-encryption key")
	// ErrDecrypt: the ciphertext is malformed, was tampered with, or the AAD
	// does not match.
	ErrDecrypt = errors.New("keyring: ciphertext does not open")
)

// KEK is a key-encryption key: a 32-byte AES-256 key and the id under which
// ciphertexts name it.
type KEK struct {
	ID  string
	Key []byte
}

func (k KEK) validate() error {
	if !validKEKID(k.ID) {
		// The invalid id is not echoed: a key pasted in the wrong field
		// must not end up in a log.
		return fmt.Errorf("keyring: KEK id must be 1-%d characters of A-Z a-z 0-9 _ -", kekMaxIDLen)
	}
	if len(k.Key) != kekKeyLen {
		return fmt.Errorf("keyring: KEK key must be %d bytes, got %d", kekKeyLen, len(k.Key))
	}
	return nil
}

func validKEKID(id string) bool {
	if len(id) == 0 || len(id) > kekMaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Keyring seals under its current KEK and opens ciphertexts made under the
// current or any older KEK it holds, which is what KEK rotation needs:
// configure the new key as current and the old one as old, then re-wrap.
// It is safe for concurrent use.
type Keyring struct {
	currentID string
	aeads     map[string]cipher.AEAD
}

// NewKeyring builds a keyring. Every KEK must be valid and ids must be
// distinct (the same KEK listed twice is tolerated).
func NewKeyring(current KEK, old ...KEK) (*Keyring, error) {
	kr := &Keyring{currentID: current.ID, aeads: make(map[string]cipher.AEAD, 1+len(old))}
	keys := make(map[string][]byte, 1+len(old))
	for _, k := range append([]KEK{current}, old...) {
		if err := k.validate(); err != nil {
			return nil, err
		}
		if prev, ok := keys[k.ID]; ok {
			if !bytes.Equal(prev, k.Key) {
				return nil, fmt.Errorf("keyring: two different KEKs share the id %q", k.ID)
			}
			continue
		}
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return nil, fmt.Errorf("keyring: KEK %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: KEK %q: %w", k.ID, err)
		}
		keys[k.ID] = k.Key
		kr.aeads[k.ID] = aead
	}
	return kr, nil
}

// CurrentID is the id of the KEK new ciphertexts are sealed under.
func (k *Keyring) CurrentID() string { return k.currentID }

func envelopeAAD(kekID, aad string) []byte {
	b := make([]byte, 0, len(envelopeAADTag)+len(kekID)+1+len(aad))
	b = append(b, envelopeAADTag...)
	b = append(b, kekID...)
	b = append(b, 0)
	return append(b, aad...)
}

// Seal encrypts plaintext under the current KEK with a fresh random nonce
// read from r (crypto/rand when nil). aad binds the ciphertext to its place:
// table, row id and purpose.
func (k *Keyring) Seal(r io.Reader, plaintext []byte, aad string) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	var nonce [gcmNonceLen]byte
	if _, err := io.ReadFull(r, nonce[:]); err != nil {
		return nil, fmt.Errorf("keyring: reading randomness: %w", err)
	}
	ct := k.aeads[k.currentID].Seal(nil, nonce[:], plaintext, envelopeAAD(k.currentID, aad))
	enc := base64.RawURLEncoding
	out := make([]byte, 0, len(envelopeVersion)+len(k.currentID)+3+enc.EncodedLen(len(nonce))+enc.EncodedLen(len(ct)))
	out = append(out, envelopeVersion...)
	out = append(out, '.')
	out = append(out, k.currentID...)
	out = append(out, '.')
	out = enc.AppendEncode(out, nonce[:])
	out = append(out, '.')
	out = enc.AppendEncode(out, ct)
	return out, nil
}

// parseEnvelope splits a v1 envelope into KEK id, nonce and sealed bytes.
func parseEnvelope(ciphertext []byte) (kekID string, nonce, sealed []byte, err error) {
	parts := bytes.Split(ciphertext, []byte{'.'})
	if len(parts) != 4 || string(parts[0]) != envelopeVersion {
		return "", nil, nil, fmt.Errorf("%w: not a %s envelope", ErrDecrypt, envelopeVersion)
	}
	kekID = string(parts[1])
	if !validKEKID(kekID) {
		return "", nil, nil, fmt.Errorf("%w: malformed KEK id", ErrDecrypt)
	}
	enc := base64.RawURLEncoding.Strict()
	nonce, err = enc.AppendDecode(nil, parts[2])
	if err != nil || len(nonce) != gcmNonceLen {
		return "", nil, nil, fmt.Errorf("%w: malformed nonce", ErrDecrypt)
	}
	sealed, err = enc.AppendDecode(nil, parts[3])
	if err != nil || len(sealed) < gcmTagLen {
		return "", nil, nil, fmt.Errorf("%w: malformed ciphertext", ErrDecrypt)
	}
	return kekID, nonce, sealed, nil
}

// KEKID returns the id of the KEK a ciphertext was sealed under, so a
// re-wrap job can find rows still sealed under an old KEK.
func KEKID(ciphertext []byte) (string, error) {
	id, _, _, err := parseEnvelope(ciphertext)
	return id, err
}

// Open decrypts a ciphertext made by Seal with the same aad. An unknown KEK
// id is ErrUnknownKEK; anything else that fails is ErrDecrypt.
func (k *Keyring) Open(ciphertext []byte, aad string) ([]byte, error) {
	kekID, nonce, sealed, err := parseEnvelope(ciphertext)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[kekID]
	if !ok {
		return nil, fmt.Errorf("%w (id %q)", ErrUnknownKEK, kekID)
	}
	pt, err := aead.Open(nil, nonce, sealed, envelopeAAD(kekID, aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Rewrap opens ciphertext and seals it again under the current KEK (KEK
// rotation, docs/design.md §7). The aad stays the same.
func (k *Keyring) Rewrap(r io.Reader, ciphertext []byte, aad string) ([]byte, error) {
	pt, err := k.Open(ciphertext, aad)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return k.Seal(r, pt, aad)
}

// KEK text format, used both for the key file and the AGENTID_KEK value:
//
//	<id>:<key>
//
// where id is 1-64 characters of A-Z a-z 0-9 _ - and key is 32 bytes in
// base64 (standard with padding, or unpadded base64url). Surrounding
// whitespace, blank lines and lines starting with '#' are ignored, so the key
// file can carry a comment; exactly one key line must remain. Example:
//
//	kek-2025:9Lq3...= (44 characters of standard base64)

// ParseKEK parses a KEK in the text format above. Errors never include the
// key.
func ParseKEK(s string) (KEK, error) {
	var line string
	n := 0
	for l := range strings.SplitSeq(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		line = l
		n++
	}
	if n != 1 {
		return KEK{}, fmt.Errorf("keyring: KEK text must hold exactly one <id>:<base64 key> line, found %d", n)
	}
	id, b64, ok := strings.Cut(line, ":")
	if !ok {
		return KEK{}, errors.New("keyring: KEK text must be <id>:<base64 key>")
	}
	id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
	if !validKEKID(id) {
		return KEK{}, KEK{ID: id}.validate()
	}
	var key []byte
	var err error
	if strings.ContainsAny(b64, "-_") || len(b64)%4 != 0 {
		key, err = base64.RawURLEncoding.Strict().DecodeString(b64)
	} else {
		key, err = base64.StdEncoding.Strict().DecodeString(b64)
	}
	if err != nil {
		return KEK{}, errors.New("keyring: KEK key is not valid base64")
	}
	k := KEK{ID: id, Key: key}
	if err := k.validate(); err != nil {
		return KEK{}, err
	}
	return k, nil
}

// FormatKEK renders k in the text format ParseKEK reads.
func FormatKEK(k KEK) string {
	return k.ID + ":" + base64.StdEncoding.EncodeToString(k.Key)
}

// GenerateKEK makes a new KEK with a random key and an id "kek-" + 8 random
// base64url characters, reading r (crypto/rand when nil).
func GenerateKEK(r io.Reader) (KEK, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [6 + kekKeyLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return KEK{}, fmt.Errorf("keyring: reading randomness: %w", err)
	}
	key := make([]byte, kekKeyLen)
	copy(key, b[6:])
	return KEK{ID: "kek-" + base64.RawURLEncoding.EncodeToString(b[:6]), Key: key}, nil
}

const kekFileHeader = "# agentid key-encryption key (KEK): <id>:<base64 key>.\n" +
	"# It decrypts the signing keys and vault credentials in the database. Keep it secret and\n" +
	"# back it up: losing it makes every encrypted value unreadable.\n"

// LoadOrCreateKEKFile reads the KEK in the file at path, or, when the file
// does not exist, generates one (from r, crypto/rand when nil) and writes it
// with mode 0600, creating missing parent directories with mode 0700. It
// refuses a file whose permissions let group or others read or write it, or
// that is not a regular file.
func LoadOrCreateKEKFile(path string, r io.Reader) (KEK, error) {
	k, err := readKEKFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return KEK{}, fmt.Errorf("keyring: creating KEK directory: %w", err)
	}
	k, err = GenerateKEK(r)
	if err != nil {
		return KEK{}, err
	}
	// Write a temporary file and hard-link it into place: the link fails if
	// another process created the key first, and nobody ever reads a
	// half-written key file.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return KEK{}, fmt.Errorf("keyring: creating KEK file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return KEK{}, fmt.Errorf("keyring: creating KEK file: %w", err)
	}
	_, err = tmp.WriteString(kekFileHeader + FormatKEK(k) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return KEK{}, fmt.Errorf("keyring: writing KEK file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKEKFile(path)
		}
		return KEK{}, fmt.Errorf("keyring: creating KEK file: %w", err)
	}
	return k, nil
}

// ReadKEKFile reads the KEK in the file at path, which must exist (it is
// never created), be a regular file and not be accessible to group or
// others: a previous KEK kept for reading during a rotation.
func ReadKEKFile(path string) (KEK, error) {
	k, err := readKEKFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return KEK{}, fmt.Errorf("keyring: KEK file %s: %w", path, fs.ErrNotExist)
	}
	return k, err
}

func readKEKFile(path string) (KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return KEK{}, err
		}
		return KEK{}, fmt.Errorf("keyring: opening KEK file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return KEK{}, fmt.Errorf("keyring: KEK file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return KEK{}, fmt.Errorf("keyring: KEK file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return KEK{}, fmt.Errorf("keyring: KEK file %s has mode %#o; it must not be accessible to group or others (chmod 600)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return KEK{}, fmt.Errorf("keyring: reading KEK file: %w", err)
	}
	k, err := ParseKEK(string(b))
	if err != nil {
		return KEK{}, fmt.Errorf("KEK file %s: %w", path, err)
	}
	return k, nil
}
