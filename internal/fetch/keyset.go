package fetch

import (
	"context"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySet limits.
const (
	KeySetMaxBytes   = 64 << 10
	KeySetMinTTL     = 5 * time.Minute
	KeySetMaxTTL     = 24 * time.Hour
	KeySetRefetchGap = 30 * time.Second
)

// KeySets is a cache of remote JWK sets (jwks_uri) fetched through a Fetcher.
// It is safe for concurrent use.
type KeySets struct {
	f  *Fetcher
	mu sync.Mutex
}

// KeySets returns the Fetcher's JWKS cache: the same one on every call, so
// the whole hub shares one cache and one refetch budget per uri.
func (f *Fetcher) KeySets() *KeySets {
	f.keysOnce.Do(func() { f.keys = &KeySets{f: f} })
	return f.keys
}

// Get returns the key set at uri. A cached set is used while fresh (TTL from
// the response clamped to 5m..24h). When kid is not "" and not in the cached
// set, the set is fetched again, at most once per 30s per uri. Errors are
// never cached.
func (k *KeySets) Get(ctx context.Context, uri, kid string) (*jose.JSONWebKeySet, error) {
	return nil, &Error{Reason: ReasonInvalidURL}
}
