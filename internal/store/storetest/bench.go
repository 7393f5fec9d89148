package storetest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Bench measures IssueTokens as a client_credentials issuance performs it:
// one access-token record and one audit event per call, from many goroutines
// at once (as concurrent token requests would). It reports tokens/s.
// s must be migrated; the benchmark writes into the default tenant.
func Bench(b *testing.B, s store.Store) {
	prefix := uniq("bench")
	var n atomic.Int64
	exp := time.Now().Add(10 * time.Minute)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Random like real jtis: they land all over the jti index.
			jti := uniq(prefix) + strconv.FormatInt(n.Add(1), 36)
			iss := &store.Issuance{
				AccessToken: &store.AccessToken{
					JTI:       jti,
					TenantID:  store.DefaultTenant,
					ClientID:  "bench-client",
					Resource:  "https://mcp.example.com/",
					Scopes:    []string{"files:read", "files:write"},
					ExpiresAt: exp,
				},
				Events: []*store.AuditEvent{{
					TenantID:  store.DefaultTenant,
					Time:      time.Now(),
					Type:      "token.issued",
					RequestID: jti,
					ClientID:  "bench-client",
					Resource:  "https://mcp.example.com/",
					Scopes:    []string{"files:read", "files:write"},
					IP:        "192.0.2.1",
					Outcome:   "success",
					Details:   map[string]string{"grant_type": "client_credentials", "jti": jti},
				}},
			}
			if err := s.IssueTokens(b.Context(), iss); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tokens/s")
}

// BenchSeal measures SealAudit per event: b.N events like a token
// issuance's are written first (not timed), then sealed in the sealer's
// batches.
func BenchSeal(b *testing.B, s store.Store) {
	ctx := context.Background()
	const batch = 500
	for i := 0; i < b.N; i += batch {
		evs := make([]*store.AuditEvent, 0, batch)
		for j := i; j < min(i+batch, b.N); j++ {
			evs = append(evs, &store.AuditEvent{
				TenantID: store.DefaultTenant, Time: time.Now(), Type: "token.issued", RequestID: "req-0123456789abcdef",
				ClientID: "bench-bot", Resource: "https://mcp.example.com/mcp", Scopes: []string{"notes.read"}, IP: "127.0.0.1",
				Outcome: "success", Details: map[string]string{
					"grant_type": "client_credentials", "jti": "0123456789abcdef0123456789abcdef", "policy_version": "1",
					"policy_decisions": `[{"scope":"notes.read","decision":"allow","policies":["default.cedar:permit-cc"]}]`,
				},
			})
		}
		if err := s.AppendAudit(ctx, evs...); err != nil {
			b.Fatal(err)
		}
	}
	w, err := s.AuditWatermark(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for {
		res, err := s.SealAudit(ctx, w, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if res.Through >= w {
			break
		}
	}
}
