package sink

import (
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// BenchmarkWebhookBatch measures a webhook sink's work per event apart
// from the network: encoding a batch of 500 token.issued events in the
// native form, building the body and signing it (ns/op per event).
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
}
