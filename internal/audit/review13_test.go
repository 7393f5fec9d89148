package audit_test

import (
	"testing"
)

// TestVerifyReview13Tamperings: tamperings an outside reviewer tried
// beyond TestVerifyFindsTheFirstBreak's table, each found at its event.
func TestVerifyReview13Tamperings(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, db *chainDB, ids []int64) int64
	}{
		{"an event moved to another tenant with its link", func(t *testing.T, db *chainDB, ids []int64) int64 {
			db.exec(t, `UPDATE audit_events SET tenant_id = 'other' WHERE id = ?`, ids[6])
			db.links.move(t, ids[6], "other")
			return ids[7]
		}},
		{"a client id changed", func(t *testing.T, db *chainDB, ids []int64) int64 {
			db.exec(t, `UPDATE audit_events SET client_id = 'someone-else' WHERE id = ?`, ids[2])
			return ids[2]
		}},
		{"a request id changed", func(t *testing.T, db *chainDB, ids []int64) int64 {
			db.exec(t, `UPDATE audit_events SET request_id = 'r-forged' WHERE id = ?`, ids[9])
			return ids[9]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, db *chainDB) {
				evs, _ := sealedTrail(t, db)
				ids := make([]int64, len(evs))
				for i, ev := range evs {
					ids[i] = ev.ID
				}
				want := tc.do(t, db, ids)
				r := verify(t, db)
				if r.Break == nil {
					t.Fatalf("Verify passed a tampered trail: %+v", r)
				}
				if r.Break.EventID != want {
					t.Errorf("break = %v, want at event %d", r.Break, want)
				}
			})
		})
	}
}
