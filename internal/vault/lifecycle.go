package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// revokeTimeout bounds the call to a provider's revocation endpoint.
const revokeTimeout = 10 * time.Second

// Revoke disconnects: it calls the provider's revocation endpoint (RFC
// 7009) when there is one — best effort, a failure is logged — then
// deletes the connection and its ciphertext (connection.revoked, reason;
// "" means "disconnected").
//
// It revokes the refresh token when there is one (RFC 7009 §2.1: that
// ends the grant and, at most providers, its access tokens), else the
// access token. It takes the refresh lease first when it can, so that no
// refresh in flight stores a token it has just revoked.
func (v *Vault) Revoke(ctx context.Context, m audit.Meta, tenantID, connectionID, reason string) error {
	if reason == "" {
		reason = "disconnected"
	}
	c, err := v.cfg.Store.GetConnection(ctx, tenantID, connectionID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoConnection
	}
	if err != nil {
		return fmt.Errorf("vault: reading connection: %w", err)
	}
	p, err := v.cfg.Store.GetProvider(ctx, tenantID, c.ProviderID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("vault: reading provider: %w", err)
	}
	if p != nil && p.Kind == store.ProviderOAuth2 && p.RevocationEndpoint != "" {
		v.awaitFlight(ctx, c)
		if lc := v.leaseForRevoke(ctx, c); lc != nil {
			c = lc
		}
		v.revokeTokens(ctx, p, c)
	}
	ev := audit.NewConnectionRevoked(v.meta(m, tenantID), connFields(c, reason))
	if err := v.cfg.Store.DeleteConnection(ctx, tenantID, connectionID, ev); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoConnection
		}
		return fmt.Errorf("vault: deleting connection: %w", err)
	}
	return nil
}

// awaitFlight waits for a refresh of c running in this process (the
// lease does not tell this process's own refreshes apart).
func (v *Vault) awaitFlight(ctx context.Context, c *store.Connection) {
	v.flightMu.Lock()
	f := v.flights[flightKey(c)]
	v.flightMu.Unlock()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
		}
	}
}

// leaseForRevoke takes c's refresh lease, waiting a little for a refresh
// another process is running; nil when it cannot (then Revoke goes on with
// what it read: revoking is never blocked by a refresh).
func (v *Vault) leaseForRevoke(ctx context.Context, c *store.Connection) *store.Connection {
	wait, cancel := context.WithTimeout(ctx, v.cfg.LeaseTTL)
	defer cancel()
	poll := pollMin
	for {
		now := v.cfg.Now()
		lc, err := v.cfg.Store.AcquireRefreshLease(wait, c.TenantID, c.ID, v.cfg.Holder, now, now.Add(v.cfg.LeaseTTL))
		if err == nil {
			return lc
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-wait.Done():
			t.Stop()
			return nil
		}
		poll = min(2*poll, pollMax)
	}
}

// revokeTokens calls the provider's revocation endpoint; failures are
// logged (never with a token) and otherwise ignored.
func (v *Vault) revokeTokens(ctx context.Context, p *store.Provider, c *store.Connection) {
	s, err := v.open(c)
	if err != nil {
		v.cfg.Logger.WarnContext(ctx, "vault: revocation skipped: the credential does not open",
			"provider", p.ID, "connection_id", c.ID, "err", err)
		return
	}
	defer s.clear()
	tok, hint := s.RefreshToken, "refresh_token"
	if tok == "" {
		tok, hint = s.AccessToken, "access_token"
	}
	if tok == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	if err := v.revokeAtProvider(rctx, p, tok, hint); err != nil {
		v.cfg.Logger.WarnContext(ctx, "vault: provider revocation failed; deleting the connection anyway",
			"provider", p.ID, "connection_id", c.ID, "token_type_hint", hint, "err", err)
		return
	}
	v.cfg.Logger.InfoContext(ctx, "vault: revoked at the provider",
		"provider", p.ID, "connection_id", c.ID, "token_type_hint", hint)
}

// pageSize is how many connections RefreshDue reads at a time.
const pageSize = 200

// RefreshDue refreshes, in the background, every connection whose token
// expires within the margin or that was not refreshed for KeepAlive, and
// destroys rotated-out API keys past their overlap. It returns how many
// connections it refreshed. A connection in backoff (NextAttemptAt) is
// left for later; failures are recorded on the connection (backoff,
// needs_reauth) and do not stop the sweep.
func (v *Vault) RefreshDue(ctx context.Context) (int, error) {
	var m audit.Meta // the hub itself; trigger "background" says so
	refreshed := 0
	var errs []error
	for _, tenant := range v.cfg.Tenants {
		n, err := v.refreshTenant(ctx, m, tenant)
		refreshed += n
		if err != nil {
			errs = append(errs, err)
		}
		if err := v.destroyPrevious(ctx, tenant); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return refreshed, errors.Join(errs...)
}

func (v *Vault) refreshTenant(ctx context.Context, m audit.Meta, tenant string) (int, error) {
	providers := map[string]*store.Provider{}
	provider := func(id string) (*store.Provider, error) {
		if p, ok := providers[id]; ok {
			return p, nil
		}
		p, err := v.cfg.Store.GetProvider(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		providers[id] = p
		return p, nil
	}
	refreshed := 0
	after := ""
	for {
		now := v.cfg.Now()
		cs, err := v.cfg.Store.ListConnections(ctx, store.ConnectionFilter{
			TenantID:        tenant,
			Statuses:        []string{store.ConnectionActive, store.ConnectionRefreshing},
			ExpiresBefore:   now.Add(v.cfg.RefreshMargin),
			RefreshedBefore: now.Add(-v.cfg.KeepAlive),
			After:           after,
			Limit:           pageSize,
		})
		if err != nil {
			return refreshed, fmt.Errorf("vault: listing connections due: %w", err)
		}
		for _, c := range cs {
			if ctx.Err() != nil {
				return refreshed, ctx.Err()
			}
			if c.NextAttemptAt.After(now) || !v.due(c, now, triggerBackground) {
				continue
			}
			p, err := provider(c.ProviderID)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					continue // deleted with its connections meanwhile
				}
				return refreshed, fmt.Errorf("vault: reading provider: %w", err)
			}
			if p.Kind != store.ProviderOAuth2 || p.Disabled {
				continue
			}
			f := v.startFlight(ctx, m, p, c, triggerBackground)
			select {
			case <-f.done:
			case <-ctx.Done():
				return refreshed, ctx.Err()
			}
			if f.refreshed {
				refreshed++
			}
			if f.err != nil && !errors.Is(f.err, ErrNeedsReauth) && !errors.Is(f.err, ErrProviderUnavailable) && !errors.Is(f.err, ErrNoConnection) {
				v.cfg.Logger.WarnContext(ctx, "vault: background refresh", "provider", p.ID, "connection_id", c.ID, "err", f.err)
			}
		}
		if len(cs) < pageSize {
			return refreshed, nil
		}
		after = cs[len(cs)-1].ID
	}
}

// destroyPrevious removes rotated-out API keys whose overlap has ended.
func (v *Vault) destroyPrevious(ctx context.Context, tenant string) error {
	ps, err := v.cfg.Store.ListProviders(ctx, tenant)
	if err != nil {
		return fmt.Errorf("vault: listing providers: %w", err)
	}
	for _, p := range ps {
		if p.Kind != store.ProviderAPIKey {
			continue
		}
		after := ""
		for {
			cs, err := v.cfg.Store.ListConnections(ctx, store.ConnectionFilter{TenantID: tenant, ProviderID: p.ID, After: after, Limit: pageSize})
			if err != nil {
				return fmt.Errorf("vault: listing connections: %w", err)
			}
			for _, c := range cs {
				if len(c.PreviousSecret) == 0 || v.cfg.Now().Before(c.PreviousUntil) {
					continue
				}
				_, err := v.cfg.Store.UpdateConnection(ctx, tenant, c.ID, func(cur *store.Connection) error {
					if len(cur.PreviousSecret) == 0 || v.cfg.Now().Before(cur.PreviousUntil) {
						return errNothingToDo
					}
					cur.PreviousSecret, cur.PreviousUntil = nil, time.Time{}
					cur.UpdatedAt = v.cfg.Now()
					return nil
				}, nil)
				if err != nil && !errors.Is(err, errNothingToDo) && !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("vault: destroying a rotated-out key: %w", err)
				}
			}
			if len(cs) < pageSize {
				break
			}
			after = cs[len(cs)-1].ID
		}
	}
	return nil
}

var errNothingToDo = errors.New("vault: nothing to do")

// Run calls RefreshDue every interval until ctx ends.
func (v *Vault) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := v.RefreshDue(ctx)
		if err != nil && ctx.Err() == nil {
			v.cfg.Logger.WarnContext(ctx, "vault: background refresh", "err", err)
		} else if n > 0 {
			v.cfg.Logger.InfoContext(ctx, "vault: background refresh", "refreshed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
