package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentid/agentid/internal/store"
)

// timedStore times the store operations on the request path: the reads
// behind every token and introspection, the writes that issue, rotate and
// record. Each operation's observer is resolved once here, so a call
// costs two clock reads and an atomic add. Every other method passes
// through untimed.
type timedStore struct {
	store.Store
	getClient, getResource, listResources, getUser, getSession,
	issueTokens, rotateRefresh, getRefreshToken, getAccessToken, accessTokenRevoked, accessTokenStanding,
	createAuthCode, consumeAuthCode, useJTI, appendAudit, listConsents prometheus.Observer
}

func (m *Metrics) timeStore(st store.Store) store.Store {
	o := func(op string) prometheus.Observer { return m.storeOps.WithLabelValues(op) }
	return &timedStore{
		Store:               st,
		getClient:           o("get_client"),
		getResource:         o("get_resource"),
		listResources:       o("list_resources"),
		getUser:             o("get_user"),
		getSession:          o("get_session"),
		issueTokens:         o("issue_tokens"),
		rotateRefresh:       o("rotate_refresh"),
		getRefreshToken:     o("get_refresh_token"),
		getAccessToken:      o("get_access_token"),
		accessTokenRevoked:  o("access_token_revoked"),
		accessTokenStanding: o("access_token_standing"),
		createAuthCode:      o("create_auth_code"),
		consumeAuthCode:     o("consume_auth_code"),
		useJTI:              o("use_jti"),
		appendAudit:         o("append_audit"),
		listConsents:        o("list_consents"),
	}
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

func (t *timedStore) GetClient(ctx context.Context, tenantID, id string) (*store.Client, error) {
	defer since(t.getClient, time.Now())
	return t.Store.GetClient(ctx, tenantID, id)
}

func (t *timedStore) GetResource(ctx context.Context, tenantID, uri string) (*store.Resource, error) {
	defer since(t.getResource, time.Now())
	return t.Store.GetResource(ctx, tenantID, uri)
}

func (t *timedStore) ListResources(ctx context.Context, tenantID string) ([]*store.Resource, error) {
	defer since(t.listResources, time.Now())
	return t.Store.ListResources(ctx, tenantID)
}

func (t *timedStore) GetUser(ctx context.Context, tenantID, id string) (*store.User, error) {
	defer since(t.getUser, time.Now())
	return t.Store.GetUser(ctx, tenantID, id)
}

func (t *timedStore) GetSession(ctx context.Context, hash []byte, now time.Time) (*store.Session, error) {
	defer since(t.getSession, time.Now())
	return t.Store.GetSession(ctx, hash, now)
}

func (t *timedStore) IssueTokens(ctx context.Context, iss *store.Issuance) error {
	defer since(t.issueTokens, time.Now())
	return t.Store.IssueTokens(ctx, iss)
}

func (t *timedStore) RotateRefresh(ctx context.Context, oldHash []byte, now time.Time, iss *store.Issuance, reuse *store.AuditEvent) error {
	defer since(t.rotateRefresh, time.Now())
	return t.Store.RotateRefresh(ctx, oldHash, now, iss, reuse)
}

func (t *timedStore) GetRefreshToken(ctx context.Context, hash []byte) (*store.RefreshToken, error) {
	defer since(t.getRefreshToken, time.Now())
	return t.Store.GetRefreshToken(ctx, hash)
}

func (t *timedStore) GetAccessToken(ctx context.Context, jti string) (*store.AccessToken, error) {
	defer since(t.getAccessToken, time.Now())
	return t.Store.GetAccessToken(ctx, jti)
}

func (t *timedStore) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	defer since(t.accessTokenRevoked, time.Now())
	return t.Store.AccessTokenRevoked(ctx, jti)
}

func (t *timedStore) AccessTokenStanding(ctx context.Context, jti string) (*store.TokenStanding, error) {
	defer since(t.accessTokenStanding, time.Now())
	return t.Store.AccessTokenStanding(ctx, jti)
}

func (t *timedStore) CreateAuthCode(ctx context.Context, c *store.AuthCode, ev *store.AuditEvent) error {
	defer since(t.createAuthCode, time.Now())
	return t.Store.CreateAuthCode(ctx, c, ev)
}

func (t *timedStore) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time, ev *store.AuditEvent) (*store.AuthCode, error) {
	defer since(t.consumeAuthCode, time.Now())
	return t.Store.ConsumeAuthCode(ctx, hash, now, ev)
}

func (t *timedStore) UseJTI(ctx context.Context, key, jti string, exp, now time.Time) error {
	defer since(t.useJTI, time.Now())
	return t.Store.UseJTI(ctx, key, jti, exp, now)
}

func (t *timedStore) AppendAudit(ctx context.Context, evs ...*store.AuditEvent) error {
	defer since(t.appendAudit, time.Now())
	return t.Store.AppendAudit(ctx, evs...)
}

func (t *timedStore) ListConsents(ctx context.Context, f store.ConsentFilter) ([]*store.ConsentGrant, error) {
	defer since(t.listConsents, time.Now())
	return t.Store.ListConsents(ctx, f)
}
