package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A run is how a backend may store the links of consecutive sealed events
// of one tenant in one record (PostgreSQL since its migration 0025): the
// events' ids, the prev_hash of the first, and the events' hashes, 32
// bytes each, in id order. An event's prev_hash is the hash before it in
// the run. A run holds exactly the links a row per event would, so reads
// hand out the same AuditLinks and Verify sees no difference.

// ChainHashSize is the size of a link's hash (SHA-256).
const ChainHashSize = 32

// AppendRunIDs appends the stored form of a run's ids to dst: the first id
// as an unsigned varint, then each next id's distance from the one before
// it (at least 1), as an unsigned varint. The ids must be positive and
// ascending. Ids of one tenant sealed together are mostly consecutive, so
// most take one byte.
func AppendRunIDs(dst []byte, ids []int64) []byte {
	var last int64
	for _, id := range ids {
		if id <= last {
			panic(fmt.Sprintf("store: run ids not ascending: %d after %d", id, last))
		}
		dst = binary.AppendUvarint(dst, uint64(id-last))
		last = id
	}
	return dst
}

// RunIDs reads what AppendRunIDs wrote, for a run of n events.
func RunIDs(b []byte, n int) ([]int64, error) {
	ids := make([]int64, 0, n)
	var last int64
	for len(b) > 0 {
		d, k := binary.Uvarint(b)
		if k <= 0 || d == 0 || d > uint64(1<<63-1-last) {
			return nil, errors.New("store: malformed run ids")
		}
		last += int64(d)
		ids = append(ids, last)
		b = b[k:]
	}
	if len(ids) != n {
		return nil, fmt.Errorf("store: a run of %d hashes holds %d ids", n, len(ids))
	}
	return ids, nil
}

// AuditRun is one stored run, decoded.
type AuditRun struct {
	TenantID string
	PrevHash []byte
	IDs      []int64
	Hashes   []byte // ChainHashSize bytes per id
}

// DecodeAuditRun decodes a stored run's columns.
func DecodeAuditRun(tenantID string, prevHash, ids, hashes []byte) (*AuditRun, error) {
	if len(prevHash) != ChainHashSize || len(hashes) == 0 || len(hashes)%ChainHashSize != 0 {
		return nil, fmt.Errorf("store: malformed audit run of tenant %q", tenantID)
	}
	list, err := RunIDs(ids, len(hashes)/ChainHashSize)
	if err != nil {
		return nil, err
	}
	return &AuditRun{TenantID: tenantID, PrevHash: prevHash, IDs: list, Hashes: hashes}, nil
}

// Link returns the prev_hash and hash of the run's i-th event.
func (r *AuditRun) Link(i int) (prev, hash []byte) {
	prev = r.PrevHash
	if i > 0 {
		prev = r.Hashes[(i-1)*ChainHashSize : i*ChainHashSize : i*ChainHashSize]
	}
	return prev, r.Hashes[i*ChainHashSize : (i+1)*ChainHashSize : (i+1)*ChainHashSize]
}

// Index returns the position of id in the run, or -1.
func (r *AuditRun) Index(id int64) int {
	lo, hi := 0, len(r.IDs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.IDs[m] < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(r.IDs) && r.IDs[lo] == id {
		return lo
	}
	return -1
}
