package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Start starts a span named name under the span in ctx, with the
// tracer of that span, when that span is recording. Otherwise (tracing
// off, or this request not sampled) it starts nothing and returns ctx
// with its own non-recording span, whose methods do nothing: a caller
// builds its attributes only when span.IsRecording(), and the hub's
// request path costs a context lookup.
func Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(scope).Start(ctx, name, trace.WithSpanKind(kind))
}

// Fail marks span as failed with a fixed description (an OAuth error
// code, an error class), never an error's text, which may quote input.
func Fail(span trace.Span, class string) {
	span.SetStatus(codes.Error, class)
}

// Outcome is the attribute naming what a traced operation came to
// (issued, an OAuth error code, allow, deny).
func Outcome(o string) attribute.KeyValue { return attribute.String("agentid.outcome", o) }
