package server

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/tracing"
)

// The hub's spans below the request's (internal/tracing; docs/design.md,
// "Tracing"). Each hook is one call at its site and does nothing but a
// context lookup unless the request is traced.

// tracedToken is s.token inside a "token" span that records the grant
// type (from the grant table: a client's unknown grant_type is
// "unsupported", never echoed) and the outcome (issued or the OAuth error
// code).
func (s *Server) tracedToken(r *http.Request, req *oauth.TokenRequest) (*oauth.TokenResponse, error) {
	ctx, span := tracing.Start(r.Context(), "token", trace.SpanKindInternal)
	if !span.IsRecording() {
		return s.token(ctx, r, req)
	}
	defer span.End()
	resp, err := s.token(ctx, r, req)
	typ := "unsupported"
	if g, known := s.grantFor(req); known {
		typ = g.typ
	}
	outcome := tokenOutcome(err)
	span.SetAttributes(attribute.String("oauth.grant_type", typ), tracing.Outcome(outcome))
	if outcome == oauth.CodeServerError {
		tracing.Fail(span, outcome)
	}
	return resp, err
}

// decideAs is s.policy.DecideAs inside a "policy.decide" span that
// records the actions, the policy set's version and how many scope
// decisions allowed and denied.
func (s *Server) decideAs(ctx context.Context, req *policy.Request, actions ...policy.Action) ([]*policy.Result, error) {
	_, span := tracing.Start(ctx, "policy.decide", trace.SpanKindInternal)
	if !span.IsRecording() {
		return s.policy.DecideAs(ctx, req, actions...)
	}
	defer span.End()
	results, err := s.policy.DecideAs(ctx, req, actions...)
	if err != nil {
		tracing.Fail(span, "error")
		return results, err
	}
	names := make([]string, len(actions))
	for i, a := range actions {
		names[i] = string(a)
	}
	allowed, denied := 0, 0
	var version int64
	for _, r := range results {
		version = r.Version
		for _, d := range r.Decisions {
			if d.Allowed {
				allowed++
			} else {
				denied++
			}
		}
	}
	outcome := "allow"
	switch {
	case allowed == 0:
		outcome = "deny"
	case denied > 0:
		outcome = "partial"
	}
	span.SetAttributes(attribute.StringSlice("agentid.policy.actions", names),
		attribute.Int64("agentid.policy.version", version),
		attribute.Int("agentid.policy.allowed", allowed), attribute.Int("agentid.policy.denied", denied),
		tracing.Outcome(outcome))
	return results, err
}
