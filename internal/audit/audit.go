// Package audit defines agentid's lifecycle event types and builds the
// events the other packages hand to the store, which writes each one in the
// same transaction as the change it records. Events never carry a token,
// code or secret: tokens appear by jti only.
package audit

import (
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Event types.
const (
	ClientRegistered = "client.registered"
	ClientUpdated    = "client.updated"
	ClientDeleted    = "client.deleted"
	// ClientAuthFailed: a client failed to authenticate at a direct
	// endpoint (token, revocation, introspection).
	ClientAuthFailed  = "client.auth_failed"
	LoginSucceeded    = "user.login_succeeded"
	LoginFailed       = "user.login_failed"
	ConsentGiven      = "consent.given"
	ConsentDenied     = "consent.denied"
	ConsentRevoked    = "consent.revoked"
	ConsentExpired    = "consent.expired"
	CodeIssued        = "code.issued"
	CodeReplayed      = "code.replayed"
	TokenIssued       = "token.issued"
	TokenDenied       = "token.denied"
	RefreshRotated    = "refresh.rotated"
	RefreshReuse      = "refresh.reuse_detected"
	TokenRevoked      = "token.revoked"
	SigningKeyRotated = "key.rotated"
	PolicyApplied     = "policy.applied"
	UserCreated       = "user.created"
	UserUpdated       = "user.updated"
	ResourceCreated   = "resource.created"
	ResourceUpdated   = "resource.updated"
	ResourceDeleted   = "resource.deleted"
)

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
	Denied  = "denied"
)

// Meta is what every event knows about its request.
type Meta struct {
	TenantID  string
	RequestID string
	IP        string
	Time      time.Time
}

// New builds an event of type typ with outcome Success; callers set the
// remaining fields directly.
func New(m Meta, typ string) *store.AuditEvent {
	tenant := m.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	return &store.AuditEvent{
		TenantID:  tenant,
		Time:      m.Time,
		Type:      typ,
		RequestID: m.RequestID,
		IP:        m.IP,
		Outcome:   Success,
	}
}
