// Package changefeed fans the store's change feed (store.Changes) out to
// the caches of one hub process, so that a write through any replica —
// a disabled client, a rotated key, a new policy version — reaches every
// replica's caches within MaxStale (docs/design.md §5, "Change feed").
//
// A Feed reads the store when woken (PostgreSQL LISTEN/NOTIFY; SQLite
// writes through the same handle) and at least every Poll, whether or not
// the listener works, and hands each batch to its subscribers in order. A
// cache serves an entry only while the feed is Fresh: a read that started
// less than MaxStale ago has completed, so every change committed before
// it was delivered. When the feed cannot read (the database is down) it
// goes stale and the caches read through; when changes were pruned
// before it read them, subscribers get a Reset and drop everything.
package changefeed

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Defaults of Options.
const (
	DefaultPoll     = 500 * time.Millisecond
	DefaultMaxStale = 1500 * time.Millisecond
	// listenRetry is the pause before listening again after the
	// listener failed.
	listenRetry = time.Second
)

// Event is what subscribers receive: the changes of one read, oldest
// first, or a Reset.
type Event struct {
	Changes []store.Change
	// Reset: changes may have been missed; drop everything cached.
	Reset bool
}

// Options configure a Feed.
type Options struct {
	// Poll is the longest time between two reads (default DefaultPoll).
	Poll time.Duration
	// MaxStale is how old the start of the last completed read may be
	// for the feed to be Fresh (default DefaultMaxStale; at least twice
	// Poll is sensible).
	MaxStale time.Duration
	Logger   *slog.Logger
}

// Feed is one process's reader of the change feed.
type Feed struct {
	st       store.Changes
	poll     time.Duration
	maxStale time.Duration
	log      *slog.Logger
	wake     chan struct{}

	mu   sync.Mutex
	subs []func(Event)

	// base is the monotonic origin of freshAt.
	base time.Time
	// freshAt is when (nanoseconds after base) the last completed read
	// started; -1 before the first.
	freshAt atomic.Int64
	// woken counts wakes; caught is the count the last completed read
	// started after. While they differ a change may be recorded that no
	// read has delivered yet, and the feed is not fresh.
	woken, caught atomic.Uint64
	// reads counts completed reads.
	reads atomic.Uint64
}

// New returns a feed over st; Run starts it.
func New(st store.Changes, opts Options) *Feed {
	f := &Feed{st: st, poll: opts.Poll, maxStale: opts.MaxStale, log: opts.Logger,
		wake: make(chan struct{}, 1), base: time.Now()}
	if f.poll <= 0 {
		f.poll = DefaultPoll
	}
	if f.maxStale <= 0 {
		f.maxStale = DefaultMaxStale
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.freshAt.Store(-1)
	return f
}

// Subscribe adds fn, called with every event in the feed's goroutine, in
// order; fn must be quick. Subscribe before caching anything: events
// before it are not replayed.
func (f *Feed) Subscribe(fn func(Event)) {
	f.mu.Lock()
	f.subs = append(f.subs, fn)
	f.mu.Unlock()
}

// Fresh reports whether a cached copy may be served: the last completed
// read started less than MaxStale ago, and after the last wake. A nil
// feed is never fresh.
//
// The second condition makes a write through this process's own store
// handle visible at once where the store wakes its listeners before the
// write returns (SQLite): until the feed has read the change, the caches
// read through.
func (f *Feed) Fresh() bool {
	if f == nil {
		return false
	}
	at := f.freshAt.Load()
	return at >= 0 && f.caught.Load() == f.woken.Load() && time.Since(f.base)-time.Duration(at) < f.maxStale
}

// Reads is how many reads the feed has completed.
func (f *Feed) Reads() uint64 { return f.reads.Load() }

// Wake asks for a read now; until one that started after the wake has
// completed, the feed is not fresh.
func (f *Feed) Wake() {
	f.woken.Add(1)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Sync asks for a read and waits until one that started after the call
// has completed and delivered its changes, or ctx ends.
func (f *Feed) Sync(ctx context.Context) error {
	f.Wake()
	target := f.woken.Load()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for f.caught.Load() < target {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Run reads until ctx ends: at once, when woken by the store's listener,
// and every Poll.
func (f *Feed) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { f.listen(ctx) })
	var cur store.ChangeCursor
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	for {
		cur = f.read(ctx, cur)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-f.wake:
		}
	}
}

// listen keeps the store's listener running; while it is down the ticker
// alone drives the reads.
func (f *Feed) listen(ctx context.Context) {
	for {
		err := f.st.ListenChanges(ctx, f.Wake)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.log.WarnContext(ctx, "change feed: listening failed; polling until it is back", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(listenRetry):
		}
	}
}

// read reads every change after cur and delivers it. On failure the feed
// stays where it was and goes stale after MaxStale.
func (f *Feed) read(ctx context.Context, cur store.ChangeCursor) store.ChangeCursor {
	woken := f.woken.Load()
	started := time.Since(f.base)
	for {
		b, err := f.st.ReadChanges(ctx, cur, 0)
		if err != nil {
			if ctx.Err() == nil {
				f.log.WarnContext(ctx, "change feed: reading failed", "err", err)
			}
			return cur
		}
		if b.Gap {
			f.log.InfoContext(ctx, "change feed: changes were pruned before this replica read them; dropping every cached copy")
			f.deliver(Event{Reset: true})
		}
		if len(b.Changes) > 0 {
			f.deliver(Event{Changes: b.Changes})
		}
		cur = b.Next
		if !b.More {
			break
		}
	}
	f.freshAt.Store(int64(started))
	f.caught.Store(woken)
	f.reads.Add(1)
	return cur
}

func (f *Feed) deliver(ev Event) {
	f.mu.Lock()
	subs := f.subs
	f.mu.Unlock()
	for _, fn := range subs {
		fn(ev)
	}
}
