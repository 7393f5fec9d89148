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
	// maxReadings bounds the watermark readings a sealer keeps waiting
	// to settle; past it the newest is replaced (fewer, later stopping
	// points: a delay, never a skip).
	maxReadings = 64
	// heldBackWarn: a reading waiting longer than this is logged (once
	// per this interval) as the sealing being held back.
	heldBackWarn = time.Minute
	// finalWait: how long Final may wait, past Settle, for transactions
	// still open elsewhere when the hub stops.
	finalWait = 10 * time.Second
	// finalPoll: how often Final looks whether its readings settled.
	finalPoll = 20 * time.Millisecond
)

// SealerOptions configure NewSealer. Store is required.
type SealerOptions struct {
	Store ChainStore
	// Signer signs checkpoints (token.Keys); nil writes none.
	Signer CheckpointSigner
	// Issuer goes into checkpoints as iss, so that a reader knows whose
	// JWKS verifies them.
	Issuer string
	// Settle is an optional floor: a watermark reading is sealed up to no
	// sooner than Settle after it was taken, by Now. It is not needed for
	// correctness: a reading is sealed up to only once the store says that
	// every transaction that could still commit an id at or below it has
	// ended (store.AuditChain.ReadAuditWatermark). 0: no floor
	// (cmd/agentid).
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

	mu       sync.Mutex // one round at a time
	readings []reading  // waiting to settle, in id order
	upTo     int64      // the newest settled reading: sealed up to it
	warned   time.Time  // the last held-back warning
	tenants  map[string]*tenantSeal
}

// reading is a watermark reading and when it was taken.
type reading struct {
	store.AuditReading
	at time.Time
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

// Seal runs one round: it takes a watermark reading, links every event up
// to the newest reading that has settled (every transaction that could
// still commit an id at or below it has ended), and writes the
// checkpoints that are due. It returns how many events it linked.
func (s *Sealer) Seal(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	upTo, err := s.settled(ctx)
	if err == nil && len(s.readings) > 0 && s.opts.Settle == 0 {
		// A reading settles at the earliest at the next one (PostgreSQL:
		// its own transaction has to end first); a second reading now
		// settles this one unless another transaction is in flight.
		upTo, err = s.settled(ctx)
	}
	if err != nil {
		return 0, err
	}
	n, err := s.sealTo(ctx, upTo)
	if err != nil {
		return n, err
	}
	return n, s.checkpoints(ctx, false)
}

// Run seals at once (what an earlier process left unsealed; on SQLite the
// first round also has the store keep the events it commits from then on
// for the sealer), then every interval until ctx ends, then runs Final
// (bounded by Settle and ten seconds more). Failures are logged and
// retried.
func (s *Sealer) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	if _, err := s.Seal(ctx); err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "audit: sealing failed", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Settle+finalWait)
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

// Final seals what this process wrote before it stops: it takes a
// reading, waits (bounded by ctx) until it settles, seals up to it, signs
// every head not yet signed and seals those checkpoints the same way. A
// transaction still open elsewhere when ctx ends leaves the rest to the
// next sealer (ctx's error is returned).
func (s *Sealer) Final(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.settleAll(ctx); err != nil {
		return err
	}
	if err := s.checkpoints(ctx, true); err != nil {
		return err
	}
	_, err := s.settleAll(ctx)
	return err
}

// settleAll takes a reading and seals up to it once it has settled,
// polling every finalPoll until then or until ctx ends.
func (s *Sealer) settleAll(ctx context.Context) (int, error) {
	target, err := s.settled(ctx)
	if err != nil {
		return 0, err
	}
	if n := len(s.readings); n > 0 {
		target = s.readings[n-1].ID
	}
	for s.upTo < target {
		t := time.NewTimer(finalPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
		if _, err := s.settled(ctx); err != nil {
			return 0, err
		}
	}
	return s.sealTo(ctx, s.upTo)
}

// settled takes a watermark reading, keeps it while it waits to settle,
// and returns the bound to seal up to: the newest reading that has settled
// so far (the store's horizon passed its fence, and Settle passed since).
func (s *Sealer) settled(ctx context.Context) (int64, error) {
	r, horizon, err := s.opts.Store.ReadAuditWatermark(ctx)
	if err != nil {
		return s.upTo, err
	}
	now := s.now()
	last := s.upTo
	if n := len(s.readings); n > 0 {
		last = s.readings[n-1].ID
	}
	if r.ID > last { // no new ids: nothing more to wait for
		if len(s.readings) == maxReadings {
			s.readings[maxReadings-1] = reading{r, now}
		} else {
			s.readings = append(s.readings, reading{r, now})
		}
	}
	// Fences increase with the readings, so the settled ones are a prefix.
	done := 0
	for _, p := range s.readings {
		if p.Fence >= horizon || now.Sub(p.at) < s.opts.Settle {
			break
		}
		s.upTo, done = max(s.upTo, p.ID), done+1
	}
	s.readings = append(s.readings[:0], s.readings[done:]...)
	if len(s.readings) > 0 {
		if held := now.Sub(s.readings[0].at); held >= heldBackWarn && now.Sub(s.warned) >= heldBackWarn {
			s.warned = now
			s.log.WarnContext(ctx, "audit: sealing held back by a database transaction that is still open "+
				"(events above sealed_through are neither chained nor streamed to sinks until it ends)",
				"held_for", held.Round(time.Second), "sealed_through", s.upTo, "waiting_up_to", s.readings[len(s.readings)-1].ID)
		}
	}
	return s.upTo, nil
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
