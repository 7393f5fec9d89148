package server

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"github.com/agentid/agentid/internal/token"
)

// introMemo remembers what the bytes of an access token say, for tokens
// introspection accepted by their recorded digest: the decoded claims and
// the body of the active answer. A resource server introspects the token
// of every call it receives, so the same token comes back many times in
// its life; decoding its claims (base64 and JSON, twice with the user
// claims) and encoding the answer took about 13% of the hub's CPU per
// introspection, and a fifth of the bytes it allocated (docs/benchmarks.md,
// "Introspection: what a token's bytes say, remembered").
//
// Only what is a function of the token's bytes is kept, keyed by their
// SHA-256, the digest the hub recorded at minting: equal keys are equal
// bytes, so an entry is exactly what decoding them again would give.
// Nothing about the token's standing is: every introspection still checks
// that the header names a key published now (token.Keys.MintedHeader),
// reads the record and its parties' standing (store.AccessTokenStanding),
// compares the record's digest with the token's, and checks expiry, the
// caller's right to see the token, revocation, the client, the user and
// the delegation chain, as before. An entry is added only after the token
// was accepted that way and found active.
type introMemo struct {
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]*introEntry
	max int
	// hits counts the answers taken from an entry (tests).
	hits atomic.Uint64
}

// introEntry is what a token's bytes say. Shared between requests: never
// modified.
type introEntry struct {
	claims *token.AccessClaims
	// body is the active answer, as oauth.IntrospectionBody wrote it.
	body []byte
}

// maxIntroMemo bounds the memo: a few MiB at about a kilobyte per entry.
const maxIntroMemo = 4096

func newIntroMemo(max int) *introMemo {
	return &introMemo{m: make(map[[sha256.Size]byte]*introEntry), max: max}
}

// get returns the entry of the token of this digest, or nil.
func (m *introMemo) get(digest *[sha256.Size]byte) *introEntry {
	m.mu.RLock()
	e := m.m[*digest]
	m.mu.RUnlock()
	return e
}

// put keeps e for the token of this digest. When the memo is full it
// drops an arbitrary entry (map order) and, looking at a few more, those
// of tokens expired at now (their introspection answers inactive without
// one): a working set larger than the memo costs misses, not memory, and
// no put scans the whole memo.
func (m *introMemo) put(digest *[sha256.Size]byte, e *introEntry, now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= m.max {
		seen := 0
		for k, old := range m.m {
			if len(m.m) >= m.max || now >= old.claims.Expiry {
				delete(m.m, k)
			}
			if seen++; seen == introMemoSweep {
				break
			}
		}
	}
	m.m[*digest] = e
}

// introMemoSweep is how many entries a put into a full memo looks at.
const introMemoSweep = 32

// len is the number of entries (tests).
func (m *introMemo) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.m)
}
