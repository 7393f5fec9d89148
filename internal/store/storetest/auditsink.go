package storetest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// ---- the streaming sinks' cursors (store.AuditSinks) ----------------------

// testSealedAudit: only what the sealer has looked at is read, in id
// order across tenants, with links, from the cursor on.
func testSealedAudit(t *testing.T, s store.Store) {
	t0 := base().Truncate(time.Microsecond)
	// A store that has sealed may hand over events it keeps from its
	// commits rather than read them back (SQLite): they must be the same.
	sealAll(t, s)
	var ids []int64
	for i, tn := range []string{store.DefaultTenant, uniq("tn"), store.DefaultTenant} {
		ev := &store.AuditEvent{TenantID: tn, Time: t0.Add(time.Duration(i)*time.Second + 789*time.Nanosecond), Type: "sink.test",
			Outcome: "success", Scopes: []string{"a", "b<&>"}, Details: map[string]string{"k": "v\n\"é\"", "n": strconv.Itoa(i)}}
		if i == 1 {
			ev.ClientRequestID, ev.Scopes, ev.Details = "client-req", nil, nil
		}
		must(t, "AppendAudit", s.AppendAudit(ctx(t), ev))
		ids = append(ids, ev.ID)
	}
	before, mark, err := s.SealedAudit(ctx(t), 0, 0)
	must(t, "SealedAudit", err)
	for _, l := range before {
		if l.Event.ID >= ids[0] {
			t.Fatalf("SealedAudit returned event %d before the sealer saw it (mark %d)", l.Event.ID, mark)
		}
	}
	// What SealAudit hands over is what SealedAudit reads back.
	w, err := s.AuditWatermark(ctx(t))
	must(t, "AuditWatermark", err)
	res, err := s.SealAudit(ctx(t), w, 0)
	must(t, "SealAudit", err)
	back, _, err := s.SealedAudit(ctx(t), res.From, 0)
	must(t, "SealedAudit", err)
	if len(res.Links) != res.Sealed || len(back) != len(res.Links) {
		t.Fatalf("SealAudit linked %d events and returned %d; SealedAudit after %d reads %d", res.Sealed, len(res.Links), res.From, len(back))
	}
	for i, l := range res.Links {
		b := back[i]
		if l.Event.ID != b.Event.ID || !bytes.Equal(l.Hash, b.Hash) || !bytes.Equal(l.PrevHash, b.PrevHash) || !reflect.DeepEqual(l.Event, b.Event) {
			t.Fatalf("SealAudit's link %d = %d %x %+v, stored %d %x %+v", i, l.Event.ID, l.Hash, l.Event, b.Event.ID, b.Hash, b.Event)
		}
		if l.DetailsJSON != "" {
			want := []byte("{}")
			if d := b.Event.StoredDetails(); len(d) > 0 {
				want, err = json.Marshal(d)
				must(t, "json.Marshal", err)
			}
			if l.DetailsJSON != string(want) {
				t.Fatalf("SealAudit's link %d has details text %s, want %s", i, l.DetailsJSON, want)
			}
		}
	}
	sealAll(t, s)
	after := ids[0] - 1
	links, mark, err := s.SealedAudit(ctx(t), after, 0)
	must(t, "SealedAudit", err)
	if mark < ids[2] {
		t.Fatalf("mark %d, want at least %d", mark, ids[2])
	}
	var got []int64
	for _, l := range links {
		if !l.Sealed() {
			t.Fatalf("event %d returned unsealed", l.Event.ID)
		}
		if l.Event.Type == "sink.test" {
			got = append(got, l.Event.ID)
		}
	}
	if len(got) != 3 || got[0] != ids[0] || got[1] != ids[1] || got[2] != ids[2] {
		t.Fatalf("SealedAudit after %d = %v, want %v", after, got, ids)
	}
	page, _, err := s.SealedAudit(ctx(t), ids[0], 1)
	must(t, "SealedAudit", err)
	if len(page) != 1 || page[0].Event.ID != ids[1] {
		t.Fatalf("SealedAudit(after %d, limit 1) = %d events, want event %d", ids[0], len(page), ids[1])
	}
	if page, m, err := s.SealedAudit(ctx(t), mark, 0); err != nil || len(page) != 0 || m != mark {
		t.Fatalf("SealedAudit at the mark = %d events, mark %d, %v; want none, %d", len(page), m, err, mark)
	}
}

// testAuditSinkLease: one dispatcher at a time runs a sink; the cursor
// moves only from where it is, and only for the lease holder.
func testAuditSinkLease(t *testing.T, s store.Store) {
	name := uniq("sink")
	now := base().Truncate(time.Microsecond)
	st, err := s.LeaseAuditSink(ctx(t), name, "hub-a", now, now.Add(30*time.Second), 7)
	must(t, "LeaseAuditSink", err)
	if st.Name != name || st.Cursor != 7 || st.Holder != "hub-a" || !st.LeaseUntil.Equal(now.Add(30*time.Second)) {
		t.Fatalf("new sink = %+v, want cursor 7 held by hub-a for 30s", st)
	}
	_, err = s.LeaseAuditSink(ctx(t), name, "hub-b", now.Add(time.Second), now.Add(31*time.Second), 0)
	wantErr(t, "a second holder while the lease runs", err, store.ErrConflict)

	must(t, "AdvanceAuditSink", s.AdvanceAuditSink(ctx(t), name, "hub-a", 7, 12, now.Add(2*time.Second)))
	wantErr(t, "advancing from a stale cursor", s.AdvanceAuditSink(ctx(t), name, "hub-a", 7, 20, now.Add(3*time.Second)), store.ErrConflict)
	wantErr(t, "advancing without the lease", s.AdvanceAuditSink(ctx(t), name, "hub-b", 12, 20, now.Add(3*time.Second)), store.ErrConflict)

	// Renewing keeps the cursor; the start only applies to a new sink.
	st, err = s.LeaseAuditSink(ctx(t), name, "hub-a", now.Add(10*time.Second), now.Add(40*time.Second), 0)
	must(t, "LeaseAuditSink renew", err)
	if st.Cursor != 12 || !st.DeliveredAt.Equal(now.Add(2*time.Second)) {
		t.Fatalf("renewed sink = %+v, want cursor 12 delivered at +2s", st)
	}

	// The lease runs out: another dispatcher takes over from the cursor,
	// and the first one can no longer write.
	later := now.Add(41 * time.Second)
	st, err = s.LeaseAuditSink(ctx(t), name, "hub-b", later, later.Add(30*time.Second), 0)
	must(t, "LeaseAuditSink after expiry", err)
	if st.Cursor != 12 || st.Holder != "hub-b" {
		t.Fatalf("taken-over sink = %+v, want cursor 12 held by hub-b", st)
	}
	wantErr(t, "advancing by the old holder", s.AdvanceAuditSink(ctx(t), name, "hub-a", 12, 20, later), store.ErrConflict)
	wantErr(t, "failing by the old holder", s.FailAuditSink(ctx(t), name, "hub-a", "x", later), store.ErrConflict)
	wantErr(t, "advancing after the lease ran out", s.AdvanceAuditSink(ctx(t), name, "hub-b", 12, 20, later.Add(time.Minute)), store.ErrConflict)
}

// testAuditSinkHealth: failures, dead letters with their alert event,
// and the listing with the lag.
func testAuditSinkHealth(t *testing.T, s store.Store) {
	name := uniq("sink")
	now := base().Truncate(time.Microsecond)
	// The events the sink is behind on.
	var ids []int64
	for i := range 3 {
		ev := &store.AuditEvent{TenantID: store.DefaultTenant, Time: now.Add(time.Duration(i) * time.Second), Type: "sink.pending", Outcome: "success"}
		must(t, "AppendAudit", s.AppendAudit(ctx(t), ev))
		ids = append(ids, ev.ID)
	}
	cursor := ids[0] - 1
	_, err := s.LeaseAuditSink(ctx(t), name, "hub-a", now, now.Add(time.Hour), cursor)
	must(t, "LeaseAuditSink", err)
	must(t, "FailAuditSink", s.FailAuditSink(ctx(t), name, "hub-a", "status 503", now.Add(time.Minute)))
	must(t, "FailAuditSink", s.FailAuditSink(ctx(t), name, "hub-a", "status 502", now.Add(2*time.Minute)))

	st := sinkState(t, s, name)
	if st.Failures != 2 || st.LastError != "status 502" || !st.LastErrorAt.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("after two failures = %+v", st)
	}
	// Pending counts every event after the cursor (other tests' too, when
	// they share the database); the oldest pending is the first of ours.
	if st.Pending < 3 || !st.OldestPending.Equal(now) {
		t.Fatalf("pending = %d oldest %v, want at least 3, oldest %v", st.Pending, st.OldestPending, now)
	}

	dl := &store.AuditDeadLetter{Sink: name, FirstID: ids[0], LastID: ids[1], Events: 2, Attempts: 5, Error: "status 502", At: now.Add(3 * time.Minute)}
	alert := &store.AuditEvent{TenantID: store.DefaultTenant, Time: dl.At, Type: "sink.alert", Outcome: "failure", Details: map[string]string{"sink": name}}
	wantErr(t, "dead-lettering from a stale cursor", s.DeadLetterAudit(ctx(t), "hub-a", cursor+1, dl, alert), store.ErrConflict)
	if alert.ID != 0 {
		// An event of a failed transaction must not be left behind.
		assertNoEvent(t, s, alert.ID)
		alert.ID = 0
	}
	must(t, "DeadLetterAudit", s.DeadLetterAudit(ctx(t), "hub-a", cursor, dl, alert))
	if alert.ID == 0 {
		t.Fatal("DeadLetterAudit did not set the alert's id")
	}
	evs, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: store.DefaultTenant, Type: "sink.alert", Limit: 10})
	must(t, "ListAudit", err)
	if len(evs) != 1 || evs[0].ID != alert.ID || evs[0].Details["sink"] != name {
		t.Fatalf("alert events = %v, want the one written", evs)
	}
	st = sinkState(t, s, name)
	if st.Cursor != ids[1] || st.DeadLetters != 2 || st.Failures != 0 || st.LastError != "status 502" {
		t.Fatalf("after the dead letter = %+v, want cursor %d, 2 dead letters, no failures, the last error kept", st, ids[1])
	}
	if !st.OldestPending.Equal(now.Add(2 * time.Second)) {
		t.Fatalf("oldest pending %v, want the third event's time", st.OldestPending)
	}
	dls, err := s.AuditDeadLetters(ctx(t), name, 0)
	must(t, "AuditDeadLetters", err)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	if got := *dls[0]; !got.At.Equal(dl.At) {
		t.Fatalf("dead letter at %v, want %v", got.At, dl.At)
	} else if got.At = dl.At; got != *dl {
		t.Fatalf("dead letter = %+v, want %+v", got, *dl)
	}
	must(t, "AdvanceAuditSink", s.AdvanceAuditSink(ctx(t), name, "hub-a", ids[1], ids[2], now.Add(4*time.Minute)))
	st = sinkState(t, s, name)
	if st.Cursor != ids[2] || !st.DeliveredAt.Equal(now.Add(4*time.Minute)) {
		t.Fatalf("after delivering = %+v", st)
	}
}

func sinkState(t *testing.T, s store.Store, name string) *store.AuditSinkState {
	t.Helper()
	all, err := s.ListAuditSinks(ctx(t))
	must(t, "ListAuditSinks", err)
	for _, st := range all {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("ListAuditSinks has no sink %q", name)
	return nil
}

func assertNoEvent(t *testing.T, s store.Store, id int64) {
	t.Helper()
	evs, err := s.ListAudit(ctx(t), store.AuditFilter{TenantID: store.DefaultTenant, After: id - 1, Ascending: true, Limit: 1})
	must(t, "ListAudit", err)
	if len(evs) == 1 && evs[0].ID == id {
		t.Fatalf("event %d of a failed transaction was written", id)
	}
}
