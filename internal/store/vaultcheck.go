package store

import (
	"fmt"
	"slices"
)

// CheckProvider refuses a provider the store cannot hold (Providers.
// CreateProvider): an empty tenant, id or kind, or an unknown kind.
func CheckProvider(p *Provider) error {
	switch {
	case p.TenantID == "" || p.ID == "":
		return fmt.Errorf("store: provider %q: tenant and id are required: %w", p.ID, ErrInvalid)
	case p.Kind != ProviderOAuth2 && p.Kind != ProviderAPIKey:
		return fmt.Errorf("store: provider %q: kind %q: %w", p.ID, p.Kind, ErrInvalid)
	case p.KeyOverlap < 0:
		return fmt.Errorf("store: provider %q: negative key overlap: %w", p.ID, ErrInvalid)
	}
	return nil
}

// connectionStatuses are the statuses a stored connection may have.
var connectionStatuses = []string{ConnectionActive, ConnectionRefreshing, ConnectionNeedsReauth, ConnectionRevoked}

// CheckConnection refuses a connection the store cannot hold
// (Connections.CreateConnection, UpdateConnection): an empty tenant, id,
// provider or owner id, an unknown owner kind or status, or a negative
// failure count.
func CheckConnection(c *Connection) error {
	switch {
	case c.TenantID == "" || c.ID == "" || c.ProviderID == "" || c.OwnerID == "":
		return fmt.Errorf("store: connection %q: tenant, id, provider and owner are required: %w", c.ID, ErrInvalid)
	case c.OwnerKind != OwnerUser && c.OwnerKind != OwnerTenant:
		return fmt.Errorf("store: connection %q: owner kind %q: %w", c.ID, c.OwnerKind, ErrInvalid)
	case !slices.Contains(connectionStatuses, c.Status):
		return fmt.Errorf("store: connection %q: status %q: %w", c.ID, c.Status, ErrInvalid)
	case c.Failures < 0:
		return fmt.Errorf("store: connection %q: negative failure count: %w", c.ID, ErrInvalid)
	}
	return nil
}

// ApplyConnectionUpdate runs a backend's UpdateConnection updater on c, a
// connection just read under the update's lock: it turns a panic of update
// into an error (it may run on the backend's writer), refuses a change of
// the connection's key or owner (TenantID, ID, ProviderID, OwnerKind,
// OwnerID) or of CreatedAt as ErrInvalid, and checks the result with
// CheckConnection.
func ApplyConnectionUpdate(c *Connection, update func(*Connection) error) (err error) {
	key := [5]string{c.TenantID, c.ID, c.ProviderID, c.OwnerKind, c.OwnerID}
	created := c.CreatedAt
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: connection update panicked: %v", p)
		}
	}()
	if err := update(c); err != nil {
		return err
	}
	if [5]string{c.TenantID, c.ID, c.ProviderID, c.OwnerKind, c.OwnerID} != key || !c.CreatedAt.Equal(created) {
		return fmt.Errorf("store: a connection update may not change its tenant, id, provider, owner or creation time: %w", ErrInvalid)
	}
	return CheckConnection(c)
}
