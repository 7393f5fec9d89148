package token

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// memStore implements only the signing-key methods of store.Store; calling
// any other method panics on the nil embedded interface. It copies records
// in and out, as a database would, so aliasing bugs show up.
type memStore struct {
	store.Store
	// roundMicro rounds stored times to the nearest microsecond, as
	// PostgreSQL does.
	roundMicro bool
	mu         sync.Mutex
	keys       map[string]store.SigningKey
}

func (m *memStore) t(t time.Time) time.Time {
	if m.roundMicro {
		return t.Round(time.Microsecond)
	}
	return t
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
	c.ActivateAt, c.RetiredAt, c.ExpiresAt, c.CreatedAt = m.t(k.ActivateAt), m.t(k.RetiredAt), m.t(k.ExpiresAt), m.t(k.CreatedAt)
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
	c.RetiredAt, c.ExpiresAt = m.t(k.RetiredAt), m.t(k.ExpiresAt)
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

// backends are the stores the key tests run against: the in-memory fake and
// the real SQLite backend in a temporary directory.
var backends = []struct {
	name string
	open func(testing.TB) store.Store
}{
	{"mem", func(testing.TB) store.Store { return newMemStore() }},
	{"mem rounding to microseconds", func(testing.TB) store.Store { m := newMemStore(); m.roundMicro = true; return m }},
	{"sqlite", func(t testing.TB) store.Store {
		ctx := context.Background()
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func forEachBackend(t *testing.T, test func(*testing.T, func(testing.TB) store.Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.open) })
	}
}

// rowOf returns a copy of the stored key with this id.
func rowOf(t testing.TB, st store.Store, id string) (store.SigningKey, bool) {
	t.Helper()
	keys, err := st.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == id {
			return *k, true
		}
	}
	return store.SigningKey{}, false
}
