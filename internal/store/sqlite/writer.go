package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
)

// The writer owns the only write connection. Every write method hands it a
// function to run inside a transaction and waits for the commit.
//
// Group commit: while one transaction runs, callers queue up; the writer then
// takes every waiting request (up to maxBatch) into the next transaction. The
// batch first runs without savepoints; if a request fails (a duplicate id, a
// replayed jti), the transaction is rolled back and the batch runs again with
// a SAVEPOINT around each request, so that only the failing request's writes
// are undone. The commit covers the batch and each caller returns only after
// it, so a nil error still means "committed". A request that arrives alone
// runs in a plain transaction. Under load this turns N commits (each a WAL
// append and a lock round trip) into one, which is where the throughput comes
// from; with no load nobody waits for a batch to fill.
//
// Atomicity stays per request, as the store contract requires ("every method
// is one transaction"): a request's writes are committed together or not at
// all, and no request observes another's failed writes.

// defaultMaxBatch caps how many requests share one transaction.
const defaultMaxBatch = 256

// errKeep marks an error that is the method's answer but whose writes must
// still be committed (a replayed code or refresh token revokes its grant and
// records the reuse, then reports ErrAlreadyUsed).
type errKeep struct{ err error }

func (e *errKeep) Error() string { return e.err.Error() }
func (e *errKeep) Unwrap() error { return e.err }

// commitAnd returns err as the result of a write whose changes are kept.
func commitAnd(err error) error { return &errKeep{err} }

var errClosed = errors.New("sqlite: store is closed")

type request struct {
	ctx  context.Context
	fn   func(*wtx) error
	raw  bool // fn manages its own transactions (migrations)
	done chan error
}

type writer struct {
	maxBatch int
	conn     *sql.Conn
	log      *slog.Logger
	reqs     chan *request
	quit     chan struct{}
	ended    chan struct{}
	tx       wtx
	pool     sync.Pool // of chan error
	tail     auditTail // committed events kept for the sealer
	// onChange is called after a commit that recorded a change
	// (changes.go): the changes table's last seq moved since the last
	// commit; changeSeq is that seq.
	onChange  func()
	changeSeq int64

	begin, commit, rollback, savepoint, release, rollbackTo, lastChange *sql.Stmt
}

func newWriter(conn *sql.Conn, log *slog.Logger, maxBatch int, onChange func()) *writer {
	w := &writer{
		onChange: onChange,
		maxBatch: maxBatch,
		conn:     conn,
		log:      log,
		reqs:     make(chan *request),
		quit:     make(chan struct{}),
		ended:    make(chan struct{}),
	}
	w.tx = wtx{w: w, stmts: make(map[string]*sql.Stmt)}
	w.pool.New = func() any { return make(chan error, 1) }
	go w.loop()
	return w
}

// do runs fn in a write transaction and returns its error once committed
// (or rolled back). The writer does not use ctx for its statements, so a
// caller that goes away cannot abort a batch shared with others; a request
// whose ctx is done before its turn is skipped.
func (w *writer) do(ctx context.Context, fn func(*wtx) error) error {
	return w.submit(ctx, &request{ctx: ctx, fn: fn})
}

func (w *writer) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = w.pool.Get().(chan error)
	select {
	case w.reqs <- r:
	case <-w.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the outcome even if ctx ends meanwhile: the request may be
	// committing, and the caller must not be told it failed if it did not.
	err := <-r.done
	w.pool.Put(r.done)
	return err
}

func (w *writer) close() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.ended
	w.tx.closeStmts()
	for _, st := range []*sql.Stmt{w.begin, w.commit, w.rollback, w.savepoint, w.release, w.rollbackTo, w.lastChange} {
		if st != nil {
			st.Close()
		}
	}
	// Let SQLite update its planner statistics, as it recommends on close.
	if _, err := w.conn.ExecContext(context.Background(), "PRAGMA optimize"); err != nil {
		w.log.Warn("sqlite: optimize on close", "err", err)
	}
	w.conn.Close()
}

func (w *writer) loop() {
	defer close(w.ended)
	var batch, raws []*request
	for {
		var first *request
		select {
		case first = <-w.reqs:
		case <-w.quit:
			return
		}
		batch, raws = append(batch[:0], first), raws[:0]
		// The callers of the previous batch were just woken and are still
		// waiting for a CPU, behind this goroutine; let them run and queue
		// their next writes so that they join this batch.
		if w.maxBatch > 1 {
			runtime.Gosched()
		}
	drain:
		for len(batch)+len(raws) < w.maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		// Migrations manage their own transactions: run them alone.
		n := 0
		for _, r := range batch {
			if r.raw {
				raws = append(raws, r)
			} else {
				batch[n] = r
				n++
			}
		}
		clear(batch[n:])
		batch = batch[:n]
		if len(batch) > 0 {
			w.runBatch(batch)
		}
		for _, r := range raws {
			r.done <- w.runRaw(r)
		}
		// Migrations commit on their own; they record no events, but
		// may record changes. (A batch's commit woke the feed already.)
		if len(raws) > 0 {
			w.wakeChanges()
		}
		clear(batch)
		clear(raws)
	}
}

func (w *writer) runRaw(r *request) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	w.tx.startKeeping(false) // its own transactions: nothing it writes is kept
	// It may also rewrite stored events (a data migration, a table
	// rebuilt), and what the tail kept would then no longer be what is
	// stored: forget it, so the sealer reads those events back. Before the
	// migration commits, so that a seal planned on a snapshot after it
	// cannot take them (the writer keeps nothing new until it ends).
	w.tail.reset()
	return r.fn(&w.tx)
}

// control prepares a transaction-control statement on first use.
func (w *writer) control(p **sql.Stmt, q string) error {
	if *p != nil {
		return nil
	}
	st, err := w.conn.PrepareContext(context.Background(), q)
	if err != nil {
		return err
	}
	*p = st
	return nil
}

func (w *writer) exec(p **sql.Stmt, q string) error {
	if err := w.control(p, q); err != nil {
		return err
	}
	_, err := (*p).Exec()
	return err
}

func (w *writer) runBatch(batch []*request) {
	// Skip requests whose caller has gone away before their turn.
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	w.tx.startKeeping(w.tail.on.Load())
	if err := w.exec(&w.begin, "BEGIN IMMEDIATE"); err != nil {
		err = fmt.Errorf("sqlite: begin: %w", err)
		for _, r := range live {
			r.done <- err
		}
		return
	}

	if len(live) == 1 {
		r := live[0]
		err := r.fn(&w.tx)
		var keep *errKeep
		if err != nil && !errors.As(err, &keep) {
			w.abort()
			r.done <- err
			return
		}
		if cerr := w.exec(&w.commit, "COMMIT"); cerr != nil {
			w.abort()
			r.done <- fmt.Errorf("sqlite: commit: %w", cerr)
			return
		}
		w.committed()
		if keep != nil {
			err = keep.err
		}
		r.done <- err
		return
	}

	// Optimistically run the batch without savepoints: conflicts are rare
	// (a replayed jti, a duplicate id), and a savepoint costs two statements
	// per request. On the first failure the batch is rolled back and run
	// again with a savepoint per request. The functions only read the
	// database and their arguments, so running one twice is harmless.
	results := make([]error, len(live))
	if w.runPlain(live, results) {
		if err := w.exec(&w.commit, "COMMIT"); err != nil {
			w.failAll(live, fmt.Errorf("sqlite: commit: %w", err))
			return
		}
		w.committed()
		for i, r := range live {
			r.done <- results[i]
		}
		return
	}
	w.abort()
	w.tx.startKeeping(w.tx.keep)
	if err := w.exec(&w.begin, "BEGIN IMMEDIATE"); err != nil {
		err = fmt.Errorf("sqlite: begin: %w", err)
		for _, r := range live {
			r.done <- err
		}
		return
	}
	for i, r := range live {
		if err := w.exec(&w.savepoint, "SAVEPOINT req"); err != nil {
			w.failAll(live, fmt.Errorf("sqlite: savepoint: %w", err))
			return
		}
		kept := len(w.tx.pending)
		err := r.fn(&w.tx)
		var keep *errKeep
		if err == nil || errors.As(err, &keep) {
			if keep != nil {
				err = keep.err
			}
			results[i] = err
			if rerr := w.exec(&w.release, "RELEASE req"); rerr != nil {
				w.failAll(live, fmt.Errorf("sqlite: release savepoint: %w", rerr))
				return
			}
			continue
		}
		results[i] = err
		w.tx.unkeep(kept) // its events are undone
		if rerr := w.exec(&w.rollbackTo, "ROLLBACK TO req"); rerr != nil {
			// The transaction itself is gone (SQLite rolls back on some I/O
			// errors): nothing of this batch survives.
			w.failAll(live, fmt.Errorf("sqlite: rollback to savepoint after %w: %v", err, rerr))
			return
		}
		if rerr := w.exec(&w.release, "RELEASE req"); rerr != nil {
			w.failAll(live, fmt.Errorf("sqlite: release savepoint: %w", rerr))
			return
		}
	}
	if err := w.exec(&w.commit, "COMMIT"); err != nil {
		w.failAll(live, fmt.Errorf("sqlite: commit: %w", err))
		return
	}
	w.committed()
	for i, r := range live {
		r.done <- results[i]
	}
}

// committed hands the events of the transaction just committed to the
// tail and wakes the change feed's listeners, before any caller hears of
// the commit.
func (w *writer) committed() {
	if len(w.tx.pending) > 0 {
		w.tail.add(w.tx.pending)
	}
	w.tx.startKeeping(w.tx.keep)
	w.wakeChanges()
}

// runPlain runs every request in the open transaction and reports whether
// all of them succeeded (an errKeep counts as success).
func (w *writer) runPlain(live []*request, results []error) bool {
	for i, r := range live {
		err := r.fn(&w.tx)
		var keep *errKeep
		if err != nil && !errors.As(err, &keep) {
			return false
		}
		if keep != nil {
			err = keep.err
		}
		results[i] = err
	}
	return true
}

// failAll rolls the transaction back and fails every request of the batch.
func (w *writer) failAll(live []*request, err error) {
	w.abort()
	for _, r := range live {
		r.done <- err
	}
}

// wakeChanges wakes the change feed's listeners (changes.go) when the
// transaction that just committed recorded a change, before its callers
// learn of the commit: a caller's next request to the hub then finds the
// feed woken, and the caches read through until it has read the change.
// One point read of the changes table's sequence per commit (a commit
// covers a whole batch) tells.
func (w *writer) wakeChanges() {
	if w.onChange == nil {
		return
	}
	if err := w.control(&w.lastChange, `SELECT seq FROM sqlite_sequence WHERE name = 'changes'`); err != nil {
		return // a schema before the change feed: nothing to wake
	}
	var seq int64
	if err := w.lastChange.QueryRow().Scan(&seq); err != nil {
		return // no change recorded yet, or a schema without the table
	}
	if seq != w.changeSeq {
		w.changeSeq = seq
		w.onChange()
	}
}

// abort rolls back the open transaction, if SQLite has not already.
func (w *writer) abort() {
	if err := w.exec(&w.rollback, "ROLLBACK"); err != nil {
		w.log.Debug("sqlite: rollback", "err", err)
	}
}
