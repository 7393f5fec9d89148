package vault

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Refresh timing.
const (
	// forceWindow: a forced refresh (a resource server saw a 401) is not
	// repeated within this long of the last refresh; the others asking at
	// once get the token just refreshed.
	forceWindow = 5 * time.Second
	// Backoff after provider failures: backoffBase doubled per failure,
	// capped at backoffMax, with jitter (a random point in the upper half).
	backoffBase = 30 * time.Second
	backoffMax  = time.Hour
	// Polling a connection whose refresh lease another process holds.
	pollMin = 10 * time.Millisecond
	pollMax = 250 * time.Millisecond
)

// Refresh triggers (connection.refreshed "trigger").
const (
	triggerOnDemand   = "on_demand"
	triggerForced     = "forced"
	triggerBackground = "background"
)

// unavailableError is ErrProviderUnavailable with the time the vault
// tries the provider again.
type unavailableError struct {
	providerID string
	retryAt    time.Time
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("%v: %s (next attempt %s)", ErrProviderUnavailable, e.providerID, e.retryAt.UTC().Format(time.RFC3339))
}

func (e *unavailableError) Is(target error) bool { return target == ErrProviderUnavailable }

// RetryAt returns when the vault will next try the provider, for an
// ErrProviderUnavailable from Credential (an HTTP Retry-After); false for
// any other error.
func RetryAt(err error) (time.Time, bool) {
	var ue *unavailableError
	if errors.As(err, &ue) {
		return ue.retryAt, true
	}
	return time.Time{}, false
}

func (v *Vault) meta(m audit.Meta, tenantID string) audit.Meta {
	return m.Stamped(tenantID, v.cfg.Now())
}

func connFields(c *store.Connection, reason string) audit.ConnectionFields {
	return audit.ConnectionFields{
		ProviderID:   c.ProviderID,
		ConnectionID: c.ID,
		OwnerKind:    c.OwnerKind,
		OwnerID:      c.OwnerID,
		Scopes:       slices.Clone(c.Scopes),
		Reason:       reason,
	}
}

// Find returns the owner's best connection to provider for scopes: an
// active (or refreshing) one whose granted scopes hold every one asked,
// the one granting the fewest scopes first (a provider token cannot be
// narrowed, so a wider connection would hand the caller more than it
// asked for), then the most recently used; the tenant's own connection
// when the user has none. ErrNeedsReauth when only connections needing the person again
// match, ErrNoConnection when none does.
//
// A person who holds any connection of their own to the provider never
// gets the tenant's (store.OwnerTenant: for people who hold none), even
// when theirs all need the person again or lack a scope asked: the vault
// does not silently switch a user to the tenant's credential (another
// identity at the provider) because theirs broke or is narrower. They
// connect again, or with the scopes asked.
func (v *Vault) Find(ctx context.Context, tenantID, providerID, userID string, scopes []string) (*store.Connection, error) {
	owners := []Owner{{store.OwnerTenant, tenantID}}
	if userID != "" {
		owners = []Owner{{store.OwnerUser, userID}, {store.OwnerTenant, tenantID}}
	}
	for _, o := range owners {
		cs, err := v.cfg.Store.ListConnections(ctx, store.ConnectionFilter{
			TenantID:   tenantID,
			ProviderID: providerID,
			OwnerKind:  o.Kind,
			OwnerID:    o.ID,
			Statuses:   []string{store.ConnectionActive, store.ConnectionRefreshing, store.ConnectionNeedsReauth},
		})
		if err != nil {
			return nil, fmt.Errorf("vault: listing connections: %w", err)
		}
		var best *store.Connection
		reauth := false
		for _, c := range cs {
			if !holdsAll(c.Scopes, scopes) {
				continue
			}
			if c.Status == store.ConnectionNeedsReauth {
				reauth = true
				continue
			}
			if best == nil || better(c, best) {
				best = c
			}
		}
		switch {
		case best != nil:
			return best, nil
		case reauth:
			return nil, ErrNeedsReauth
		case len(cs) > 0:
			return nil, ErrNoConnection
		}
	}
	return nil, ErrNoConnection
}

func holdsAll(granted, asked []string) bool {
	for _, s := range asked {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return true
}

// better: the fewest granted scopes (least privilege), then the most
// recently used, then the newest, then by id (stable).
func better(a, b *store.Connection) bool {
	if len(a.Scopes) != len(b.Scopes) {
		return len(a.Scopes) < len(b.Scopes)
	}
	if !a.LastUsedAt.Equal(b.LastUsedAt) {
		return a.LastUsedAt.After(b.LastUsedAt)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID < b.ID
}

// Credential opens the connection's credential, refreshing it first when
// it expires within the margin or when force is set and it was not
// refreshed in the last few seconds (a resource server saw a 401). One
// refresh at a time per connection: across goroutines by single flight,
// across processes by the store's refresh lease; the others wait for it
// and read the result. A provider invalid_grant marks the connection
// needs_reauth (ErrNeedsReauth). It does not record the use; the caller
// writes connection.retrieved with store.TouchConnection.
//
// When a refresh fails otherwise (network, 5xx, another OAuth error) the
// vault backs off and hands out the current access token while it is still
// valid; after that, ErrProviderUnavailable (RetryAt says until when).
//
// For an API-key connection force has another meaning: the key was
// refused, so during a rotation's overlap the previous key is returned.
func (v *Vault) Credential(ctx context.Context, m audit.Meta, c *store.Connection, force bool) (*Credential, error) {
	if c == nil {
		return nil, ErrNoConnection
	}
	switch c.Status {
	case store.ConnectionNeedsReauth:
		return nil, ErrNeedsReauth
	case store.ConnectionRevoked:
		return nil, ErrNoConnection
	}
	p, err := v.cfg.Store.GetProvider(ctx, c.TenantID, c.ProviderID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoConnection
	}
	if err != nil {
		return nil, fmt.Errorf("vault: reading provider: %w", err)
	}
	if p.Kind == store.ProviderAPIKey {
		return v.apiKeyCredential(c, p, force)
	}
	trigger := triggerOnDemand
	if force {
		trigger = triggerForced
	}
	if v.due(c, v.cfg.Now(), trigger) {
		c, err = v.refresh(ctx, m, p, c, trigger)
		if err != nil {
			return nil, err
		}
	}
	return v.oauthCredential(c, p)
}

func (v *Vault) oauthCredential(c *store.Connection, p *store.Provider) (*Credential, error) {
	now := v.cfg.Now()
	if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
		// Only reached when a refresh was not possible (backoff).
		return nil, &unavailableError{providerID: p.ID, retryAt: c.NextAttemptAt}
	}
	s, err := v.open(c)
	if err != nil {
		return nil, err
	}
	defer s.clear()
	if s.AccessToken == "" {
		return nil, fmt.Errorf("%w: connection %s holds no access token", ErrDecrypt, c.ID)
	}
	return &Credential{
		ConnectionID: c.ID,
		ProviderID:   c.ProviderID,
		Kind:         store.ProviderOAuth2,
		AccessToken:  s.AccessToken,
		TokenType:    s.TokenType,
		Scopes:       slices.Clone(c.Scopes),
		ExpiresAt:    c.ExpiresAt,
	}, nil
}

// due says whether c's access token should be refreshed now.
func (v *Vault) due(c *store.Connection, now time.Time, trigger string) bool {
	expiring := !c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now.Add(v.cfg.RefreshMargin))
	switch trigger {
	case triggerForced:
		return expiring || now.Sub(c.LastRefreshedAt) >= forceWindow
	case triggerBackground:
		return expiring || !c.LastRefreshedAt.After(now.Add(-v.cfg.KeepAlive))
	default:
		return expiring
	}
}

// flight is one refresh of a connection running in this process; others
// asking for the same connection wait for it.
type flight struct {
	done      chan struct{}
	c         *store.Connection
	refreshed bool // this flight refreshed at the provider successfully
	err       error
}

// refresh refreshes c once for every goroutine of this process asking at
// the same time. The refresh itself runs detached from ctx (bounded by the
// lease): abandoning a request that a provider answers with a rotated
// refresh token would lose the only valid one.
func (v *Vault) refresh(ctx context.Context, m audit.Meta, p *store.Provider, c *store.Connection, trigger string) (*store.Connection, error) {
	f := v.startFlight(ctx, m, p, c, trigger)
	select {
	case <-f.done:
		return f.c, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refreshed tells Config.Refreshed the outcome of a refresh that asked
// the provider.
func (v *Vault) refreshed(outcome string) {
	if v.cfg.Refreshed != nil {
		v.cfg.Refreshed(outcome)
	}
}

func flightKey(c *store.Connection) string { return c.TenantID + "\x00" + c.ID }

func (v *Vault) startFlight(ctx context.Context, m audit.Meta, p *store.Provider, c *store.Connection, trigger string) *flight {
	key := flightKey(c)
	v.flightMu.Lock()
	defer v.flightMu.Unlock()
	if f, ok := v.flights[key]; ok {
		return f
	}
	f := &flight{done: make(chan struct{})}
	v.flights[key] = f
	go func() {
		// Waiting for another holder's lease, then our own refresh.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*v.cfg.LeaseTTL)
		f.c, f.refreshed, f.err = v.refreshOnce(rctx, m, p, c, trigger)
		cancel()
		v.flightMu.Lock()
		delete(v.flights, key)
		v.flightMu.Unlock()
		close(f.done)
	}()
	return f
}

// refreshOnce refreshes c unless the row shows someone already did: it
// takes the store's refresh lease, or waits while another process holds
// it and reads what that process stored.
func (v *Vault) refreshOnce(ctx context.Context, m audit.Meta, p *store.Provider, c *store.Connection, trigger string) (*store.Connection, bool, error) {
	poll := pollMin
	for {
		now := v.cfg.Now()
		cur, err := v.cfg.Store.GetConnection(ctx, c.TenantID, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, ErrNoConnection
		}
		if err != nil {
			return nil, false, fmt.Errorf("vault: reading connection: %w", err)
		}
		switch {
		case cur.Status == store.ConnectionNeedsReauth:
			return nil, false, ErrNeedsReauth
		case cur.Status == store.ConnectionRevoked:
			return nil, false, ErrNoConnection
		case !v.due(cur, now, trigger):
			return cur, false, nil // refreshed meanwhile, here or elsewhere
		case cur.NextAttemptAt.After(now):
			return v.backingOff(cur, p)
		}
		if cur.RefreshHolder == "" || cur.RefreshHolder == v.cfg.Holder || !cur.RefreshLeaseUntil.After(now) {
			lc, err := v.cfg.Store.AcquireRefreshLease(ctx, c.TenantID, c.ID, v.cfg.Holder, now, now.Add(v.cfg.LeaseTTL))
			switch {
			case err == nil:
				if !v.due(lc, now, trigger) || lc.NextAttemptAt.After(now) || lc.Status != store.ConnectionActive && lc.Status != store.ConnectionRefreshing {
					// Someone finished between our read and the lease.
					v.releaseLease(ctx, lc)
					continue
				}
				return v.refreshHolding(ctx, m, p, lc, trigger)
			case errors.Is(err, store.ErrConflict):
				// Another process holds the lease: wait below.
			case errors.Is(err, store.ErrNotFound):
				return nil, false, ErrNoConnection
			default:
				return nil, false, fmt.Errorf("vault: refresh lease: %w", err)
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			// The holder has not finished within our bound: serve what is
			// still valid rather than nothing.
			if cur.ExpiresAt.IsZero() || v.cfg.Now().Before(cur.ExpiresAt) {
				return cur, false, nil
			}
			return nil, false, &unavailableError{providerID: p.ID, retryAt: cur.RefreshLeaseUntil}
		}
		poll = min(2*poll, pollMax)
	}
}

// backingOff answers while the provider is in backoff: the current token
// while it is valid, else ErrProviderUnavailable.
func (v *Vault) backingOff(c *store.Connection, p *store.Provider) (*store.Connection, bool, error) {
	if c.ExpiresAt.IsZero() || v.cfg.Now().Before(c.ExpiresAt) {
		return c, false, nil
	}
	return nil, false, &unavailableError{providerID: p.ID, retryAt: c.NextAttemptAt}
}

var errLeaseLost = errors.New("vault: refresh lease lost")

// releaseLease gives up c's lease without another change.
func (v *Vault) releaseLease(ctx context.Context, c *store.Connection) {
	_, err := v.cfg.Store.UpdateConnection(ctx, c.TenantID, c.ID, func(cur *store.Connection) error {
		if cur.RefreshHolder != v.cfg.Holder {
			return errLeaseLost
		}
		cur.RefreshHolder, cur.RefreshLeaseUntil = "", time.Time{}
		return nil
	}, nil)
	if err != nil && !errors.Is(err, errLeaseLost) {
		v.cfg.Logger.WarnContext(ctx, "vault: releasing a refresh lease", "connection_id", c.ID, "err", err)
	}
}

// refreshHolding refreshes c, whose lease this process holds, at the
// provider and stores the outcome, releasing the lease.
func (v *Vault) refreshHolding(ctx context.Context, m audit.Meta, p *store.Provider, c *store.Connection, trigger string) (*store.Connection, bool, error) {
	s, err := v.open(c)
	if err != nil {
		v.releaseLease(ctx, c)
		return nil, false, err
	}
	defer s.clear()
	if s.RefreshToken == "" {
		// Nothing to refresh with: serve the token while it lasts, then the
		// person has to connect again.
		if c.ExpiresAt.IsZero() || v.cfg.Now().Before(c.ExpiresAt) {
			v.releaseLease(ctx, c)
			return c, false, nil
		}
		return nil, false, v.markNeedsReauth(ctx, m, c, "no_refresh_token")
	}
	// The provider call must end well inside the lease, so that no other
	// process takes the lease over while this refresh token is in flight.
	callCtx, cancel := context.WithTimeout(ctx, v.cfg.LeaseTTL*3/4)
	tok, err := v.exchangeRefresh(callCtx, p, s.RefreshToken)
	cancel()
	if err != nil {
		var re *refreshError
		if errors.As(err, &re) && re.invalidGrant {
			return nil, false, v.markNeedsReauth(ctx, m, c, re.reason)
		}
		reason := "client_config"
		if re != nil {
			reason = re.reason
		}
		return v.recordFailure(ctx, m, p, c, reason, err)
	}
	now := v.cfg.Now()
	ns := &secret{AccessToken: tok.AccessToken, TokenType: tok.Type(), RefreshToken: tok.RefreshToken}
	if ns.RefreshToken == "" {
		ns.RefreshToken = s.RefreshToken // a provider that does not rotate
	}
	defer ns.clear()
	scopes := refreshedScopes(p, tok, c.Scopes)
	f := connFields(c, "")
	f.Trigger = trigger
	f.Scopes = scopes
	ev := audit.NewConnectionRefreshed(v.meta(m, c.TenantID), f)
	updated, err := v.cfg.Store.UpdateConnection(ctx, c.TenantID, c.ID, func(cur *store.Connection) error {
		if cur.RefreshHolder != v.cfg.Holder && !bytes.Equal(cur.Secret, c.Secret) {
			// Our lease ran out and another process refreshed since: its
			// tokens are the newer ones.
			return errLeaseLost
		}
		key, err := v.openDataKey(cur)
		if err != nil {
			return err
		}
		defer clear(key)
		sealed, err := v.sealSecret(key, purposeSecret, cur, ns)
		if err != nil {
			return err
		}
		cur.Secret = sealed
		cur.Scopes = scopes
		cur.Status = store.ConnectionActive
		cur.ExpiresAt = expiry(tok, now)
		cur.LastRefreshedAt = now
		cur.Failures, cur.NextAttemptAt = 0, time.Time{}
		cur.RefreshHolder, cur.RefreshLeaseUntil = "", time.Time{}
		cur.UpdatedAt = now
		return nil
	}, ev)
	if errors.Is(err, errLeaseLost) {
		v.cfg.Logger.WarnContext(ctx, "vault: refresh lease ran out; kept the newer tokens another process stored",
			"provider", p.ID, "connection_id", c.ID)
		cur, gerr := v.cfg.Store.GetConnection(ctx, c.TenantID, c.ID)
		return cur, false, gerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("vault: storing refreshed tokens: %w", err)
	}
	v.refreshed(RefreshRefreshed)
	return updated, true, nil
}

// refreshedScopes: a refresh response may narrow the grant (RFC 6749 §6
// forbids widening it), so only scopes the connection held stay.
func refreshedScopes(p *store.Provider, tok interface{ Extra(string) any }, held []string) []string {
	raw, _ := tok.Extra("scope").(string)
	fields := splitScopes(raw)
	if len(fields) == 0 {
		return slices.Clone(held)
	}
	var out []string
	for _, s := range held {
		if slices.Contains(fields, s) {
			out = append(out, s)
		}
	}
	return out
}

// markNeedsReauth records that the provider no longer honours c's grant.
func (v *Vault) markNeedsReauth(ctx context.Context, m audit.Meta, c *store.Connection, reason string) error {
	v.refreshed(RefreshNeedsReauth)
	now := v.cfg.Now()
	ev := audit.NewConnectionNeedsReauth(v.meta(m, c.TenantID), connFields(c, reason))
	_, err := v.cfg.Store.UpdateConnection(ctx, c.TenantID, c.ID, func(cur *store.Connection) error {
		cur.Status = store.ConnectionNeedsReauth
		cur.Failures, cur.NextAttemptAt = 0, time.Time{}
		cur.RefreshHolder, cur.RefreshLeaseUntil = "", time.Time{}
		cur.UpdatedAt = now
		return nil
	}, ev)
	if err != nil {
		return fmt.Errorf("vault: marking connection for reconnection: %w", err)
	}
	v.cfg.Logger.InfoContext(ctx, "vault: connection needs the person to connect again",
		"provider", c.ProviderID, "connection_id", c.ID, "reason", reason)
	return ErrNeedsReauth
}

// recordFailure counts a failed refresh and sets the next attempt.
func (v *Vault) recordFailure(ctx context.Context, m audit.Meta, p *store.Provider, c *store.Connection, reason string, cause error) (*store.Connection, bool, error) {
	v.refreshed(RefreshFailed)
	now := v.cfg.Now()
	failures := c.Failures + 1
	next := now.Add(v.backoff(failures))
	f := connFields(c, reason)
	f.Failures = failures
	ev := audit.NewConnectionRefreshFailed(v.meta(m, c.TenantID), f)
	updated, err := v.cfg.Store.UpdateConnection(ctx, c.TenantID, c.ID, func(cur *store.Connection) error {
		cur.Failures = failures
		cur.NextAttemptAt = next
		cur.RefreshHolder, cur.RefreshLeaseUntil = "", time.Time{}
		cur.UpdatedAt = now
		return nil
	}, ev)
	if err != nil {
		return nil, false, fmt.Errorf("vault: recording a failed refresh: %w", err)
	}
	v.cfg.Logger.WarnContext(ctx, "vault: refresh failed; backing off",
		"provider", p.ID, "connection_id", c.ID, "reason", reason, "failures", failures,
		"next_attempt", next, "err", cause)
	c2, _, err := v.backingOff(updated, p)
	return c2, false, err
}

// backoff is the wait after the n-th consecutive failure: base·2^(n-1),
// capped, then a uniformly random point in its upper half (jitter, so
// that connections failing together do not retry together).
func (v *Vault) backoff(n int) time.Duration {
	d := backoffMax
	if n >= 1 && n <= 30 {
		d = min(backoffBase<<(n-1), backoffMax)
	}
	var b [8]byte
	if _, err := io.ReadFull(v.cfg.Rand, b[:]); err != nil {
		return d
	}
	half := d / 2
	return half + time.Duration(binary.BigEndian.Uint64(b[:])%uint64(half+1))
}

// apiKeyCredential opens an API-key connection's key: the current one,
// or, when force says it was refused, the previous one while its overlap
// lasts.
func (v *Vault) apiKeyCredential(c *store.Connection, p *store.Provider, force bool) (*Credential, error) {
	ct, purpose := c.Secret, purposeSecret
	if force && len(c.PreviousSecret) > 0 && v.cfg.Now().Before(c.PreviousUntil) {
		ct, purpose = c.PreviousSecret, purposePreviousSecret
	}
	s, err := v.openPurpose(c, purpose, ct)
	if err != nil {
		return nil, err
	}
	defer s.clear()
	if s.APIKey == "" {
		return nil, fmt.Errorf("%w: connection %s holds no key", ErrDecrypt, c.ID)
	}
	cred := &Credential{
		ConnectionID: c.ID,
		ProviderID:   c.ProviderID,
		Kind:         store.ProviderAPIKey,
		AccessToken:  s.APIKey,
		Header:       p.KeyHeader,
		Query:        p.KeyQuery,
	}
	if p.KeyHeader != "" {
		format := p.KeyFormat
		if format == "" {
			format = "{key}"
		}
		cred.HeaderValue = strings.ReplaceAll(format, "{key}", s.APIKey)
	}
	return cred, nil
}
