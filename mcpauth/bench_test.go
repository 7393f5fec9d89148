package mcpauth_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
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

// BenchmarkConnectionWarmCache measures retrievals per second that the
// cache answers: Exchanger.Connection for a credential retrieved once
// (no hub round trip). The hub's own figure per retrieval is the server
// package's retrieval benchmark.
func BenchmarkConnectionWarmCache(b *testing.B) {
	f := newVaultFixture(b)
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok", ExpiresIn: time.Hour})
	ctx := f.userContext(b, "user-1")
	if _, err := f.x.Connection(ctx, "calendar", "calendar.read"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.x.Connection(ctx, "calendar", "calendar.read"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "retrievals/s")
	if n := f.hub.Retrievals(); n != 1 {
		b.Fatalf("%d hub round trips, want 1", n)
	}
}

// BenchmarkConnectionTestHub is the cold path against the test hub (an
// in-process HTTP round trip with no store behind it): an upper bound for
// what a real hub can answer.
func BenchmarkConnectionTestHub(b *testing.B) {
	f := newVaultFixture(b)
	f.hub.SetConnection("user-1", "calendar", mcpauthtest.Connection{AccessToken: "tok", ExpiresIn: time.Hour})
	x, err := mcpauth.NewExchanger(context.Background(), mcpauth.ExchangerConfig{Issuer: f.hub.Issuer(), ClientID: "mcpauthtest-client", ClientSecret: "mcpauthtest-secret", MaxCacheEntries: -1, Now: f.clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	ctx := f.userContext(b, "user-1")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := x.Connection(ctx, "calendar", "calendar.read"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "retrievals/s")
}
