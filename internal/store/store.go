// Package store defines agentid's persistence contract: the entity types, one
// Store interface, made of role interfaces (Clients, Tokens, Consents, …),
// whose methods are named for the atomic protocol operations the hub
// performs, and the sentinel errors every backend returns. Backends
// live in sub-packages (sqlite, postgres) and all pass storetest.
package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Backends wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound: no row matches (or the row has expired where the method says so).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique key already exists (duplicate id, a replayed JTI).
	ErrConflict = errors.New("store: conflict")
	// ErrAlreadyUsed: a single-use credential (authorization code, refresh
	// token) was presented a second time. The method's documentation says what
	// the store did about it.
	ErrAlreadyUsed = errors.New("store: already used")
	// ErrInvalid: the arguments break the method's contract (e.g. an empty
	// grant id); nothing was written.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClientGone: the client tokens are being issued to was deleted or
	// disabled (Issuance.Check); nothing was written.
	ErrClientGone = errors.New("store: client deleted or disabled")
	// ErrUserGone: the user tokens are being issued for was deleted or
	// disabled (Issuance.Check); nothing was written.
	ErrUserGone = errors.New("store: user deleted or disabled")
	// ErrRevoked: the token an issuance continues (Issuance.SubjectJTI)
	// was revoked, by itself or with its family; nothing was written.
	ErrRevoked = errors.New("store: revoked")
	// ErrSchemaTooNew: the database was migrated by a newer agentid.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
)

// DefaultTenant is the tenant that exists from the start.
const DefaultTenant = "default"

// Registration methods of a client.
const (
	RegistrationManual = "manual"
	RegistrationDCR    = "dcr"
	RegistrationCIMD   = "cimd"
	// RegistrationWorkload: an agent identity the hub created for a
	// workload (Kubernetes service account, SPIFFE id, CI job) that a
	// trusted issuer's rule mapped; it authenticates only with that
	// issuer's JWTs (Client.FederatedIssuer).
	RegistrationWorkload = "workload"
)

// Client is a registered OAuth client (an agent).
type Client struct {
	TenantID string
	ID       string
	Name     string
	// SecretHash is SHA-256 of the client secret; nil for public clients and
	// for private_key_jwt clients.
	SecretHash              []byte
	SecretExpiresAt         time.Time // zero: never
	RedirectURIs            []string
	GrantTypes              []string
	ResponseTypes           []string
	TokenEndpointAuthMethod string // none | client_secret_basic | client_secret_post | private_key_jwt
	ApplicationType         string // web | native
	// Scopes is the ceiling of scopes this client may ever hold: the
	// RequestedScopes the policy's register action allows, recomputed
	// whenever what policy reads changes. Empty with empty RequestedScopes
	// means the client is bound only by the resources' scopes and policy;
	// empty while RequestedScopes is not means it may hold nothing.
	Scopes []string
	// RequestedScopes is what the client asked for at registration or its
	// last update (RFC 7591 §2 scope; an admin's --scope list), kept so
	// that the ceiling can be recomputed, e.g. after an admin tags the
	// client trusted.
	RequestedScopes []string
	// DefaultResource is used when an authorization request names no resource.
	DefaultResource string
	JWKS            string // JSON Web Key Set document, for private_key_jwt
	JWKSURI         string
	ClientURI       string
	LogoURI         string
	TOSURI          string
	PolicyURI       string
	Contacts        []string
	SoftwareID      string
	SoftwareVersion string
	// RegistrationMethod is RegistrationManual, RegistrationDCR or RegistrationCIMD.
	RegistrationMethod string
	// RegistrationTokenHash is SHA-256 of the RFC 7592 registration access token.
	RegistrationTokenHash []byte
	CreatedIP             string
	// Tags are set by admins and seen by policy (e.g. "trusted").
	Tags        []string
	OwnerUserID string
	Disabled    bool
	// Status is ClientActive, ClientPending or ClientDeprovisioned: a
	// pending client (a dynamic registration that policy held for review)
	// is stored and can be approved, but no authorization or token is
	// issued to it; a deprovisioned one was switched off for good by an
	// administrator (and is Disabled too).
	Status string
	// LastUsedAt is when a token was last issued to the client, recorded
	// coarsely (see Issuance.Touch); zero: never. Expiry of self-registered
	// clients counts from max(CreatedAt, LastUsedAt).
	LastUsedAt time.Time
	// SoftwareStatementIssuer is the issuer of the RFC 7591 §2.3 software
	// statement the registration carried and the hub verified ("": none).
	SoftwareStatementIssuer string
	// FederatedIssuer is the ID of the trusted issuer (Issuer.ID) whose
	// workload JWTs authenticate this client, for RegistrationWorkload
	// clients ("" for every other client): such a client has no secret and
	// no keys of its own.
	FederatedIssuer string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Client statuses.
const (
	ClientActive  = "active"
	ClientPending = "pending"
	// ClientDeprovisioned marks the end of an agent's deprovisioning
	// (clients.Deprovision): disabled, its consents and tokens revoked.
	ClientDeprovisioned = "deprovisioned"
)

// Pending reports whether the client awaits an admin's approval.
func (c *Client) Pending() bool { return c.Status == ClientPending }

// StoredStatus is the status a backend stores for c: an empty Status is
// ClientActive; anything but the Client… statuses is ErrInvalid.
func (c *Client) StoredStatus() (string, error) {
	switch c.Status {
	case "":
		return ClientActive, nil
	case ClientActive, ClientPending, ClientDeprovisioned:
		return c.Status, nil
	}
	return "", fmt.Errorf("store: client status %q: %w", c.Status, ErrInvalid)
}

// ApplyClientUpdate runs a backend's UpdateClient updater on c, a client
// just read under the update's lock: it turns a panic of update into an
// error (it runs on the backend's writer) and refuses a changed key.
func ApplyClientUpdate(c *Client, update func(*Client) error) (err error) {
	tenant, id := c.TenantID, c.ID
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: client update panicked: %v", p)
		}
	}()
	if err := update(c); err != nil {
		return err
	}
	if c.TenantID != tenant || c.ID != id {
		return fmt.Errorf("store: a client update may not change the tenant or id: %w", ErrInvalid)
	}
	return nil
}

// Public reports whether the client cannot keep a secret.
func (c *Client) Public() bool { return c.TokenEndpointAuthMethod == "none" }

// Domain is an administrator's trust decision for the hosts of Client ID
// Metadata Documents: an exact host ("app.example.com") or a wildcard
// ("*.example.com", any subdomain of example.com but not example.com
// itself). The most specific pattern matching a host decides; a host no
// pattern matches is DomainAllowed.
type Domain struct {
	TenantID string
	Pattern  string // lower-case host or "*." + host
	Trust    string // DomainTrusted | DomainAllowed | DomainBlocked
	// AllowTextPlain accepts documents served as text/plain from matching
	// hosts (raw file hosts serve JSON so).
	AllowTextPlain bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Domain trust levels.
const (
	DomainTrusted = "trusted"
	DomainAllowed = "allowed"
	DomainBlocked = "blocked"
)

// Scope is one tool-level permission of a resource.
type Scope struct {
	Name        string
	Description string
	Sensitive   bool
}

// Resource is a protected resource: an MCP server, named by its canonical URI.
type Resource struct {
	TenantID string
	ID       string
	URI      string // canonical, RFC 8707
	Name     string
	Scopes   []Scope
	// AccessTokenTTL is the lifetime of access tokens for this resource; zero
	// means the hub default.
	AccessTokenTTL time.Duration
	// ConsentMaxTTL caps how long a person may grant access (zero: no cap);
	// ConsentDefaultTTL is the duration preselected on the consent screen.
	ConsentMaxTTL     time.Duration
	ConsentDefaultTTL time.Duration
	Tags              []string
	// ClientID is the confidential client that is this resource's server
	// (DESIGN §4a): the one client that may introspect tokens whose aud is
	// the resource. Empty: none is linked.
	ClientID string
	// Providers are the downstream providers the resource's tools use and
	// the provider scopes each resource scope may reach (the vault).
	Providers []ResourceProvider
	// UserClaims are the user claims its access tokens carry: claim name →
	// source (UserClaimRoles, UserClaimGroups, UserClaimUsername,
	// UserClaimEmail, UserClaimName or UserClaimAttrPrefix + an attribute
	// key). Opt-in per resource; nil carries none. CheckUserClaims bounds it.
	UserClaims map[string]string
	CreatedAt  time.Time
}

// User is a local user who logs in with a password.
type User struct {
	TenantID     string
	ID           string
	Username     string
	PasswordHash string // argon2id, PHC string format
	// Name is the person's full name and Email their address, as an admin
	// entered them ("": unknown): the OpenID Connect profile and email
	// claims. EmailVerified says the admin vouches for the address.
	Name          string
	Email         string
	EmailVerified bool
	// Roles, Groups and Attributes are what policy knows of the person
	// (the Cedar User entity's roles, groups and tags) and what a
	// resource's UserClaims may put in its tokens: set by an admin (agentid
	// users add-role, add-group, set-attr) or from an identity provider's
	// claims. CheckUserAccess bounds them.
	Roles      []string
	Groups     []string
	Attributes map[string]string
	Disabled   bool
	// ConnectorID is the connector (Connector.ID) the person signs in
	// through and ExternalSubject their subject at its identity provider
	// (the ID token's sub); both "" for a local user. A (tenant,
	// connector, subject) names at most one user.
	ConnectorID     string
	ExternalSubject string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Issuer is a trusted issuer of JWTs: an enterprise identity provider
// whose identity assertion grants (ID-JAG) the hub accepts, a workload
// platform (Kubernetes, SPIFFE, a CI provider) whose tokens identify
// agents, or an issuer whose tokens may be exchanged (RFC 8693). Admins
// manage them with agentid issuers; the federation package verifies JWTs
// against them.
type Issuer struct {
	TenantID string
	// ID is the admin's short name for the issuer, unique in the tenant
	// ("okta", "k8s-prod").
	ID string
	// Issuer is the iss value its JWTs carry, exactly; unique in the tenant.
	Issuer string
	// Keys: JWKSURI (fetched through the hub's SSRF-safe fetcher, cached)
	// or JWKS (a static JSON Web Key Set); exactly one is set.
	JWKSURI string
	JWKS    string
	// Audiences are the aud values accepted from this issuer; empty means
	// the hub's issuer and token endpoint URL. An assertion's aud is always
	// a single value.
	Audiences []string
	// Algorithms are the JWS algorithms accepted (asymmetric only; empty:
	// ES256 and RS256).
	Algorithms []string
	// Uses are what its JWTs may be used for (IssuerUse…); at least one.
	Uses []string
	// MaxLifetime bounds exp - iat of its JWTs (zero: one hour).
	MaxLifetime time.Duration
	// UserClaim names the claim that identifies a local user (for
	// IssuerUseIDJAG, IssuerUseJWTBearer and IssuerUseSubjectToken): "sub"
	// (the default) and "preferred_username" match a user's Username,
	// "email" a user's Email.
	UserClaim string
	// Rules map a workload's claims to an agent (IssuerUseWorkload); the
	// first rule that matches decides.
	Rules     []IssuerRule
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Uses of an Issuer's JWTs.
const (
	// IssuerUseIDJAG: identity assertion authorization grants
	// (typ oauth-id-jag+jwt) through the jwt-bearer grant.
	IssuerUseIDJAG = "id_jag"
	// IssuerUseWorkload: workload identity tokens, through the jwt-bearer
	// grant or as a client assertion, mapped to an agent by Rules.
	IssuerUseWorkload = "workload"
	// IssuerUseJWTBearer: RFC 7523 §2.1 assertions about a user, presented
	// by an authenticated client.
	IssuerUseJWTBearer = "jwt_bearer"
	// IssuerUseSubjectToken: JWTs exchanged as a subject_token (RFC 8693).
	IssuerUseSubjectToken = "subject_token"
)

// IssuerUses are the uses a stored issuer may name.
var IssuerUses = []string{IssuerUseIDJAG, IssuerUseWorkload, IssuerUseJWTBearer, IssuerUseSubjectToken}

// Check refuses an issuer no backend may hold (the CreateIssuer rules),
// wrapping ErrInvalid; every backend calls it before writing.
func (iss *Issuer) Check() error {
	switch {
	case iss.TenantID == "" || iss.ID == "" || iss.Issuer == "":
		return fmt.Errorf("issuer %q: tenant, id and issuer are required: %w", iss.ID, ErrInvalid)
	case (iss.JWKS == "") == (iss.JWKSURI == ""):
		return fmt.Errorf("issuer %q: exactly one of JWKS and JWKS URI: %w", iss.ID, ErrInvalid)
	case len(iss.Uses) == 0:
		return fmt.Errorf("issuer %q: no use: %w", iss.ID, ErrInvalid)
	case iss.MaxLifetime < 0:
		return fmt.Errorf("issuer %q: negative maximum lifetime: %w", iss.ID, ErrInvalid)
	}
	for _, u := range iss.Uses {
		if !slices.Contains(IssuerUses, u) {
			return fmt.Errorf("issuer %q: use %q: %w", iss.ID, u, ErrInvalid)
		}
	}
	return nil
}

// IssuerRule maps a workload JWT to an agent identity.
type IssuerRule struct {
	// Claims: every named claim (a string claim, or "sub") must match its
	// pattern, where "*" matches any run of characters (none included).
	// At least one claim.
	Claims map[string]string `json:"claims"`
	// Agent is the client id of the agent, where "{claim}" stands for
	// that claim's value (e.g. "k8s:{kubernetes.io/namespace}:{sub}"); the
	// hub creates the client on first use (RegistrationWorkload).
	Agent string `json:"agent"`
	// Scopes are the requested scopes of a client the rule creates (its
	// ceiling then follows the policy's register action).
	Scopes []string `json:"scopes,omitempty"`
}

// SigningKey is an access-token signing key. The private key is stored only
// as an envelope ciphertext made by the token package.
type SigningKey struct {
	ID         string // kid
	Algorithm  string // ES256 | EdDSA | RS256
	PublicJWK  string // JSON
	PrivateEnc []byte // envelope ciphertext of the private key
	// ActivateAt is when the key may start signing; it is published in JWKS
	// from CreatedAt on, so verifiers learn it before it signs.
	ActivateAt time.Time
	// RetiredAt is when the key stopped signing (zero while it may sign).
	RetiredAt time.Time
	// ExpiresAt is when the key leaves JWKS: after the last token it signed
	// has expired. Zero while it is not retired.
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Session is a browser login session; the cookie value is never stored, only
// its SHA-256.
type Session struct {
	Hash      []byte
	TenantID  string
	UserID    string
	AuthTime  time.Time
	ExpiresAt time.Time
}

// AuthCode is an issued authorization code, stored by the SHA-256 of its value.
type AuthCode struct {
	Hash                []byte
	TenantID            string
	GrantID             string // the family every token issued from this code belongs to
	ClientID            string
	UserID              string
	RedirectURI         string
	Scopes              []string
	Resource            string
	CodeChallenge       string
	CodeChallengeMethod string
	Nonce               string
	AuthTime            time.Time
	CreatedAt           time.Time
	ExpiresAt           time.Time
	ConsumedAt          time.Time // zero until consumed
}

// RefreshToken is an issued refresh token, stored by the SHA-256 of its value.
// All tokens rotated from one authorization share a GrantID.
type RefreshToken struct {
	Hash     []byte
	TenantID string
	GrantID  string
	ClientID string
	UserID   string
	Scopes   []string
	Resource string
	// RedirectURI is the redirect URI of the authorization the family came
	// from, with a loopback port removed (oauth.InstallationURI): a Client
	// ID Metadata Document client is one client id for every installation,
	// and a person signs one installation out by it. "" for other grants.
	RedirectURI string
	AuthTime    time.Time
	CreatedAt   time.Time
	ExpiresAt   time.Time
	RotatedAt   time.Time // zero while current
	RevokedAt   time.Time // zero unless revoked
}

// Active reports whether the token may be used at now.
func (t *RefreshToken) Active(now time.Time) bool {
	return t.RotatedAt.IsZero() && t.RevokedAt.IsZero() && now.Before(t.ExpiresAt)
}

// AccessToken records an issued JWT access token by its jti, so that it can be
// revoked (denylisted) until it expires.
type AccessToken struct {
	JTI      string
	TenantID string
	GrantID  string // empty for grants without a family (client credentials)
	ClientID string
	UserID   string
	Resource string
	Scopes   []string
	// RedirectURI is as RefreshToken.RedirectURI.
	RedirectURI string
	ExpiresAt   time.Time
	RevokedAt   time.Time
	// Digest is the SHA-256 of the compact JWT exactly as the hub minted
	// it, written with the record at issuance (migration 0019). A token
	// presented later whose SHA-256 equals it is byte for byte the one
	// the hub signed (docs/design.md §13). Nil for records written before
	// the migration and for those RevokeAccessToken writes.
	Digest []byte
}

// TokenStanding is what introspection asks of the store about an access
// token of this hub, read in one statement (one snapshot): the token's
// record — the fields of AccessToken below, as GetAccessToken reads
// them — and the standing, at that moment, of the client and the user it
// was issued to.
type TokenStanding struct {
	JTI, TenantID, ClientID, UserID string
	RevokedAt                       time.Time
	Digest                          []byte
	// Client is the standing of ClientID; User that of UserID (zero when
	// the token has none).
	Client, User Standing
}

// Standing is whether a client or user exists and is enabled, read
// beside a token's record.
type Standing struct {
	// Found: the row exists (in the token's tenant).
	Found    bool
	Disabled bool
	// Status and RegistrationMethod are a client's (Client.Status,
	// Client.RegistrationMethod); empty for a user.
	Status, RegistrationMethod string
}

// ConsentGrant is one scope a user granted a client for a resource, with its
// own expiry.
type ConsentGrant struct {
	TenantID   string
	UserID     string
	ClientID   string
	Resource   string
	Scope      string
	GrantedAt  time.Time
	ExpiresAt  time.Time // zero: until revoked
	LastUsedAt time.Time // zero: never used
	RevokedAt  time.Time // zero unless revoked
}

// Live reports whether the grant is in force at now.
func (g *ConsentGrant) Live(now time.Time) bool {
	return g.RevokedAt.IsZero() && (g.ExpiresAt.IsZero() || now.Before(g.ExpiresAt))
}

// ConsentFilter selects consent grants; empty fields match everything.
type ConsentFilter struct {
	TenantID string
	UserID   string
	ClientID string
	Resource string
}

// ExpiredGrants gathers the grants ExpireConsents revoked by key, for
// its events; backends share it.
type ExpiredGrants struct {
	Keys   []ConsentFilter
	Scopes map[ConsentFilter][]string
}

// Add records the revoked grant of scope under k.
func (e *ExpiredGrants) Add(k ConsentFilter, scope string) {
	if e.Scopes == nil {
		e.Scopes = make(map[ConsentFilter][]string)
	}
	if _, seen := e.Scopes[k]; !seen {
		e.Keys = append(e.Keys, k)
	}
	e.Scopes[k] = append(e.Scopes[k], scope)
}

// Sort puts the keys in ExpireConsents' order (user, client, resource)
// and sorts each key's scopes.
func (e *ExpiredGrants) Sort() {
	slices.SortFunc(e.Keys, func(a, b ConsentFilter) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), strings.Compare(a.ClientID, b.ClientID), strings.Compare(a.Resource, b.Resource))
	})
	for _, sc := range e.Scopes {
		slices.Sort(sc)
	}
}

// PolicySet is one version of a tenant's policy set: named policy files.
type PolicySet struct {
	TenantID  string
	Version   int64 // assigned by the store, increasing per tenant
	Files     map[string]string
	Comment   string
	CreatedBy string
	CreatedAt time.Time
	Active    bool
}

// AuditEvent is one entry of the audit trail. It never carries a token, code
// or secret: tokens appear by jti only.
type AuditEvent struct {
	ID        int64 // assigned by the store
	TenantID  string
	Time      time.Time
	Type      string // e.g. "token.issued"; see package audit
	RequestID string
	ClientID  string
	UserID    string
	Resource  string
	Scopes    []string
	IP        string
	Outcome   string // success | failure | denied
	// Details holds further, non-secret, per-type facts (grant_type, jti,
	// reason). It is stored as JSON and not queried.
	Details map[string]string
	// ClientRequestID is the X-Request-Id the client sent, apart from the
	// hub's own RequestID. Backends store it in Details under
	// DetailClientRequestID, which is where ListAudit returns it.
	ClientRequestID string
}

// DetailClientRequestID is the Details key of a client-supplied request id.
const DetailClientRequestID = "client_request_id"

// StoredDetails is Details as a backend stores it: with ClientRequestID
// folded in. It does not modify ev.
func (ev *AuditEvent) StoredDetails() map[string]string {
	if ev.ClientRequestID == "" {
		return ev.Details
	}
	m := make(map[string]string, len(ev.Details)+1)
	for k, v := range ev.Details {
		m[k] = v
	}
	m[DetailClientRequestID] = ev.ClientRequestID
	return m
}

// WithCode returns a copy of ev whose empty client, user, resource and
// scopes are taken from the code it is about (the caller of ConsumeAuthCode
// cannot know them before the store has read the code).
func (ev *AuditEvent) WithCode(c *AuthCode) *AuditEvent {
	e := *ev
	if e.ClientID == "" {
		e.ClientID = c.ClientID
	}
	if e.UserID == "" {
		e.UserID = c.UserID
	}
	if e.Resource == "" {
		e.Resource = c.Resource
	}
	if len(e.Scopes) == 0 {
		e.Scopes = c.Scopes
	}
	return &e
}

// AuditFilter selects audit events; zero fields match everything, and the
// fields that are set must all match. Pages are by event id (ids increase
// in commit order): a page newest first continues with Before set to its
// last id, an Ascending page with After set to its last id.
type AuditFilter struct {
	TenantID string
	// Type matches one event type exactly; TypePrefix every type that
	// starts with it ("token." or "connection."). Both may be set.
	Type       string
	TypePrefix string
	ClientID   string // the event's client (the agent, or the MCP server's own client)
	// Agent matches the events of an agent: those whose client it is and
	// those naming it in their "agent" detail (a credential retrieval,
	// whose client is the MCP server that retrieved for the agent).
	Agent    string
	UserID   string
	Resource string
	// Provider matches the downstream provider an event names (its
	// "provider" detail).
	Provider string
	Outcome  string // success | failure | denied
	// Since and Until bound the event time: Since inclusive, Until
	// exclusive.
	Since, Until time.Time
	// Before and After bound the event id, both exclusive; 0 is no bound.
	Before, After int64
	// Ascending lists oldest first (increasing id) rather than newest
	// first: for following the trail (tail) and exporting it in order.
	Ascending bool
	Limit     int // 0: DefaultAuditLimit
}

// DefaultAuditLimit is the page size of an AuditFilter without a Limit.
const DefaultAuditLimit = 100

// Details keys that AuditFilter matches: the downstream provider an event
// names (Provider) and the agent an MCP server acted for (Agent).
const (
	DetailProvider = "provider"
	DetailAgent    = "agent"
)

// Details keys that make an event unique (AppendAuditOnce): the client
// that reported it and its own id of the report.
const (
	DetailReportingClient = "reporting_client"
	DetailReportID        = "report_id"
)

// Check reports a filter no backend can run: negative ids or limit, or a
// time range that ends before it starts. It wraps ErrInvalid.
func (f AuditFilter) Check() error {
	var bad []string
	if f.Before < 0 || f.After < 0 {
		bad = append(bad, "ids must not be negative")
	}
	if f.Limit < 0 {
		bad = append(bad, "limit must not be negative")
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		bad = append(bad, "since must be before until")
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: audit filter: %s", ErrInvalid, strings.Join(bad, "; "))
	}
	return nil
}

// Issuance is everything that one successful token response persists, in one
// transaction: the access token record, an optional new refresh token, the
// use of the consent it rests on and the audit events.
type Issuance struct {
	AccessToken  *AccessToken  // may be nil if no access token is recorded
	RefreshToken *RefreshToken // may be nil
	// ConsentUse, when set, records that the token was issued on the
	// person's consent: LastUsedAt of the named scopes becomes At.
	ConsentUse *ConsentUse
	Events     []*AuditEvent
	// Reuse, for RotateRefresh only, opens the refresh reuse interval (nil:
	// strict rotation).
	Reuse *ReuseInterval
	// Check, when set, names the client and user the tokens are issued to;
	// the same transaction that writes them finds both alive (see
	// LiveCheck), so that a cached client or user cannot outlive its
	// deletion or disabling on the mint path.
	Check *LiveCheck
	// Touch, when set, moves the client's LastUsedAt forward to Touch.At
	// (never back). The server sets it at most about once an hour per
	// client, so that the hot path rarely writes the client row.
	Touch *ClientTouch
	// SubjectJTI, when set, makes the issuance an RFC 8693 token exchange
	// of the recorded access token with that jti (of AccessToken's
	// tenant): the access token joins that token's family (the grant id of
	// its record; AccessToken.GrantID is ignored), and the transaction that
	// writes it finds the record alive. Nothing is written when the record
	// is missing (ErrNotFound) or revoked, alone or with its family or user
	// (ErrRevoked), so a revocation that lands while the exchange is under
	// way is never outlived by the token it issues. It needs AccessToken
	// and Check and allows no RefreshToken (ErrInvalid otherwise).
	SubjectJTI string
}

// CheckExchange reports ErrInvalid for an issuance whose SubjectJTI
// comes without what it needs (see Issuance.SubjectJTI).
func CheckExchange(iss *Issuance) error {
	if iss == nil || iss.SubjectJTI == "" {
		return nil
	}
	if iss.AccessToken == nil || iss.Check == nil || iss.RefreshToken != nil {
		return fmt.Errorf("%w: an exchange issues one access token with a live check", ErrInvalid)
	}
	return nil
}

// ClientTouch records that a token was issued to a client at At.
type ClientTouch struct {
	TenantID, ClientID string
	At                 time.Time
}

// Installation is one installation of a client for a person: the
// redirect URI (oauth.InstallationURI) its tokens carry.
type Installation struct {
	RedirectURI string
	// LastIssuedAt is when its newest live refresh token was issued; zero
	// when only access tokens are live.
	LastIssuedAt time.Time
}

// PruneRequest selects the self-registered clients that PruneClients
// removes: of one of Methods, last used (or, never used, created) before
// UnusedSince, and holding at Now no live refresh token, no live access
// token and no live consent. A client that holds any of those is never
// removed, nor is a deprovisioned client (its record is the inventory's
// statement that it was switched off) or a disabled metadata-document
// client (removing it would let its URL back in as a new, enabled client).
type PruneRequest struct {
	TenantID    string
	Methods     []string // e.g. RegistrationDCR, RegistrationCIMD; empty selects nothing
	UnusedSince time.Time
	Now         time.Time
	// DryRun returns what would be removed and changes nothing.
	DryRun bool
	// Limit bounds how many clients one call removes (0: 1000).
	Limit int
}

// ReuseInterval lets RotateRefresh accept a refresh token presented again
// shortly after it was rotated: a client's retry after a lost response, or
// two of its processes refreshing at once.
type ReuseInterval struct {
	// Since: a token rotated at or after Since, neither revoked nor
	// expired, and still its family's most recent rotation, is accepted
	// again (see Tokens.RotateRefresh).
	Since time.Time
	// Event records the acceptance; it is written with the issuance's
	// events.
	Event *AuditEvent
}

// LiveCheck names who an issuance is for. IssueTokens and RotateRefresh
// fail with ErrClientGone when the client does not exist or is disabled,
// and with ErrUserGone when UserID is set and the user does not exist or is
// disabled, writing nothing. The check holds the rows against a concurrent
// update until the issuance commits, so a disable or delete either comes
// first (and the issuance fails) or sees the issued tokens (and its
// revocation reaches them).
type LiveCheck struct {
	TenantID, ClientID, UserID string
}

// ConsentUse names the consented scopes a token was issued on: their
// LastUsedAt becomes At.
type ConsentUse struct {
	Filter ConsentFilter
	Scopes []string
	At     time.Time
}

// Store is the persistence contract: every role below, which one backend
// provides. Every method is one transaction. Methods that write an audit
// event take it as an argument and write it in the same transaction as the
// change it records; a nil event writes none. A package that needs only
// some roles depends on those (policy on Policies, consent on Consents,
// the token key manager on SigningKeys), so its tests can fake a small
// interface; the composition root hands every role the same Store.
type Store interface {
	Database
	Clients
	Resources
	Users
	SigningKeys
	Sessions
	Tokens
	Consents
	Policies
	AuditTrail
	AuditChain
	AuditSinks
	Domains
	Issuers
	Providers
	Connections
	Connectors
	SCIM
	Leases
	Changes
}

// Database is the backend's lifecycle: opening checks, schema migration
// and shutdown. The composition root (cmd/agentid) uses it.
type Database interface {
	// Close releases the backend's resources.
	Close() error
	// Ping checks the database answers (readiness).
	Ping(ctx context.Context) error
	// Migrate applies every pending migration and returns the schema version
	// before and after. It returns ErrSchemaTooNew if the database is ahead.
	Migrate(ctx context.Context) (from, to int, err error)
	// SchemaVersion returns the database's current version and the newest
	// version this binary knows.
	SchemaVersion(ctx context.Context) (current, known int, err error)
}

// Clients are the registered OAuth clients (agents): the admin CLI,
// dynamic registration (RFC 7591/7592), client authentication and policy
// ceilings use them.
type Clients interface {
	// CreateClient returns ErrConflict for a duplicate id. An empty Status
	// is stored as ClientActive (so is it by UpdateClient); any status but
	// ClientActive, ClientPending and ClientDeprovisioned is ErrInvalid.
	CreateClient(ctx context.Context, c *Client, ev *AuditEvent) error
	GetClient(ctx context.Context, tenantID, id string) (*Client, error)
	ListClients(ctx context.Context, tenantID string) ([]*Client, error)
	// UpdateClient changes the client (tenant, id) by compare-and-set: in
	// one transaction it reads the client, holding it against concurrent
	// updates, hands it to update, stores every field update leaves, writes
	// ev, and returns the stored client. Two concurrent updates of different
	// fields therefore both land. An unknown client is ErrNotFound. If
	// update returns an error, nothing is written and UpdateClient returns
	// that error unchanged; an update that changes TenantID or ID is
	// ErrInvalid. update may fill ev. It runs while the backend holds its
	// write lock, so it must only compute (no I/O, no store calls), and it
	// may run more than once, each time on a freshly read client, so its
	// only effects must be on the client and ev.
	UpdateClient(ctx context.Context, tenantID, id string, update func(*Client) error, ev *AuditEvent) (*Client, error)
	// DeleteClient removes the client and revokes every refresh token and
	// recorded access token issued to it.
	DeleteClient(ctx context.Context, tenantID, id string, now time.Time, ev *AuditEvent) error
	// ClientsBySoftware returns the live (not disabled) dynamically
	// registered clients of the tenant with this software_id, or, when
	// softwareID is "", with no software_id and this name: the candidates
	// a new registration may be a duplicate of (pending ones included: the
	// caller decides what a pending duplicate means). At most 100, newest
	// first (by CreatedAt).
	ClientsBySoftware(ctx context.Context, tenantID, softwareID, name string) ([]*Client, error)
	// PruneClients removes the clients req selects, each with the event
	// ev returns for it (nil: none), in one transaction, and returns them.
	// The selection and the removal are one statement's worth of truth: a
	// token issued concurrently (with Issuance.Check) either lands before
	// (and the client stays) or fails with ErrClientGone. A consent given
	// concurrently either lands before (and the client stays) or is left
	// behind the removed client, where the code exchange that would rest
	// on it fails with ErrClientGone. ev runs inside the transaction (on
	// SQLite's writer), so it must only compute; it is not called for a
	// dry run.
	PruneClients(ctx context.Context, req PruneRequest, ev func(*Client) *AuditEvent) ([]*Client, error)
}

// Domains are the administrator's trust decisions on Client ID Metadata
// Document hosts (agentid domains add|list|remove).
type Domains interface {
	// PutDomain creates or replaces the domain (tenant, pattern); a
	// replaced domain keeps its CreatedAt. A trust other than the three
	// levels, or an empty or not lower-case pattern, is ErrInvalid (the
	// caller validates the pattern's shape).
	PutDomain(ctx context.Context, d *Domain, ev *AuditEvent) error
	// ListDomains returns the tenant's domains ordered by pattern.
	ListDomains(ctx context.Context, tenantID string) ([]*Domain, error)
	// DeleteDomain removes it; an unknown pattern is ErrNotFound.
	DeleteDomain(ctx context.Context, tenantID, pattern string, ev *AuditEvent) error
}

// SCIMGroup is a group a SCIM client provisioned: an id that never
// changes and a display name, which is the group name in its members'
// User.Groups (membership lives there, where policy reads it).
type SCIMGroup struct {
	TenantID    string
	ID          string
	DisplayName string
	ExternalID  string // the provisioning client's own id ("": none)
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Check reports ErrInvalid for a group without tenant, id or display name.
func (g *SCIMGroup) Check() error {
	if g.TenantID == "" || g.ID == "" || g.DisplayName == "" {
		return ErrInvalid
	}
	return nil
}

// SCIMUser is what SCIM provisioning keeps of a user beside the User
// row: the client's external id, and Deleted once a SCIM DELETE removed
// the person (RFC 7644 §3.6 lets the row stay: it is deprovisioned and
// every SCIM operation on it answers 404).
type SCIMUser struct {
	TenantID   string
	UserID     string
	ExternalID string
	Deleted    bool
	UpdatedAt  time.Time
}

// SCIM is the state of SCIM 2.0 provisioning (/scim/v2) that users do
// not carry themselves.
type SCIM interface {
	// CreateSCIMGroup returns ErrConflict for a duplicate ID or
	// DisplayName in the tenant, ErrInvalid for an empty ID or
	// DisplayName, and writes ev (nil: none) in the same transaction.
	CreateSCIMGroup(ctx context.Context, g *SCIMGroup, ev *AuditEvent) error
	GetSCIMGroup(ctx context.Context, tenantID, id string) (*SCIMGroup, error)
	// ListSCIMGroups returns the tenant's groups ordered by ID.
	ListSCIMGroups(ctx context.Context, tenantID string) ([]*SCIMGroup, error)
	// UpdateSCIMGroup replaces DisplayName, ExternalID and UpdatedAt
	// (ErrNotFound, ErrConflict, ErrInvalid as CreateSCIMGroup).
	UpdateSCIMGroup(ctx context.Context, g *SCIMGroup, ev *AuditEvent) error
	// DeleteSCIMGroup removes it (ErrNotFound if unknown) and writes ev.
	DeleteSCIMGroup(ctx context.Context, tenantID, id string, ev *AuditEvent) error
	// PutSCIMUser creates or replaces the user's SCIM state.
	PutSCIMUser(ctx context.Context, u *SCIMUser) error
	// GetSCIMUser returns ErrNotFound for a user SCIM never touched.
	GetSCIMUser(ctx context.Context, tenantID, userID string) (*SCIMUser, error)
	// ListSCIMUsers returns the tenant's SCIM states ordered by UserID.
	ListSCIMUsers(ctx context.Context, tenantID string) ([]*SCIMUser, error)
}

// Issuers are the trusted issuers of JWTs (agentid issuers ...).
type Issuers interface {
	// CreateIssuer returns ErrConflict for a duplicate ID or Issuer in the
	// tenant, ErrInvalid when TenantID, ID, Issuer or Uses is empty, a use
	// is not one of the IssuerUse… values, MaxLifetime is negative, or both
	// or neither of JWKS and JWKSURI are set; it writes ev in the same
	// transaction.
	CreateIssuer(ctx context.Context, iss *Issuer, ev *AuditEvent) error
	// GetIssuer finds an issuer by its ID.
	GetIssuer(ctx context.Context, tenantID, id string) (*Issuer, error)
	// ListIssuers returns the tenant's issuers ordered by ID.
	ListIssuers(ctx context.Context, tenantID string) ([]*Issuer, error)
	// UpdateIssuer replaces every field but TenantID, ID and CreatedAt of
	// an existing issuer (ErrNotFound otherwise), with the CreateIssuer
	// rules, and writes ev in the same transaction.
	UpdateIssuer(ctx context.Context, iss *Issuer, ev *AuditEvent) error
	// DeleteIssuer removes it (ErrNotFound if unknown) and writes ev. The
	// workload clients it federated stay, and can no longer authenticate.
	DeleteIssuer(ctx context.Context, tenantID, id string, ev *AuditEvent) error
}

// Resources are the protected resources (MCP servers) and their scopes,
// named by canonical URI: the admin CLI, /authorize, /token and policy read
// them.
type Resources interface {
	// CreateResource returns ErrConflict for a duplicate URI and writes ev
	// (nil: none) in the same transaction.
	CreateResource(ctx context.Context, r *Resource, ev *AuditEvent) error
	// GetResource finds a resource by its canonical URI.
	GetResource(ctx context.Context, tenantID, uri string) (*Resource, error)
	ListResources(ctx context.Context, tenantID string) ([]*Resource, error)
	// UpdateResource replaces the resource's name, TTLs, tags, linked client,
	// scopes, providers and user claims and writes ev (nil: none) in the
	// same transaction.
	UpdateResource(ctx context.Context, r *Resource, ev *AuditEvent) error
	// DeleteResource removes the resource (ErrNotFound if unknown) and
	// writes ev (nil: none) in the same transaction.
	DeleteResource(ctx context.Context, tenantID, uri string, ev *AuditEvent) error
}

// Users are the local accounts people log in with: login, the admin CLI
// and policy (roles, groups) use them.
type Users interface {
	// CreateUser returns ErrConflict for a duplicate id or username,
	// ErrInvalid for roles, groups or attributes CheckUserAccess refuses,
	// and writes ev (nil: none) in the same transaction.
	CreateUser(ctx context.Context, u *User, ev *AuditEvent) error
	GetUser(ctx context.Context, tenantID, id string) (*User, error)
	GetUserByUsername(ctx context.Context, tenantID, username string) (*User, error)
	ListUsers(ctx context.Context, tenantID string) ([]*User, error)
	// UpdateUser replaces password hash, disabled flag, profile (Name,
	// Email, EmailVerified), roles, groups and attributes and writes ev
	// (nil: none) in the same transaction; ErrInvalid as CreateUser.
	UpdateUser(ctx context.Context, u *User, ev *AuditEvent) error
}

// SigningKeys are the access-token signing keys, stored encrypted; only
// the token package's key manager uses them.
type SigningKeys interface {
	// CreateSigningKey returns ErrConflict for a duplicate kid.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// ListSigningKeys returns every key, oldest first.
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// UpdateSigningKey stores RetiredAt and ExpiresAt of the key.
	UpdateSigningKey(ctx context.Context, k *SigningKey) error
	// ResealSigningKey replaces the sealed private key of kid by to if it
	// is still from (compare-and-set; ErrConflict otherwise, ErrNotFound
	// for an unknown kid, ErrInvalid for an empty from or to): KEK rotation
	// re-wraps keys online.
	ResealSigningKey(ctx context.Context, kid string, from, to []byte) error
	// DeleteExpiredSigningKeys removes keys whose ExpiresAt is set and before now.
	DeleteExpiredSigningKeys(ctx context.Context, now time.Time) error
}

// Sessions are browser login sessions, stored by the hash of the cookie.
type Sessions interface {
	CreateSession(ctx context.Context, s *Session, ev *AuditEvent) error
	// GetSession returns ErrNotFound for an unknown or expired (at now) session.
	GetSession(ctx context.Context, hash []byte, now time.Time) (*Session, error)
	DeleteSession(ctx context.Context, hash []byte) error
}

// Tokens are the protocol's single-use and revocable credentials:
// authorization codes, refresh-token families, the access-token denylist
// and single-use JWT ids. Each method is one atomic protocol step of the
// token endpoint, revocation and introspection.
type Tokens interface {
	// CreateAuthCode stores a new authorization code.
	CreateAuthCode(ctx context.Context, c *AuthCode, ev *AuditEvent) error
	// ConsumeAuthCode marks the code consumed at now and returns it. An unknown
	// or expired code is ErrNotFound. A code that was already consumed returns
	// the stored code together with ErrAlreadyUsed; the store then also revokes
	// the code's grant (every refresh token and recorded access token with its
	// GrantID) in the same transaction and writes the replay event ev (which
	// may be nil), completed by ev.WithCode. A first, successful consumption
	// writes no event: the issuance that follows records itself.
	ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time, ev *AuditEvent) (*AuthCode, error)
	// GetRefreshToken returns the token with this hash whatever its state.
	GetRefreshToken(ctx context.Context, hash []byte) (*RefreshToken, error)
	// IssueTokens persists one token response. When its tokens belong to a
	// grant whose authorization code was replayed (ConsumeAuthCode reported
	// ErrAlreadyUsed for it, possibly while this exchange was in flight),
	// nothing is written and the error is ErrAlreadyUsed. With iss.Check
	// set, a deleted or disabled client or user is ErrClientGone or
	// ErrUserGone and nothing is written. With iss.SubjectJTI set, a
	// missing or revoked subject token is ErrNotFound or ErrRevoked (a
	// replay of its grant's code too) and nothing is written.
	IssueTokens(ctx context.Context, iss *Issuance) error
	// RotateRefresh atomically retires the refresh token oldHash (setting its
	// RotatedAt to now) and persists iss, which carries its successor.
	//
	// If the old token was already rotated, it is accepted again — a
	// presentation within the reuse interval — when all of these hold: the
	// interval is open (iss.Reuse set) and the token was rotated at or after
	// iss.Reuse.Since; it is neither revoked nor expired; and it is the
	// family's most recent rotation (no token of the same tenant and grant
	// has a later RotatedAt: the client has not moved on since). Then iss
	// (a sibling of the first successor) and iss.Reuse.Event are written
	// and nothing else is retired: every refresh token handed out for the
	// presentations of one rotated token stays current, each usable once.
	// Rotations of one family are serialised, so the most-recent check
	// holds under concurrency.
	//
	// Otherwise, if the old token was already rotated or revoked, nothing of
	// iss is written; the whole grant is revoked instead, reuse is written
	// only if that revoked a token (so racing replays of one token, or a
	// replay after the family ended, record one reuse), and the error is
	// ErrAlreadyUsed. An unknown or expired token is
	// ErrNotFound. iss.Check is verified first, as for IssueTokens (nothing
	// is written on failure).
	RotateRefresh(ctx context.Context, oldHash []byte, now time.Time, iss *Issuance, reuse *AuditEvent) error
	// RevokeGrant revokes every refresh token and recorded access token of the
	// grant, and writes ev only if that revoked a token: revoking an unknown
	// or already revoked grant is not an error and records nothing, so
	// requests racing to revoke one grant record it once. An empty grantID is ErrInvalid and writes nothing, ev included: tokens
	// without a grant (client credentials, token exchange) belong to no
	// family, so no revocation by grant may reach them.
	RevokeGrant(ctx context.Context, tenantID, grantID string, now time.Time, ev *AuditEvent) error
	// RevokeAccessToken denylists the jti until at.ExpiresAt (recording it if
	// it was not recorded). Idempotent.
	RevokeAccessToken(ctx context.Context, at *AccessToken, now time.Time, ev *AuditEvent) error
	// RevokeClientTokens revokes every refresh token and recorded access
	// token issued to the client and writes ev (nil: none), in one
	// transaction. Used when a client is disabled.
	RevokeClientTokens(ctx context.Context, tenantID, clientID string, now time.Time, ev *AuditEvent) error
	// RevokeUserAccess ends everything that rests on the user's past
	// authentications, in one transaction with ev (nil: none): every login
	// session of the user is deleted, every refresh token and recorded
	// access token issued for the user is revoked, unconsumed authorization
	// codes are deleted and the grants of consumed ones are marked revoked
	// (so an exchange in flight issues nothing, as after a code replay).
	// Used when a user is disabled or their password changes.
	RevokeUserAccess(ctx context.Context, tenantID, userID string, now time.Time, ev *AuditEvent) error
	// RevokeInstallation revokes, in one transaction with ev (nil: none),
	// every refresh token and recorded access token issued to the client
	// for the user whose RedirectURI is redirectURI: one installation of a
	// Client ID Metadata Document client, leaving the person's other
	// installations and other people untouched. Whole families go: a
	// family with any token of the installation not yet revoked is revoked
	// as by RevokeGrant. It returns how many grant families it revoked;
	// with none it writes no event. An empty userID, clientID or
	// redirectURI is ErrInvalid (it would reach tokens of no installation).
	RevokeInstallation(ctx context.Context, tenantID, userID, clientID, redirectURI string, now time.Time, ev *AuditEvent) (int, error)
	// Installations lists the installations of the client the user has
	// live tokens for at now: the distinct RedirectURI ("" excluded) of
	// the user's refresh tokens of the client that are neither rotated nor
	// revoked nor expired, and of recorded access tokens neither revoked
	// nor expired, ordered by redirect URI, at most 100. The account page
	// lists a Client ID Metadata Document client's installations with it.
	Installations(ctx context.Context, tenantID, userID, clientID string, now time.Time) ([]Installation, error)
	// AccessTokenRevoked reports whether the jti is denylisted.
	AccessTokenRevoked(ctx context.Context, jti string) (bool, error)
	// GetAccessToken returns the recorded access token with this jti
	// whatever its state (RevokedAt set when denylisted), Digest included,
	// or ErrNotFound.
	// Token exchange reads the subject token's record with it: its grant
	// family (so revoking the family reaches exchanged tokens too) and
	// whether it was revoked.
	GetAccessToken(ctx context.Context, jti string) (*AccessToken, error)
	// AccessTokenStanding returns the recorded access token's revocation
	// and digest with the standing of its client and user, all read in
	// one statement (one snapshot), or ErrNotFound for an unknown jti.
	// Introspection judges a token of the hub with it: one read instead
	// of the record, the client and the user in turn.
	AccessTokenStanding(ctx context.Context, jti string) (*TokenStanding, error)
	// UseJTI records a single-use JWT id (client assertions) until exp. A jti
	// already recorded and not yet expired at now is ErrConflict. key
	// namespaces the jti (e.g. the issuer).
	UseJTI(ctx context.Context, key, jti string, exp, now time.Time) error
	// DeleteExpired removes codes, refresh tokens, access-token records,
	// sessions and JTIs that expired before now, and destroys rotated-out
	// API keys (Connection.PreviousSecret) whose PreviousUntil is before
	// now, clearing PreviousUntil with them.
	DeleteExpired(ctx context.Context, now time.Time) error
}

// Consents are the consent ledger's grants, per user, client, resource and
// scope; the consent package owns their rules.
type Consents interface {
	// UpsertConsents records grants (one row per tenant, user, client,
	// resource and scope; an existing row gets the new GrantedAt and ExpiresAt
	// and its RevokedAt cleared).
	UpsertConsents(ctx context.Context, grants []*ConsentGrant, ev *AuditEvent) error
	// ListConsents returns matching grants, live or not.
	ListConsents(ctx context.Context, f ConsentFilter) ([]*ConsentGrant, error)
	// RevokeConsents marks the matching grants revoked (scopes nil: all scopes;
	// empty: none) and cascades in the same transaction: refresh tokens of
	// that user and client (and resource, when set) carrying any revoked
	// scope are revoked, and so are the recorded access tokens carrying one,
	// and the access tokens of the same user and grant family carrying one
	// (tokens exchanged from those, RFC 8693, held by other clients for
	// other resources; found also when the family's own tokens were revoked
	// before). Tokens without a user never rest on consent and are left alone. ev is
	// written only when a grant or a token was revoked; revoking nothing is
	// not an error and leaves no trace.
	RevokeConsents(ctx context.Context, f ConsentFilter, scopes []string, now time.Time, ev *AuditEvent) error
	// ExpireConsents revokes, at now, every grant of the tenant that is
	// not revoked and whose ExpiresAt is set and not after now, cascading
	// to tokens as RevokeConsents does for the grant's user, client and
	// resource, and writes ev's event (nil func or event: none) for each
	// such key with the scopes it revoked there (sorted); keys go in order
	// of user, client and resource. All in one transaction; it returns how
	// many grants it revoked. The selection is the update: a grant renewed
	// concurrently (UpsertConsents) is renewed either before (and stays)
	// or after (and is live again); of sweeps running at once on any
	// number of handles, each grant is revoked, and each event written, by
	// one. ev runs inside the transaction, so it must only compute.
	ExpireConsents(ctx context.Context, tenantID string, now time.Time, ev func(key ConsentFilter, scopes []string) *AuditEvent) (int, error)
}

// Policies are the versioned policy sets of each tenant; the policy
// package applies, activates and reads them.
type Policies interface {
	// CreatePolicySet stores ps as the tenant's newest version and makes it
	// the active one; it sets ps.Version.
	CreatePolicySet(ctx context.Context, ps *PolicySet, ev *AuditEvent) error
	// ActivePolicySet returns the tenant's active set, or ErrNotFound.
	ActivePolicySet(ctx context.Context, tenantID string) (*PolicySet, error)
	// ListPolicySets returns every version of the tenant, newest first.
	ListPolicySets(ctx context.Context, tenantID string) ([]*PolicySet, error)
	// ActivatePolicySet makes an existing version active (rollback).
	ActivatePolicySet(ctx context.Context, tenantID string, version int64, ev *AuditEvent) error
}

// AuditTrail is the append-only audit trail. Most events are written by
// the method whose change they record; these write and read it directly.
type AuditTrail interface {
	// AppendAudit writes standalone audit events, all of them in one
	// transaction (nil entries are skipped), and sets each one's ID.
	AppendAudit(ctx context.Context, evs ...*AuditEvent) error
	// AppendAuditOnce is AppendAudit for events that a client may send
	// again: an event whose (tenant, DetailReportingClient,
	// DetailReportID) details an event in the trail already has is
	// skipped and keeps ID 0. Events without a report id are all written.
	AppendAuditOnce(ctx context.Context, evs ...*AuditEvent) error
	// ListAudit returns up to f.Limit matching events,
	// newest first unless f.Ascending; a filter failing Check is ErrInvalid.
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
}
