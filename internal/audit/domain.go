package audit

import (
	"strconv"

	"github.com/agentid/agentid/internal/store"
)

// DomainFields is what domain events carry: the administrator's decision
// on the hosts of Client ID Metadata Documents.
type DomainFields struct {
	Pattern        string
	Trust          string // trusted | allowed | blocked
	AllowTextPlain bool
	// Previous is the trust the pattern had before ("": it is new).
	Previous string
}

// NewDomainUpdated records that a domain pattern was added or its trust
// changed (agentid domains add).
func NewDomainUpdated(m Meta, f DomainFields) *store.AuditEvent {
	ev := event(m, DomainUpdated)
	set(ev.Details, "pattern", f.Pattern)
	set(ev.Details, "trust", f.Trust)
	ev.Details["allow_text_plain"] = strconv.FormatBool(f.AllowTextPlain)
	set(ev.Details, "previous_trust", f.Previous)
	return done(ev)
}

// NewDomainRemoved records that a domain pattern was removed: its hosts
// are allowed again unless a wider pattern decides otherwise.
func NewDomainRemoved(m Meta, f DomainFields) *store.AuditEvent {
	ev := event(m, DomainRemoved)
	set(ev.Details, "pattern", f.Pattern)
	set(ev.Details, "previous_trust", f.Previous)
	return done(ev)
}

// InstallationRevokedFields is what an installation.revoked event carries.
type InstallationRevokedFields struct {
	ClientID, UserID string
	// RedirectURI names the installation (oauth.InstallationURI).
	RedirectURI string
}

// NewInstallationRevoked records that a person signed one installation of
// a Client ID Metadata Document client out from the account page.
func NewInstallationRevoked(m Meta, f InstallationRevokedFields) *store.AuditEvent {
	ev := event(m, InstallationRevoked)
	ev.ClientID, ev.UserID = f.ClientID, f.UserID
	set(ev.Details, "redirect_uri", f.RedirectURI)
	return done(ev)
}
