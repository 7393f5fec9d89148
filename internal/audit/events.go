package audit

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// maxNameInEvent bounds a client-chosen display name copied into an event.
const maxNameInEvent = 100

// event starts an event of type typ with its details map ready.
func event(m Meta, typ string) *store.AuditEvent {
	ev := newEvent(m, typ)
	if ev.Details == nil {
		ev.Details = map[string]string{}
	}
	return ev
}

// done drops an empty details map, so that an event with nothing further
// to say stores none.
func done(ev *store.AuditEvent) *store.AuditEvent {
	if len(ev.Details) == 0 {
		ev.Details = nil
	}
	return ev
}

// ClientRegisteredFields is what a client.registered event carries.
type ClientRegisteredFields struct {
	ClientID string
	Name     string // display name; truncated to 100 bytes
	// Method is how the client was registered: store.RegistrationManual,
	// RegistrationDCR, RegistrationCIMD or RegistrationWorkload.
	Method     string
	AuthMethod string // token_endpoint_auth_method
	// Ceiling is the scopes the client may ever hold (empty: bound only by
	// the resources and policy).
	Ceiling []string
	// Policy is the register action's decision on the ceiling.
	Policy Decision
	// Status is the client's status when it is not active: store.ClientPending
	// for a registration a hold policy (HoldPolicies) put in quarantine.
	Status       string
	HoldPolicies []string
	// SoftwareIssuer is the issuer of the verified software statement the
	// registration carried.
	SoftwareIssuer string
}

// NewClientRegistered records that a client (an agent or a resource
// server's own client) was registered, by an admin, dynamically (RFC 7591)
// or by the demo, with the ceiling the policy's register action gave it.
func NewClientRegistered(m Meta, f ClientRegisteredFields) *store.AuditEvent {
	ev := event(m, ClientRegistered)
	ev.ClientID, ev.Scopes = f.ClientID, slices.Clone(f.Ceiling)
	set(ev.Details, "method", f.Method)
	set(ev.Details, "client_name", truncate(f.Name, maxNameInEvent))
	set(ev.Details, "token_endpoint_auth_method", f.AuthMethod)
	set(ev.Details, "status", f.Status)
	setList(ev.Details, "hold_policies", f.HoldPolicies)
	set(ev.Details, "software_issuer", f.SoftwareIssuer)
	f.Policy.put(ev.Details)
	return ev
}

// NewClientRegistrationDeduplicated records that a dynamic registration
// was answered with the existing client clientID, identical to it (its
// redirect URIs compared without loopback ports), instead of a new one.
func NewClientRegistrationDeduplicated(m Meta, clientID, method, name string) *store.AuditEvent {
	ev := event(m, ClientRegistrationDeduplicated)
	ev.ClientID = clientID
	set(ev.Details, "method", method)
	set(ev.Details, "client_name", truncate(name, maxNameInEvent))
	return ev
}

// NewClientExpired records that a self-registered client (method dcr or
// cimd) was removed because it got no token since unusedSince (its last
// use, or its registration when never used); it held no live token or
// consent.
func NewClientExpired(m Meta, clientID, method string, unusedSince time.Time) *store.AuditEvent {
	ev := event(m, ClientExpired)
	ev.ClientID = clientID
	set(ev.Details, "method", method)
	set(ev.Details, "unused_since", unusedSince.UTC().Format(time.RFC3339))
	return ev
}

// Client changes recorded by client.updated.
const (
	ChangeMetadata = "metadata" // RFC 7592 update: the metadata was replaced
	ChangeDisabled = "disabled"
	ChangeEnabled  = "enabled"
	ChangeTag      = "tag"     // admin tags added
	ChangeUntag    = "untag"   // admin tags removed
	ChangeCeiling  = "ceiling" // the ceiling was recomputed after a policy change
	ChangeSecret   = "secret"  // a new secret was set
	// ChangeDocument: a Client ID Metadata Document client's document
	// changed; Fields names the metadata that did.
	ChangeDocument = "document"
	ChangeApproved = "approved" // a pending client was approved by an admin
	// ChangeDeprovisioned: the last step of clients.Deprovision; the
	// client is disabled, its consents and tokens revoked.
	ChangeDeprovisioned = "deprovisioned"
)

// ClientUpdatedFields is what a client.updated event carries.
type ClientUpdatedFields struct {
	ClientID string
	Change   string // one of the Change constants
	// Method is the client's registration method, recorded for RFC 7592
	// updates.
	Method string
	// Ceiling is the client's ceiling after the change, recorded when the
	// change recomputed it (Policy is then set).
	Ceiling                      []string
	CeilingAdded, CeilingRemoved []string
	// Tags are the client's tags after a tag change; TagsAdded and
	// TagsRemoved what changed.
	Tags, TagsAdded, TagsRemoved []string
	// Reason says why, when an admin did not ask for the change itself
	// (a new policy set version).
	Reason string
	// Fields names the client metadata fields that changed (ChangeDocument).
	Fields []string
	// Policy is the register action's decision when the ceiling was
	// recomputed; nil when it was not.
	Policy *Decision
}

// NewClientUpdated records a change to a registered client: its metadata,
// status, secret, tags or ceiling.
func NewClientUpdated(m Meta, f ClientUpdatedFields) *store.AuditEvent {
	ev := event(m, ClientUpdated)
	ev.ClientID = f.ClientID
	set(ev.Details, "change", f.Change)
	set(ev.Details, "method", f.Method)
	if f.Policy != nil {
		ev.Scopes = slices.Clone(f.Ceiling)
		f.Policy.put(ev.Details)
	}
	setList(ev.Details, "ceiling_added", f.CeilingAdded)
	setList(ev.Details, "ceiling_removed", f.CeilingRemoved)
	if f.Change == ChangeTag || f.Change == ChangeUntag {
		ev.Details["tags"] = strings.Join(f.Tags, " ")
	}
	setList(ev.Details, "tags_added", f.TagsAdded)
	setList(ev.Details, "tags_removed", f.TagsRemoved)
	set(ev.Details, "reason", f.Reason)
	setList(ev.Details, "fields", f.Fields)
	return ev
}

// NewClientDeleted records that a client was deleted; the store revokes its
// tokens in the same transaction.
func NewClientDeleted(m Meta, clientID string) *store.AuditEvent {
	ev := newEvent(m, ClientDeleted)
	ev.ClientID = clientID
	return ev
}

// ClientAuthFailedFields is what a client.auth_failed event carries: the
// client id the request named (which may not exist), why it failed and how
// it tried; never the secret or assertion.
type ClientAuthFailedFields struct {
	ClientID   string
	Reason     string // e.g. unknown_client, secret_mismatch, assertion_invalid
	AuthMethod string
}

// NewClientAuthFailed records that a client failed to authenticate at a
// direct endpoint (token, revocation, introspection).
func NewClientAuthFailed(m Meta, f ClientAuthFailedFields) *store.AuditEvent {
	ev := event(m, ClientAuthFailed)
	ev.ClientID, ev.Outcome = f.ClientID, Failure
	set(ev.Details, "reason", f.Reason)
	set(ev.Details, "auth_method", f.AuthMethod)
	return ev
}

// NewClientTokensRevoked records that every token issued to a client was
// revoked at once; reason says why (e.g. "disabled").
func NewClientTokensRevoked(m Meta, clientID, reason string) *store.AuditEvent {
	ev := event(m, ClientTokensRevoked)
	ev.ClientID = clientID
	set(ev.Details, "reason", reason)
	return ev
}

// NewUserAccessRevoked records that everything resting on a person's past
// sign-ins ended at once: their sessions, pending authorization codes and
// every token issued for them. reason says why ("password", "disabled").
func NewUserAccessRevoked(m Meta, userID, reason string) *store.AuditEvent {
	ev := event(m, UserAccessRevoked)
	ev.UserID = userID
	set(ev.Details, "reason", reason)
	return ev
}

// NewLoginSucceeded records that a person signed in to the hub.
func NewLoginSucceeded(m Meta, userID string) *store.AuditEvent {
	ev := newEvent(m, LoginSucceeded)
	ev.UserID = userID
	return ev
}

// NewLoginFailed records a failed sign-in; userID is empty when the
// username is unknown (the username itself is not recorded).
func NewLoginFailed(m Meta, userID string) *store.AuditEvent {
	ev := newEvent(m, LoginFailed)
	ev.UserID, ev.Outcome = userID, Failure
	return ev
}

// ConsentKey names whose consent an event is about.
type ConsentKey struct {
	ClientID string
	UserID   string
	Resource string // empty: every resource (an agent revoked entirely)
}

// ConsentGivenFields is what a consent.given event carries.
type ConsentGivenFields struct {
	ConsentKey
	Scopes []string
	// Duration is the choice the person made on the consent screen, if any.
	Duration string
	// ExpiresAt is when the consent ends; zero: until revoked.
	ExpiresAt time.Time
}

// NewConsentGiven records that a person approved scopes for an agent on a
// resource, until ExpiresAt.
func NewConsentGiven(m Meta, f ConsentGivenFields) *store.AuditEvent {
	ev := event(m, ConsentGiven)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	set(ev.Details, "duration", f.Duration)
	ev.Details["expires_at"] = "never"
	if !f.ExpiresAt.IsZero() {
		ev.Details["expires_at"] = f.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return ev
}

// ConsentDeniedFields is what a consent.denied event carries.
type ConsentDeniedFields struct {
	ConsentKey
	Scopes []string // the scopes refused
	// Granted are the scopes approved on the same screen; set for a
	// partial denial.
	Granted []string
}

// NewConsentDenied records that a person refused scopes on the consent
// screen, all of them or, with Granted set, some.
func NewConsentDenied(m Meta, f ConsentDeniedFields) *store.AuditEvent {
	ev := event(m, ConsentDenied)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Outcome = Denied
	if len(f.Granted) > 0 {
		ev.Details["partial"] = "true"
		ev.Details["granted"] = strings.Join(f.Granted, " ")
	}
	return done(ev)
}

// ConsentRevokedFields is what a consent.revoked event carries.
type ConsentRevokedFields struct {
	ConsentKey
	Scopes []string // the scopes withdrawn
	// By is who revoked when it is not the consent screen: "user" for the
	// account page.
	By string
	// WholeAgent is set when every scope of the agent, on every resource,
	// was revoked.
	WholeAgent bool
}

// NewConsentRevoked records that consent was withdrawn; the store revokes
// the tokens carrying the withdrawn scopes in the same transaction.
func NewConsentRevoked(m Meta, f ConsentRevokedFields) *store.AuditEvent {
	ev := event(m, ConsentRevoked)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	set(ev.Details, "by", f.By)
	if f.WholeAgent {
		ev.Details["extent"] = "agent"
	}
	return done(ev)
}

// ConsentExpiredFields is what a consent.expired event carries.
type ConsentExpiredFields struct {
	ConsentKey
	Scopes  []string // the scopes whose consent ran out
	GrantID string   // the grant retired with it, if any
	// NoticedBy is "sweep" when the periodic sweep found it rather than a
	// request.
	NoticedBy string
}

// NewConsentExpired records that consent ran out, noticed by a request
// that had to drop the scopes or by the periodic sweep.
func NewConsentExpired(m Meta, f ConsentExpiredFields) *store.AuditEvent {
	ev := event(m, ConsentExpired)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	set(ev.Details, "grant_id", f.GrantID)
	set(ev.Details, "noticed_by", f.NoticedBy)
	return done(ev)
}

// CodeIssuedFields is what a code.issued event carries.
type CodeIssuedFields struct {
	ClientID, UserID, Resource string
	Scopes                     []string
	GrantID                    string // the grant the code starts
}

// NewCodeIssued records that an authorization code was sent to an agent.
func NewCodeIssued(m Meta, f CodeIssuedFields) *store.AuditEvent {
	ev := event(m, CodeIssued)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Details["grant_id"] = f.GrantID
	return ev
}

// NewCodeReplayed records that a used authorization code was presented
// again (RFC 6749 §4.1.2); the store revokes every token issued from it and
// completes the event from the code (store.AuditEvent.WithCode).
func NewCodeReplayed(m Meta, clientID string) *store.AuditEvent {
	ev := newEvent(m, CodeReplayed)
	ev.ClientID, ev.Outcome = clientID, Failure
	return ev
}

// TokenIssuedFields is what a token.issued event carries.
type TokenIssuedFields struct {
	ClientID string
	UserID   string // empty for client credentials
	Resource string
	Scopes   []string // granted
	// GrantType is the OAuth grant_type of the request.
	GrantType string
	JTI       string
	// Policy is how the scopes were decided, with the policy version.
	Policy Decision
	// AuthMethod and AuthAge are the rest of the context the policy decided
	// in (its auth_method and auth_age_seconds), so that a dry run replays
	// the decision as it was made.
	AuthMethod string
	AuthAge    time.Duration // with a user only
	// Chain are the actors of the token's delegation chain (its act
	// claim), the current actor first and the agent last; empty without
	// delegation. SubjectJTI is the jti of the token a token exchange
	// presented as its subject.
	Chain      []string
	SubjectJTI string
}

// Details keys of token.issued that a policy dry run reads back.
const (
	DetailAuthMethod     = "auth_method"
	DetailAuthAgeSeconds = "auth_age_seconds"
	// DetailActChain is the delegation chain: the actors' client ids,
	// the current actor first, separated by single spaces (client ids
	// hold no spaces).
	DetailActChain = "act_chain"
)

// NewTokenIssued records that an access token was minted.
func NewTokenIssued(m Meta, f TokenIssuedFields) *store.AuditEvent {
	ev := event(m, TokenIssued)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	set(ev.Details, "grant_type", f.GrantType)
	set(ev.Details, "jti", f.JTI)
	set(ev.Details, DetailAuthMethod, f.AuthMethod)
	if f.UserID != "" {
		ev.Details[DetailAuthAgeSeconds] = strconv.FormatInt(int64(f.AuthAge/time.Second), 10)
	}
	setList(ev.Details, DetailActChain, f.Chain)
	set(ev.Details, "subject_jti", f.SubjectJTI)
	f.Policy.put(ev.Details)
	return ev
}

// TokenDeniedFields is what a token.denied event carries.
type TokenDeniedFields struct {
	ClientID  string
	UserID    string
	Resource  string
	Scopes    []string // requested
	GrantType string
	// Policy is why no scope was left, with the policy version.
	Policy Decision
	// Chain is the delegation chain of a refused token exchange, as in
	// TokenIssuedFields.
	Chain []string
}

// NewTokenDenied records a token request refused because none of the
// requested scopes could be granted.
func NewTokenDenied(m Meta, f TokenDeniedFields) *store.AuditEvent {
	ev := event(m, TokenDenied)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Outcome = Denied
	set(ev.Details, "grant_type", f.GrantType)
	setList(ev.Details, DetailActChain, f.Chain)
	f.Policy.put(ev.Details)
	return ev
}

// RefreshFields is what refresh.rotated and refresh.reuse_detected events
// carry.
type RefreshFields struct {
	ClientID, UserID, Resource string
	Scopes                     []string
	GrantID                    string
}

// NewRefreshRotated records that a refresh token was exchanged for its
// successor (OAuth 2.1 §4.3.1).
func NewRefreshRotated(m Meta, f RefreshFields) *store.AuditEvent {
	ev := event(m, RefreshRotated)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Details["grant_id"] = f.GrantID
	return ev
}

// NewRefreshReuse records that a rotated refresh token was presented again,
// a sign of theft: the store revokes the whole grant.
func NewRefreshReuse(m Meta, f RefreshFields) *store.AuditEvent {
	ev := event(m, RefreshReuse)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Outcome = Failure
	ev.Details["grant_id"] = f.GrantID
	return ev
}

// NewRefreshReusedWithinInterval records that a rotated refresh token was
// presented again by its own client within the reuse interval (a retry,
// two processes) and accepted: the family lives on with one more current
// token, a sibling of the first successor. rotatedAt is when the presented
// token was rotated.
func NewRefreshReusedWithinInterval(m Meta, f RefreshFields, rotatedAt time.Time) *store.AuditEvent {
	ev := event(m, RefreshReusedWithinInterval)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Details["grant_id"] = f.GrantID
	if !rotatedAt.IsZero() {
		ev.Details["rotated_at"] = rotatedAt.UTC().Format(time.RFC3339Nano)
	}
	return ev
}

// Token types a token.revoked event names (RFC 7009 token_type_hint values).
const (
	TokenTypeAccess  = "access_token"
	TokenTypeRefresh = "refresh_token"
)

// TokenRevokedFields is what a token.revoked event carries: an access token
// by JTI, or a refresh token by its GrantID (never the token itself).
type TokenRevokedFields struct {
	ClientID, UserID, Resource string
	TokenType                  string // TokenTypeAccess or TokenTypeRefresh
	JTI                        string
	GrantID                    string
}

// NewTokenRevoked records an RFC 7009 revocation by the client.
func NewTokenRevoked(m Meta, f TokenRevokedFields) *store.AuditEvent {
	ev := event(m, TokenRevoked)
	ev.ClientID, ev.UserID, ev.Resource = f.ClientID, f.UserID, f.Resource
	set(ev.Details, "token_type", f.TokenType)
	set(ev.Details, "jti", f.JTI)
	set(ev.Details, "grant_id", f.GrantID)
	return ev
}

// TokenIntrospectedInactive: a resource server introspected an access
// token that is signed, unexpired and its business, but no longer active:
// revoked, or its agent, user or an actor of its chain disabled or gone.
// It is the trail's evidence that a switched-off agent kept trying.
const TokenIntrospectedInactive = "token.introspected_inactive"

// Reasons of token.introspected_inactive.
const (
	InactiveRevoked       = "revoked"
	InactiveClientGone    = "client_inactive"
	InactiveUserGone      = "user_inactive"
	InactiveActorDisabled = "actor_inactive"
)

func init() {
	required[TokenIntrospectedInactive] = struct {
		fields  []field
		details []string
	}{[]field{fClient, fResource}, []string{"jti", "reason", "introspecting_client"}}
}

// TokenIntrospectedInactiveFields is what a token.introspected_inactive
// event carries: the token's own claims (verified), never the token.
type TokenIntrospectedInactiveFields struct {
	ClientID string // the token's client_id
	UserID   string // its subject when a person
	Resource string // its audience
	Scopes   []string
	JTI      string
	Chain    []string // its act chain, the current actor first
	// IntrospectingClient is the resource server's client that asked.
	IntrospectingClient string
	Reason              string // one of the Inactive constants
}

// NewTokenIntrospectedInactive records that a resource server presented
// an access token the hub no longer considers active (RFC 7662 §2.2
// active=false); the outcome is denied.
func NewTokenIntrospectedInactive(m Meta, f TokenIntrospectedInactiveFields) *store.AuditEvent {
	ev := event(m, TokenIntrospectedInactive)
	ev.ClientID, ev.UserID, ev.Resource, ev.Scopes = f.ClientID, f.UserID, f.Resource, slices.Clone(f.Scopes)
	ev.Outcome = Denied
	set(ev.Details, "jti", f.JTI)
	setList(ev.Details, DetailActChain, f.Chain)
	set(ev.Details, "introspecting_client", f.IntrospectingClient)
	set(ev.Details, "reason", f.Reason)
	return ev
}

// SigningKeyRotatedFields is what a key.rotated event carries.
type SigningKeyRotatedFields struct {
	KID        string
	Algorithm  string
	ActivateAt time.Time
}

// NewSigningKeyRotated records that a new signing key was created, to sign
// from ActivateAt.
func NewSigningKeyRotated(m Meta, f SigningKeyRotatedFields) *store.AuditEvent {
	ev := event(m, SigningKeyRotated)
	set(ev.Details, "kid", f.KID)
	set(ev.Details, "alg", f.Algorithm)
	if !f.ActivateAt.IsZero() {
		ev.Details["activate_at"] = f.ActivateAt.UTC().Format(time.RFC3339)
	}
	return ev
}

// Policy set operations.
const (
	PolicyOpApply    = "apply"
	PolicyOpRollback = "rollback"
)

// PolicyAppliedFields is what a policy.applied event carries.
type PolicyAppliedFields struct {
	Operation string // PolicyOpApply or PolicyOpRollback
	// Version is the version made active again by a rollback; an applied
	// set's version is assigned by the store in the same transaction.
	Version  int64
	Files    []string // file names, sorted
	Policies int      // how many policies
	SHA256   string   // digest of the whole set
	Comment  string
}

// NewPolicyApplied records that a policy set version became active, newly
// applied or rolled back to.
func NewPolicyApplied(m Meta, f PolicyAppliedFields) *store.AuditEvent {
	ev := event(m, PolicyApplied)
	set(ev.Details, "operation", f.Operation)
	if f.Operation == PolicyOpRollback {
		ev.Details["version"] = strconv.FormatInt(f.Version, 10)
	}
	ev.Details["files"] = strings.Join(f.Files, " ")
	ev.Details["policies"] = strconv.Itoa(f.Policies)
	set(ev.Details, "sha256", f.SHA256)
	set(ev.Details, "comment", f.Comment)
	return ev
}

// NewUserCreated records that a user account was created. It names the
// user by id only, never a password or its hash.
func NewUserCreated(m Meta, userID string) *store.AuditEvent {
	ev := newEvent(m, UserCreated)
	ev.UserID = userID
	return ev
}

// User changes recorded by user.updated beside "password", "profile" and
// ChangeDisabled, ChangeEnabled: what policy and tokens know of the person.
const (
	ChangeRoles      = "roles"
	ChangeGroups     = "groups"
	ChangeAttributes = "attributes"
)

// NewUserAccessUpdated records a change to a user's roles, groups or
// attributes (change ChangeRoles, ChangeGroups or ChangeAttributes): the
// names added or removed, for attributes the keys set or removed. Never
// an attribute's value. Each name is escaped as a URL path segment, so
// that a group name with a space stays one item of the space-separated
// list.
func NewUserAccessUpdated(m Meta, userID, change string, added, removed []string) *store.AuditEvent {
	ev := NewUserUpdated(m, userID, change)
	setList(ev.Details, "added", escapeAll(added))
	setList(ev.Details, "removed", escapeAll(removed))
	return ev
}

func escapeAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = url.PathEscape(s)
	}
	return out
}

// NewUserUpdated records a change to a user account: "password",
// "profile", "disabled" or "enabled" (NewUserAccessUpdated for roles,
// groups and attributes).
func NewUserUpdated(m Meta, userID, change string) *store.AuditEvent {
	ev := event(m, UserUpdated)
	ev.UserID = userID
	set(ev.Details, "change", change)
	return ev
}

// NewResourceCreated records that a protected resource (an MCP server) was
// registered with the scopes it offers.
func NewResourceCreated(m Meta, uri string, scopes []string) *store.AuditEvent {
	return resourceEvent(m, ResourceCreated, uri, scopes)
}

// NewResourceUpdated records a change to a protected resource; scopes are
// the ones it offers after the change.
func NewResourceUpdated(m Meta, uri string, scopes []string) *store.AuditEvent {
	return resourceEvent(m, ResourceUpdated, uri, scopes)
}

// NewResourceUserClaimsUpdated records a change to the user claims a
// resource's tokens carry: changes are "NAME=SOURCE" for a claim set and
// "-NAME" for one removed (sources name where a value comes from, never a
// value).
func NewResourceUserClaimsUpdated(m Meta, uri string, scopes, changes []string) *store.AuditEvent {
	ev := event(m, ResourceUpdated)
	ev.Resource, ev.Scopes = uri, slices.Clone(scopes)
	set(ev.Details, "user_claims", strings.Join(changes, ", "))
	return done(ev)
}

// NewResourceDeleted records that a protected resource was removed; scopes
// are the ones it offered.
func NewResourceDeleted(m Meta, uri string, scopes []string) *store.AuditEvent {
	return resourceEvent(m, ResourceDeleted, uri, scopes)
}

func resourceEvent(m Meta, typ, uri string, scopes []string) *store.AuditEvent {
	ev := newEvent(m, typ)
	ev.Resource, ev.Scopes = uri, slices.Clone(scopes)
	return ev
}

// truncate cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
