package server_test

import (
	"testing"

	"github.com/agentid/agentid/internal/server"
)

// BenchmarkClientCredentialsMetrics is BenchmarkClientCredentials with
// metrics on (request counting and timing, token outcome, timed store):
// the difference is what metrics cost on the hottest path.
func BenchmarkClientCredentialsMetrics(b *testing.B) {
	benchClientCredentials(b, newHub(b, func(c *server.Config) { c.Metrics = server.NewMetrics() }), nil)
}
