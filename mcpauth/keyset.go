package mcpauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	// minRefetchInterval bounds how often an unknown kid (or a stale set) may
	// make the verifier fetch the hub's JWKS again, so a flood of tokens with
	// made-up kids costs the hub at most one request per interval.
	minRefetchInterval = 10 * time.Second
	// maxKeyAge is how long a fetched key set is trusted before it is
	// refreshed, so keys the hub withdrew stop verifying.
	maxKeyAge = time.Hour
)

var errRateLimited = errors.New("mcpauth: key set refetch rate-limited")

// keySet caches the hub's JSON Web Key Set (RFC 7517 §5) and refetches it
// single-flight and rate-limited.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	logger *slog.Logger

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	gen         uint64 // incremented on every successful fetch
	fetchedAt   time.Time
	lastAttempt time.Time // zero until the first refetch after the initial load
	lastErr     error     // outcome of the latest fetch
	inflight    *flight
}

type flight struct {
	done chan struct{}
	err  error
}

// candidates returns the keys that may have signed a token with this kid and
// alg, the generation they come from, and whether the set is due a refresh.
func (ks *keySet) candidates(kid, alg string) ([]jose.JSONWebKey, uint64, bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var out []jose.JSONWebKey
	for _, k := range ks.keys {
		if (kid == "" || k.KeyID == kid) && keyFits(k, alg) {
			out = append(out, k)
		}
	}
	return out, ks.gen, ks.now().Sub(ks.fetchedAt) > maxKeyAge
}

// refresh refetches the set unless another caller already did since
// generation seen. Concurrent callers share one fetch; a fetch starts at most
// once per minRefetchInterval (errRateLimited otherwise). The initial load
// does not count towards the limit, so the first new kid after start-up is
// looked up at once.
func (ks *keySet) refresh(ctx context.Context, seen uint64, initial bool) error {
	ks.mu.Lock()
	if ks.gen != seen {
		ks.mu.Unlock()
		return nil
	}
	if f := ks.inflight; f != nil {
		ks.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	now := ks.now()
	if !initial && !ks.lastAttempt.IsZero() && now.Sub(ks.lastAttempt) < minRefetchInterval {
		err := ks.lastErr
		ks.mu.Unlock()
		// While the hub is failing, say so rather than calling tokens invalid.
		return errors.Join(errRateLimited, err)
	}
	f := &flight{done: make(chan struct{})}
	ks.inflight = f
	if !initial {
		ks.lastAttempt = now
	}
	ks.mu.Unlock()

	// The fetch outlives a cancelled caller: others may be waiting on it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
	keys, err := ks.fetch(fctx)
	cancel()

	ks.mu.Lock()
	if err == nil {
		ks.keys, ks.fetchedAt = keys, now
		ks.gen++
	}
	ks.inflight = nil
	ks.lastErr = err
	f.err = err
	ks.mu.Unlock()
	close(f.done)
	if err != nil {
		ks.logger.WarnContext(ctx, "mcpauth: fetching hub key set failed", "err", err)
	} else {
		ks.logger.DebugContext(ctx, "mcpauth: fetched hub key set", "keys", len(keys))
	}
	return err
}

func (ks *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	status, err := getJSON(ctx, ks.client, ks.url, "application/jwk-set+json, application/json", &doc)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, errors.Join(ErrUnavailable, errors.New("key set not found"))
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		// RFC 7517 §5: keys this implementation does not understand are ignored.
		if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() {
			continue
		}
		if k.Use != "" && k.Use != "sig" { // RFC 7517 §4.2
			continue
		}
		pub := k.Public() // never hold private material, even if published by mistake
		if !pub.Valid() {
			continue // symmetric keys have no public half and are never used
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

// keyFits reports whether k can verify alg: the key type and curve must be
// the one the algorithm names (RFC 7518 §3.4, §3.3, RFC 8037 §3.1), so a key
// can never be used with an algorithm it was not made for.
func keyFits(k jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg { // RFC 7517 §4.4
		return false
	}
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return key.N.BitLen() >= 2048 // RFC 7518 §3.3
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}
