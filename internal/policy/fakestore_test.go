package policy

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/agentid/agentid/internal/store"
)

// fakeStore implements the few store methods this package uses, in memory.
// Calling any other method panics (the embedded interface is nil).
type fakeStore struct {
	store.Store

	mu        sync.Mutex
	sets      []*store.PolicySet
	active    int64
	failNext  error
	loads     int
	clients   map[string]*store.Client
	users     map[string]*store.User
	resources map[string]*store.Resource
	events    []*store.AuditEvent
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		clients:   map[string]*store.Client{},
		users:     map[string]*store.User{},
		resources: map[string]*store.Resource{},
	}
}

func (f *fakeStore) CreatePolicySet(_ context.Context, ps *store.PolicySet, _ *store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *ps
	cp.Files = maps.Clone(ps.Files)
	cp.Version = int64(len(f.sets) + 1)
	ps.Version = cp.Version
	f.sets = append(f.sets, &cp)
	f.active = cp.Version
	return nil
}

func (f *fakeStore) ActivatePolicySet(_ context.Context, _ string, version int64, _ *store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if version < 1 || version > int64(len(f.sets)) {
		return store.ErrNotFound
	}
	f.active = version
	return nil
}

func (f *fakeStore) ActivePolicySet(_ context.Context, tenantID string) (*store.PolicySet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if err := f.failNext; err != nil {
		f.failNext = nil
		return nil, err
	}
	if f.active == 0 {
		return nil, store.ErrNotFound
	}
	cp := *f.sets[f.active-1]
	cp.Active = true
	cp.TenantID = tenantID
	return &cp, nil
}

func (f *fakeStore) GetClient(_ context.Context, _, id string) (*store.Client, error) {
	if c, ok := f.clients[id]; ok {
		return c, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) GetUser(_ context.Context, _, id string) (*store.User, error) {
	if u, ok := f.users[id]; ok {
		return u, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) GetResource(_ context.Context, _, uri string) (*store.Resource, error) {
	if r, ok := f.resources[uri]; ok {
		return r, nil
	}
	return nil, store.ErrNotFound
}

// ListAudit returns matching events newest first, as the contract says.
func (f *fakeStore) ListAudit(_ context.Context, fl store.AuditFilter) ([]*store.AuditEvent, error) {
	var out []*store.AuditEvent
	for _, ev := range slices.Backward(f.events) {
		if (fl.Type == "" || ev.Type == fl.Type) && (fl.TenantID == "" || ev.TenantID == fl.TenantID) &&
			!ev.Time.Before(fl.Since) {
			out = append(out, ev)
		}
	}
	if fl.Limit > 0 && len(out) > fl.Limit {
		out = out[:fl.Limit]
	}
	return out, nil
}

func (f *fakeStore) AppendAudit(_ context.Context, ev *store.AuditEvent) error {
	ev.ID = int64(len(f.events) + 1)
	f.events = append(f.events, ev)
	return nil
}
