package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// errUnbuilt marks the store methods of issue 10 whose backend code is
// being written; they are replaced before the issue is resolved.
var errUnbuilt = errors.New("postgres: not built yet")

func (s *Store) ClientsBySoftware(ctx context.Context, tenantID, softwareID, name string) ([]*store.Client, error) {
	return nil, errUnbuilt
}

func (s *Store) PruneClients(ctx context.Context, req store.PruneRequest, ev func(*store.Client) *store.AuditEvent) ([]*store.Client, error) {
	return nil, errUnbuilt
}

func (s *Store) PutDomain(ctx context.Context, d *store.Domain, ev *store.AuditEvent) error {
	return errUnbuilt
}

func (s *Store) ListDomains(ctx context.Context, tenantID string) ([]*store.Domain, error) {
	return nil, nil
}

func (s *Store) DeleteDomain(ctx context.Context, tenantID, pattern string, ev *store.AuditEvent) error {
	return errUnbuilt
}

func (s *Store) RevokeInstallation(ctx context.Context, tenantID, userID, clientID, redirectURI string, now time.Time, ev *store.AuditEvent) (int, error) {
	return 0, errUnbuilt
}
