package sqlite

import (
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// BenchmarkIssueExchanged measures the write of a token exchange
// (Issuance.SubjectJTI: the subject token's record checked and its family
// taken in the access-token insert, with the client and user alive) and
// its audit event, from 16 concurrent callers so that the group commit
// batches, as the exchange benchmark of internal/server does it through
// the whole handler. It reports the process's CPU time per issuance.
func BenchmarkIssueExchanged(b *testing.B) {
	s := openTemp(b)
	migrateStore(b, s)
	ctx := b.Context()
	now := time.Now()
	if err := s.CreateClient(ctx, &store.Client{ID: "mcp-a", TenantID: store.DefaultTenant, CreatedAt: now}, nil); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateUser(ctx, &store.User{ID: "u-alice", TenantID: store.DefaultTenant, Username: "alice", CreatedAt: now}, nil); err != nil {
		b.Fatal(err)
	}
	const subjects = 1000
	exp := now.Add(10 * time.Minute)
	for i := range subjects {
		if err := s.IssueTokens(ctx, &store.Issuance{AccessToken: &store.AccessToken{
			JTI: "subject-" + strconv.Itoa(i), TenantID: store.DefaultTenant, GrantID: "family-" + strconv.Itoa(i%10),
			ClientID: "agent", UserID: "u-alice", Resource: "https://a.example/mcp", Scopes: []string{"notes.read"}, ExpiresAt: exp,
		}}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			jti := "exchanged-" + strconv.FormatInt(i, 36)
			iss := &store.Issuance{
				AccessToken: &store.AccessToken{JTI: jti, TenantID: store.DefaultTenant, ClientID: "mcp-a", UserID: "u-alice",
					Resource: "https://b.example/mcp", Scopes: []string{"notes.read"}, ExpiresAt: exp},
				Events: []*store.AuditEvent{{
					TenantID: store.DefaultTenant, Time: time.Now(), Type: "token.issued", RequestID: jti, ClientID: "mcp-a",
					UserID: "u-alice", Resource: "https://b.example/mcp", Scopes: []string{"notes.read"}, IP: "192.0.2.1", Outcome: "success",
					Details: map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "jti": jti, "chain": `["mcp-a","agent"]`},
				}},
				Check:      &store.LiveCheck{TenantID: store.DefaultTenant, ClientID: "mcp-a", UserID: "u-alice"},
				SubjectJTI: "subject-" + strconv.FormatInt(i%subjects, 10),
			}
			if err := s.IssueTokens(ctx, iss); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
