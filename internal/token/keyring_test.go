package token

import (
	"crypto/rand"
	"testing"

	"github.com/agentid/agentid/internal/keyring"
)

// testKeyring is a keyring with one fresh KEK, "kek-test".
func testKeyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.NewKeyring(keyring.KEK{ID: "kek-test", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
