package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestGroupCommit: client-credentials issuances sent together share one
// transaction, and each still gets its own answer: all commit with their
// event ids when all may; when one client was disabled, that issuance
// alone is refused with ErrClientGone and keeps nothing, and the others are
// committed; an issuance whose caller left before it was sent is not sent.
func TestGroupCommit(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const tn = store.DefaultTenant
	newClient := func() string {
		id := "c-" + rand.Text()[:8]
		if err := s.CreateClient(ctx, &store.Client{TenantID: tn, ID: id, Name: "c", CreatedAt: now}, nil); err != nil {
			t.Fatal(err)
		}
		return id
	}
	live, gone := newClient(), newClient()
	if _, err := s.pool.Exec(ctx, `UPDATE clients SET disabled = true WHERE tenant_id = $1 AND id = $2`, tn, gone); err != nil {
		t.Fatal(err)
	}
	issuance := func(clientID string) *store.Issuance {
		return &store.Issuance{
			AccessToken: &store.AccessToken{JTI: "jti-" + rand.Text(), TenantID: tn, ClientID: clientID,
				Resource: "https://r.example/", Scopes: []string{"a"}, ExpiresAt: now.Add(time.Hour), Digest: []byte("d")},
			Events: []*store.AuditEvent{{TenantID: tn, Time: now, Type: "token.issued", ClientID: clientID, Outcome: "success"}},
			Check:  &store.LiveCheck{TenantID: tn, ClientID: clientID},
		}
	}
	// send runs the issuances as one group of a worker and returns their
	// answers.
	send := func(t *testing.T, ctxs []context.Context, isss ...*store.Issuance) []error {
		t.Helper()
		rs := make([]*groupReq, len(isss))
		for i, iss := range isss {
			b, err := liveBatch(iss)
			if err != nil || b == nil {
				t.Fatalf("liveBatch: %v, %v", b, err)
			}
			c := ctx
			if ctxs != nil {
				c = ctxs[i]
			}
			rs[i] = &groupReq{ctx: c, client: iss.Check.ClientID, b: b, done: make(chan error, 1)}
		}
		s.group.run(rs)
		errs := make([]error, len(rs))
		for i, r := range rs {
			errs[i] = <-r.done
		}
		return errs
	}
	stored := func(iss *store.Issuance) bool {
		t.Helper()
		_, err := s.GetAccessToken(ctx, iss.AccessToken.JTI)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		var n int
		// Ids come from a sequence and are never handed out twice: one
		// set by a rolled-back transaction names no event.
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE id = $1`, iss.Events[0].ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if (err == nil) != (n == 1) {
			t.Fatalf("token stored %v, %d events: want both or neither", err == nil, n)
		}
		return err == nil
	}
	counts := func() (int64, int64) { return s.group.shared.Load(), s.group.single.Load() }

	t.Run("all commit", func(t *testing.T) {
		shared, single := counts()
		isss := []*store.Issuance{issuance(live), issuance(live), issuance(live), issuance(live)}
		for i, err := range send(t, nil, isss...) {
			if err != nil {
				t.Fatalf("issuance %d: %v", i, err)
			}
		}
		seen := map[int64]bool{}
		for i, iss := range isss {
			if id := iss.Events[0].ID; id == 0 || seen[id] {
				t.Errorf("issuance %d: event id %d, want its own", i, id)
			} else {
				seen[id] = true
			}
			if !stored(iss) {
				t.Errorf("issuance %d not stored", i)
			}
		}
		if sh, si := counts(); sh != shared+1 || si != single {
			t.Errorf("%d shared, %d single transactions; want 1 and 0", sh-shared, si-single)
		}
	})
	t.Run("one refused", func(t *testing.T) {
		shared, single := counts()
		isss := []*store.Issuance{issuance(live), issuance(gone), issuance(live)}
		errs := send(t, nil, isss...)
		for i, want := range []error{nil, store.ErrClientGone, nil} {
			if !errors.Is(errs[i], want) {
				t.Errorf("issuance %d: %v, want %v", i, errs[i], want)
			}
			if ok := stored(isss[i]); ok != (want == nil) {
				t.Errorf("issuance %d stored %v, want %v", i, ok, want == nil)
			}
		}
		if sh, si := counts(); sh != shared+1 || si != single+3 {
			t.Errorf("%d shared, %d single transactions; want 1 and 3 (each again on its own)", sh-shared, si-single)
		}
	})
	t.Run("caller gone before sending", func(t *testing.T) {
		left, cancel := context.WithCancel(ctx)
		cancel()
		isss := []*store.Issuance{issuance(live), issuance(live)}
		errs := send(t, []context.Context{left, ctx}, isss...)
		if !errors.Is(errs[0], context.Canceled) || errs[1] != nil {
			t.Fatalf("answers %v, want context.Canceled and nil", errs)
		}
		if stored(isss[0]) || !stored(isss[1]) {
			t.Error("the left caller's issuance was stored, or the other was not")
		}
	})
	t.Run("locks in client id order", func(t *testing.T) {
		// A writer holding one client's live lock exclusively and then
		// taking a second, in id order as PruneClients does, never waits
		// for a group: the group takes its clients' locks in that order
		// too, so it waits for the first without holding the second.
		low, high := "a-"+rand.Text()[:8], "z-"+rand.Text()[:8]
		for _, id := range []string{low, high} {
			if err := s.CreateClient(ctx, &store.Client{TenantID: tn, ID: id, Name: "c", CreatedAt: now}, nil); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if err := lockClient(ctx, tx, tn, low); err != nil {
			t.Fatal(err)
		}
		isss := []*store.Issuance{issuance(high), issuance(low)} // arrival order: high first
		shared, single := counts()
		answers := make(chan []error, 1)
		go func() { answers <- send(t, nil, isss...) }()
		time.Sleep(300 * time.Millisecond) // the group is waiting for low
		// Well under deadlock_timeout (1s): a cycle would fail here,
		// before PostgreSQL found it and aborted the group.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '300ms'`); err != nil {
			t.Fatal(err)
		}
		if err := lockClient(ctx, tx, tn, high); err != nil {
			t.Fatalf("the writer's second lock: %v (the group held it while waiting for the first)", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		for i, err := range <-answers {
			if err != nil || !stored(isss[i]) {
				t.Errorf("issuance %d: %v", i, err)
			}
		}
		if sh, si := counts(); sh != shared+1 || si != single {
			t.Errorf("%d shared, %d single transactions; want 1 and 0 (no abort, no resend)", sh-shared, si-single)
		}
	})
	t.Run("through IssueTokens, concurrently", func(t *testing.T) {
		var wg sync.WaitGroup
		isss := make([]*store.Issuance, 64)
		errs := make([]error, len(isss))
		for i := range isss {
			client := live
			if i%16 == 5 {
				client = gone
			}
			isss[i] = issuance(client)
			wg.Go(func() { errs[i] = s.IssueTokens(ctx, isss[i]) })
		}
		wg.Wait()
		for i, iss := range isss {
			want := error(nil)
			if iss.Check.ClientID == gone {
				want = store.ErrClientGone
			}
			if !errors.Is(errs[i], want) || stored(iss) != (want == nil) {
				t.Errorf("issuance %d: %v, want %v, stored as the answer says", i, errs[i], want)
			}
		}
	})
}

// TestGroupWorkers: one worker per pool connection, but never more than
// the hub's cores, and always one.
func TestGroupWorkers(t *testing.T) {
	for _, c := range []struct {
		conns int32
		procs int
		want  int
	}{
		{4, 2, 2}, // pgxpool's default on two cores: one worker per core
		{4, 8, 4}, // a small pool on a large hub: one per connection
		{16, 16, 16},
		{0, 2, 1},
		{4, 0, 1},
	} {
		if got := groupWorkers(c.conns, c.procs); got != c.want {
			t.Errorf("groupWorkers(%d, %d) = %d, want %d", c.conns, c.procs, got, c.want)
		}
	}
}
