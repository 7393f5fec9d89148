package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
)

// checkTailIsCommitted fails unless every event the tail holds is the
// stored row of its id, as a read gives it back.
func checkTailIsCommitted(t *testing.T, s *Store) {
	t.Helper()
	kept := s.w.tail.take(0, 1<<62, maxTail)
	for _, k := range kept {
		links, err := s.AuditLinks(context.Background(), k.TenantID, k.ID-1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 1 || links[0].Event.ID != k.ID {
			t.Errorf("the tail keeps event %d, which is not in the table", k.ID)
			continue
		}
		if !reflect.DeepEqual(k.AuditEvent, links[0].Event) {
			t.Errorf("the tail keeps %#v for event %d, the table holds %#v", k.AuditEvent, k.ID, links[0].Event)
		}
	}
}

// TestAuditTailCommitFails: a transaction whose COMMIT fails (here a
// deferred foreign key, which SQLite checks only at COMMIT) keeps none of
// its events, alone or in a group commit; their ids are handed out again
// to the next events, and the chain seals what is stored.
func TestAuditTailCommitFails(t *testing.T) {
	s := openTemp(t)
	migrateStore(t, s)
	ctx := context.Background()
	if err := s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.exec(`CREATE TABLE tail_parent (id INTEGER PRIMARY KEY);
			CREATE TABLE tail_child (p INTEGER REFERENCES tail_parent (id) DEFERRABLE INITIALLY DEFERRED)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sealAll(t, s)
	// write appends an event and, when orphan, a row that fails the
	// deferred key at COMMIT.
	write := func(i int, orphan bool) error {
		row := prepAudit(tailEvent(i))
		return s.w.do(ctx, func(tx *wtx) error {
			if err := tx.audit(row); err != nil {
				return err
			}
			if orphan {
				_, err := tx.exec(`INSERT INTO tail_child (p) VALUES (999)`)
				return err
			}
			return nil
		})
	}
	// Alone: a plain transaction.
	if err := write(0, true); err == nil || !strings.Contains(err.Error(), "commit") {
		t.Fatalf("an orphan row committed: %v", err)
	}
	if err := write(1, false); err != nil {
		t.Fatal(err)
	}
	checkTailIsCommitted(t, s)
	// In group commits: a batch with an orphan fails as a whole at COMMIT.
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i := range 64 {
		wg.Go(func() {
			err := write(i, i%16 == 5)
			if err != nil {
				if !strings.Contains(err.Error(), "commit") {
					t.Error(err)
				}
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed == 0 {
		t.Fatal("no write failed at COMMIT")
	}
	checkTailIsCommitted(t, s)
	sealChecked(t, s)
}

// TestAuditTailOnceDuplicate: an event AppendAuditOnce skips (its report
// id is already stored) is not kept, even when an event was inserted
// before it in the same transaction (SQLite's last insert id is then that
// one's).
func TestAuditTailOnceDuplicate(t *testing.T) {
	s := sealingStore(t)
	ctx := context.Background()
	report := func(id string) *store.AuditEvent {
		ev := tailEvent(0)
		ev.Type, ev.Details = "tool.report", map[string]string{store.DetailReportID: id, store.DetailReportingClient: "bot"}
		return ev
	}
	if err := s.AppendAuditOnce(ctx, report("r1")); err != nil {
		t.Fatal(err)
	}
	dup := report("r1")
	if err := s.AppendAuditOnce(ctx, report("r2"), dup); err != nil {
		t.Fatal(err)
	}
	if dup.ID != 0 {
		t.Errorf("the skipped event got id %d", dup.ID)
	}
	if n := len(s.w.tail.take(0, 1<<62, maxTail)); n != 2 {
		t.Errorf("the tail keeps %d events, want the 2 stored", n)
	}
	checkTailIsCommitted(t, s)
	sealChecked(t, s)
}

// TestAuditTailMigration: a migration runs on the writer's connection in
// its own transactions and may rewrite stored events (a data migration, a
// table rebuilt); what the tail kept from before it is then not what is
// stored, so the chain must seal the rows as they are after it.
func TestAuditTailMigration(t *testing.T) {
	s := sealingStore(t)
	ctx := context.Background()
	ev := tailEvent(0)
	if err := s.AppendAudit(ctx, ev); err != nil {
		t.Fatal(err)
	}
	// A migration that normalises a detail of stored events (jti, stored
	// under its short name, store.CompactDetails).
	err := dialect{s}.Transact(ctx, func(mtx migrate.Tx) error {
		_, err := mtx.(migrationTx).c.ExecContext(context.Background(),
			`UPDATE audit_events SET details = json_set(details, '$."~j"', 'migrated') WHERE id = ?`, ev.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTailIsCommitted(t, s)
	sealAll(t, s)
	if bad := checkChain(t, s); len(bad) != 0 {
		t.Fatalf("sealed events that differ from their rows after a migration: %v", bad)
	}
}

// TestAuditTailDeletedBehindBack: an event this store committed and kept is
// deleted behind its back before it is sealed, and another store on the
// file wrote an event in the same range. The counts of the range then
// agree (one kept event missing from the table, one stored event missing
// from the tail), but the sets do not: the chain must link the events
// that are stored, not the deleted one in place of the other store's.
func TestAuditTailDeletedBehindBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	s := openAt(t, path, defaultMaxBatch)
	migrateStore(t, s)
	other := openAt(t, path, defaultMaxBatch)
	ctx := context.Background()
	sealAll(t, s)
	e1, e2, e3 := tailEvent(1), tailEvent(2), tailEvent(3)
	for _, w := range []struct {
		s  *Store
		ev *store.AuditEvent
	}{{s, e1}, {other, e2}, {s, e3}} {
		if err := w.s.AppendAudit(ctx, w.ev); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `DELETE FROM audit_events WHERE id = ?`, e1.ID); err != nil {
		t.Fatal(err)
	}
	sealAll(t, s)
	var orphans int
	if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_links AS l
		WHERE NOT EXISTS (SELECT 1 FROM audit_events AS e WHERE e.id = l.id)`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d links for events that are not in the table", orphans)
	}
	if bad := checkChain(t, s); len(bad) != 0 { // fails on an unsealed event
		t.Fatalf("links not matching their events: %v", bad)
	}
}
