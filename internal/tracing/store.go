package tracing

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentid/agentid/internal/store"
)

// Store wraps st so that each of its operations on the token path (the
// reads behind a token request and introspection, the transactions that
// issue, rotate, consume and record) is a client span under the
// request's: one span per store call, which is one transaction, not per
// statement. system names the backend (db.system.name: "sqlite",
// "postgresql"). Every other method passes through untraced.
func Store(st store.Store, system string) store.Store {
	return &tracedStore{Store: st, system: attribute.String("db.system.name", system)}
}

type tracedStore struct {
	store.Store
	system attribute.KeyValue
}

// start starts the span of operation op under ctx's span.
func (t *tracedStore) start(ctx context.Context, op string) (context.Context, trace.Span) {
	ctx, span := Start(ctx, "store."+op, trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(t.system, attribute.String("db.operation.name", op))
	}
	return ctx, span
}

// end records the operation's outcome and ends its span. The store's
// sentinels are answers (ok, not_found, conflict); any other error fails
// the span, described as "error" (its text may hold a row's values).
func end(span trace.Span, err *error) {
	if span.IsRecording() {
		switch e := *err; {
		case e == nil:
			span.SetAttributes(Outcome("ok"))
		case errors.Is(e, store.ErrNotFound):
			span.SetAttributes(Outcome("not_found"))
		case errors.Is(e, store.ErrConflict):
			span.SetAttributes(Outcome("conflict"))
		default:
			span.SetAttributes(Outcome("error"))
			Fail(span, "error")
		}
	}
	span.End()
}

func (t *tracedStore) GetClient(ctx context.Context, tenantID, id string) (_ *store.Client, err error) {
	ctx, span := t.start(ctx, "GetClient")
	defer end(span, &err)
	return t.Store.GetClient(ctx, tenantID, id)
}

func (t *tracedStore) GetUser(ctx context.Context, tenantID, id string) (_ *store.User, err error) {
	ctx, span := t.start(ctx, "GetUser")
	defer end(span, &err)
	return t.Store.GetUser(ctx, tenantID, id)
}

func (t *tracedStore) IssueTokens(ctx context.Context, iss *store.Issuance) (err error) {
	ctx, span := t.start(ctx, "IssueTokens")
	defer end(span, &err)
	return t.Store.IssueTokens(ctx, iss)
}

func (t *tracedStore) RotateRefresh(ctx context.Context, oldHash []byte, now time.Time, iss *store.Issuance, reuse *store.AuditEvent) (err error) {
	ctx, span := t.start(ctx, "RotateRefresh")
	defer end(span, &err)
	return t.Store.RotateRefresh(ctx, oldHash, now, iss, reuse)
}

func (t *tracedStore) GetRefreshToken(ctx context.Context, hash []byte) (_ *store.RefreshToken, err error) {
	ctx, span := t.start(ctx, "GetRefreshToken")
	defer end(span, &err)
	return t.Store.GetRefreshToken(ctx, hash)
}

func (t *tracedStore) GetAccessToken(ctx context.Context, jti string) (_ *store.AccessToken, err error) {
	ctx, span := t.start(ctx, "GetAccessToken")
	defer end(span, &err)
	return t.Store.GetAccessToken(ctx, jti)
}

func (t *tracedStore) AccessTokenRevoked(ctx context.Context, jti string) (_ bool, err error) {
	ctx, span := t.start(ctx, "AccessTokenRevoked")
	defer end(span, &err)
	return t.Store.AccessTokenRevoked(ctx, jti)
}

func (t *tracedStore) AccessTokenStanding(ctx context.Context, jti string) (_ *store.TokenStanding, err error) {
	ctx, span := t.start(ctx, "AccessTokenStanding")
	defer end(span, &err)
	return t.Store.AccessTokenStanding(ctx, jti)
}

func (t *tracedStore) CreateAuthCode(ctx context.Context, c *store.AuthCode, ev *store.AuditEvent) (err error) {
	ctx, span := t.start(ctx, "CreateAuthCode")
	defer end(span, &err)
	return t.Store.CreateAuthCode(ctx, c, ev)
}

func (t *tracedStore) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time, ev *store.AuditEvent) (_ *store.AuthCode, err error) {
	ctx, span := t.start(ctx, "ConsumeAuthCode")
	defer end(span, &err)
	return t.Store.ConsumeAuthCode(ctx, hash, now, ev)
}

func (t *tracedStore) UseJTI(ctx context.Context, key, jti string, exp, now time.Time) (err error) {
	ctx, span := t.start(ctx, "UseJTI")
	defer end(span, &err)
	return t.Store.UseJTI(ctx, key, jti, exp, now)
}

func (t *tracedStore) AppendAudit(ctx context.Context, evs ...*store.AuditEvent) (err error) {
	ctx, span := t.start(ctx, "AppendAudit")
	defer end(span, &err)
	return t.Store.AppendAudit(ctx, evs...)
}

func (t *tracedStore) ListConsents(ctx context.Context, f store.ConsentFilter) (_ []*store.ConsentGrant, err error) {
	ctx, span := t.start(ctx, "ListConsents")
	defer end(span, &err)
	return t.Store.ListConsents(ctx, f)
}
