package sink

import (
	"testing"

	"github.com/agentid/agentid/internal/store"
)

// EncodeForTest masks ev as a sink with mask would and encodes it.
func EncodeForTest(t *testing.T, f Format, mask []string, ev *store.AuditEvent) []byte {
	t.Helper()
	if err := CheckMask(mask); err != nil {
		t.Fatal(err)
	}
	b, err := encode(f, newMasker(mask).apply(ev), &store.AuditLink{Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
