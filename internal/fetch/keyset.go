package fetch

import (
	"context"
	"encoding/json"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySet limits (field notes §3: a bounded remote JWKS, refetched on an
// unknown kid at most every 30 s).
const (
	KeySetMaxBytes   = 64 << 10
	KeySetMinTTL     = 5 * time.Minute
	KeySetMaxTTL     = 24 * time.Hour
	KeySetRefetchGap = 30 * time.Second
	keySetMaxEntries = 4096 // bounds memory; entries past their TTL go first
)

// KeySets is a cache of remote JWK sets (jwks_uri) fetched through a Fetcher.
// It is safe for concurrent use; concurrent Gets of one uri share one fetch.
type KeySets struct {
	f  *Fetcher
	mu sync.Mutex
	m  map[string]*keySetEntry
}

type keySetEntry struct {
	mu      sync.Mutex // held while fetching, so one fetch per uri at a time
	set     *jose.JSONWebKeySet
	expires time.Time // set is fresh before this
	tried   time.Time // the last fetch attempt, failed or not; gates the unknown-kid refetch
}

// KeySets returns the Fetcher's JWKS cache: the same one on every call, so
// the whole hub shares one cache and one refetch budget per uri.
func (f *Fetcher) KeySets() *KeySets {
	f.keysOnce.Do(func() { f.keys = &KeySets{f: f, m: map[string]*keySetEntry{}} })
	return f.keys
}

// Get returns the key set at uri. A cached set is used while fresh (the
// response's TTL clamped to 5m..24h). When kid is not "" and no key of the
// cached set has it, the set is fetched again, at most once per 30 s per uri
// (counting failed attempts); within that gap the cached set is returned as
// is and the caller finds no key. Errors are never cached: the next Get fetches again. The set holds
// public asymmetric keys only; a document with a private or symmetric key is
// refused whole, and keys of types go-jose does not know are skipped
// (RFC 7517 §5).
func (k *KeySets) Get(ctx context.Context, uri, kid string) (*jose.JSONWebKeySet, error) {
	now := k.f.now()
	e := k.entry(uri, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.set != nil && now.Before(e.expires) {
		// The gap counts from the last attempt, failed or not, so tokens
		// with made-up kids cannot make the hub hammer a key server.
		if kid == "" || len(e.set.Key(kid)) > 0 || now.Sub(e.tried) < KeySetRefetchGap {
			return e.set, nil
		}
	}
	e.tried = now
	resp, err := k.f.Get(ctx, Request{URL: uri, MaxBytes: KeySetMaxBytes})
	if err != nil {
		return nil, err
	}
	set, ferr := parseKeySet(resp.Body)
	if ferr != nil {
		ferr.Host = hostOf(uri)
		return nil, ferr
	}
	e.set = set
	e.expires = k.f.now().Add(min(max(resp.TTL, KeySetMinTTL), KeySetMaxTTL))
	return set, nil
}

// entry returns uri's entry, creating it; it evicts stale entries (and, if
// still full, arbitrary ones) to keep the map bounded.
func (k *KeySets) entry(uri string, now time.Time) *keySetEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.m[uri]; ok {
		return e
	}
	if len(k.m) >= keySetMaxEntries {
		for u, e := range k.m {
			// TryLock: an entry being fetched is in use; leave it.
			if e.mu.TryLock() {
				stale := !now.Before(e.expires)
				e.mu.Unlock()
				if stale {
					delete(k.m, u)
				}
			}
		}
		for u := range k.m {
			if len(k.m) < keySetMaxEntries {
				break
			}
			delete(k.m, u)
		}
	}
	e := &keySetEntry{}
	k.m[uri] = e
	return e
}

// parseKeySet reads a JWK Set (RFC 7517 §5).
func parseKeySet(body []byte) (*jose.JSONWebKeySet, *Error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, &Error{Reason: ReasonInvalid, Detail: "not a JSON JWK set", Err: err}
	}
	set := &jose.JSONWebKeySet{}
	for _, raw := range doc.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(raw, &key); err != nil {
			continue // RFC 7517 §5: ignore keys we do not understand
		}
		if !key.Valid() || !key.IsPublic() {
			// A published private or symmetric key lets anyone sign as the
			// client: refuse the whole set rather than use the rest.
			return nil, &Error{Reason: ReasonInvalid, Detail: "the set contains a private or symmetric key"}
		}
		set.Keys = append(set.Keys, key)
	}
	if len(set.Keys) == 0 {
		return nil, &Error{Reason: ReasonInvalid, Detail: "no usable keys"}
	}
	return set, nil
}

func hostOf(uri string) string {
	if u, err := url.Parse(uri); err == nil {
		return u.Hostname()
	}
	return ""
}
