package clients

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Pruner is what Prune needs of the store (see store.Clients).
type Pruner interface {
	PruneClients(ctx context.Context, req store.PruneRequest, ev func(*store.Client) *store.AuditEvent) ([]*store.Client, error)
}

// PruneOptions select the clients Prune removes.
type PruneOptions struct {
	TenantID string // default store.DefaultTenant
	// UnusedFor is how long a client must have gone without a token (or,
	// never used, since its registration) to be removed; required.
	UnusedFor time.Duration
	Now       time.Time // default time.Now()
	DryRun    bool
	Limit     int // default and maximum per call: the store's (1000)
	// Audit is the metadata of the client.expired events (its Time is Now).
	Audit audit.Meta
}

// ExpiringMethods are the registration methods whose clients expire when
// unused: the clients that registered themselves. An administrator's
// clients never expire.
var ExpiringMethods = []string{store.RegistrationDCR, store.RegistrationCIMD}

// Prune removes the self-registered clients (ExpiringMethods) unused for
// opts.UnusedFor, each with a client.expired event, in one transaction, and
// returns them; with DryRun it only returns them. A client that holds a
// live refresh token, a live access token or a live consent is never
// removed, however long unused (store.PruneClients).
func Prune(ctx context.Context, st Pruner, opts PruneOptions) ([]*store.Client, error) {
	if opts.UnusedFor <= 0 {
		return nil, errors.New("clients: prune needs a positive unused-for duration")
	}
	if opts.TenantID == "" {
		opts.TenantID = store.DefaultTenant
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	m := opts.Audit
	m.Time = opts.Now
	m = m.Stamped(opts.TenantID, opts.Now)
	gone, err := st.PruneClients(ctx, store.PruneRequest{
		TenantID: opts.TenantID, Methods: ExpiringMethods, UnusedSince: opts.Now.Add(-opts.UnusedFor),
		Now: opts.Now, DryRun: opts.DryRun, Limit: opts.Limit,
	}, func(c *store.Client) *store.AuditEvent {
		return audit.NewClientExpired(m.WithAgent(c), c.ID, c.RegistrationMethod, UnusedSince(c))
	})
	if err != nil {
		return nil, fmt.Errorf("clients: prune: %w", err)
	}
	return gone, nil
}

// UnusedSince is when c was last used: its last token, or its
// registration when it never got one.
func UnusedSince(c *store.Client) time.Time {
	if c.LastUsedAt.After(c.CreatedAt) {
		return c.LastUsedAt
	}
	return c.CreatedAt
}
