package audit

import (
	"slices"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// IdentityAssertionFields is what the identity_assertion events carry: the
// hub, as an enterprise IdP, asked for an ID-JAG about UserID by ClientID,
// for the authorization server Audience and its Resource. The assertion
// itself is never recorded, only its jti.
type IdentityAssertionFields struct {
	ClientID string
	UserID   string
	Audience string // the target authorization server's issuer
	Resource string
	// Scopes are those granted (issued) or requested (denied).
	Scopes []string
	// RemoteClientID is the client's client_id at the target.
	RemoteClientID string
	JTI            string
	ExpiresAt      time.Time
	// Policy is how the scopes were decided (action exchange).
	Policy Decision
}

// NewIdentityAssertionIssued records that an ID-JAG was issued.
func NewIdentityAssertionIssued(m Meta, f IdentityAssertionFields) *store.AuditEvent {
	ev := event(m, IdentityAssertionIssued)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	set(ev.Details, "audience", f.Audience)
	set(ev.Details, "remote_client_id", f.RemoteClientID)
	set(ev.Details, "jti", f.JTI)
	if !f.ExpiresAt.IsZero() {
		ev.Details["expires_at"] = f.ExpiresAt.UTC().Format(time.RFC3339)
	}
	f.Policy.put(ev.Details)
	return ev
}

// NewIdentityAssertionDenied records an ID-JAG request refused because
// none of the requested scopes could be granted.
func NewIdentityAssertionDenied(m Meta, f IdentityAssertionFields) *store.AuditEvent {
	ev := event(m, IdentityAssertionDenied)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Outcome = Denied
	set(ev.Details, "audience", f.Audience)
	set(ev.Details, "remote_client_id", f.RemoteClientID)
	f.Policy.put(ev.Details)
	return ev
}
