package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// errVaultNotBuilt stands for the vault's storage until migration 0010
// lands (issue 12); every method below is replaced then.
var errVaultNotBuilt = errors.New("postgres: vault storage is not built yet")

func (s *Store) ResealSigningKey(ctx context.Context, kid string, from, to []byte) error {
	return errVaultNotBuilt
}

func (s *Store) CreateProvider(ctx context.Context, p *store.Provider, ev *store.AuditEvent) error {
	return errVaultNotBuilt
}

func (s *Store) GetProvider(ctx context.Context, tenantID, id string) (*store.Provider, error) {
	return nil, errVaultNotBuilt
}

func (s *Store) ListProviders(ctx context.Context, tenantID string) ([]*store.Provider, error) {
	return nil, errVaultNotBuilt
}

func (s *Store) UpdateProvider(ctx context.Context, p *store.Provider, ev *store.AuditEvent) error {
	return errVaultNotBuilt
}

func (s *Store) DeleteProvider(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	return errVaultNotBuilt
}

func (s *Store) CreateConnection(ctx context.Context, c *store.Connection, ev *store.AuditEvent) error {
	return errVaultNotBuilt
}

func (s *Store) GetConnection(ctx context.Context, tenantID, id string) (*store.Connection, error) {
	return nil, errVaultNotBuilt
}

func (s *Store) ListConnections(ctx context.Context, f store.ConnectionFilter) ([]*store.Connection, error) {
	return nil, errVaultNotBuilt
}

func (s *Store) UpdateConnection(ctx context.Context, tenantID, id string, update func(*store.Connection) error, ev *store.AuditEvent) (*store.Connection, error) {
	return nil, errVaultNotBuilt
}

func (s *Store) AcquireRefreshLease(ctx context.Context, tenantID, id, holder string, now, until time.Time) (*store.Connection, error) {
	return nil, errVaultNotBuilt
}

func (s *Store) TouchConnection(ctx context.Context, tenantID, id string, at time.Time, ev *store.AuditEvent) error {
	return errVaultNotBuilt
}

func (s *Store) DeleteConnection(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	return errVaultNotBuilt
}
