package postgres

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Group commit for client-credentials issuances (the hot path of
// IssueTokens): each is one pipelined batch, an implicit transaction of
// its own, and under load most of what the database does for it is per
// transaction and per round trip (reading the messages, starting and
// committing the transaction, writing its commit record, answering), not
// per row. So concurrent ones are sent together: workers (one per pool
// connection, at most one per core: groupWorkers), each holding a
// connection only while its group is on the way, take every issuance
// waiting (up to groupMax) and send their statements as one batch, one
// transaction and one round trip. Each issuance's statements keep their
// order; their callbacks read their rows as before.
//
// Atomicity stays per issuance, as the store contract requires: when the
// shared transaction fails (one client was disabled meanwhile, a lock wait
// ended in a deadlock, the connection broke), none of it was committed, and
// each issuance is sent again on its own, getting exactly the answer it
// would have had alone. An issuance that arrives when a worker is idle is
// sent at once, alone: with no load nobody waits for a group to fill.
//
// Locks: an issuance's live check holds its client's live lock shared
// until the commit (agentid_check_live), so a shared transaction holds
// several clients' locks at once, and could wait in a cycle with a writer
// that takes several exclusively. Only issuances whose only lock is their
// client's go this way (client credentials: no user, no subject family,
// no grant), and a group takes its clients' locks in ascending id order,
// the order PruneClients, the one writer that takes several, keeps too;
// every other writer takes one client's lock and no other. (A cycle
// PostgreSQL did find would abort a transaction: the group's would be
// sent again issuance by issuance, a writer's would fail once.)

const groupMax = 16

type group struct {
	pool *pgxpool.Pool
	reqs chan *groupReq
	quit chan struct{}
	stop sync.Once
	wg   sync.WaitGroup
	// shared counts the shared transactions, single the issuances sent on
	// their own (tests read them).
	shared, single atomic.Int64
}

type groupReq struct {
	ctx    context.Context
	client string // the id of the client whose live lock b takes
	b      *pgx.Batch
	done   chan error
}

// newGroup starts workers workers on pool.
func newGroup(pool *pgxpool.Pool, workers int) *group {
	g := &group{pool: pool, reqs: make(chan *groupReq, groupMax*workers), quit: make(chan struct{})}
	for range workers {
		g.wg.Add(1)
		go g.work()
	}
	return g
}

// groupWorkers is how many workers a pool of maxConns connections gets:
// one per connection, but no more than the hub has cores to run
// (GOMAXPROCS). Issuances reach the workers no faster than the hub's own
// CPU signs them, so workers beyond that only split the waiting into
// smaller groups: more transactions, more of the database's CPU per token
// and, with the database on the same cores, longer tails
// (docs/benchmarks.md, "Group workers, and every target in one window").
// A worker holds a connection only while its group is on the way, so
// reads and other writes wait at most for one group.
func groupWorkers(maxConns int32, procs int) int {
	return max(1, min(int(maxConns), procs))
}

// do sends b, the statements of an issuance whose only lock is client's
// live lock, grouped with others, and returns its outcome (liveErr
// applied) once committed or rolled back. Like a
// batch sent alone, a caller whose ctx ends while its issuance is on the
// way still waits for the outcome, so it is never told of a failure that
// did not happen.
func (g *group) do(ctx context.Context, client string, b *pgx.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &groupReq{ctx: ctx, client: client, b: b, done: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-g.quit:
		return g.alone(r)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-g.quit:
		// Closing: a worker that took r answers before it ends; one
		// that never took it leaves it to the caller.
		g.wg.Wait()
		select {
		case err := <-r.done:
			return err
		default:
			return g.alone(r)
		}
	}
}

// alone sends r's statements on their own.
func (g *group) alone(r *groupReq) error {
	g.single.Add(1)
	return liveErr(g.pool.SendBatch(r.ctx, r.b).Close())
}

// close stops the workers after the issuances they hold.
func (g *group) close() {
	g.stop.Do(func() { close(g.quit) })
	g.wg.Wait()
}

func (g *group) work() {
	defer g.wg.Done()
	rs := make([]*groupReq, 0, groupMax)
	for {
		select {
		case r := <-g.reqs:
			rs = append(rs[:0], r)
		case <-g.quit:
			return
		}
	drain:
		for len(rs) < groupMax {
			select {
			case r := <-g.reqs:
				rs = append(rs, r)
			default:
				break drain
			}
		}
		g.run(rs)
		clear(rs)
	}
}

// run sends rs's statements: alone when there is one, else in one shared
// transaction, and each alone again if that fails.
func (g *group) run(all []*groupReq) {
	rs := make([]*groupReq, 0, len(all))
	for _, r := range all {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // never sent
			continue
		}
		rs = append(rs, r)
	}
	switch len(rs) {
	case 0:
		return
	case 1:
		rs[0].done <- g.alone(rs[0])
		return
	}
	slices.SortStableFunc(rs, func(a, b *groupReq) int { return strings.Compare(a.client, b.client) })
	b := &pgx.Batch{}
	for _, r := range rs {
		for _, q := range r.b.QueuedQueries {
			// Copies: a batch is sent once, and each issuance's own may
			// still be sent after this one.
			b.QueuedQueries = append(b.QueuedQueries, &pgx.QueuedQuery{SQL: q.SQL, Arguments: q.Arguments, Fn: q.Fn})
		}
	}
	ctx, stop := groupContext(rs)
	err := g.pool.SendBatch(ctx, b).Close()
	stop()
	g.shared.Add(1)
	if err == nil {
		for _, r := range rs {
			r.done <- nil
		}
		return
	}
	// Nothing of the shared transaction was committed: each alone, for
	// its own answer.
	for _, r := range rs {
		r.done <- g.alone(r)
	}
}

// groupContext is the shared transaction's context: done once every
// issuance's own is (no caller can end the others' transaction).
func groupContext(rs []*groupReq) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(rs[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(rs)))
	stops := make([]func() bool, len(rs))
	for i, r := range rs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}
