package server

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/agentid/agentid/internal/token"
)

// TestIntroMemoBounded: the memo never holds more than its bound; a put
// into a full memo drops the entries of expired tokens it looks at before
// live ones, and the entry just put is always there.
func TestIntroMemoBounded(t *testing.T) {
	const max = 8
	digest := func(i int) *[sha256.Size]byte {
		d := sha256.Sum256(fmt.Appendf(nil, "token %d", i))
		return &d
	}
	entry := func(exp int64) *introEntry {
		return &introEntry{claims: &token.AccessClaims{Expiry: exp}, body: []byte(`{"active":true}`)}
	}

	t.Run("live entries", func(t *testing.T) {
		m := newIntroMemo(max)
		for i := range 100 {
			m.put(digest(i), entry(1000), 500)
			if m.len() > max {
				t.Fatalf("%d entries after %d puts, bound %d", m.len(), i+1, max)
			}
			if m.get(digest(i)) == nil {
				t.Fatalf("put %d is not there", i)
			}
		}
		if m.len() != max {
			t.Fatalf("%d entries, want the bound %d", m.len(), max)
		}
	})
	t.Run("expired entries go first", func(t *testing.T) {
		m := newIntroMemo(max)
		for i := range max {
			m.put(digest(i), entry(100), 50)
		}
		// At 200 every entry is of an expired token: the put looks at
		// all of them (fewer than introMemoSweep) and drops them all.
		m.put(digest(max), entry(1000), 200)
		if m.len() != 1 || m.get(digest(max)) == nil {
			t.Fatalf("%d entries after a put into a memo of expired tokens, want just the new one", m.len())
		}
	})
	t.Run("a miss is nil", func(t *testing.T) {
		m := newIntroMemo(max)
		m.put(digest(1), entry(1000), 0)
		if m.get(digest(2)) != nil {
			t.Fatal("an entry for a digest never put")
		}
	})
}
