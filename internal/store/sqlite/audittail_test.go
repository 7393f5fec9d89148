package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// tailEvent is an event with the usual values of a token.issued.
func tailEvent(i int) *store.AuditEvent {
	return &store.AuditEvent{TenantID: store.DefaultTenant, Time: time.Now(), Type: "token.issued",
		RequestID: "req", ClientID: "bot", Resource: "https://mcp.example.com/mcp", Scopes: []string{"notes.read"},
		IP: "127.0.0.1", Outcome: "success", Details: map[string]string{"jti": string(rune('a' + i%26))}}
}

// sealAll seals every committed event (the first call, like a hub
// sealer's first round, has the store keep what it commits from then on).
func sealAll(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	w, err := s.AuditWatermark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		res, err := s.SealAudit(ctx, w, 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.Through >= w {
			return
		}
	}
}

// sealingStore is a migrated store that has sealed once, so that it
// keeps the events it commits from then on.
func sealingStore(t *testing.T) *Store {
	t.Helper()
	s := openTemp(t)
	migrateStore(t, s)
	sealAll(t, s)
	return s
}

// sealChecked seals every committed event and fails unless every stored
// event of the default tenant is linked as stored.
func sealChecked(t *testing.T, s *Store) {
	t.Helper()
	sealAll(t, s)
	if bad := checkChain(t, s); len(bad) != 0 {
		t.Fatalf("links not matching their events: %v", bad)
	}
}

// checkChain recomputes the tenant's chain from the stored events and
// returns the ids whose stored link does not match them.
func checkChain(t *testing.T, s *Store) (bad []int64) {
	t.Helper()
	return checkTenantChain(t, s, store.DefaultTenant)
}

// checkTenantChain is checkChain for a tenant.
func checkTenantChain(t *testing.T, s *Store, tenant string) (bad []int64) {
	t.Helper()
	links, err := s.AuditLinks(context.Background(), tenant, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	prev := store.ChainGenesis
	for _, l := range links {
		if !l.Sealed() {
			t.Fatalf("event %d is not sealed", l.Event.ID)
		}
		if !bytes.Equal(l.PrevHash, prev) || !bytes.Equal(l.Hash, store.ChainHash(prev, l.Event)) {
			bad = append(bad, l.Event.ID)
		}
		prev = l.Hash
	}
	return bad
}

// TestAuditTailStoredForm: what the tail keeps for an event is what a read
// of its row gives back, field for field, or nothing when a value would
// not come back as written.
func TestAuditTailStoredForm(t *testing.T) {
	s := openTemp(t)
	migrateStore(t, s)
	ctx := context.Background()
	local := time.FixedZone("X", 5*3600+1800)
	cases := []struct {
		name  string
		ev    store.AuditEvent
		exact bool
	}{
		{"usual", *tailEvent(0), true},
		{"zero time, nothing optional", store.AuditEvent{TenantID: "t1", Type: "x"}, true},
		{"local time with nanoseconds", store.AuditEvent{TenantID: "t1", Type: "x", Time: time.Date(2026, 12, 3, 13, 0, 0, 123456789, local)}, true},
		{"before 1970", store.AuditEvent{TenantID: "t1", Type: "x", Time: time.Date(1969, 7, 20, 20, 17, 40, 999, time.UTC)}, true},
		{"empty lists and maps", store.AuditEvent{TenantID: "t1", Type: "x", Scopes: []string{}, Details: map[string]string{}}, true},
		{"client request id", store.AuditEvent{TenantID: "t1", Type: "x", ClientRequestID: "abc", Details: map[string]string{"k": "v"}}, true},
		{"client request id alone", store.AuditEvent{TenantID: "t1", Type: "x", ClientRequestID: "abc"}, true},
		{"client request id over a detail", store.AuditEvent{TenantID: "t1", Type: "x", ClientRequestID: "abc",
			Details: map[string]string{store.DetailClientRequestID: "old"}}, true},
		{"escapes and non-ASCII", store.AuditEvent{TenantID: "t1", Type: "x", UserID: "zoë@example.com",
			Scopes:  []string{`a"b`, `c\d`, "<&>", "\u2028", "日本", ""},
			Details: map[string]string{"k\n": "v\t\x01", "": "", "é": `{"json":[1]}`}}, true},
		{"invalid UTF-8 in a detail", store.AuditEvent{TenantID: "t1", Type: "x", Details: map[string]string{"k": "\xff"}}, false},
		{"invalid UTF-8 in a key", store.AuditEvent{TenantID: "t1", Type: "x", Details: map[string]string{"\xfe": "v"}}, false},
		{"invalid UTF-8 in a scope", store.AuditEvent{TenantID: "t1", Type: "x", Scopes: []string{"a\xc3"}}, false},
		{"invalid UTF-8 in a column", store.AuditEvent{TenantID: "t1", Type: "x", IP: "\xff"}, false},
		{"NUL in a column", store.AuditEvent{TenantID: "t1", Type: "x", UserID: "a\x00b"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := c.ev
			if err := s.AppendAudit(ctx, &ev); err != nil {
				t.Fatal(err)
			}
			form := storedForm(&ev, ev.ID)
			if (form != nil) != c.exact {
				t.Fatalf("storedForm: got %v, want a form: %v", form, c.exact)
			}
			if form == nil {
				return
			}
			links, err := s.AuditLinks(ctx, ev.TenantID, ev.ID-1, 1)
			if err != nil || len(links) != 1 || links[0].Event.ID != ev.ID {
				t.Fatalf("reading event %d back: %v, %v", ev.ID, links, err)
			}
			if got := links[0].Event; !reflect.DeepEqual(form, got) {
				t.Errorf("kept form differs from the stored event:\nkept %#v\nread %#v", form, got)
			}
			if !bytes.Equal(store.AuditCanonical(form), store.AuditCanonical(links[0].Event)) {
				t.Error("canonical encodings differ")
			}
		})
	}
	// The kept form is a copy: changing the caller's event afterwards
	// changes nothing kept.
	ev := tailEvent(1)
	form := storedForm(ev, 7)
	ev.Details["jti"], ev.Scopes[0] = "changed", "changed"
	if form.Details["jti"] == "changed" || form.Scopes[0] == "changed" {
		t.Error("the kept form shares the caller's details or scopes")
	}
}

// TestAuditTailSeals: once a store seals, events it commits are sealed from
// the tail: a row changed behind the store's back between its commit and
// the seal is sealed as committed, so the chain shows the change (a read
// back would have sealed the changed row). Events the tail does not hold
// (written by another store on the file, or without an exact form) are
// read, and the chain verifies.
func TestAuditTailSeals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	s := openAt(t, path, defaultMaxBatch)
	migrateStore(t, s)
	ctx := context.Background()

	// Before the first seal nothing is kept.
	if err := s.AppendAudit(ctx, tailEvent(0)); err != nil {
		t.Fatal(err)
	}
	if n := len(s.w.tail.evs); n != 0 {
		t.Fatalf("a store that never sealed keeps %d events", n)
	}
	sealAll(t, s)

	evs := []*store.AuditEvent{tailEvent(1), tailEvent(2), tailEvent(3)}
	if err := s.AppendAudit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `UPDATE audit_events SET details = '{"jti":"forged"}' WHERE id = ?`, evs[1].ID); err != nil {
		t.Fatal(err)
	}
	sealAll(t, s)
	if bad := checkChain(t, s); !reflect.DeepEqual(bad, []int64{evs[1].ID}) {
		t.Fatalf("events whose link does not match their row: %v, want the changed one, %d", bad, evs[1].ID)
	}
	if _, err := raw.ExecContext(ctx, `UPDATE audit_events SET details = '{"jti":"c"}' WHERE id = ?`, evs[1].ID); err != nil {
		t.Fatal(err)
	}
	if bad := checkChain(t, s); len(bad) != 0 {
		t.Fatalf("after undoing the change: %v", bad)
	}

	// Another store on the file writes between this store's events; an
	// event without an exact form leaves a gap. Both are read back.
	other := openAt(t, path, defaultMaxBatch)
	for i := range 6 {
		var err error
		switch i % 3 {
		case 0:
			err = s.AppendAudit(ctx, tailEvent(i))
		case 1:
			err = other.AppendAudit(ctx, tailEvent(i))
		case 2:
			ev := tailEvent(i)
			ev.Details["bad"] = "\xff"
			err = s.AppendAudit(ctx, ev)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	sealChecked(t, s)
	if n := len(s.w.tail.take(0, 1<<62, 1000)); n != 0 {
		t.Errorf("the tail still holds %d sealed events", n)
	}
}

// TestAuditTailRollback: the events of a request rolled back in a group
// commit (its savepoint undone) are not kept, though their ids are handed
// out again to the requests after it; what is kept is what committed.
func TestAuditTailRollback(t *testing.T) {
	s := sealingStore(t)
	ctx := context.Background()
	errFail := errors.New("fails after writing its event")
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			row := prepAudit(tailEvent(i))
			err := s.w.do(ctx, func(tx *wtx) error {
				if err := tx.audit(row); err != nil {
					return err
				}
				if i%3 == 0 {
					return errFail
				}
				return nil
			})
			if err != nil && !errors.Is(err, errFail) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	links, err := s.AuditLinks(ctx, store.DefaultTenant, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	kept := s.w.tail.take(0, 1<<62, 1000)
	if len(kept) != len(links) || len(links) != 64-22 {
		t.Fatalf("kept %d events, %d committed, want %d", len(kept), len(links), 64-22)
	}
	for i, l := range links {
		if !reflect.DeepEqual(kept[i].AuditEvent, l.Event) {
			t.Errorf("kept %#v, committed %#v", kept[i].AuditEvent, l.Event)
		}
		// The stored text when it is what a sink writes; none when it has
		// short key names.
		want := ""
		if d, coded := store.CompactDetails(l.Event.Details); !coded {
			want = mapText(d)
		}
		if kept[i].details != want {
			t.Errorf("kept details text %s, want %s", kept[i].details, want)
		}
	}
	sealChecked(t, s)
}

// TestAuditTailBound: the tail keeps at most maxTail events; a sealer that
// fell further behind reads the ones dropped.
func TestAuditTailBound(t *testing.T) {
	var tl auditTail
	evs := make([]keptEvent, maxTail+10)
	for i := range evs {
		evs[i] = keptEvent{AuditEvent: &store.AuditEvent{ID: int64(i + 1)}}
	}
	tl.add(evs[:5])
	tl.add(append([]keptEvent{{}}, evs[5:]...)) // a gap is skipped
	if len(tl.evs) != maxTail || tl.evs[0].ID != 11 {
		t.Fatalf("kept %d events from %d, want %d from 11", len(tl.evs), tl.evs[0].ID, maxTail)
	}
	got := tl.take(20, 25, 3)
	if len(got) != 3 || got[0].ID != 21 || got[2].ID != 23 {
		t.Fatalf("take(20, 25, 3) = %v", got)
	}
	if tl.evs[0].ID != 21 {
		t.Errorf("events at or below the mark are still kept from %d", tl.evs[0].ID)
	}
	if got := tl.take(30, 30, 10); len(got) != 0 {
		t.Errorf("take of an empty range = %v", got)
	}
	tl.add([]keptEvent{{AuditEvent: &store.AuditEvent{ID: 40}}}) // an id handed out again
	if got := tl.take(30, 1<<62, 10); len(got) != 1 || got[0].ID != 40 {
		t.Errorf("after an id went down: %v, want only event 40", got)
	}
}

// TestSealLinkRuns: links are inserted a run of one tenant's consecutive
// events per statement; runs longer than a statement, runs of one and
// tenants taking turns all link every event to its tenant's previous one.
func TestSealLinkRuns(t *testing.T) {
	s := openTemp(t)
	migrateStore(t, s)
	ctx := context.Background()
	tenants := []string{store.DefaultTenant, "t1", "t2"}
	var evs []*store.AuditEvent
	for i := range 400 {
		ev := tailEvent(i)
		switch {
		case i < 150: // a run of 150
		case i < 200:
			ev.TenantID = tenants[i%3] // taking turns
		default:
			ev.TenantID = tenants[(i/70)%3] // runs of 70
		}
		evs = append(evs, ev)
	}
	if err := s.AppendAudit(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	sealAll(t, s)
	for _, tn := range tenants {
		if bad := checkTenantChain(t, s, tn); len(bad) != 0 {
			t.Errorf("tenant %s: links not matching their events: %v", tn, bad)
		}
		links, err := s.AuditLinks(ctx, tn, 0, 1000)
		if err != nil || len(links) == 0 || !bytes.Equal(links[0].PrevHash, store.ChainGenesis) {
			t.Errorf("tenant %s: %d links (%v), want a chain from the genesis", tn, len(links), err)
		}
	}
}
