package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// The audit trail is a hash chain per tenant. Events are written without a
// hash, in the transaction of their change, so that linking them never
// serialises the writes that produce them; a sealer (SealAudit) links them
// shortly after, in id order:
//
//	hash = SHA-256(prev_hash || AuditCanonical(event))
//
// where prev_hash is the hash of the tenant's previous event in id order
// (ChainGenesis, 32 zero bytes, for its first) and AuditCanonical encodes
// every stored column of the event (below). The chain orders by id among
// the rows that exist: an id that was never committed is simply absent.

// ChainGenesis is the prev_hash of a tenant's first event.
var ChainGenesis = make([]byte, sha256.Size)

// auditCanonicalTag starts every canonical encoding, so that it cannot be
// mistaken for any other SHA-256 input of the hub, and names its version.
const auditCanonicalTag = "agentid.audit.v1"

// AuditCanonical is the canonical encoding of a stored event, version 1.
// Every item is a length-prefixed byte string (its length as a 4-byte
// big-endian integer, then the bytes) or a fixed-size big-endian integer,
// in this order:
//
//	tag        "agentid.audit.v1" (string)
//	id         int64
//	tenant_id  string
//	time       1 byte (0: no time, 1: a time) then int64 Unix microseconds, UTC
//	type, request_id, client_id, user_id, resource  string each
//	scopes     uint32 count, then each scope as a string, in stored order
//	ip, outcome  string each
//	details    uint32 count, then key and value strings, keys in byte order
//
// Details are ev.StoredDetails() (with the client's request id folded in).
// Nil and empty lists and maps encode alike, as the backends store them
// alike; times are truncated to microseconds, the precision both backends
// keep.
func AuditCanonical(ev *AuditEvent) []byte {
	return appendAuditCanonical(nil, ev)
}

// appendAuditCanonical appends ev's canonical encoding to b.
func appendAuditCanonical(b []byte, ev *AuditEvent) []byte {
	details := ev.StoredDetails()
	// Room for the usual number of details without an allocation.
	keys := make([]string, 0, 32)
	n := 64 + len(ev.TenantID) + len(ev.Type) + len(ev.RequestID) + len(ev.ClientID) + len(ev.UserID) +
		len(ev.Resource) + len(ev.IP) + len(ev.Outcome) + 4*len(ev.Scopes) + 8*len(details)
	for _, s := range ev.Scopes {
		n += len(s)
	}
	for k, v := range details {
		keys = append(keys, k)
		n += len(k) + len(v)
	}
	slices.Sort(keys)
	b = slices.Grow(b, n+96)
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	str(auditCanonicalTag)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.ID))
	str(ev.TenantID)
	if ev.Time.IsZero() {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(ev.Time.UnixMicro()))
	}
	str(ev.Type)
	str(ev.RequestID)
	str(ev.ClientID)
	str(ev.UserID)
	str(ev.Resource)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ev.Scopes)))
	for _, s := range ev.Scopes {
		str(s)
	}
	str(ev.IP)
	str(ev.Outcome)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		str(k)
		str(details[k])
	}
	return b
}

// ChainHash is the hash of ev in its tenant's chain after an event whose
// hash is prev: SHA-256(prev || AuditCanonical(ev)).
func ChainHash(prev []byte, ev *AuditEvent) []byte {
	var c ChainHasher
	return c.Append(nil, prev, ev)
}

// ChainHasher computes ChainHash for many events, reusing one buffer for
// their canonical encodings. The zero value is ready; it is not safe for
// concurrent use.
type ChainHasher struct{ buf []byte }

// Append appends ChainHash(prev, ev) to dst.
func (c *ChainHasher) Append(dst, prev []byte, ev *AuditEvent) []byte {
	c.buf = appendAuditCanonical(append(c.buf[:0], prev...), ev)
	sum := sha256.Sum256(c.buf)
	return append(dst, sum[:]...)
}

// AuditLink is a stored event with its place in the chain.
type AuditLink struct {
	Event *AuditEvent
	// PrevHash and Hash are nil while the event is not sealed.
	PrevHash, Hash []byte
	// DetailsJSON, when not empty, is Event.StoredDetails() as the JSON
	// object encoding/json writes for it (keys in byte order, "{}" when
	// there are none): a backend that has the text at hand sets it, so
	// that a sink need not encode the details again.
	DetailsJSON string
}

// Sealed reports whether the sealer has linked the event.
func (l *AuditLink) Sealed() bool { return l.Hash != nil }

// ChainHead is the newest sealed event of a tenant's chain.
type ChainHead struct {
	TenantID string
	ID       int64
	Hash     []byte
	// Sealed is how many events the SealAudit call that returned the head
	// linked in this tenant (zero from AuditHead).
	Sealed int
}

// SealResult is what one SealAudit call did.
type SealResult struct {
	// Through: every event id up to Through has been looked at by a
	// sealer; later events are sealed by later calls.
	Through int64
	// Sealed is how many events the call linked, in all tenants.
	Sealed int
	// Heads are the new heads of the tenants the call advanced.
	Heads []ChainHead
	// From is the mark the call started from: the call looked at the ids
	// above From up to Through. Links are the events it linked, in id
	// order, with their links: every event of that range, so that a
	// reader in the same process (the streaming sinks) need not read them
	// back.
	From  int64
	Links []*AuditLink
}

// AuditReading is a reading of the audit watermark (ReadAuditWatermark):
// ID, the highest event id handed out when it was taken, is safe to seal
// up to once the store's horizon is above Fence.
type AuditReading struct {
	ID    int64
	Fence uint64
}

// AuditPrune names what PruneAudit removes: the tenant's events before
// Keep, the first event to keep, which must be sealed with PrevHash.
type AuditPrune struct {
	TenantID string
	Keep     int64
	PrevHash []byte
}

// AuditChain is the sealing side of the audit trail (see ChainHash).
// Backends keep each event's link (prev_hash and hash) beside the event —
// SQLite a row per link, PostgreSQL since its migration 0025 a row per
// sealed run (AuditRun), older links a row each — each tenant's chain
// head, and one sealed-through mark for all tenants.
type AuditChain interface {
	// AuditWatermark returns the highest event id assigned so far, by any
	// transaction, committed or not; 0 when none was.
	AuditWatermark(ctx context.Context) (int64, error)
	// ReadAuditWatermark takes a reading r of the watermark for the sealer
	// and returns it with the store's current horizon. r.ID is the highest
	// id handed out so far; r may be sealed up to once a later call
	// returns a horizon above r.Fence, which says that every transaction
	// that could still commit an id at or below r.ID has ended (committed
	// or rolled back). Horizons never go down. A store whose ids commit in
	// id order returns Fence 0 and horizon 1: every reading is safe at
	// once.
	ReadAuditWatermark(ctx context.Context) (r AuditReading, horizon uint64, err error)
	// SealAudit links, in id order, the events with an id above the
	// sealed-through mark and at most upTo, at most limit of them (0:
	// 1000): each gets its link (prev_hash and hash), each tenant's head moves to
	// its last one, and the mark moves to the last event linked, or to
	// upTo when fewer than limit were left. One transaction; one sealer at
	// a time (a second waits), so the chain cannot fork. The caller
	// chooses upTo so that every id up to it has committed or rolled back
	// (a ReadAuditWatermark reading whose fence a later horizon passed):
	// an event committed later with an id at or below the mark would stay
	// unsealed, verification would report it and no sink would stream it.
	// ErrConflict: other sealers kept moving the chain (SQLite plans on a
	// snapshot and retries a few times); the caller tries again later.
	SealAudit(ctx context.Context, upTo int64, limit int) (*SealResult, error)
	// AuditHead returns the tenant's chain head; ErrNotFound when nothing
	// of the tenant was sealed yet.
	AuditHead(ctx context.Context, tenantID string) (*ChainHead, error)
	// AuditLinks returns the tenant's events with an id above afterID, in
	// id order, at most limit (0: 1000), sealed or not.
	AuditLinks(ctx context.Context, tenantID string, afterID int64, limit int) ([]*AuditLink, error)
	// PruneAudit deletes the tenant's events (and their links) with an id below p.Keep and
	// writes the event ev returns for the number deleted (nil: none), in
	// one transaction, and returns that number. It fails with ErrConflict,
	// deleting nothing, unless event p.Keep exists in the tenant, is
	// sealed and has prev_hash p.PrevHash: the caller signed that anchor,
	// so the kept chain stays verifiable.
	PruneAudit(ctx context.Context, p AuditPrune, ev func(deleted int64) *AuditEvent) (int64, error)
}
