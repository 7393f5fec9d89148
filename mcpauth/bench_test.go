package mcpauth_test

import (
	"context"
	"testing"
)

// BenchmarkVerify measures verifications per second with a warm key set
// (no network): signature, header and claim checks of an ES256 token.
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, nil)
	token := f.hub.Token(resource, "notes:read", "notes:write")
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.v.Verify(ctx, token); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}
