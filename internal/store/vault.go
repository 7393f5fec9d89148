package store

import (
	"context"
	"time"
)

// Provider kinds.
const (
	// ProviderOAuth2: a downstream service reached with OAuth 2 access
	// tokens the person obtains through the provider's authorization-code
	// flow at /connections.
	ProviderOAuth2 = "oauth2"
	// ProviderAPIKey: a downstream service reached with a static key the
	// person (or an admin, for the tenant) enters in a form.
	ProviderAPIKey = "api_key"
)

// Provider is a downstream service whose credentials the vault keeps
// (agentid providers ...). Its ID is a slug ([a-z0-9][a-z0-9_-]{0,62})
// that names it in URLs, in resource links and in the retrieval resource
// "<issuer>/providers/<id>".
type Provider struct {
	TenantID string
	ID       string
	Name     string
	Kind     string // ProviderOAuth2 | ProviderAPIKey

	// OAuth 2 (Kind ProviderOAuth2). Issuer, when set, is where the
	// endpoints were discovered from (OpenID Connect discovery or RFC 8414)
	// at the time the provider was added; the endpoints are stored either
	// way.
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	RevocationEndpoint    string // "": the provider has none
	ClientID              string
	// ClientSecret is the provider client's secret sealed by the vault
	// (vault.SealProviderSecret; AAD binds tenant, provider and purpose);
	// nil for a public client. Never plaintext.
	ClientSecret []byte
	// TokenAuthMethod is how the hub authenticates to the token endpoint:
	// "client_secret_basic" (default) or "client_secret_post".
	TokenAuthMethod string
	// Scopes are the provider scopes connections may ask for.
	Scopes []string
	// DisablePKCE turns PKCE (S256) off for a provider that rejects it;
	// it is on by default.
	DisablePKCE bool
	// AuthParams are extra authorization-request parameters (for example
	// access_type=offline, prompt=consent).
	AuthParams map[string]string

	// API key (Kind ProviderAPIKey): the key travels in the header
	// KeyHeader, its value made by KeyFormat with "{key}" replaced (for
	// example "Bearer {key}"; "" means the key alone), or in the query
	// parameter KeyQuery. Exactly one of KeyHeader and KeyQuery is set.
	KeyHeader string
	KeyQuery  string
	KeyFormat string
	// KeyHint is shown next to the key field (for example "starts with
	// sk_live_").
	KeyHint string
	// KeyOverlap is how long a rotated-out key stays retrievable
	// (zero: the vault's default, 24h).
	KeyOverlap time.Duration

	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ResourceProvider says that a resource's (MCP server's) tools use a
// provider, and which provider scopes each of the resource's own scopes
// may reach: a retrieval for a token that holds resource scope s may ask
// for at most Scopes[s]. A resource scope missing from Scopes reaches none.
// For an API-key provider the values are empty lists: holding the scope is
// what counts.
type ResourceProvider struct {
	ProviderID string
	Scopes     map[string][]string
}

// Connection statuses.
const (
	ConnectionActive      = "active"
	ConnectionRefreshing  = "refreshing"
	ConnectionNeedsReauth = "needs_reauth"
	ConnectionRevoked     = "revoked"
)

// Connection owners.
const (
	// OwnerUser: the connection belongs to one person (OwnerID = user id).
	OwnerUser = "user"
	// OwnerTenant: an org-wide credential (OwnerID = the tenant id), used
	// for every user of the tenant when they have none of their own.
	OwnerTenant = "tenant"
)

// Connection is one credential for one provider, owned by a user or by the
// tenant. Its secret material is sealed under a per-connection data key
// (DataKey, wrapped by the KEK); the store never sees plaintext.
type Connection struct {
	TenantID   string
	ID         string // "conn_" + random
	ProviderID string
	OwnerKind  string // OwnerUser | OwnerTenant
	OwnerID    string
	// Label tells the person's connections to one provider apart
	// (an account name the provider reported, or what they typed).
	Label  string
	Status string // Connection…
	// Scopes are the scopes the provider granted (none for API keys).
	Scopes []string

	// DataKey is the per-connection data key sealed by the keyring (its
	// envelope names the KEK); KEKID repeats that KEK id so a rotation can
	// find what it has not re-wrapped yet.
	DataKey []byte
	KEKID   string
	// Secret is the credential (access and refresh token, or the API key)
	// sealed under the data key; PreviousSecret is a rotated-out API key,
	// retrievable until PreviousUntil (Tokens.DeleteExpired destroys it
	// after).
	Secret         []byte
	PreviousSecret []byte
	PreviousUntil  time.Time

	// ExpiresAt is when the access token expires (zero: it does not, or
	// the provider did not say).
	ExpiresAt       time.Time
	LastRefreshedAt time.Time
	LastUsedAt      time.Time
	// RefreshHolder holds the refresh lease until RefreshLeaseUntil: only
	// it may use the refresh token (single flight across processes).
	RefreshHolder     string
	RefreshLeaseUntil time.Time
	// Failures counts provider errors since the last success; no refresh
	// is attempted before NextAttemptAt (exponential backoff with jitter).
	Failures      int
	NextAttemptAt time.Time

	CreatedAt time.Time
	UpdatedAt time.Time
}

// ConnectionFilter selects connections for ListConnections. Empty fields
// match everything; TenantID is required (ErrInvalid without it).
type ConnectionFilter struct {
	TenantID   string
	ProviderID string
	OwnerKind  string
	OwnerID    string
	Statuses   []string
	// NotKEK selects connections whose data key is wrapped by another KEK
	// than this one (KEK rotation).
	NotKEK string
	// ExpiresBefore and RefreshedBefore, when set, select connections due
	// for a background refresh: ExpiresAt set and before ExpiresBefore, or
	// LastRefreshedAt (CreatedAt for a connection never refreshed) before
	// RefreshedBefore (either matches). Both bounds are exclusive.
	ExpiresBefore   time.Time
	RefreshedBefore time.Time
	// After is a cursor: only connections whose ID sorts after it.
	After string
	// Limit caps the result (0: no cap). Results are ordered by ID.
	Limit int
}

// Providers are the downstream services of the vault (agentid providers).
type Providers interface {
	// CreateProvider returns ErrConflict for a duplicate ID in the tenant
	// and ErrInvalid when TenantID, ID or Kind is empty, Kind is unknown or
	// KeyOverlap is negative (CheckProvider); it writes ev in the same
	// transaction.
	CreateProvider(ctx context.Context, p *Provider, ev *AuditEvent) error
	GetProvider(ctx context.Context, tenantID, id string) (*Provider, error)
	// ListProviders returns the tenant's providers ordered by ID.
	ListProviders(ctx context.Context, tenantID string) ([]*Provider, error)
	// UpdateProvider replaces every field but TenantID, ID, Kind and
	// CreatedAt (ErrNotFound if unknown; ErrInvalid for a negative
	// KeyOverlap) and writes ev in the same transaction.
	UpdateProvider(ctx context.Context, p *Provider, ev *AuditEvent) error
	// DeleteProvider removes the provider and every connection to it (their
	// ciphertext with them) and writes ev, in one transaction (ErrNotFound
	// if unknown).
	DeleteProvider(ctx context.Context, tenantID, id string, ev *AuditEvent) error
}

// Connections are the vault's stored credentials.
type Connections interface {
	// CreateConnection returns ErrConflict for a duplicate ID in the
	// tenant, ErrNotFound when the provider does not exist in the tenant
	// and ErrInvalid for a connection CheckConnection refuses; it writes
	// ev in the same transaction.
	CreateConnection(ctx context.Context, c *Connection, ev *AuditEvent) error
	GetConnection(ctx context.Context, tenantID, id string) (*Connection, error)
	ListConnections(ctx context.Context, f ConnectionFilter) ([]*Connection, error)
	// UpdateConnection changes a connection by compare-and-set, as
	// UpdateClient does: in one transaction it reads the row, holding it
	// against concurrent updates, hands it to update, stores every field
	// update leaves (all but TenantID, ID, ProviderID, OwnerKind, OwnerID,
	// CreatedAt), writes ev and returns the stored connection. If update
	// returns an error nothing is written and that error is returned; an
	// update that changes one of those six fields, panics, or leaves a
	// connection CheckConnection refuses writes nothing either (ErrInvalid,
	// or an error for the panic). The store may call update more than once
	// (SQLite's group commit re-runs a batch): it must only compute. An
	// unknown connection is ErrNotFound.
	UpdateConnection(ctx context.Context, tenantID, id string, update func(*Connection) error, ev *AuditEvent) (*Connection, error)
	// AcquireRefreshLease gives holder the refresh lease of the connection
	// until `until` when no other holder has one that is still valid at
	// now (an expired lease is taken over), in one atomic statement, and
	// returns the connection as it then is. A lease held by someone else is
	// ErrConflict (the connection is returned with it, so the caller can
	// wait for RefreshLeaseUntil). The status is not changed. The holder
	// renews its own lease the same way; it releases it with
	// UpdateConnection (RefreshHolder "", RefreshLeaseUntil zero). An
	// unknown connection is ErrNotFound, an empty holder ErrInvalid.
	AcquireRefreshLease(ctx context.Context, tenantID, id, holder string, now, until time.Time) (*Connection, error)
	// TouchConnection records a use: LastUsedAt = at, and writes ev (the
	// retrieval's audit event) in the same transaction (ErrNotFound if
	// unknown).
	TouchConnection(ctx context.Context, tenantID, id string, at time.Time, ev *AuditEvent) error
	// DeleteConnection removes the connection, its ciphertext with it
	// (ErrNotFound if unknown), and writes ev.
	DeleteConnection(ctx context.Context, tenantID, id string, ev *AuditEvent) error
}
