package sink_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
)

// TestLateCommitIsSealedAndStreamed: on PostgreSQL an event id is taken
// from a sequence when the event is inserted, so a transaction that holds
// its id (a lock wait, a slow commit) may commit after events with higher
// ids were committed and sealed. The sealer must not move its mark past
// the held id however long the transaction stays open (here a minute by
// the sealer's clock, far past the 2 s settle time it once trusted, while
// later events commit and it seals every second); once the transaction
// commits, its event is sealed into the chain (verify: no break, nothing
// unsealed) and a sink streams it, in id order with the others.
func TestLateCommitIsSealedAndStreamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// held is the event that commits late: the raw transaction's
		// own, which it commits, or the store's append that waited on
		// it for a unique index and goes ahead when it rolls back.
		appendWaits bool
	}{
		{name: "held transaction commits"},
		{name: "append waits on a lock", appendWaits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.FreshSchema(t)
			st, err := postgres.Open(t.Context(), dsn, postgres.Options{MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, _, err := st.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			holder, err := pgx.Connect(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { holder.Close(context.Background()) })

			clk, sealClk := newClock(), newClock() // the dispatcher's sleeps move its own
			var out lockedBuffer
			d, err := sink.New(sink.Options{Store: st, Now: clk.Now, Sleep: clk.Sleep,
				Sinks: []sink.Config{{Name: "out", Type: "stdout", Sink: sink.NewWriter(&out), BatchSize: 50}}})
			if err != nil {
				t.Fatal(err)
			}
			// Two sealers, as on two replicas: this hub's, whose links the
			// sink is offered, and another's, which it reads back. The
			// 2 s settle time is what they once relied on; it stays as a
			// floor.
			var logs lockedBuffer
			sealer, err := audit.NewSealer(audit.SealerOptions{Store: st, Now: sealClk.Now, Settle: 2 * time.Second, Sealed: d.Offer,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			other, err := audit.NewSealer(audit.SealerOptions{Store: st, Now: sealClk.Now})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			var want []int64
			appendEvents := func(n int) {
				t.Helper()
				for range n {
					ev := audit.NewClientDeleted(audit.Meta{Time: clk.Now()}, "agent")
					if err := st.AppendAudit(t.Context(), ev); err != nil {
						t.Fatal(err)
					}
					want = append(want, ev.ID)
				}
			}
			// rounds runs the sealer once a second by its clock.
			rounds := func(n int) {
				t.Helper()
				for range n {
					if err := sealClk.Sleep(t.Context(), time.Second); err != nil {
						t.Fatal(err)
					}
					for _, s := range []*audit.Sealer{sealer, other} {
						if _, err := s.Seal(t.Context()); err != nil {
							t.Fatal(err)
						}
					}
				}
			}

			appendEvents(3)
			rounds(3)

			tx, err := holder.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			report := audit.ToolInvokedFields{ClientID: "agent", ReportingClient: "mcp", Tool: "search",
				Outcome: audit.ToolSuccess, ReportID: "report-1"}
			var heldID int64
			if err := tx.QueryRow(t.Context(), `INSERT INTO audit_events (tenant_id, time, type, request_id, client_id,
				user_id, resource, ip, outcome, details) VALUES ('default', now(), 'tool.invoked', '', 'agent', '', '', '', 'success',
				jsonb_build_object('reporting_client', 'mcp', 'report_id', 'report-1'))
				RETURNING id`).Scan(&heldID); err != nil {
				t.Fatal(err)
			}
			late := heldID
			appended := make(chan error, 1)
			waiting := audit.NewToolInvoked(audit.Meta{Time: clk.Now()}, report)
			if tc.appendWaits {
				go func() { appended <- st.AppendAuditOnce(context.Background(), waiting) }()
				// The append has its id once it waits for the holder's
				// transaction (the unique index of report ids).
				waitFor(t, "the append to wait on the held transaction", func() bool {
					var blocked bool
					err := tx.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_locks
						WHERE locktype = 'transactionid' AND transactionid = pg_current_xact_id()::xid AND NOT granted)`).Scan(&blocked)
					return err == nil && blocked
				})
			}

			appendEvents(4)
			rounds(61) // over a minute of sealing while the transaction stays open
			logs.mu.Lock()
			held := strings.Count(logs.buf.String(), "sealing held back")
			logs.mu.Unlock()
			if held != 1 {
				t.Errorf("%d held-back warnings after a minute, want 1", held)
			}
			if tc.appendWaits {
				if err := tx.Rollback(t.Context()); err != nil {
					t.Fatal(err)
				}
				if err := <-appended; err != nil {
					t.Fatal(err)
				}
				late = waiting.ID
				if late == 0 || late < heldID || late > want[3] {
					t.Fatalf("the waiting append got id %d, want one between %d and %d", late, heldID, want[3])
				}
			} else if err := tx.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			want = append(want, late)
			slices.Sort(want)
			appendEvents(2)
			rounds(3)

			r, err := audit.Verify(t.Context(), audit.VerifyOptions{Store: st,
				Verifier: func(string) ([]byte, error) { return nil, errors.New("this trail has no checkpoints") }})
			if err != nil {
				t.Fatal(err)
			}
			if r.Break != nil || r.Unsealed != 0 || r.Events != int64(len(want)) {
				t.Fatalf("verify: %+v (break %v), want %d events sealed, none unsealed, no break", r, r.Break, len(want))
			}
			waitFor(t, "the sink to receive every event", func() bool { return len(out.ids(t)) >= len(want) })
			if got := out.ids(t); !slices.Equal(got, want) {
				t.Fatalf("the sink received %v, want %v (late event %d)", got, want, late)
			}
		})
	}
}
