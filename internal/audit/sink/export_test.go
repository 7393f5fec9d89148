package sink

import (
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/agentid/agentid/internal/audit"

	"github.com/agentid/agentid/internal/store"
)

// EncodeForTest masks ev as a sink with mask would and encodes it.
func EncodeForTest(t *testing.T, f Format, mask []string, ev *store.AuditEvent) []byte {
	t.Helper()
	if err := CheckMask(mask); err != nil {
		t.Fatal(err)
	}
	b, err := appendEncoded(nil, f, newMasker(mask).apply(ev), &store.AuditLink{Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nativeRecord is what the native form must equal: audit.Record with the
// event's link, as encoding/json writes it.
type nativeRecord struct {
	audit.Record
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// NativePair returns the native encoding of ev and encoding/json's.
func NativePair(t *testing.T, ev *store.AuditEvent, l *store.AuditLink) (got, want []byte) {
	t.Helper()
	want, err := json.Marshal(nativeRecord{Record: audit.RecordOf(ev), PrevHash: hex.EncodeToString(l.PrevHash), Hash: hex.EncodeToString(l.Hash)})
	if err != nil {
		t.Fatal(err)
	}
	return appendNative(nil, ev, l), want
}
