package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// KEK rotation (agentid kek rotate). The keyring holds the new KEK as
// current and the old ones beside it, so everything keeps opening while
// Rewrap moves the wrapping of every secret to the current KEK, one row at
// a time by compare-and-set. Only the wrapping changes: a connection's
// data key stays the same key, so its Secret and PreviousSecret, sealed
// under the data key, are not touched, and a retrieval that read the row
// before the re-wrap still opens what it read.

// RewrapProgress reports a KEK rotation's progress: how many rows this run
// has re-wrapped so far.
type RewrapProgress struct {
	Connections, SigningKeys, Providers int
}

// Rewrap re-wraps every connection data key, provider client secret and
// signing key not yet under the keyring's current KEK, in batches, each
// row by compare-and-set, so that it runs online beside retrievals and
// can be interrupted and run again (it resumes where rows still name an
// old KEK). progress, when set, is called after every batch. It writes
// one kek.rewrapped event at the end.
//
// It covers the tenant of m (the default tenant when m names none) and
// the hub's signing keys. A row that does not open (its KEK is not in the
// keyring, or it was tampered with) is skipped and reported in the error;
// everything else is still re-wrapped.
func (v *Vault) Rewrap(ctx context.Context, m audit.Meta, progress func(RewrapProgress)) (RewrapProgress, error) {
	return v.rewrap(ctx, m, progress)
}

// rewrapBatch is how many connections one ListConnections page holds.
const rewrapBatch = 200

// rewrapPasses bounds the passes over the connections. A pass finds every
// row that was under an old KEK when it started; a row wrapped by an old
// KEK after the cursor passed it (a hub still running with the old KEK as
// current, or an update that wrote back a stale data key) is found by the
// next pass.
const rewrapPasses = 3

// maxRewrapFailures caps how many failed rows an error names.
const maxRewrapFailures = 5

// errAlreadyCurrent stops an UpdateConnection whose row another process
// re-wrapped first: nothing to write.
var errAlreadyCurrent = errors.New("vault: already under the current KEK")

// rewrapRun carries one Rewrap.
type rewrapRun struct {
	v        *Vault
	ring     *keyring.Keyring
	current  string
	tenantID string
	progress func(RewrapProgress)
	done     RewrapProgress
	failed   int
	failures []error
}

// What re-wrapping one connection did.
type rowResult int

const (
	rowMoved   rowResult = iota // re-wrapped now
	rowSkipped                  // already current, or gone
	rowFailed                   // does not open: recorded in the run
)

func (r *rewrapRun) fail(err error) {
	r.failed++
	if len(r.failures) < maxRewrapFailures {
		r.failures = append(r.failures, err)
	}
}

func (r *rewrapRun) report() {
	if r.progress != nil {
		r.progress(r.done)
	}
}

// rewrapTenant is the tenant a run covers: m's, else the default tenant.
func rewrapTenant(m audit.Meta) string {
	if m.TenantID != "" {
		return m.TenantID
	}
	return store.DefaultTenant
}

func (v *Vault) rewrap(ctx context.Context, m audit.Meta, progress func(RewrapProgress)) (RewrapProgress, error) {
	r := &rewrapRun{
		v:        v,
		ring:     v.cfg.Keyring,
		current:  v.cfg.Keyring.CurrentID(),
		tenantID: rewrapTenant(m),
		progress: progress,
	}
	// Signing keys first: few, and the hub cannot start without them.
	err := r.signingKeys(ctx)
	if err == nil {
		err = r.providers(ctx)
	}
	if err == nil {
		err = r.connections(ctx)
	}
	if err == nil && r.failed > 0 {
		err = fmt.Errorf("vault: %d rows could not be re-wrapped (run again once the cause is fixed): %w",
			r.failed, errors.Join(r.failures...))
	}
	// One event per run, also for a run that stopped early, so the trail
	// shows what moved. Written even when ctx was cancelled (an operator's
	// Ctrl-C), but not when nothing was to be done and nothing failed.
	if r.done != (RewrapProgress{}) || err != nil {
		ev := audit.NewKEKRewrapped(r.meta(m), audit.KEKRewrappedFields{
			KEKID:       r.current,
			Connections: r.done.Connections,
			SigningKeys: r.done.SigningKeys,
			Providers:   r.done.Providers,
		})
		if err != nil {
			ev.Outcome = audit.Failure
		}
		if aerr := v.cfg.Store.AppendAudit(context.WithoutCancel(ctx), ev); aerr != nil {
			err = errors.Join(err, fmt.Errorf("vault: recording kek.rewrapped: %w", aerr))
		}
	}
	return r.done, err
}

func (r *rewrapRun) meta(m audit.Meta) audit.Meta {
	m.TenantID = r.tenantID
	if m.Time.IsZero() {
		m.Time = r.v.cfg.Now()
	}
	return m
}

// signingKeys re-seals every signing key's private half (AAD owned by
// package token) by ResealSigningKey compare-and-set. A conflict means
// someone else changed the key meanwhile: it is read again.
func (r *rewrapRun) signingKeys(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		keys, err := r.v.cfg.Store.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("vault: listing signing keys: %w", err)
		}
		conflict := false
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return err
			}
			if id, err := keyring.KEKID(k.PrivateEnc); err == nil && id == r.current {
				continue
			}
			to, err := r.ring.Rewrap(r.v.cfg.Rand, k.PrivateEnc, token.PrivateKeyAAD(k.ID))
			if err != nil {
				r.fail(fmt.Errorf("signing key %s: %w", k.ID, err))
				continue
			}
			switch err := r.v.cfg.Store.ResealSigningKey(ctx, k.ID, k.PrivateEnc, to); {
			case err == nil:
				r.done.SigningKeys++
			case errors.Is(err, store.ErrNotFound):
				// Expired and deleted meanwhile: nothing to re-wrap.
			case errors.Is(err, store.ErrConflict):
				conflict = true
			default:
				return fmt.Errorf("vault: re-sealing signing key %s: %w", k.ID, err)
			}
		}
		r.report()
		if !conflict {
			return nil
		}
		if attempt == rewrapPasses {
			return errors.New("vault: signing keys kept changing during the re-wrap; run again")
		}
	}
}

// providers re-seals every provider's client secret. Providers are few
// and changed only by an administrator; the row is read again right before
// it is written and skipped when its secret changed meanwhile (an update
// seals under the current KEK itself).
func (r *rewrapRun) providers(ctx context.Context) error {
	ps, err := r.v.cfg.Store.ListProviders(ctx, r.tenantID)
	if err != nil {
		return fmt.Errorf("vault: listing providers: %w", err)
	}
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(p.ClientSecret) == 0 {
			continue
		}
		if id, err := keyring.KEKID(p.ClientSecret); err == nil && id == r.current {
			continue
		}
		to, err := r.ring.Rewrap(r.v.cfg.Rand, p.ClientSecret, providerSecretAAD(p.TenantID, p.ID))
		if err != nil {
			r.fail(fmt.Errorf("provider %s client secret: %w", p.ID, err))
			continue
		}
		fresh, err := r.v.cfg.Store.GetProvider(ctx, p.TenantID, p.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("vault: reading provider %s: %w", p.ID, err)
		}
		if !bytes.Equal(fresh.ClientSecret, p.ClientSecret) {
			continue
		}
		fresh.ClientSecret = to
		// No provider.updated event: nothing an administrator set
		// changed; kek.rewrapped counts it.
		if err := r.v.cfg.Store.UpdateProvider(ctx, fresh, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("vault: storing provider %s: %w", p.ID, err)
		}
		r.done.Providers++
	}
	r.report()
	return nil
}

// connections re-wraps every connection's data key, in batches by cursor,
// each row by UpdateConnection (compare-and-set on the stored row).
func (r *rewrapRun) connections(ctx context.Context) error {
	failed := map[string]bool{}
	for range rewrapPasses {
		moved, err := r.connectionPass(ctx, failed)
		if err != nil {
			return err
		}
		if moved == 0 {
			return nil
		}
	}
	// Still moving rows after every pass: count what is left.
	left := 0
	err := r.eachOldConnection(ctx, func(c *store.Connection) error {
		if !failed[c.ID] {
			left++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if left > 0 {
		return fmt.Errorf("vault: %d connections are still under an old KEK after %d passes; is a hub still running with the old KEK as its current one (kek.file, kek.value)? Restart it with the new one and run again", left, rewrapPasses)
	}
	return nil
}

// connectionPass walks every connection under an old KEK once, skipping
// those that failed before, and returns how many it re-wrapped.
func (r *rewrapRun) connectionPass(ctx context.Context, failed map[string]bool) (int, error) {
	moved := 0
	err := r.eachOldConnection(ctx, func(c *store.Connection) error {
		if failed[c.ID] {
			return nil
		}
		res, err := r.connection(ctx, c)
		switch {
		case err != nil:
			return err
		case res == rowMoved:
			moved++
		case res == rowFailed:
			failed[c.ID] = true
		}
		return nil
	})
	return moved, err
}

// eachOldConnection calls fn for every connection not under the current
// KEK, in ID order, a batch at a time, reporting progress after each.
func (r *rewrapRun) eachOldConnection(ctx context.Context, fn func(*store.Connection) error) error {
	after := ""
	for {
		batch, err := r.v.cfg.Store.ListConnections(ctx, store.ConnectionFilter{
			TenantID: r.tenantID, NotKEK: r.current, After: after, Limit: rewrapBatch,
		})
		if err != nil {
			return fmt.Errorf("vault: listing connections: %w", err)
		}
		for _, c := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			r.report()
		}
		if len(batch) < rewrapBatch {
			return nil
		}
		after = batch[len(batch)-1].ID
	}
}

// connection re-wraps one connection's data key. A row that does not open
// is a failure recorded in r and the run goes on; a store error stops the
// run.
func (r *rewrapRun) connection(ctx context.Context, c *store.Connection) (rowResult, error) {
	var rowErr error
	_, err := r.v.cfg.Store.UpdateConnection(ctx, c.TenantID, c.ID, func(cur *store.Connection) error {
		if len(cur.DataKey) == 0 {
			return errAlreadyCurrent // nothing sealed (destroyed)
		}
		if id, err := keyring.KEKID(cur.DataKey); err == nil && id == r.current {
			if cur.KEKID == r.current {
				return errAlreadyCurrent
			}
			cur.KEKID = r.current // the column lagged behind the envelope
			return nil
		}
		to, err := r.ring.Rewrap(r.v.cfg.Rand, cur.DataKey, dataKeyAAD(cur))
		if err != nil {
			rowErr = fmt.Errorf("connection %s: %w", cur.ID, err)
			return rowErr
		}
		cur.DataKey = to
		cur.KEKID = r.current
		return nil
	}, nil)
	switch {
	case err == nil:
		r.done.Connections++
		return rowMoved, nil
	case errors.Is(err, errAlreadyCurrent), errors.Is(err, store.ErrNotFound):
		// Re-wrapped by another run, or disconnected meanwhile.
		return rowSkipped, nil
	case rowErr != nil && errors.Is(err, rowErr):
		r.fail(rowErr)
		return rowFailed, nil
	default:
		return rowSkipped, fmt.Errorf("vault: re-wrapping connection %s: %w", c.ID, err)
	}
}
