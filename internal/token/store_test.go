package token

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// memStore implements only the signing-key methods of store.Store; calling
// any other method panics on the nil embedded interface. It copies records
// in and out, as a database would, so aliasing bugs show up.
type memStore struct {
	store.Store
	mu   sync.Mutex
	keys map[string]store.SigningKey
}

func newMemStore() *memStore { return &memStore{keys: map[string]store.SigningKey{}} }

func (m *memStore) CreateSigningKey(_ context.Context, k *store.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[k.ID]; ok {
		return fmt.Errorf("signing key %q: %w", k.ID, store.ErrConflict)
	}
	c := *k
	c.PrivateEnc = slices.Clone(k.PrivateEnc)
	m.keys[k.ID] = c
	return nil
}

func (m *memStore) ListSigningKeys(context.Context) ([]*store.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*store.SigningKey, 0, len(m.keys))
	for _, k := range m.keys {
		c := k
		c.PrivateEnc = slices.Clone(k.PrivateEnc)
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *store.SigningKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (m *memStore) UpdateSigningKey(_ context.Context, k *store.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.keys[k.ID]
	if !ok {
		return store.ErrNotFound
	}
	c.RetiredAt, c.ExpiresAt = k.RetiredAt, k.ExpiresAt
	m.keys[k.ID] = c
	return nil
}

func (m *memStore) DeleteExpiredSigningKeys(_ context.Context, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, k := range m.keys {
		if !k.ExpiresAt.IsZero() && k.ExpiresAt.Before(now) {
			delete(m.keys, id)
		}
	}
	return nil
}

// row returns a copy of the stored key.
func (m *memStore) row(id string) (store.SigningKey, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	return k, ok
}

// set overwrites a stored row (for tampering tests).
func (m *memStore) set(k store.SigningKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[k.ID] = k
}

// clock is an injectable, settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
