package sqlite

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/store"
)

// The sealer hashes every event of the trail. Reading an event back from
// SQLite (its columns, the JSON of its scopes and details) costs about as
// much as sealing it, and in a hub the events it seals were written a
// moment before by the same process. So once a store has sealed (the first
// SealAudit call switches it on; a process that never seals keeps
// nothing), the writer keeps the events of every transaction it commits,
// in the form a read gives back, until the sealer has linked them: the
// tail. SealAudit takes a range's events from the tail when they are all
// of the range's events (a count in its read snapshot says so) and reads
// them otherwise: after a restart, events written by another process on
// the file, events dropped past maxTail, or any whose values might not
// read back byte for byte. Correctness never depends on the tail: it
// only saves reads, and what it hands over equals what a read returns
// (TestAuditTailStoredForm).

// maxTail bounds the events the tail keeps (a few seconds of issuance at
// full speed; a sealer that falls further behind reads the rest).
const maxTail = 16384

// auditTail is the events this process committed that no sealer has
// linked yet, in id order.
type auditTail struct {
	on  atomic.Bool // a SealAudit ran on this store
	mu  sync.Mutex
	evs []keptEvent
}

// keptEvent is an event in its stored form and the JSON text stored for
// its details (store.AuditLink.DetailsJSON), empty when that text has
// short key names (store.CompactDetails) and so is not what a sink writes.
type keptEvent struct {
	*store.AuditEvent
	details string
}

// storedForm returns ev as a read of its row gives it back (scanLink),
// with id, or nil when a value might not survive the round trip exactly:
// a string that is not valid UTF-8 or holds a NUL (the JSON columns
// replace invalid bytes). Details are copied, so that a caller changing
// its event afterwards cannot change what is sealed.
func storedForm(ev *store.AuditEvent, id int64) *store.AuditEvent {
	f := &store.AuditEvent{ID: id, TenantID: ev.TenantID, Type: ev.Type, RequestID: ev.RequestID,
		ClientID: ev.ClientID, UserID: ev.UserID, Resource: ev.Resource, IP: ev.IP, Outcome: ev.Outcome}
	if !ev.Time.IsZero() {
		f.Time = time.UnixMicro(ev.Time.UnixMicro()).UTC()
	}
	if !exactText(f.TenantID, f.Type, f.RequestID, f.ClientID, f.UserID, f.Resource, f.IP, f.Outcome) ||
		!exactText(ev.Scopes...) {
		return nil
	}
	if len(ev.Scopes) > 0 {
		f.Scopes = slices.Clone(ev.Scopes)
	}
	if d := ev.StoredDetails(); len(d) > 0 {
		for k, v := range d {
			if !exactText(k, v) {
				return nil
			}
		}
		if ev.ClientRequestID != "" {
			f.Details = d // StoredDetails made it for us
		} else {
			f.Details = maps.Clone(d)
		}
	}
	return f
}

// exactText reports whether every string reads back from a TEXT or JSON
// column as it was written.
func exactText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// add appends the events of a committed transaction. A nil entry (an
// event without an exact stored form) is a gap: it is left out, and the
// count check of take's caller then reads its range.
func (t *auditTail) add(evs []keptEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ev := range evs {
		if ev.AuditEvent == nil {
			continue
		}
		if n := len(t.evs); n > 0 && t.evs[n-1].ID >= ev.ID {
			// Ids go up with the commits of the one writer; they did not
			// (rows deleted behind the store's back, their ids handed out
			// again): start afresh rather than keep two events of an id.
			t.trim(n)
		}
		t.evs = append(t.evs, ev)
	}
	if n := len(t.evs) - maxTail; n > 0 {
		t.trim(n)
	}
}

// reset forgets every kept event.
func (t *auditTail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.trim(len(t.evs))
}

// trim forgets the oldest n events.
func (t *auditTail) trim(n int) {
	clear(t.evs[:n]) // the backing array outlives the slice: let the events go
	t.evs = t.evs[n:]
}

// drop forgets the events at or below the sealed mark, which only moves
// forward.
func (t *auditTail) drop(mark int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(mark)
}

func (t *auditTail) dropLocked(mark int64) {
	i, _ := slices.BinarySearchFunc(t.evs, mark+1, func(ev keptEvent, id int64) int {
		return cmp.Compare(ev.ID, id)
	})
	t.trim(i)
}

// take returns the kept events with an id in (after, upTo], at most
// limit, in id order; after is the sealed mark (see drop).
func (t *auditTail) take(after, upTo int64, limit int) []keptEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(after)
	j := 0
	for j < len(t.evs) && j < limit && t.evs[j].ID <= upTo {
		j++
	}
	return slices.Clone(t.evs[:j])
}
