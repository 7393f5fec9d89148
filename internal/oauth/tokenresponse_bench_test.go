package oauth

import (
	"net/http"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the response's encoding alone.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkWriteTokenResponse: a client-credentials token response
// (headers and body).
func BenchmarkWriteTokenResponse(b *testing.B) {
	resp := &TokenResponse{
		AccessToken: "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0." +
			"eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjkwOTAiLCJzdWIiOiJiZW5jaC1ib3QiLCJhdWQiOiJodHRwczovL25vdGVzLmV4YW1wbGUifQ." +
			"MEUCIQDx1w9zY2sQm5c0b3aB8yq1d0k9m2JcN5m8kJ7o6e3wAiB0c2lnbmF0dXJlLXBhZGRpbmctZm9yLWJlbmNo",
		TokenType: TokenTypeBearer, ExpiresIn: 300, Scope: "notes.read",
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		WriteTokenResponse(w, resp)
	}
}
