package audit

import (
	"strconv"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Vault event types: downstream providers (agentid providers) and the
// connections people hold to them. None ever carries a token, key or
// client secret; a connection is named by its id, provider and owner.
const (
	ProviderAdded   = "provider.added"
	ProviderUpdated = "provider.updated"
	ProviderDeleted = "provider.deleted"
	// ConnectionCreated: a person (or an admin, for the tenant) connected
	// a provider: an OAuth 2 authorization completed or an API key saved.
	ConnectionCreated = "connection.created"
	// ConnectionRefreshed: the vault refreshed a connection's access token
	// with its refresh token (on demand or in the background).
	ConnectionRefreshed = "connection.refreshed"
	// ConnectionRefreshFailed: the provider refused or failed a refresh
	// that may succeed later (backoff); ConnectionNeedsReauth: it said the
	// grant is gone (invalid_grant): the person must connect again.
	ConnectionRefreshFailed = "connection.refresh_failed"
	ConnectionNeedsReauth   = "connection.needs_reauth"
	// ConnectionRotated: an API key replaced; the old one stays
	// retrievable until the overlap ends.
	ConnectionRotated = "connection.rotated"
	// ConnectionRevoked: disconnected (the provider's revocation endpoint
	// called when it has one) and the ciphertext destroyed.
	ConnectionRevoked = "connection.revoked"
	// ConnectionRetrieved: an MCP server retrieved the credential for the
	// user its agent acts for; ConnectionRetrievalDenied: it asked and was
	// refused (no connection, needs reauth, policy, scope).
	ConnectionRetrieved       = "connection.retrieved"
	ConnectionRetrievalDenied = "connection.retrieval_denied"
	// KEKRewrapped: agentid kek rotate re-wrapped data keys and signing
	// keys under the current KEK (one event per run, with counts).
	KEKRewrapped = "kek.rewrapped"
)

func init() {
	for typ, spec := range map[string]struct {
		fields  []field
		details []string
	}{
		ProviderAdded:             {nil, []string{"provider", "kind"}},
		ProviderUpdated:           {nil, []string{"provider", "change"}},
		ProviderDeleted:           {nil, []string{"provider"}},
		ConnectionCreated:         {nil, []string{"provider", "connection_id", "owner_kind", "owner_id"}},
		ConnectionRefreshed:       {nil, []string{"provider", "connection_id", "trigger"}},
		ConnectionRefreshFailed:   {nil, []string{"provider", "connection_id", "reason", "failures"}},
		ConnectionNeedsReauth:     {nil, []string{"provider", "connection_id", "reason"}},
		ConnectionRotated:         {nil, []string{"provider", "connection_id", "previous_until"}},
		ConnectionRevoked:         {nil, []string{"provider", "connection_id", "reason"}},
		ConnectionRetrieved:       {[]field{fClient, fUser, fResource}, []string{"provider", "connection_id", "subject_jti", "agent"}},
		ConnectionRetrievalDenied: {[]field{fClient, fUser, fResource}, []string{"provider", "reason"}},
		KEKRewrapped:              {nil, []string{"kek_id", "connections", "signing_keys"}},
	} {
		required[typ] = spec
	}
}

// ProviderFields names a provider in an event.
type ProviderFields struct {
	ProviderID string
	Kind       string
	// Change (provider.updated): what changed, in words of the CLI
	// ("settings", "secret", "disabled", "enabled").
	Change string
}

// NewProviderAdded records that an administrator added a downstream
// provider. Its client secret is never in the event.
func NewProviderAdded(m Meta, f ProviderFields) *store.AuditEvent {
	ev := event(m, ProviderAdded)
	set(ev.Details, "provider", f.ProviderID)
	set(ev.Details, "kind", f.Kind)
	return done(ev)
}

// NewProviderUpdated records a change to a provider.
func NewProviderUpdated(m Meta, f ProviderFields) *store.AuditEvent {
	ev := event(m, ProviderUpdated)
	set(ev.Details, "provider", f.ProviderID)
	set(ev.Details, "change", f.Change)
	return done(ev)
}

// NewProviderDeleted records that a provider was removed, with every
// connection to it.
func NewProviderDeleted(m Meta, f ProviderFields) *store.AuditEvent {
	ev := event(m, ProviderDeleted)
	set(ev.Details, "provider", f.ProviderID)
	return done(ev)
}

// ConnectionFields names a connection in an event. UserID is the owner for
// a user's connection (it also fills the event's user column).
type ConnectionFields struct {
	ProviderID   string
	ConnectionID string
	OwnerKind    string
	OwnerID      string
	Scopes       []string
	// Reason says why (refresh failures, needs_reauth, revocation:
	// "disconnected", "user_disabled", "provider_deleted", …). Never a
	// provider's raw error body.
	Reason string
	// Trigger (connection.refreshed): "on_demand", "forced" or
	// "background".
	Trigger  string
	Failures int
	// PreviousUntil (connection.rotated): when the old key stops working.
	PreviousUntil time.Time
}

func connectionEvent(m Meta, typ string, f ConnectionFields) *store.AuditEvent {
	ev := event(m, typ)
	set(ev.Details, "provider", f.ProviderID)
	set(ev.Details, "connection_id", f.ConnectionID)
	set(ev.Details, "owner_kind", f.OwnerKind)
	set(ev.Details, "owner_id", f.OwnerID)
	set(ev.Details, "reason", f.Reason)
	set(ev.Details, "trigger", f.Trigger)
	if f.OwnerKind == store.OwnerUser {
		ev.UserID = f.OwnerID
	}
	ev.Scopes = f.Scopes
	return ev
}

// NewConnectionCreated records a new connection.
func NewConnectionCreated(m Meta, f ConnectionFields) *store.AuditEvent {
	return done(connectionEvent(m, ConnectionCreated, f))
}

// NewConnectionRefreshed records a successful refresh.
func NewConnectionRefreshed(m Meta, f ConnectionFields) *store.AuditEvent {
	return done(connectionEvent(m, ConnectionRefreshed, f))
}

// NewConnectionRefreshFailed records a refresh that failed and will be
// retried after a backoff.
func NewConnectionRefreshFailed(m Meta, f ConnectionFields) *store.AuditEvent {
	ev := connectionEvent(m, ConnectionRefreshFailed, f)
	ev.Outcome = Failure
	set(ev.Details, "failures", strconv.Itoa(f.Failures))
	return done(ev)
}

// NewConnectionNeedsReauth records that the provider no longer honours
// the connection's grant.
func NewConnectionNeedsReauth(m Meta, f ConnectionFields) *store.AuditEvent {
	ev := connectionEvent(m, ConnectionNeedsReauth, f)
	ev.Outcome = Failure
	return done(ev)
}

// NewConnectionRotated records an API key rotation.
func NewConnectionRotated(m Meta, f ConnectionFields) *store.AuditEvent {
	ev := connectionEvent(m, ConnectionRotated, f)
	if !f.PreviousUntil.IsZero() {
		set(ev.Details, "previous_until", f.PreviousUntil.UTC().Format(time.RFC3339))
	}
	return done(ev)
}

// NewConnectionRevoked records a disconnection.
func NewConnectionRevoked(m Meta, f ConnectionFields) *store.AuditEvent {
	return done(connectionEvent(m, ConnectionRevoked, f))
}

// RetrievalFields describe one retrieval by an MCP server: the server's
// client, the resource it is, the user and the agent the subject token was
// issued to, the chain, and what was asked.
type RetrievalFields struct {
	ClientID     string // the MCP server's own client
	Resource     string // the MCP server's resource URI
	UserID       string
	Agent        string // the agent (first actor) the subject token names
	ActChain     string // the delegation chain, outermost first, as in token events
	SubjectJTI   string
	ProviderID   string
	ConnectionID string
	Scopes       []string
	// Reason (connection.retrieval_denied): "no_connection",
	// "needs_reauth", "policy", "scope", "provider_not_linked", ….
	Reason        string
	PolicyVersion string
}

func retrievalEvent(m Meta, typ string, f RetrievalFields) *store.AuditEvent {
	ev := event(m, typ)
	ev.ClientID = f.ClientID
	ev.Resource = f.Resource
	ev.UserID = f.UserID
	ev.Scopes = f.Scopes
	set(ev.Details, "agent", f.Agent)
	set(ev.Details, "act_chain", f.ActChain)
	set(ev.Details, "subject_jti", f.SubjectJTI)
	set(ev.Details, "provider", f.ProviderID)
	set(ev.Details, "connection_id", f.ConnectionID)
	set(ev.Details, "reason", f.Reason)
	set(ev.Details, DetailPolicyVersion, f.PolicyVersion)
	return ev
}

// NewConnectionRetrieved records that an MCP server received a downstream
// credential for a user.
func NewConnectionRetrieved(m Meta, f RetrievalFields) *store.AuditEvent {
	return done(retrievalEvent(m, ConnectionRetrieved, f))
}

// NewConnectionRetrievalDenied records a refused retrieval.
func NewConnectionRetrievalDenied(m Meta, f RetrievalFields) *store.AuditEvent {
	ev := retrievalEvent(m, ConnectionRetrievalDenied, f)
	ev.Outcome = Denied
	return done(ev)
}

// KEKRewrappedFields count what one run of agentid kek rotate re-wrapped.
type KEKRewrappedFields struct {
	KEKID       string // the KEK everything is now wrapped by
	Connections int
	SigningKeys int
	Providers   int
}

// NewKEKRewrapped records a KEK rotation run.
func NewKEKRewrapped(m Meta, f KEKRewrappedFields) *store.AuditEvent {
	ev := event(m, KEKRewrapped)
	set(ev.Details, "kek_id", f.KEKID)
	ev.Details["connections"] = strconv.Itoa(f.Connections)
	ev.Details["signing_keys"] = strconv.Itoa(f.SigningKeys)
	ev.Details["providers"] = strconv.Itoa(f.Providers)
	return done(ev)
}
