package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
)

func newKEK(t testing.TB, id string) keyring.KEK {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return keyring.KEK{ID: id, Key: key}
}

func newKeyring(t testing.TB, current keyring.KEK, old ...keyring.KEK) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.NewKeyring(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// cryptoVault is a vault for the sealing functions alone; they touch no
// store.
func cryptoVault(t testing.TB, kr *keyring.Keyring) *Vault {
	t.Helper()
	v, err := New(Config{Store: struct{ store.Store }{}, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sealedConnection(t testing.TB, v *Vault, s *secret) *store.Connection {
	t.Helper()
	c := &store.Connection{TenantID: "default", ID: "conn_a", ProviderID: "calendar", OwnerKind: store.OwnerUser, OwnerID: "u1"}
	if err := v.sealNew(c, s); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSealRoundTrip(t *testing.T) {
	kek := newKEK(t, "kek-1")
	v := cryptoVault(t, newKeyring(t, kek))
	in := &secret{AccessToken: "at-secret-value", RefreshToken: "rt-secret-value", TokenType: "Bearer"}
	c := sealedConnection(t, v, in)
	if c.KEKID != "kek-1" {
		t.Errorf("KEKID = %q", c.KEKID)
	}
	for _, field := range [][]byte{c.DataKey, c.Secret} {
		if bytes.Contains(field, []byte("secret-value")) {
			t.Fatal("plaintext visible in a sealed field")
		}
	}
	if !bytes.HasPrefix(c.Secret, []byte("v1.")) || !bytes.HasPrefix(c.DataKey, []byte("v1.kek-1.")) {
		t.Fatalf("formats: secret %.10q data key %.16q", c.Secret, c.DataKey)
	}
	out, err := v.open(c)
	if err != nil {
		t.Fatal(err)
	}
	if *out != *in {
		t.Fatalf("open = %+v, want %+v", out, in)
	}
	// Two connections never share a data key or a ciphertext.
	c2 := sealedConnection(t, v, in)
	if bytes.Equal(c.DataKey, c2.DataKey) || bytes.Equal(c.Secret, c2.Secret) {
		t.Fatal("two seals are identical")
	}

	// An old KEK still opens after rotation (read while re-wrapping).
	v2 := cryptoVault(t, newKeyring(t, newKEK(t, "kek-2"), kek))
	if out, err := v2.open(c); err != nil || *out != *in {
		t.Fatalf("open under an old KEK: %v", err)
	}
}

// TestSealRefuses: every way a sealed credential can be moved, altered or
// opened with the wrong key refuses with ErrDecrypt.
func TestSealRefuses(t *testing.T) {
	kek := newKEK(t, "kek-1")
	v := cryptoVault(t, newKeyring(t, kek))
	in := &secret{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer"}
	c := sealedConnection(t, v, in)
	other := sealedConnection(t, v, in)
	other.ID = "conn_b"
	if err := v.sealNew(other, &secret{AccessToken: "other"}); err != nil {
		t.Fatal(err)
	}

	flipField := func(b []byte, field int, at func(n int) int) []byte {
		parts := strings.Split(string(b), ".")
		raw, err := base64.RawURLEncoding.DecodeString(parts[field])
		if err != nil {
			t.Fatal(err)
		}
		raw[at(len(raw))] ^= 1
		parts[field] = base64.RawURLEncoding.EncodeToString(raw)
		return []byte(strings.Join(parts, "."))
	}
	with := func(mut func(*store.Connection)) *store.Connection {
		cc := *c
		mut(&cc)
		return &cc
	}
	tests := []struct {
		name string
		v    *Vault
		c    *store.Connection
	}{
		{"tampered ciphertext", v, with(func(c *store.Connection) { c.Secret = flipField(c.Secret, 2, func(int) int { return 0 }) })},
		{"tampered tag", v, with(func(c *store.Connection) { c.Secret = flipField(c.Secret, 2, func(n int) int { return n - 1 }) })},
		{"tampered nonce", v, with(func(c *store.Connection) { c.Secret = flipField(c.Secret, 1, func(int) int { return 3 }) })},
		{"tampered data key", v, with(func(c *store.Connection) { c.DataKey = flipField(c.DataKey, 3, func(int) int { return 0 }) })},
		{"truncated", v, with(func(c *store.Connection) { c.Secret = c.Secret[:len(c.Secret)-3] })},
		{"unknown version", v, with(func(c *store.Connection) { c.Secret = append([]byte("v2"), c.Secret[2:]...) })},
		{"no version", v, with(func(c *store.Connection) { c.Secret = c.Secret[3:] })},
		{"empty", v, with(func(c *store.Connection) { c.Secret = nil })},
		// Swapped rows: the whole sealed row (data key and secret) or just
		// the secret copied elsewhere.
		{"row copied to another connection id", v, with(func(c *store.Connection) { c.ID = "conn_b" })},
		{"row copied to another provider", v, with(func(c *store.Connection) { c.ProviderID = "mail" })},
		{"row copied to another owner", v, with(func(c *store.Connection) { c.OwnerID = "u2" })},
		{"row copied to the tenant owner", v, with(func(c *store.Connection) { c.OwnerKind = store.OwnerTenant })},
		{"row copied to another tenant", v, with(func(c *store.Connection) { c.TenantID = "t2" })},
		{"secret from another connection", v, with(func(c *store.Connection) { c.Secret = other.Secret })},
		{"data key from another connection", v, with(func(c *store.Connection) { c.DataKey = other.DataKey })},
		{"wrong KEK, same id", cryptoVault(t, newKeyring(t, newKEK(t, "kek-1"))), c},
		{"unknown KEK", cryptoVault(t, newKeyring(t, newKEK(t, "kek-2"))), c},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.v.open(tc.c); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("open = %v, want ErrDecrypt", err)
			}
		})
	}

	t.Run("purpose swapped", func(t *testing.T) {
		if _, err := v.openPurpose(c, purposePreviousSecret, c.Secret); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("current secret opened as the previous one: %v", err)
		}
	})
	t.Run("ids that concatenate alike", func(t *testing.T) {
		a := &store.Connection{TenantID: "default", ID: "c", ProviderID: "ab", OwnerKind: "user", OwnerID: "x"}
		b := &store.Connection{TenantID: "default", ID: "c", ProviderID: "a", OwnerKind: "buser", OwnerID: "x"}
		if binding(a) == binding(b) {
			t.Fatal("bindings collide")
		}
		if err := v.sealNew(a, in); err != nil {
			t.Fatal(err)
		}
		b.DataKey, b.Secret = a.DataKey, a.Secret
		if _, err := v.open(b); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("open = %v, want ErrDecrypt", err)
		}
	})
	t.Run("errors carry no secret", func(t *testing.T) {
		c := sealedConnection(t, v, &secret{AccessToken: "at-distinctive-4711", RefreshToken: "rt-distinctive-4711"})
		c.OwnerID = "u2"
		_, err := v.open(c)
		if err == nil || strings.Contains(err.Error(), "distinctive") || strings.Contains(err.Error(), string(c.Secret[3:20])) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestProviderSecret(t *testing.T) {
	v := cryptoVault(t, newKeyring(t, newKEK(t, "kek-1")))
	ct, err := v.SealProviderSecret("default", "calendar", "client-secret-value")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("client-secret-value")) {
		t.Fatal("plaintext visible")
	}
	p := &store.Provider{TenantID: "default", ID: "calendar", ClientSecret: ct}
	if got, err := v.providerSecret(p); err != nil || got != "client-secret-value" {
		t.Fatalf("providerSecret = %q, %v", got, err)
	}
	for _, moved := range []*store.Provider{
		{TenantID: "default", ID: "mail", ClientSecret: ct},
		{TenantID: "t2", ID: "calendar", ClientSecret: ct},
	} {
		if _, err := v.providerSecret(moved); !errors.Is(err, ErrDecrypt) {
			t.Errorf("secret moved to %s/%s opened: %v", moved.TenantID, moved.ID, err)
		}
	}
	// A connection data key never opens as a client secret, nor the other way.
	c := sealedConnection(t, v, &secret{APIKey: "k"})
	if _, err := v.providerSecret(&store.Provider{TenantID: "default", ID: "calendar", ClientSecret: c.DataKey}); !errors.Is(err, ErrDecrypt) {
		t.Errorf("data key opened as a client secret: %v", err)
	}
	if got, err := v.providerSecret(&store.Provider{TenantID: "default", ID: "public"}); err != nil || got != "" {
		t.Errorf("public client: %q, %v", got, err)
	}
	if _, err := v.SealProviderSecret("default", "calendar", ""); err == nil {
		t.Error("empty secret sealed")
	}
}

// FuzzSecretEnvelope: stored ciphertext is untrusted input (a database
// row). Parsing never panics, accepts only the canonical spelling (what it
// parses formats back to the same bytes), and whatever it accepts fails to
// open unless it is exactly what was sealed.
func FuzzSecretEnvelope(f *testing.F) {
	kr, err := keyring.NewKeyring(keyring.KEK{ID: "kek-f", Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		f.Fatal(err)
	}
	v := cryptoVault(f, kr)
	c := sealedConnection(f, v, &secret{AccessToken: "at"})
	f.Add(c.Secret)
	f.Add([]byte("v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"))
	f.Add([]byte("v1.."))
	f.Add([]byte("v2.x.y"))
	f.Add([]byte("v1.AAAAAAAAAAAAAAAA=.AAAAAAAAAAAAAAAAAAAAAA"))
	key, err := v.openDataKey(c)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		nonce, sealed, err := parseSecretEnvelope(b)
		if err != nil {
			if nonce != nil || sealed != nil {
				t.Fatal("values returned with an error")
			}
			return
		}
		if len(nonce) != nonceLen || len(sealed) < tagLen {
			t.Fatalf("accepted nonce %d bytes, sealed %d bytes", len(nonce), len(sealed))
		}
		if got := formatSecretEnvelope(nonce, sealed); !bytes.Equal(got, b) {
			t.Fatalf("not canonical: %q formats back as %q", b, got)
		}
		s, err := openSecret(key, purposeSecret, c, b)
		if bytes.Equal(b, c.Secret) {
			if err != nil || s.AccessToken != "at" {
				t.Fatalf("the sealed value does not open: %v", err)
			}
		} else if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("forged envelope: %v", err)
		}
	})
}
