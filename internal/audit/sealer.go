package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ChainStore is what the sealer, Verify and Prune use of the store.
type ChainStore interface {
	store.AuditChain
	store.AuditTrail
}

// Sealer defaults.
const (
	DefaultCheckpointEvery    = 10000
	DefaultCheckpointInterval = time.Minute
	sealBatch                 = 1000
)

// SealerOptions configure NewSealer. Store is required.
type SealerOptions struct {
	Store ChainStore
	// Signer signs checkpoints (token.Keys); nil writes none.
	Signer CheckpointSigner
	// Issuer goes into checkpoints as iss, so that a reader knows whose
	// JWKS verifies them.
	Issuer string
	// Settle is how long an id may take to commit: the sealer links only
	// ids handed out at least Settle ago (by its watermark observations),
	// so that a transaction in flight cannot commit an event behind the
	// chain head. 0: none, for a store with a single writer (SQLite),
	// where no id is in flight when the sealer runs. PostgreSQL: some
	// seconds (cmd/agentid uses 2 s).
	Settle time.Duration
	// CheckpointEvery and CheckpointInterval: a tenant's head is signed
	// once this many events were sealed since its last checkpoint, or
	// this long after it when any was (defaults 10000 and 1 minute).
	CheckpointEvery    int
	CheckpointInterval time.Duration
	Now                func() time.Time // nil: time.Now
	Logger             *slog.Logger     // nil: discard
	// Sealed, when set, receives the result of every SealAudit call that
	// looked at new ids, with the events it linked (the streaming sinks'
	// sink.Dispatcher.Offer, so that they need not read them back). It
	// must not keep the sealer waiting.
	Sealed func(*store.SealResult)
}

// Sealer links the audit trail's events into each tenant's hash chain
// (store.AuditChain.SealAudit) and signs the heads now and then with
// audit.checkpoint events. Run it in one goroutine per hub; several hubs
// on one database may each run one (sealers take turns in the store).
type Sealer struct {
	opts SealerOptions
	now  func() time.Time
	log  *slog.Logger

	mu      sync.Mutex // one round at a time
	obs     []watermark
	tenants map[string]*tenantSeal
}

// watermark is the highest id handed out, as seen at a time.
type watermark struct {
	at time.Time
	id int64
}

// tenantSeal is a tenant's checkpoint bookkeeping in this process.
type tenantSeal struct {
	head    store.ChainHead
	covered int64 // our last checkpoint's event id: no new checkpoint while the head is there
	pending int   // events sealed since the last checkpoint
	last    time.Time
}

// NewSealer checks opts and returns a sealer.
func NewSealer(opts SealerOptions) (*Sealer, error) {
	var problems []error
	if opts.Store == nil {
		problems = append(problems, errors.New("audit: SealerOptions.Store is required"))
	}
	if opts.Settle < 0 || opts.CheckpointEvery < 0 || opts.CheckpointInterval < 0 {
		problems = append(problems, errors.New("audit: SealerOptions durations and counts must not be negative"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	s := &Sealer{opts: opts, now: opts.Now, log: opts.Logger, tenants: map[string]*tenantSeal{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Seal runs one round: it notes the current watermark, links every event
// whose id was handed out at least Settle ago, and writes the checkpoints
// that are due. It returns how many events it linked.
func (s *Sealer) Seal(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	upTo, err := s.settled(ctx)
	if err != nil {
		return 0, err
	}
	n, err := s.sealTo(ctx, upTo)
	if err != nil {
		return n, err
	}
	return n, s.checkpoints(ctx, false)
}

// Run seals every interval until ctx ends, then runs Final (bounded by
// Settle and a few seconds more). Failures are logged and retried.
func (s *Sealer) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Settle+10*time.Second)
			defer cancel()
			if err := s.Final(fctx); err != nil {
				s.log.WarnContext(ctx, "audit: sealing on shutdown failed", "err", err)
			}
			return
		case <-t.C:
			if _, err := s.Seal(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "audit: sealing failed", "err", err)
			}
		}
	}
}

// Final seals what this process wrote before it stops: it waits Settle
// for ids in flight elsewhere, seals up to the watermark it saw, signs
// every head not yet signed and, with no Settle to wait for, seals that
// checkpoint too.
func (s *Sealer) Final(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.opts.Store.AuditWatermark(ctx)
	if err != nil {
		return err
	}
	if s.opts.Settle > 0 {
		t := time.NewTimer(s.opts.Settle)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if _, err := s.sealTo(ctx, w); err != nil {
		return err
	}
	if err := s.checkpoints(ctx, true); err != nil {
		return err
	}
	if s.opts.Settle == 0 {
		if w, err = s.opts.Store.AuditWatermark(ctx); err != nil {
			return err
		}
		_, err = s.sealTo(ctx, w)
	}
	return err
}

// settled records the current watermark and returns the newest one seen
// at least Settle ago (0 when none is that old yet).
func (s *Sealer) settled(ctx context.Context) (int64, error) {
	w, err := s.opts.Store.AuditWatermark(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now()
	if s.opts.Settle == 0 {
		return w, nil
	}
	s.obs = append(s.obs, watermark{now, w})
	var upTo int64
	keep := 0
	for i, o := range s.obs {
		if now.Sub(o.at) >= s.opts.Settle {
			upTo, keep = o.id, i
		}
	}
	// The newest settled observation stays: it is the bound until a newer
	// one settles.
	s.obs = append(s.obs[:0], s.obs[keep:]...)
	return upTo, nil
}

// sealTo links events up to upTo, a batch per transaction.
func (s *Sealer) sealTo(ctx context.Context, upTo int64) (int, error) {
	total := 0
	for {
		res, err := s.opts.Store.SealAudit(ctx, upTo, sealBatch)
		if err != nil {
			return total, err
		}
		total += res.Sealed
		if s.opts.Sealed != nil && res.Through > res.From {
			s.opts.Sealed(res)
		}
		for _, h := range res.Heads {
			st := s.tenants[h.TenantID]
			if st == nil {
				st = &tenantSeal{last: s.now()}
				s.tenants[h.TenantID] = st
			}
			st.head = h
			st.pending += h.Sealed
		}
		if res.Through >= upTo || res.Sealed == 0 {
			return total, nil
		}
	}
}

// checkpoints signs the heads that are due (all unsigned ones when force).
func (s *Sealer) checkpoints(ctx context.Context, force bool) error {
	if s.opts.Signer == nil {
		return nil
	}
	now := s.now()
	var errs []error
	for tn, st := range s.tenants {
		if st.head.ID == 0 || st.head.ID == st.covered || st.pending == 0 {
			continue
		}
		if !force && st.pending < s.opts.CheckpointEvery && now.Sub(st.last) < s.opts.CheckpointInterval {
			continue
		}
		jws, kid, err := sign(s.opts.Signer, CheckpointClaims{
			Issuer: s.opts.Issuer, TenantID: tn, HeadID: st.head.ID,
			HeadHash: hex.EncodeToString(st.head.Hash), IssuedAt: now.Unix(),
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ev := NewCheckpoint(Meta{TenantID: tn, Time: now, Actor: ActorHub},
			CheckpointFields{HeadID: st.head.ID, HeadHash: st.head.Hash, Signature: jws, KID: kid})
		if err := s.opts.Store.AppendAudit(ctx, ev); err != nil {
			errs = append(errs, err)
			continue
		}
		st.covered, st.pending, st.last = ev.ID, 0, now
	}
	return errors.Join(errs...)
}
