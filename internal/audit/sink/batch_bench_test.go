package sink

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// BenchmarkWebhookBatch measures a webhook sink's work per event apart
// from the network: encoding a batch of 500 token.issued events in the
// native form, building the body and signing it (per event; cpu-ns/op on
// the process's CPU clock).
func BenchmarkWebhookBatch(b *testing.B) {
	const size = DefaultBatchSize
	links := make([]*store.AuditLink, size)
	for i := range links {
		hash := make([]byte, 64)
		hash[0] = byte(i)
		links[i] = &store.AuditLink{PrevHash: hash[:32], Hash: hash[32:], Event: &store.AuditEvent{
			ID: int64(1000 + i), TenantID: store.DefaultTenant, Time: time.Now(), Type: "token.issued",
			RequestID: "req-0123456789abcdef" + strconv.Itoa(i), ClientID: "bench-bot", Resource: "https://mcp.example.com/mcp",
			Scopes: []string{"notes.read"}, IP: "127.0.0.1", Outcome: "success", Details: map[string]string{
				"grant_type": "client_credentials", "jti": "0123456789abcdef0123456789abcdef", "policy_version": "1",
				"client_type": "confidential", "registration_method": "admin", "user_agent": "Go-http-client/1.1",
				"policy_decisions": `[{"scope":"notes.read","decision":"allow","policies":["default.cedar:permit-cc"]}]`,
			},
		}}
	}
	wh, err := NewWebhook(HTTPOptions{URL: "https://siem.example.com/hook", Secret: []byte("bench-webhook-key-0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	s := wh.(*httpSink)
	r := &runner{c: Config{Name: "bench", Format: FormatNative}, mask: newMasker(nil)}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i += size {
		batch, err := r.batch(links[:min(size, b.N-i)])
		if err != nil {
			b.Fatal(err)
		}
		body, err := s.body(batch)
		if err != nil {
			b.Fatal(err)
		}
		_ = Sign(s.secret, "1764752400", body)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user + system CPU time: on a shared machine
// steadier than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
