package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ConnectorOIDC is the type of a connector to an OpenID Connect provider.
const ConnectorOIDC = "oidc"

// ConnectorSAML is the type of a connector to a SAML 2.0 identity provider
// (internal/connectors/saml): Issuer is the provider's entity id, ClientID
// this hub's entity id there ("" for the connector's metadata URL),
// SAMLMetadata the provider's metadata and Claims name SAML attributes.
const ConnectorSAML = "saml"

// Connector is an upstream identity provider people sign in through (an
// OpenID Connect provider: a company's Okta, Entra ID, Keycloak, Google
// Workspace, or another agentid hub). A person who signs in through it the
// first time becomes a user of its tenant.
type Connector struct {
	TenantID string
	// ID names the connector across the whole hub (the login page offers
	// connectors before any tenant is known): lower-case letters, digits
	// and '-'; it is part of the redirect URI registered upstream.
	ID   string
	Type string // ConnectorOIDC or ConnectorSAML
	// Name is what the login page's button says ("Sign in with Name").
	Name string
	// Issuer is the provider's issuer URL, exactly as its ID tokens' iss.
	Issuer   string
	ClientID string
	// The client secret is never stored in clear: either ClientSecretFile
	// names a file the hub reads when it needs the secret, or
	// ClientSecretSealed is the secret sealed by the key-encryption key
	// (AAD bound to tenant and connector id). Neither: a public client
	// (PKCE only).
	ClientSecretFile   string
	ClientSecretSealed []byte
	// Scopes are asked for besides openid (empty: profile and email).
	Scopes []string
	Claims ClaimMapping
	// SAMLMetadata is a SAML connector's identity provider metadata (an
	// XML EntityDescriptor with its signing certificate), checked when
	// the connector is configured; "" for OIDC.
	SAMLMetadata string
	// EmailDomains route a person to this connector by the domain of the
	// address they type or an authorization request's login_hint; lower
	// case, each domain belongs to at most one connector of the hub.
	EmailDomains []string
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// ClaimMapping names the ID token (or userinfo) claims a connector reads.
// An empty name means the default: preferred_username, email, name; no
// groups, roles or attributes unless named.
type ClaimMapping struct {
	Username string `json:"username,omitempty"`
	Email    string `json:"email,omitempty"`
	Name     string `json:"name,omitempty"`
	Groups   string `json:"groups,omitempty"`
	Roles    string `json:"roles,omitempty"`
	// Attributes maps a user attribute's name to the claim it comes from.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Check reports whether c keeps the Connectors contract (ErrInvalid if not).
func (c *Connector) Check() error {
	switch {
	case c.TenantID == "" || c.ID == "" || c.Issuer == "":
		return fmt.Errorf("connector %q: tenant, id and issuer are required: %w", c.ID, ErrInvalid)
	case !ValidConnectorID(c.ID):
		return fmt.Errorf("connector %q: id must be lower-case letters, digits and '-': %w", c.ID, ErrInvalid)
	case c.Type == ConnectorOIDC && c.ClientID == "":
		return fmt.Errorf("connector %q: an OIDC connector needs a client id: %w", c.ID, ErrInvalid)
	case c.Type == ConnectorOIDC && c.SAMLMetadata != "":
		return fmt.Errorf("connector %q: SAML metadata on an OIDC connector: %w", c.ID, ErrInvalid)
	case c.Type == ConnectorSAML && (c.SAMLMetadata == "" || c.ClientSecretFile != "" || len(c.ClientSecretSealed) > 0 || len(c.Scopes) > 0):
		return fmt.Errorf("connector %q: a SAML connector has the identity provider's metadata and no client secret or scopes: %w", c.ID, ErrInvalid)
	case c.Type != ConnectorOIDC && c.Type != ConnectorSAML:
		return fmt.Errorf("connector %q: type %q: %w", c.ID, c.Type, ErrInvalid)
	case c.ClientSecretFile != "" && len(c.ClientSecretSealed) > 0:
		return fmt.Errorf("connector %q: a secret file or a sealed secret, not both: %w", c.ID, ErrInvalid)
	}
	if len(c.Claims.Attributes) > MaxUserAttributes {
		return fmt.Errorf("connector %q: %d attributes, at most %d: %w", c.ID, len(c.Claims.Attributes), MaxUserAttributes, ErrInvalid)
	}
	for name, claim := range c.Claims.Attributes {
		if err := CheckAttributeKey(name); err != nil {
			return fmt.Errorf("connector %q: %w", c.ID, err)
		}
		if claim == "" {
			return fmt.Errorf("connector %q: attribute %q from no claim: %w", c.ID, name, ErrInvalid)
		}
	}
	for i, d := range c.EmailDomains {
		if d == "" || d != strings.ToLower(d) || strings.ContainsAny(d, "@ ") || slices.Contains(c.EmailDomains[:i], d) {
			return fmt.Errorf("connector %q: email domain %q: %w", c.ID, d, ErrInvalid)
		}
	}
	return nil
}

// ValidConnectorID reports whether id is 1–64 of a-z, 0-9 and '-', not
// starting with '-'.
func ValidConnectorID(id string) bool {
	if id == "" || len(id) > 64 || id[0] == '-' {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Connectors are the upstream identity providers (agentid connectors, the
// config file's connectors) and the users they sign in.
type Connectors interface {
	// CreateConnector returns ErrConflict for an id already used in any
	// tenant or an email domain another connector has, ErrInvalid when
	// Check fails; it writes ev in the same transaction.
	CreateConnector(ctx context.Context, c *Connector, ev *AuditEvent) error
	// GetConnector finds a connector by its hub-wide id.
	GetConnector(ctx context.Context, id string) (*Connector, error)
	// ListConnectors returns the tenant's connectors ("": every tenant's)
	// ordered by id.
	ListConnectors(ctx context.Context, tenantID string) ([]*Connector, error)
	// UpdateConnector replaces every field but TenantID, ID and CreatedAt
	// of an existing connector (ErrNotFound otherwise), with the
	// CreateConnector rules, and writes ev in the same transaction.
	UpdateConnector(ctx context.Context, c *Connector, ev *AuditEvent) error
	// SignInConnectorUser signs in the person u describes, in one
	// transaction. It finds the user of u's (TenantID, ConnectorID,
	// ExternalSubject); none: it creates u (ErrConflict when u.ID or
	// u.Username is taken in the tenant). A disabled user: it writes
	// nothing and returns the stored user (Disabled set). Otherwise it
	// replaces Name, Email, EmailVerified and UpdatedAt, Groups when
	// u.Groups is not nil and Roles when u.Roles is not nil (username,
	// password and disabled flag stay), then stores sess with the user's
	// id and writes the events events returns for the stored user and
	// whether it was created. It returns the user as stored and whether
	// it was created.
	SignInConnectorUser(ctx context.Context, u *User, sess *Session, events func(stored *User, created bool) []*AuditEvent) (*User, bool, error)
}
