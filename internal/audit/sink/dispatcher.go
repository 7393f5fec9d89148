// Package sink streams the audit trail to outside systems (SIEMs, log
// pipelines): a Dispatcher runs each configured sink on its own goroutine
// with its own cursor in the store, and the sinks here deliver batches to
// an HTTPS webhook (HMAC-signed), a Splunk HTTP Event Collector, syslog
// (RFC 5424 over TCP or TLS), an NDJSON file with rotation, or stdout.
//
// A sink follows the chain's sealed-through mark (store.AuditSinks
// SealedAudit), so its cursor is one event id with no gap below it that a
// late commit could fill; it delivers at least once (the cursor moves
// after a delivery), and receivers de-duplicate by the event id. The
// dispatcher only reads the store: a slow or dead sink never slows the
// requests that write events.
package sink

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Store is what the dispatcher uses of the store.
type Store interface {
	store.AuditSinks
}

// Sink delivers batches of events to one destination. Deliver delivers
// the whole batch or returns an error, after which the dispatcher sends
// the same batch again (events already received are sent again: at least
// once). An error's text must not hold a secret; it is stored and shown
// by `agentid audit sinks`.
type Sink interface {
	Deliver(ctx context.Context, b *Batch) error
	Close() error
}

// Batch is a run of consecutive events of the trail, as one sink sees
// them: masked and encoded in its format.
type Batch struct {
	// Sink is the sink's name.
	Sink string
	// FirstID and LastID bound the batch (every event between them that
	// the sink's filter kept is in it).
	FirstID, LastID int64
	// Events are the masked events, and Items each one encoded in the
	// sink's format (a JSON object), in id order.
	Events []*store.AuditEvent
	Items  [][]byte
}

// RetryAfter is an error a sink returns when the destination asked it to
// wait (HTTP 429 or 503 with Retry-After): the dispatcher waits at least
// that long, within its maximum backoff.
type RetryAfter struct {
	Err   error
	After time.Duration
}

func (e *RetryAfter) Error() string { return e.Err.Error() }
func (e *RetryAfter) Unwrap() error { return e.Err }

// Where a new sink starts.
const (
	StartOldest = "oldest" // the whole trail, from its first event (the default)
	StartLatest = "latest" // events sealed from now on
)

// Config is one sink the dispatcher runs.
type Config struct {
	// Name identifies the sink and its cursor in the store; renaming a
	// sink starts it afresh.
	Name string
	// Type names the kind of sink (for `agentid audit sinks` and the
	// dead-letter event): webhook, splunk_hec, syslog, file, stdout.
	Type string
	Sink Sink
	// Format is FormatNative (default) or FormatOCSF.
	Format Format
	// Mask lists the fields to mask in this sink's events (see Mask).
	Mask []string
	// Start is where a sink seen for the first time begins: StartOldest
	// (default) or StartLatest.
	Start string
	// BatchSize is the most events a batch holds (default 500, at most
	// 1000).
	BatchSize int
	// MaxAttempts is how many times a batch is tried before it is
	// dead-lettered (default 8).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts: it
	// doubles from MinBackoff (default 1s) up to MaxBackoff (default 1m),
	// each wait drawn at random between half and all of it (jitter).
	MinBackoff, MaxBackoff time.Duration
}

// Options configure a Dispatcher. Store is required.
type Options struct {
	Store Store
	Sinks []Config
	// Holder names this dispatcher in the sinks' leases (default host
	// name, process id and a random suffix). Dispatchers of several hubs
	// on one database each run a sink in turn, never two at once.
	Holder string
	// Interval is the pause between polls that found nothing new
	// (default 1s); Lease how long a sink's lease lasts without renewal
	// (default 30s).
	Interval, Lease time.Duration
	// Now, Sleep and Rand replace the clock, the timer and the jitter's
	// source in tests. Sleep waits d or until ctx ends.
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Rand   func() float64 // in [0, 1)
	Logger *slog.Logger   // nil: discard
}

// Defaults and bounds of a sink's Config.
const (
	DefaultBatchSize   = 500
	MaxBatchSize       = 1000
	DefaultMaxAttempts = 8
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	maxErrorText       = 300
)

// Dispatcher runs the sinks.
type Dispatcher struct {
	opts  Options
	log   *slog.Logger
	sinks []*runner

	// recent are the newest events the hub's sealer handed over (Offer):
	// every sealed event with an id in (lo, hi], at most maxRecent.
	mu     sync.Mutex
	lo, hi int64
	recent []*store.AuditLink
}

// maxRecent bounds the events Offer keeps for the sinks.
const maxRecent = 10 * MaxBatchSize

// Offer takes the events a SealAudit call of this process linked
// (audit.SealerOptions.Sealed), so that sinks that keep up deliver them
// without reading them back from the store: on SQLite reading an event
// back costs about as much as sealing it. Sinks behind the kept range,
// and events sealed by another process, are read from the store.
func (d *Dispatcher) Offer(res *store.SealResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if res.From != d.hi { // not contiguous: another sealer took a turn
		d.lo, d.recent = res.From, nil
	}
	d.hi = res.Through
	d.recent = append(d.recent, res.Links...)
	if n := len(d.recent) - maxRecent; n > 0 {
		d.lo = d.recent[n-1].Event.ID
		d.recent = slices.Clone(d.recent[n:])
	}
}

// cached returns the offered events after cursor, at most limit, when
// the kept range covers cursor and holds any.
func (d *Dispatcher) cached(cursor int64, limit int) []*store.AuditLink {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cursor < d.lo || cursor >= d.hi {
		return nil
	}
	i, _ := slices.BinarySearchFunc(d.recent, cursor+1, func(l *store.AuditLink, id int64) int { return cmp.Compare(l.Event.ID, id) })
	return slices.Clone(d.recent[i:min(i+limit, len(d.recent))])
}

// New checks opts, fills in the defaults and returns a dispatcher. It
// reports every problem at once.
func New(opts Options) (*Dispatcher, error) {
	var problems []error
	if opts.Store == nil {
		problems = append(problems, errors.New("sink: Options.Store is required"))
	}
	if opts.Interval < 0 || opts.Lease < 0 {
		problems = append(problems, errors.New("sink: Options durations must not be negative"))
	}
	names := map[string]bool{}
	for i := range opts.Sinks {
		c := &opts.Sinks[i]
		where := fmt.Sprintf("sink: Sinks[%d] (%s)", i, c.Name)
		switch {
		case c.Name == "":
			problems = append(problems, fmt.Errorf("sink: Sinks[%d]: a name is required", i))
		case names[c.Name]:
			problems = append(problems, fmt.Errorf("%s: the name is used twice", where))
		}
		names[c.Name] = true
		if c.Sink == nil {
			problems = append(problems, fmt.Errorf("%s: Sink is required", where))
		}
		if c.Format == "" {
			c.Format = FormatNative
		}
		if c.Format != FormatNative && c.Format != FormatOCSF {
			problems = append(problems, fmt.Errorf("%s: unknown format %q", where, c.Format))
		}
		if err := CheckMask(c.Mask); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", where, err))
		}
		switch c.Start {
		case "":
			c.Start = StartOldest
		case StartOldest, StartLatest:
		default:
			problems = append(problems, fmt.Errorf("%s: start must be %s or %s", where, StartOldest, StartLatest))
		}
		if c.BatchSize < 0 || c.BatchSize > MaxBatchSize || c.MaxAttempts < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
			problems = append(problems, fmt.Errorf("%s: batch size (at most %d), attempts and backoffs must not be negative", where, MaxBatchSize))
		}
		c.BatchSize = orDefault(c.BatchSize, DefaultBatchSize)
		c.MaxAttempts = orDefault(c.MaxAttempts, DefaultMaxAttempts)
		c.MinBackoff = orDefault(c.MinBackoff, DefaultMinBackoff)
		c.MaxBackoff = max(orDefault(c.MaxBackoff, DefaultMaxBackoff), c.MinBackoff)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	opts.Interval = orDefault(opts.Interval, time.Second)
	opts.Lease = orDefault(opts.Lease, 30*time.Second)
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:6])
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	if opts.Rand == nil {
		opts.Rand = mrand.Float64
	}
	d := &Dispatcher{opts: opts, log: opts.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	for _, c := range opts.Sinks {
		d.sinks = append(d.sinks, &runner{d: d, c: c, mask: newMasker(c.Mask)})
	}
	return d, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run runs every sink on its own goroutine until ctx ends, then closes
// the sinks. What was delivered but not yet recorded is delivered again
// by the next run.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range d.sinks {
		wg.Go(func() {
			r.run(ctx)
			if err := r.c.Sink.Close(); err != nil {
				d.log.WarnContext(ctx, "audit sink: closing", "sink", r.c.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// runner is one sink's loop.
type runner struct {
	d    *Dispatcher
	c    Config
	mask *masker

	cursor     int64
	leaseUntil time.Time
	itemSize   int // the previous batch's mean encoded size
}

// errLost: another dispatcher holds the sink, or moved its cursor.
var errLost = errors.New("sink lease lost")

func (r *runner) run(ctx context.Context) {
	defer r.release(context.WithoutCancel(ctx))
	for ctx.Err() == nil {
		if err := r.lease(ctx); err != nil {
			if !errors.Is(err, store.ErrConflict) && ctx.Err() == nil {
				r.d.log.WarnContext(ctx, "audit sink: lease", "sink", r.c.Name, "err", err)
			}
			_ = r.d.opts.Sleep(ctx, r.d.opts.Lease/2)
			continue
		}
		err := r.follow(ctx)
		if err != nil && !errors.Is(err, errLost) && ctx.Err() == nil {
			r.d.log.WarnContext(ctx, "audit sink: reading the trail", "sink", r.c.Name, "err", err)
			_ = r.d.opts.Sleep(ctx, r.d.opts.Interval)
		}
	}
}

// lease takes or renews the sink's lease and loads its cursor.
func (r *runner) lease(ctx context.Context) error {
	now := r.d.opts.Now()
	var start int64
	if r.c.Start == StartLatest {
		_, mark, err := r.d.opts.Store.SealedAudit(ctx, math.MaxInt64, 1)
		if err != nil {
			return err
		}
		start = mark
	}
	until := now.Add(r.d.opts.Lease)
	st, err := r.d.opts.Store.LeaseAuditSink(ctx, r.c.Name, r.d.opts.Holder, now, until, start)
	if err != nil {
		return err
	}
	r.cursor, r.leaseUntil = st.Cursor, until
	return nil
}

// release gives the lease up on a clean stop (a lease that ended just
// now), so that a restarted hub does not wait for it to run out.
func (r *runner) release(ctx context.Context) {
	if r.leaseUntil.IsZero() {
		return
	}
	now := r.d.opts.Now()
	_, _ = r.d.opts.Store.LeaseAuditSink(ctx, r.c.Name, r.d.opts.Holder, now, now.Add(-time.Microsecond), 0)
}

// renew renews the lease when less than half of it is left.
func (r *runner) renew(ctx context.Context) error {
	if r.d.opts.Now().Before(r.leaseUntil.Add(-r.d.opts.Lease / 2)) {
		return nil
	}
	cursor := r.cursor
	if err := r.lease(ctx); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errLost
		}
		return err
	}
	if r.cursor != cursor {
		return errLost // someone else ran the sink meanwhile
	}
	return nil
}

// follow delivers batches while this dispatcher holds the lease.
func (r *runner) follow(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := r.renew(ctx); err != nil {
			return err
		}
		links := r.d.cached(r.cursor, r.c.BatchSize)
		if len(links) == 0 {
			var err error
			if links, _, err = r.d.opts.Store.SealedAudit(ctx, r.cursor, r.c.BatchSize); err != nil {
				return err
			}
		}
		if len(links) == 0 {
			if err := r.d.opts.Sleep(ctx, r.d.opts.Interval); err != nil {
				return nil
			}
			continue
		}
		b, err := r.batch(links)
		if err != nil {
			return err
		}
		if err := r.deliver(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// batch masks and encodes the events. The items share one buffer, sized
// from the previous batch's.
func (r *runner) batch(links []*store.AuditLink) (*Batch, error) {
	b := &Batch{Sink: r.c.Name, FirstID: links[0].Event.ID, LastID: links[len(links)-1].Event.ID,
		Events: make([]*store.AuditEvent, len(links)), Items: make([][]byte, len(links))}
	buf := make([]byte, 0, max(r.itemSize, 256)*len(links)+len(links)*64)
	ends := make([]int, len(links))
	for i, l := range links {
		ev := r.mask.apply(l.Event)
		var err error
		if buf, err = appendEncoded(buf, r.c.Format, ev, l); err != nil {
			return nil, fmt.Errorf("encoding event %d: %w", ev.ID, err)
		}
		b.Events[i], ends[i] = ev, len(buf)
	}
	start := 0
	for i, end := range ends {
		b.Items[i] = buf[start:end:end]
		start = end
	}
	r.itemSize = len(buf) / len(links)
	return b, nil
}

// deliver tries the batch until it is delivered or dead-lettered, and
// moves the cursor past it.
func (r *runner) deliver(ctx context.Context, b *Batch) error {
	st := r.d.opts.Store
	holder := r.d.opts.Holder
	for attempt := 1; ; attempt++ {
		err := r.c.Sink.Deliver(ctx, b)
		now := r.d.opts.Now()
		if err == nil {
			// Recorded even when stopping, so that a restart does not send
			// the batch again.
			if err := st.AdvanceAuditSink(context.WithoutCancel(ctx), r.c.Name, holder, r.cursor, b.LastID, now); err != nil {
				return lost(err)
			}
			r.cursor = b.LastID
			return nil
		}
		if ctx.Err() != nil {
			return nil // stopping: the batch goes again next time
		}
		msg := errorText(err)
		r.d.log.WarnContext(ctx, "audit sink: delivery failed", "sink", r.c.Name, "attempt", attempt,
			"first_id", b.FirstID, "last_id", b.LastID, "err", msg)
		if err := st.FailAuditSink(ctx, r.c.Name, holder, msg, now); err != nil {
			return lost(err)
		}
		if attempt >= r.c.MaxAttempts {
			return r.deadLetter(ctx, b, attempt, msg)
		}
		if err := r.d.opts.Sleep(ctx, r.backoff(attempt, err)); err != nil {
			return nil
		}
		if err := r.renew(ctx); err != nil {
			return err
		}
	}
}

// deadLetter gives up on the batch: the dead letter, the cursor past it
// and the alert event in one transaction.
func (r *runner) deadLetter(ctx context.Context, b *Batch, attempts int, msg string) error {
	now := r.d.opts.Now()
	dl := &store.AuditDeadLetter{Sink: r.c.Name, FirstID: b.FirstID, LastID: b.LastID, Events: len(b.Events),
		Attempts: attempts, Error: msg, At: now}
	ev := audit.NewSinkDeadLettered(audit.Meta{TenantID: store.DefaultTenant, Time: now, Actor: audit.ActorHub},
		audit.SinkDeadLetterFields{Sink: r.c.Name, SinkType: r.c.Type, FirstID: b.FirstID, LastID: b.LastID,
			Events: len(b.Events), Attempts: attempts, Error: msg})
	if err := r.d.opts.Store.DeadLetterAudit(ctx, r.d.opts.Holder, r.cursor, dl, ev); err != nil {
		return lost(err)
	}
	r.d.log.ErrorContext(ctx, "audit sink: batch dead-lettered", "sink", r.c.Name, "first_id", b.FirstID,
		"last_id", b.LastID, "events", len(b.Events), "err", msg)
	r.cursor = b.LastID
	return nil
}

// backoff is the wait after the attempt-th failure: MinBackoff doubled
// per attempt up to MaxBackoff, drawn between half and all of it, and at
// least what the destination asked for (within MaxBackoff).
func (r *runner) backoff(attempt int, err error) time.Duration {
	d := r.c.MinBackoff
	for i := 1; i < attempt && d < r.c.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.c.MaxBackoff)
	d = d/2 + time.Duration(r.d.opts.Rand()*float64(d/2))
	var ra *RetryAfter
	if errors.As(err, &ra) && ra.After > d {
		d = min(ra.After, r.c.MaxBackoff)
	}
	return d
}

func lost(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return errLost
	}
	return err
}

// errorText is the stored form of a delivery error: one line of printable
// UTF-8, bounded. The text may hold what a hostile receiver chose (a TLS
// certificate's names): control characters (terminal escapes, forged log
// lines, NUL, which PostgreSQL refuses in text) and invalid bytes become
// spaces.
func errorText(err error) string {
	printable := func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}
	s := strings.Join(strings.Fields(strings.Map(printable, err.Error())), " ")
	if len(s) > maxErrorText {
		s = strings.ToValidUTF8(s[:maxErrorText], "") + "…"
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
