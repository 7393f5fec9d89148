// Package jobs runs the hub's background jobs on one replica at a time.
// Every replica runs a Runner over the same jobs; for each job the
// runners compete for a lease in the store (store.Leases), and only the
// holder runs the job. The holder renews its lease every third of its
// length; a runner that cannot renew stops its job before the lease ends,
// and once the lease ran out (its holder died, or lost the database)
// another runner takes it and starts the job there: a job moves to
// another replica within one lease length and one retry.
//
// The lease keeps a job from running twice at once in the normal course;
// it does not fence a holder that stalls past its lease (a process paused
// for longer than the lease, clocks that disagree by more than the
// margin). Jobs whose effects must happen once (an event per expired
// grant, per removed client) are therefore written as single
// compare-and-set statements as well (store.ExpireConsents,
// store.PruneClients): the lease makes the work cheap, the statements
// make it correct.
package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// DefaultTTL is a job lease's length when Options.TTL is zero: a job
// moves to another replica within about this long after its holder died.
const DefaultTTL = 10 * time.Second

// releaseTimeout bounds the release of a lease when a job stops.
const releaseTimeout = 5 * time.Second

// Options configure a Runner. Store is required.
type Options struct {
	Store store.Leases
	// Holder names this process in the leases (default NewHolder()).
	Holder string
	// TTL is how long a lease lasts without renewal (default DefaultTTL,
	// at least a second). The holder renews every TTL/3, stops its job
	// TTL/5 before the lease ends unrenewed, and the others try to take
	// a lease every TTL/3.
	TTL    time.Duration
	Logger *slog.Logger // nil: discard
}

// Job is one background job.
type Job struct {
	// Name names the job's lease; every replica must use the same.
	Name string
	// Every > 0: Run is called every Every while this replica holds the
	// lease (the first time Every after it took it); an error is logged
	// and the job carries on. Every == 0: Run is called once per lease
	// held and runs until its context ends (a loop of its own); returning
	// early gives the lease up.
	Every time.Duration
	Run   func(ctx context.Context) error
}

// Runner runs jobs while it holds their leases.
type Runner struct {
	st     store.Leases
	holder string
	ttl    time.Duration
	log    *slog.Logger
}

// NewHolder returns a holder id for this process: host name, process id
// and a random suffix (a restarted process is a new holder).
func NewHolder() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
}

// New checks opts and returns a Runner.
func New(opts Options) (*Runner, error) {
	if opts.Store == nil {
		return nil, errors.New("jobs: a store is required")
	}
	if opts.TTL != 0 && opts.TTL < time.Second {
		return nil, fmt.Errorf("jobs: a lease of %v is too short (at least 1s)", opts.TTL)
	}
	r := &Runner{st: opts.Store, holder: opts.Holder, ttl: opts.TTL, log: opts.Logger}
	if r.holder == "" {
		r.holder = NewHolder()
	}
	if r.ttl == 0 {
		r.ttl = DefaultTTL
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// ClearLeases ends every lease in the store, whoever holds it. It is
// for a store no other process runs jobs on (SQLite under the data
// directory's lock), before Run: a lease found there was left by a
// process that died, and would hold its job back for up to a lease's
// length.
func (r *Runner) ClearLeases(ctx context.Context) error {
	ls, err := r.st.ListLeases(ctx)
	if err != nil {
		return fmt.Errorf("jobs: listing leases: %w", err)
	}
	for _, l := range ls {
		if err := r.st.ReleaseLease(ctx, l.Name, l.Holder); err != nil {
			return fmt.Errorf("jobs: releasing the lease of %s: %w", l.Name, err)
		}
	}
	return nil
}

// Holder is the id this runner takes leases as.
func (r *Runner) Holder() string { return r.holder }

// Run runs every job, each under its own lease, until ctx ends, then
// waits for the jobs to return and releases their leases.
func (r *Runner) Run(ctx context.Context, jobs ...Job) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { r.lead(ctx, j) })
	}
	wg.Wait()
}

// lead takes j's lease whenever it is free and runs j while holding it,
// until ctx ends. The first attempt is made even when ctx has already
// ended: a runner stopped as soon as it started still gives a free job
// its stop (the sealer's last seal), as a runner stopped later does.
func (r *Runner) lead(ctx context.Context, j Job) {
	retry := r.ttl / 3
	for first := true; first || ctx.Err() == nil; first = false {
		now := time.Now()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), retry)
		l, err := r.st.AcquireLease(actx, j.Name, r.holder, now, now.Add(r.ttl))
		cancel()
		switch {
		case err == nil:
			r.hold(ctx, j, l.Until)
		case !errors.Is(err, store.ErrConflict) && ctx.Err() == nil:
			r.log.WarnContext(ctx, "background job: taking the lease failed", "job", j.Name, "err", err)
		}
		sleep(ctx, retry)
	}
}

// hold runs j while the lease lasts: it renews the lease every TTL/3 and
// stops the job when a renewal is refused (another holder has it) or the
// lease is about to end unrenewed. When ctx ends it stops the job, keeps
// the lease until the job has returned and then releases it, so that the
// next holder starts only after this one finished.
func (r *Runner) hold(ctx context.Context, j Job, until time.Time) {
	r.log.InfoContext(ctx, "background job: leading", "job", j.Name, "holder", r.holder)
	jctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runJob(jctx, r.log, j)
	}()
	// The margin leaves the stopped job time to return before the lease
	// ends and another replica may start it.
	margin := r.ttl / 5
	expire := time.NewTimer(time.Until(until) - margin)
	defer expire.Stop()
	renew := time.NewTicker(r.ttl / 3)
	defer renew.Stop()
	// Store calls outlive ctx: the lease is renewed while a stopping job
	// finishes, and released after it.
	sctx := context.WithoutCancel(ctx)
	held := true
	for {
		select {
		case <-done:
			if held {
				rctx, cancel := context.WithTimeout(sctx, releaseTimeout)
				if err := r.st.ReleaseLease(rctx, j.Name, r.holder); err != nil {
					r.log.WarnContext(ctx, "background job: releasing the lease failed", "job", j.Name, "err", err)
				}
				cancel()
			}
			return
		case <-renew.C:
			if !held {
				continue
			}
			now := time.Now()
			rctx, cancel := context.WithTimeout(sctx, r.ttl/3)
			l, err := r.st.RenewLease(rctx, j.Name, r.holder, now, now.Add(r.ttl))
			cancel()
			switch {
			case err == nil:
				expire.Reset(time.Until(l.Until) - margin)
			case errors.Is(err, store.ErrConflict):
				held = false
				stop()
				r.log.WarnContext(ctx, "background job: lease lost to another replica; stopping", "job", j.Name)
			default:
				// Keep trying until the lease is about to end.
				r.log.WarnContext(ctx, "background job: renewing the lease failed", "job", j.Name, "err", err)
			}
		case <-expire.C:
			if held {
				held = false
				stop()
				r.log.WarnContext(ctx, "background job: lease ends unrenewed; stopping", "job", j.Name)
			}
		}
	}
}

// RunLocal runs jobs on this replica, without a lease, until ctx ends,
// then waits for them to return: work every replica does for itself
// (reloading the signing keys it serves with). Every is as for Run.
func RunLocal(ctx context.Context, log *slog.Logger, jobs ...Job) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { runJob(ctx, log, j) })
	}
	wg.Wait()
}

// runJob calls j.Run as its Every says until ctx ends; failures are
// logged.
func runJob(ctx context.Context, log *slog.Logger, j Job) {
	if j.Every <= 0 {
		if err := j.Run(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "background job failed", "job", j.Name, "err", err)
		}
		return
	}
	tick := time.NewTicker(j.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := j.Run(ctx); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "background job failed", "job", j.Name, "err", err)
			}
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
