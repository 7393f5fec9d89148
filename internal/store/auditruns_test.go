package store

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

func TestRunIDs(t *testing.T) {
	for _, ids := range [][]int64{{1}, {1, 2, 3}, {5, 6, 200, 201, 1 << 40, 1<<62 + 7}, {1<<63 - 1}} {
		b := AppendRunIDs(nil, ids)
		got, err := RunIDs(b, len(ids))
		if err != nil || !slices.Equal(got, ids) {
			t.Errorf("%v: read back %v, %v", ids, got, err)
		}
	}
	// Consecutive ids take a byte each.
	if b := AppendRunIDs(nil, []int64{1000, 1001, 1002, 1003}); len(b) != 2+3 {
		t.Errorf("four consecutive ids in %d bytes, want 5", len(b))
	}
	for name, tc := range map[string]struct {
		b []byte
		n int
	}{
		"fewer ids than hashes": {AppendRunIDs(nil, []int64{1, 2}), 3},
		"more ids than hashes":  {AppendRunIDs(nil, []int64{1, 2}), 1},
		"a zero gap":            {[]byte{1, 0}, 2},
		"a truncated varint":    {[]byte{1, 0x80}, 2},
		"past the largest id":   {binary.AppendUvarint(binary.AppendUvarint(nil, 1<<63-1), 1), 2},
		"empty":                 {nil, 1},
	} {
		if _, err := RunIDs(tc.b, tc.n); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestAuditRunLinks(t *testing.T) {
	prev := bytes.Repeat([]byte{9}, ChainHashSize)
	var hashes []byte
	for i := range 3 {
		hashes = append(hashes, bytes.Repeat([]byte{byte(i + 1)}, ChainHashSize)...)
	}
	r, err := DecodeAuditRun("t", prev, AppendRunIDs(nil, []int64{4, 5, 9}), hashes)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []int64{4, 5, 9} {
		if got := r.Index(id); got != i {
			t.Errorf("Index(%d) = %d, want %d", id, got, i)
		}
		p, h := r.Link(i)
		wantPrev := prev
		if i > 0 {
			wantPrev = bytes.Repeat([]byte{byte(i)}, ChainHashSize)
		}
		if !bytes.Equal(p, wantPrev) || !bytes.Equal(h, bytes.Repeat([]byte{byte(i + 1)}, ChainHashSize)) {
			t.Errorf("Link(%d) = %x, %x", i, p, h)
		}
	}
	for _, id := range []int64{3, 6, 10} {
		if got := r.Index(id); got != -1 {
			t.Errorf("Index(%d) = %d, want -1", id, got)
		}
	}
	for name, tc := range map[string][3][]byte{
		"short prev_hash":      {prev[:31], AppendRunIDs(nil, []int64{4}), hashes[:32]},
		"no hashes":            {prev, AppendRunIDs(nil, []int64{4}), nil},
		"a partial hash":       {prev, AppendRunIDs(nil, []int64{4, 5}), hashes[:40]},
		"ids and hashes apart": {prev, AppendRunIDs(nil, []int64{4, 5}), hashes},
	} {
		if _, err := DecodeAuditRun("t", tc[0], tc[1], tc[2]); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzRunIDs: whatever RunIDs accepts is ascending and positive, and
// writing it again gives the same bytes.
func FuzzRunIDs(f *testing.F) {
	f.Add(AppendRunIDs(nil, []int64{1, 2, 3}), 3)
	f.Add([]byte{1, 0x80}, 2)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		ids, err := RunIDs(b, n)
		if err != nil {
			return
		}
		for i, id := range ids {
			if id <= 0 || (i > 0 && id <= ids[i-1]) {
				t.Fatalf("ids %v not positive and ascending", ids)
			}
		}
		if got := AppendRunIDs(nil, ids); !bytes.Equal(got, b) {
			// A varint may be written with redundant continuation bytes;
			// the ids must still be the same.
			again, err := RunIDs(got, n)
			if err != nil || !slices.Equal(again, ids) {
				t.Fatalf("%x: ids %v written again as %x", b, ids, got)
			}
		}
	})
}
