package policy

import (
	"context"
	"maps"
	"sync"

	"github.com/agentid/agentid/internal/store"
)

// fakeStore keeps policy sets in memory and can fail on demand, for the
// engine tests that inject store failures or count store reads; everything
// else runs on the real SQLite store. Calling any other method panics (the
// embedded interface is nil).
type fakeStore struct {
	store.Store

	mu       sync.Mutex
	sets     []*store.PolicySet
	active   int64
	failNext error
	loads    int
}

func newFakeStore() *fakeStore { return &fakeStore{} }

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
