package server_test

import (
	"context"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/tracing"
)

// BenchmarkClientCredentialsTraced is BenchmarkClientCredentials with
// tracing on as serve turns it on (server span, token, policy and store
// spans, the batch span processor) and every request sampled; the
// exporter drops the batches, so the difference to the plain run is what
// tracing costs in the process, without the network.
func BenchmarkClientCredentialsTraced(b *testing.B) {
	benchClientCredentials(b, tracedBenchHub(b, 1), nil)
}

// BenchmarkClientCredentialsTracedUnsampled is tracing on with
// sampling_ratio 0: the cost of the wrapping for requests not traced.
func BenchmarkClientCredentialsTracedUnsampled(b *testing.B) {
	benchClientCredentials(b, tracedBenchHub(b, 0), nil)
}

// tracedBenchHub is a hub traced at ratio, its spans batched to an
// exporter that drops them.
func tracedBenchHub(b *testing.B, ratio float64) *hub {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(dropExporter{}),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	h := newHub(b, func(c *server.Config) { c.Store = tracing.Store(c.Store, "sqlite") })
	h.Wrap(func(next http.Handler) http.Handler { return tracing.Handler(tp, next) })
	return h
}

// dropExporter takes every batch and sends it nowhere.
type dropExporter struct{}

func (dropExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (dropExporter) Shutdown(context.Context) error                             { return nil }
