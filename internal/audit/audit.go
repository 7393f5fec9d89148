// Package audit defines agentid's lifecycle event types and builds the
// events the other packages hand to the store, which writes each one in the
// same transaction as the change it records. Events never carry a token,
// code or secret: tokens appear by jti only.
//
// Every event type has a typed constructor (NewTokenIssued, NewClientRegistered,
// …) taking the request's Meta and a fields struct that names what the type
// carries; Check reports what an event lacks of what its type must carry.
// Events that record a decision (token issuance and refusal, a client's
// ceiling at registration or update) carry a Decision: the policy set
// version that decided and a typed verdict per scope, serialised into the
// event's details so that stored events stay readable (DecisionOf).
package audit

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/store"
)

// Event types. Each constructor's doc comment says what its type means.
const (
	ClientRegistered    = "client.registered"
	ClientUpdated       = "client.updated"
	ClientDeleted       = "client.deleted"
	ClientAuthFailed    = "client.auth_failed"
	ClientTokensRevoked = "client.tokens_revoked"
	// ClientExpired: a self-registered client removed for lack of use.
	ClientExpired = "client.expired"
	// ClientRegistrationDeduplicated: a dynamic registration answered with
	// an existing, identical client instead of a new one.
	ClientRegistrationDeduplicated = "client.registration_deduplicated"
	UserAccessRevoked              = "user.access_revoked"
	LoginSucceeded                 = "user.login_succeeded"
	LoginFailed                    = "user.login_failed"
	ConsentGiven                   = "consent.given"
	ConsentDenied                  = "consent.denied"
	ConsentRevoked                 = "consent.revoked"
	ConsentExpired                 = "consent.expired"
	CodeIssued                     = "code.issued"
	CodeReplayed                   = "code.replayed"
	TokenIssued                    = "token.issued"
	TokenDenied                    = "token.denied"
	RefreshRotated                 = "refresh.rotated"
	RefreshReuse                   = "refresh.reuse_detected"
	// RefreshReusedWithinInterval: a rotated refresh token presented again
	// by its client within the reuse interval, and accepted.
	RefreshReusedWithinInterval = "refresh.reused_within_interval"
	TokenRevoked                = "token.revoked"
	SigningKeyRotated           = "key.rotated"
	PolicyApplied               = "policy.applied"
	UserCreated                 = "user.created"
	UserUpdated                 = "user.updated"
	ResourceCreated             = "resource.created"
	ResourceUpdated             = "resource.updated"
	ResourceDeleted             = "resource.deleted"
	DomainUpdated               = "domain.updated"
	DomainRemoved               = "domain.removed"
	// InstallationRevoked: a person signed one installation of a Client
	// ID Metadata Document client out (its tokens for that redirect URI).
	InstallationRevoked = "installation.revoked"
	// IdentityAssertionIssued: the hub, as an enterprise IdP, issued an
	// ID-JAG for another authorization server (identity.go).
	IdentityAssertionIssued = "identity_assertion.issued"
	// IdentityAssertionDenied: an ID-JAG request with no scope left.
	IdentityAssertionDenied = "identity_assertion.denied"
)

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
	Denied  = "denied"
)

// Actors that Meta.Actor names.
const (
	// ActorCLI is the admin command line.
	ActorCLI = "cli"
	// ActorDemo is `agentid demo` setting itself up.
	ActorDemo = "demo"
	// ActorHub is the hub's own background work, such as the sealer of
	// the audit chain.
	ActorHub = "hub"
	// ActorConsole is an administrator in the admin console (/admin);
	// Meta.ActorID is their user id.
	ActorConsole = "console"
	// ActorAdminAPI is an admin client of the admin API (/admin/api);
	// Meta.ActorID is its client id.
	ActorAdminAPI = "admin_api"
)

// Meta is what every event knows about its request.
type Meta struct {
	TenantID  string // default store.DefaultTenant
	RequestID string
	// ClientRequestID is the client's own, validated X-Request-Id, if any.
	ClientRequestID string
	IP              string
	Time            time.Time
	// Actor names who acted when it is not the client or person the event
	// is about, such as ActorCLI; empty on protocol and browser requests.
	Actor string
	// OSUser is the operating-system account that ran an admin command.
	OSUser string
	// UserAgent is the request's User-Agent header (truncated to
	// maxUserAgent bytes); empty for background work and admin commands.
	UserAgent string
	// Agent describes the client the event names in client_id, when the
	// code that records it has that client's record (WithAgent).
	Agent Agent
	// ActorID names the administrator who acted through the console (a
	// user id) or the admin API (a client id).
	ActorID string
}

// Agent is what an event records of its agent (the OAuth client in its
// client_id) beyond the id: how it came to exist and what kind of client
// it is, so that the trail alone tells a self-registered public client
// from an administrator's confidential one.
type Agent struct {
	// Method is how the client was registered: store.RegistrationManual,
	// RegistrationDCR, RegistrationCIMD or RegistrationWorkload.
	Method string
	// Type is the OAuth client type (OAuth 2.1 §2.1): ClientConfidential
	// or ClientPublic.
	Type string
	// CIMDHost is, for a Client ID Metadata Document client, the host of
	// its client id URL: the host the hub fetched the document from over
	// HTTPS, under the domain trust the registration passed.
	CIMDHost string
}

// OAuth client types (OAuth 2.1 §2.1).
const (
	ClientConfidential = "confidential"
	ClientPublic       = "public"
)

// AgentOf describes client c for its events; the zero Agent for nil.
func AgentOf(c *store.Client) Agent {
	if c == nil {
		return Agent{}
	}
	a := Agent{Method: c.RegistrationMethod, Type: ClientConfidential}
	if c.Public() {
		a.Type = ClientPublic
	}
	if c.RegistrationMethod == store.RegistrationCIMD {
		if u, err := url.Parse(c.ID); err == nil && u.Scheme == "https" {
			a.CIMDHost = u.Host
		}
	}
	return a
}

// WithAgent returns m describing client c as the agent of its events (the
// client the event names in client_id).
func (m Meta) WithAgent(c *store.Client) Meta {
	m.Agent = AgentOf(c)
	return m
}

// Details keys every event may carry from its Meta.
const (
	DetailUserAgent          = "user_agent"
	DetailRegistrationMethod = "registration_method"
	DetailClientType         = "client_type"
	DetailCIMDHost           = "cimd_host"
)

// maxUserAgent bounds a User-Agent copied into an event.
const maxUserAgent = 256

// Stamped returns m with tenant and now filled in where m has none: for
// code that records on behalf of a caller who may not know them.
func (m Meta) Stamped(tenant string, now time.Time) Meta {
	if m.TenantID == "" {
		m.TenantID = tenant
	}
	if m.Time.IsZero() {
		m.Time = now
	}
	return m
}

// newEvent starts an event of type typ with outcome Success, for the typed
// constructors to fill: every event outside this package is built by one of
// them, so that each type carries what it must.
func newEvent(m Meta, typ string) *store.AuditEvent {
	tenant := m.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	ev := &store.AuditEvent{
		TenantID:        tenant,
		Time:            m.Time,
		Type:            typ,
		RequestID:       m.RequestID,
		ClientRequestID: m.ClientRequestID,
		IP:              m.IP,
		Outcome:         Success,
	}
	if m.Actor != "" || m.OSUser != "" || m.ActorID != "" || m.UserAgent != "" || m.Agent != (Agent{}) {
		ev.Details = map[string]string{}
		set(ev.Details, "actor", m.Actor)
		set(ev.Details, "os_user", m.OSUser)
		set(ev.Details, "actor_id", m.ActorID)
		set(ev.Details, DetailUserAgent, truncate(printableOnly(m.UserAgent), maxUserAgent))
		set(ev.Details, DetailRegistrationMethod, m.Agent.Method)
		set(ev.Details, DetailClientType, m.Agent.Type)
		set(ev.Details, DetailCIMDHost, m.Agent.CIMDHost)
	}
	return ev
}

// field names what an event of some type must carry.
type field string

const (
	fClient   field = "client_id"
	fUser     field = "user_id"
	fResource field = "resource"
	fScopes   field = "scopes"
)

// required is, per event type, the columns and details keys its events must
// carry. It is the contract the constructors fill and Check verifies.
var required = map[string]struct {
	fields  []field
	details []string
}{
	ClientRegistered:               {[]field{fClient}, []string{"method", "token_endpoint_auth_method", DetailPolicyVersion}},
	ClientUpdated:                  {[]field{fClient}, []string{"change"}},
	ClientDeleted:                  {[]field{fClient}, nil},
	ClientAuthFailed:               {[]field{fClient}, []string{"reason"}},
	ClientTokensRevoked:            {[]field{fClient}, []string{"reason"}},
	ClientExpired:                  {[]field{fClient}, []string{"method", "unused_since"}},
	ClientRegistrationDeduplicated: {[]field{fClient}, []string{"method"}},
	UserAccessRevoked:              {[]field{fUser}, []string{"reason"}},
	LoginSucceeded:                 {[]field{fUser}, nil},
	LoginFailed:                    {nil, nil},
	ConsentGiven:                   {[]field{fClient, fUser, fResource, fScopes}, []string{"expires_at"}},
	ConsentDenied:                  {[]field{fClient, fUser, fResource, fScopes}, nil},
	ConsentRevoked:                 {[]field{fClient, fUser, fScopes}, nil},
	ConsentExpired:                 {[]field{fClient, fUser, fResource, fScopes}, nil},
	CodeIssued:                     {[]field{fClient, fUser, fResource, fScopes}, []string{"grant_id"}},
	CodeReplayed:                   {[]field{fClient}, nil},
	TokenIssued:                    {[]field{fClient, fResource, fScopes}, []string{"grant_type", "jti", DetailPolicyVersion}},
	TokenDenied:                    {[]field{fClient, fResource, fScopes}, []string{"grant_type", DetailPolicyVersion}},
	RefreshRotated:                 {[]field{fClient, fUser, fResource}, []string{"grant_id"}},
	RefreshReuse:                   {[]field{fClient, fUser, fResource}, []string{"grant_id"}},
	RefreshReusedWithinInterval:    {[]field{fClient, fUser, fResource}, []string{"grant_id"}},
	TokenRevoked:                   {[]field{fClient}, []string{"token_type"}},
	SigningKeyRotated:              {nil, []string{"kid", "alg", "activate_at"}},
	PolicyApplied:                  {nil, []string{"operation", "files", "policies", "sha256"}},
	UserCreated:                    {[]field{fUser}, nil},
	UserUpdated:                    {[]field{fUser}, []string{"change"}},
	ResourceCreated:                {[]field{fResource}, nil},
	ResourceUpdated:                {[]field{fResource}, nil},
	ResourceDeleted:                {[]field{fResource}, nil},
	DomainUpdated:                  {nil, []string{"pattern", "trust"}},
	DomainRemoved:                  {nil, []string{"pattern"}},
	InstallationRevoked:            {[]field{fClient, fUser}, []string{"redirect_uri"}},
	IdentityAssertionIssued:        {[]field{fClient, fUser, fResource, fScopes}, []string{"audience", "remote_client_id", "jti", "expires_at", DetailPolicyVersion}},
	IdentityAssertionDenied:        {[]field{fClient, fUser, fResource, fScopes}, []string{"audience", DetailPolicyVersion}},
	IssuerAdded:                    {nil, []string{"issuer_id", "issuer", "uses"}},
	IssuerUpdated:                  {nil, []string{"issuer_id", "issuer", "change"}},
	IssuerDeleted:                  {nil, []string{"issuer_id", "issuer"}},
}

// Types lists every event type this package defines, sorted.
func Types() []string {
	out := make([]string, 0, len(required))
	for t := range required {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// ErrIncomplete is what Check reports for an event missing something its
// type must carry.
var ErrIncomplete = errors.New("audit: incomplete event")

// Check reports every field the event's type must carry and ev lacks (the
// tenant, time, type and outcome for every type), as one error wrapping
// ErrIncomplete; nil if the event is complete. Types this package does not
// define are checked for the common fields only. A code.replayed event is
// complete only after the store has filled it from the code (WithCode), and
// a user-less token event may lack a user: client credentials have none.
func Check(ev *store.AuditEvent) error {
	var missing []string
	if ev.TenantID == "" {
		missing = append(missing, "tenant_id")
	}
	if ev.Time.IsZero() {
		missing = append(missing, "time")
	}
	if ev.Type == "" {
		missing = append(missing, "type")
	}
	if ev.Outcome == "" {
		missing = append(missing, "outcome")
	}
	spec := required[ev.Type]
	for _, f := range spec.fields {
		var empty bool
		switch f {
		case fClient:
			empty = ev.ClientID == ""
		case fUser:
			empty = ev.UserID == ""
		case fResource:
			empty = ev.Resource == ""
		case fScopes:
			empty = len(ev.Scopes) == 0
		}
		if empty {
			missing = append(missing, string(f))
		}
	}
	for _, k := range spec.details {
		if ev.Details[k] == "" {
			missing = append(missing, "details."+k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s lacks %s", ErrIncomplete, ev.Type, strings.Join(missing, ", "))
}

// set stores v under k unless v is empty.
func set(d map[string]string, k, v string) {
	if v != "" {
		d[k] = v
	}
}

// printableOnly drops control characters (and invalid UTF-8) from text a
// client chose, so that no sink's line format can be broken by it.
func printableOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// setList stores the space-separated list under k unless it is empty.
func setList(d map[string]string, k string, v []string) {
	if len(v) > 0 {
		d[k] = strings.Join(v, " ")
	}
}
