package mcpauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

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
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.v.Verify(ctx, token); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportVerifications(b, cpu0)
}

// reportVerifications adds the rate and, where the platform tells, the
// process's CPU time per verification (cpu0 taken before the timer
// started), the figure to compare on a shared machine.
func reportVerifications(b *testing.B, cpu0 time.Duration) {
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
	if cpu := cpuTime() - cpu0; cpu0 > 0 && cpu > 0 {
		b.ReportMetric(cpu.Seconds()/float64(b.N)*1e6, "cpu-µs/op")
	}
}

// BenchmarkVerifyRawECDSA is BenchmarkVerify's floor: the same token's
// ES256 signature checked with crypto/ecdsa alone (signature decoded from
// the token, SHA-256 of the signing input, ecdsa.Verify), under the key
// the hub publishes, and nothing else. BenchmarkVerify's time over this
// one's is what mcpauth adds to the cryptography.
func BenchmarkVerifyRawECDSA(b *testing.B) {
	f := newFixture(b, nil)
	token := f.hub.Token(resource, "notes:read", "notes:write")
	resp, err := http.Get(f.hub.Issuer() + "/jwks")
	if err != nil {
		b.Fatal(err)
	}
	var set jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil || len(set.Keys) != 1 {
		b.Fatalf("key set: %v, %d keys", err, len(set.Keys))
	}
	pub, ok := set.Keys[0].Key.(*ecdsa.PublicKey)
	if !ok {
		b.Fatalf("key %T", set.Keys[0].Key)
	}
	verify := func() bool {
		last := strings.LastIndexByte(token, '.')
		sig, err := base64.RawURLEncoding.DecodeString(token[last+1:])
		if err != nil || len(sig) != 64 {
			return false
		}
		sum := sha256.Sum256([]byte(token[:last]))
		return ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	if !verify() {
		b.Fatal("the hub's token does not verify")
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !verify() {
				b.Error("signature does not verify")
				return
			}
		}
	})
	reportVerifications(b, cpu0)
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
