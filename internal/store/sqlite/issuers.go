package sqlite

import (
	"context"
	"errors"

	"github.com/agentid/agentid/internal/store"
)

// Trusted issuers and access-token records (migration 0009): contract in
// place, implementation pending.

var errPending = errors.ErrUnsupported

// CreateIssuer implements store.Store.
func (s *Store) CreateIssuer(ctx context.Context, iss *store.Issuer, ev *store.AuditEvent) error {
	return errPending
}

// GetIssuer implements store.Store.
func (s *Store) GetIssuer(ctx context.Context, tenantID, id string) (*store.Issuer, error) {
	return nil, errPending
}

// ListIssuers implements store.Store.
func (s *Store) ListIssuers(ctx context.Context, tenantID string) ([]*store.Issuer, error) {
	return nil, errPending
}

// UpdateIssuer implements store.Store.
func (s *Store) UpdateIssuer(ctx context.Context, iss *store.Issuer, ev *store.AuditEvent) error {
	return errPending
}

// DeleteIssuer implements store.Store.
func (s *Store) DeleteIssuer(ctx context.Context, tenantID, id string, ev *store.AuditEvent) error {
	return errPending
}

// GetAccessToken implements store.Store.
func (s *Store) GetAccessToken(ctx context.Context, jti string) (*store.AccessToken, error) {
	return nil, errPending
}
