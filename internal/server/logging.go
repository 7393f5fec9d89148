package server

import (
	"context"
	"log/slog"
)

// requestIDAttr is the attribute that names the request a record was
// logged for.
const requestIDAttr = "request_id"

// LogHandler wraps h so that every record logged with a request's context
// (the ...Context logging methods, from any package the request reaches)
// carries the hub's request id, which the response's X-Request-Id header
// and the request's audit events carry too. A record that names it
// already is left alone.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := requestID(ctx); id != "" {
		named := false
		r.Attrs(func(a slog.Attr) bool {
			named = a.Key == requestIDAttr
			return !named
		})
		if !named {
			r = r.Clone()
			r.AddAttrs(slog.String(requestIDAttr, id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
