// Package clients owns client registration: the one place where a client's
// metadata is validated (RFC 7591 §2), its scope ceiling decided by the
// central policy, its secret issued, and the client stored with its audit
// event in one transaction. Every path that creates or replaces a client
// calls Register or Update — the admin CLI (`agentid clients add`), RFC 7591
// dynamic registration and RFC 7592 update, the demo's seed, and later
// Client ID Metadata Documents — so that no path can validate differently
// or skip the audit trail.
//
// Validation failures are *oauth.Error values (invalid_client_metadata or
// invalid_redirect_uri) whose descriptions every caller shows as they are.
package clients

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// Method is how a client comes to be registered.
type Method string

// Registration methods.
const (
	// Admin is an admin's registration (agentid clients add). The scopes it
	// names are the most the client may ever hold, as the policy allows.
	Admin Method = "admin"
	// Dynamic is RFC 7591 dynamic registration. The scope a client
	// registers with is where it starts, not the most it may hold: MCP
	// clients register with their first challenge's scopes and step up
	// later, so the ceiling is every offered scope the policy allows.
	Dynamic Method = "dynamic"
	// Demo is a client `agentid demo` creates for itself: registered as an
	// admin would (store.RegistrationManual), audited as the demo's doing.
	Demo Method = "demo"
)

// stored is the store.Client.RegistrationMethod (what policy reads as
// principal.registration_method) of a method.
func (m Method) stored() string {
	switch m {
	case Dynamic:
		return store.RegistrationDCR
	case CIMD:
		return store.RegistrationCIMD
	}
	return store.RegistrationManual
}

// methodOf is the Method of a stored client.
func methodOf(c *store.Client) Method {
	switch c.RegistrationMethod {
	case store.RegistrationDCR:
		return Dynamic
	case store.RegistrationCIMD:
		return CIMD
	}
	return Admin
}

// Registration is one request to register a client.
type Registration struct {
	Method Method
	// Metadata is the client's RFC 7591 §2 metadata. Register validates it
	// in place, applying the RFC 7591 defaults.
	Metadata *oauth.ClientMetadata
	// GrantTypes are the grant types the hub's token endpoint serves (its
	// grant table); a client may register only these, and a public client
	// only those open to public clients.
	GrantTypes []oauth.SupportedGrant
	// ClientID is the id an admin chose (1–128 RFC 3986 unreserved
	// characters); empty: a random one. Dynamic registrations always get a
	// random id.
	ClientID string
	// DefaultResource is used when a request names no resource; it must be
	// a registered resource (any spelling that canonicalises to it).
	DefaultResource string
	// Tags are admin tags seen by policy (ValidTag).
	Tags []string
	// ResourceServer registers a resource server's own client: confidential,
	// it authenticates to introspect and holds no grant but token exchange
	// (to call the next hop, or retrieve vault credentials), so the
	// metadata names no response types or redirect URIs and no grant type
	// but that one.
	ResourceServer bool
	// RegistrationTokenHash is the SHA-256 of the RFC 7592 registration
	// access token of a dynamic registration.
	RegistrationTokenHash []byte
	// IP is the address the request came from, if over HTTP: policy sees
	// it as the context's ip, and a new client records it as CreatedIP.
	IP string
	// Audit is the metadata of the client.registered or client.updated
	// event; a zero Time is the registrar's clock.
	Audit audit.Meta
	// SoftwareStatementIssuer is the issuer of the software statement the
	// registration carried, verified by Statements.Verify and merged into
	// Metadata ("": none). Policy sees it as context.software_issuer.
	SoftwareStatementIssuer string
}

// Registered is the outcome of a registration.
type Registered struct {
	Client *store.Client
	// Secret is the new client secret, shown once; "" when none was issued.
	Secret string
	// Ceiling is the policy's register verdict on the client's scopes.
	Ceiling *policy.Ceiling
	// Deduplicated is set when a dynamic registration was answered with an
	// existing identical client (Client) instead of a new one.
	Deduplicated bool
	// Screening is the hold and reject verdict on a dynamic registration.
	Screening *policy.Screening
	// resources are the tenant's resources the ceiling was decided on.
	resources []*store.Resource
}

// Store is what registration needs of the store (see store.Clients).
type Store interface {
	ListResources(ctx context.Context, tenantID string) ([]*store.Resource, error)
	CreateClient(ctx context.Context, c *store.Client, ev *store.AuditEvent) error
	GetClient(ctx context.Context, tenantID, id string) (*store.Client, error)
	UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error, ev *store.AuditEvent) (*store.Client, error)
	ClientsBySoftware(ctx context.Context, tenantID, softwareID, name string) ([]*store.Client, error)
	AppendAudit(ctx context.Context, evs ...*store.AuditEvent) error
}

// Policy decides a client's ceiling, and whether a dynamic registration is
// held or rejected; *policy.Engine is one.
type Policy interface {
	Ceiling(ctx context.Context, c *store.Client, resources []*store.Resource, rc policy.Context) (*policy.Ceiling, error)
	Screen(ctx context.Context, c *store.Client, resources []*store.Resource, rc policy.Context) (*policy.Screening, error)
}

// Options configure a Registrar. Store and Policy are required.
type Options struct {
	Store  Store
	Policy Policy
	// TenantID of the clients; default store.DefaultTenant.
	TenantID string
	// Rand is the source of ids and secrets; default crypto/rand.
	Rand io.Reader
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Registrar registers clients of one tenant.
type Registrar struct {
	st     Store
	policy Policy
	tenant string
	rand   io.Reader
	now    func() time.Time
}

// New returns a Registrar.
func New(opts Options) (*Registrar, error) {
	if opts.Store == nil || opts.Policy == nil {
		return nil, errors.New("clients: Store and Policy are required")
	}
	r := &Registrar{st: opts.Store, policy: opts.Policy, tenant: opts.TenantID, rand: opts.Rand, now: opts.Now}
	if r.tenant == "" {
		r.tenant = store.DefaultTenant
	}
	if r.rand == nil {
		r.rand = rand.Reader
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// Register validates a new client, decides its ceiling, issues its secret
// when its authentication method needs one, and stores it with its
// client.registered event in one transaction. A taken client id is
// store.ErrConflict.
func (r *Registrar) Register(ctx context.Context, reg *Registration) (*Registered, error) {
	now := r.now()
	c := &store.Client{
		TenantID:              r.tenant,
		RegistrationMethod:    reg.Method.stored(),
		RegistrationTokenHash: reg.RegistrationTokenHash,
		CreatedIP:             reg.IP,
		CreatedAt:             now,
		UpdatedAt:             now,
	}
	switch {
	case reg.ClientID == "":
		c.ID = token.NewID(r.rand)
	case reg.Method == Dynamic:
		return nil, oauth.ErrInvalidClientMetadata("client_id is assigned by the server")
	case reg.Method == CIMD:
		if oe := oauth.ValidateMetadataDocumentURL(reg.ClientID); oe != nil {
			return nil, oe
		}
		c.ID = reg.ClientID
	default:
		if oe := validClientID(reg.ClientID); oe != nil {
			return nil, oe
		}
		c.ID = reg.ClientID
	}
	for _, t := range reg.Tags {
		if err := ValidTag(t); err != nil {
			return nil, err
		}
	}
	c.Tags = slices.Clone(reg.Tags)
	c.Status = store.ClientActive
	c.SoftwareStatementIssuer = reg.SoftwareStatementIssuer
	out, err := r.apply(ctx, c, reg, reg.Method)
	if err != nil {
		return nil, err
	}
	var hold []string
	if reg.Method == Dynamic {
		existing, err := r.govern(ctx, c, reg, out)
		if err != nil || existing != nil {
			return existing, err
		}
		if out.Screening.Hold {
			c.Status, hold = store.ClientPending, out.Screening.HoldPolicies
		}
	}
	fields := audit.ClientRegisteredFields{
		ClientID: c.ID, Name: c.Name, Method: c.RegistrationMethod, AuthMethod: c.TokenEndpointAuthMethod,
		Ceiling: c.Scopes, Policy: out.Ceiling.Audit(), HoldPolicies: hold, SoftwareIssuer: c.SoftwareStatementIssuer,
	}
	if c.Pending() {
		fields.Status = c.Status
	}
	ev := audit.NewClientRegistered(reg.Audit.Stamped(r.tenant, now).WithAgent(c), fields)
	if err := r.st.CreateClient(ctx, c, ev); err != nil {
		return nil, fmt.Errorf("clients: register: %w", err)
	}
	return out, nil
}

// Update replaces the metadata of the registered client current entirely
// (RFC 7592 §2.2) with the same rules as Register, recomputes its ceiling
// under its own registration method, issues a secret if its new
// authentication method needs one it does not have, and stores it with its
// client.updated event in one transaction. Its id, registration method,
// tags, default resource and registration token stay, and its status
// unless the hold policy holds the update (a dynamic client is screened
// like a registration: reject refuses it); reg's
// Method, ClientID, Tags and DefaultResource are ignored; its
// SoftwareStatementIssuer replaces the client's (none: no longer attested). The ceiling is
// computed from the client as read (its tags): if another writer changed
// the client meanwhile, the update is computed again from the fresh client
// (up to maxAttempts times) rather than overwrite that change.
func (r *Registrar) Update(ctx context.Context, current *store.Client, reg *Registration) (*Registered, error) {
	upd := *reg
	upd.DefaultResource = ""
	c := current
	for attempt := 1; ; attempt++ {
		next := *c
		next.UpdatedAt = r.now()
		// The attestation is the update's own: a client that no longer
		// presents its statement is no longer attested by its issuer.
		next.SoftwareStatementIssuer = reg.SoftwareStatementIssuer
		out, err := r.apply(ctx, &next, &upd, methodOf(c))
		if err != nil {
			return nil, err
		}
		if methodOf(c) == Dynamic {
			// The update is screened as a registration would be: a client
			// must not update itself into what reject refuses or hold
			// holds.
			if err := r.screenUpdate(ctx, &next, reg, out); err != nil {
				return nil, err
			}
		}
		d := out.Ceiling.Audit()
		ev := audit.NewClientUpdated(reg.Audit.Stamped(r.tenant, next.UpdatedAt).WithAgent(&next), audit.ClientUpdatedFields{
			ClientID: next.ID, Change: audit.ChangeMetadata, Method: next.RegistrationMethod, Ceiling: next.Scopes, Policy: &d,
		})
		read := c.UpdatedAt
		stored, err := r.st.UpdateClient(ctx, c.TenantID, c.ID, func(fresh *store.Client) error {
			if !fresh.UpdatedAt.Equal(read) {
				return ErrChanged
			}
			*fresh = next
			return nil
		}, ev)
		if errors.Is(err, ErrChanged) && attempt < maxAttempts {
			if c, err = r.st.GetClient(ctx, c.TenantID, c.ID); err == nil {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("clients: update: %w", err)
		}
		out.Client = stored
		return out, nil
	}
}

// screenUpdate applies the reject and hold policies to an updated dynamic
// client next: a reject is an *oauth.Error naming the policy, a hold puts
// the client in pending.
func (r *Registrar) screenUpdate(ctx context.Context, next *store.Client, reg *Registration, out *Registered) error {
	sc, err := r.policy.Screen(ctx, next, out.resources, policy.Context{IP: reg.IP, Time: r.now(), SoftwareIssuer: next.SoftwareStatementIssuer})
	if err != nil {
		return fmt.Errorf("clients: screen: %w", err)
	}
	out.Screening = sc
	if sc.Reject {
		by := strings.Join(sc.RejectPolicies, ", ")
		if next.SoftwareStatementIssuer != "" {
			return oauth.ErrUnapprovedSoftwareStatement("the update is refused by policy %s", by)
		}
		return oauth.ErrInvalidClientMetadata("the update is refused by policy %s", by)
	}
	if sc.Hold {
		next.Status = store.ClientPending
	}
	return nil
}

// ErrChanged is what Update returns when the client kept changing under
// it, maxAttempts times in a row.
var ErrChanged = errors.New("clients: the client changed during the update")

// maxAttempts bounds how often Update computes an update again.
const maxAttempts = 3

// apply validates reg's metadata, copies it onto c, decides c's ceiling
// under method and sets c's secret.
func (r *Registrar) apply(ctx context.Context, c *store.Client, reg *Registration, method Method) (*Registered, error) {
	m := reg.Metadata
	if m == nil {
		return nil, oauth.ErrInvalidClientMetadata("no client metadata")
	}
	if oe := r.validate(reg); oe != nil {
		return nil, oe
	}
	c.Name = m.ClientName
	c.RedirectURIs = m.RedirectURIs
	c.GrantTypes = m.GrantTypes
	c.ResponseTypes = m.ResponseTypes
	c.ApplicationType = m.ApplicationType
	c.ClientURI, c.LogoURI, c.TOSURI, c.PolicyURI = m.ClientURI, m.LogoURI, m.TOSURI, m.PolicyURI
	c.Contacts = m.Contacts
	c.SoftwareID, c.SoftwareVersion = m.SoftwareID, m.SoftwareVersion
	c.JWKS = string(m.JWKS)
	c.JWKSURI = m.JWKSURI
	c.TokenEndpointAuthMethod = m.TokenEndpointAuthMethod

	resources, err := r.st.ListResources(ctx, r.tenant)
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	if reg.DefaultResource != "" {
		uri, oe := oauth.CanonicalResource(reg.DefaultResource)
		if oe != nil {
			return nil, oauth.ErrInvalidClientMetadata("default resource: %s", oe.Description)
		}
		if !slices.ContainsFunc(resources, func(res *store.Resource) bool { return res.URI == uri }) {
			return nil, oauth.ErrInvalidClientMetadata("default resource %s is not a registered resource", uri)
		}
		c.DefaultResource = uri
	}
	ceiling, err := r.ceiling(ctx, c, m.Scope, method, resources, reg.IP)
	if err != nil {
		return nil, err
	}
	out := &Registered{Client: c, Ceiling: ceiling, resources: resources}
	switch c.TokenEndpointAuthMethod {
	case oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost:
		if len(c.SecretHash) == 0 {
			// A generated, 256-bit secret, stored as SHA-256.
			out.Secret, err = token.NewHandle(r.rand, "")
			if err != nil {
				return nil, err
			}
			c.SecretHash = token.Hash(out.Secret)
		}
	default:
		c.SecretHash = nil
	}
	return out, nil
}

// validate checks the metadata (RFC 7591 §2, defaults applied) and what
// this hub supports of it.
func (r *Registrar) validate(reg *Registration) *oauth.Error {
	m := reg.Metadata
	if reg.ResourceServer {
		// A resource server's client holds no grant but token exchange;
		// it is validated as the confidential client it is.
		exchange := slices.Equal(m.GrantTypes, []string{oauth.GrantTokenExchange})
		if (len(m.GrantTypes) > 0 && !exchange) || len(m.ResponseTypes) > 0 || len(m.RedirectURIs) > 0 {
			return oauth.ErrInvalidClientMetadata("a resource server's client registers no response types or redirect URIs, and no grant type but token exchange")
		}
		m.GrantTypes = []string{oauth.GrantClientCredentials}
		oe := m.Validate([]oauth.SupportedGrant{{Type: oauth.GrantClientCredentials}})
		m.GrantTypes, m.ResponseTypes = nil, nil
		if exchange {
			m.GrantTypes = []string{oauth.GrantTokenExchange}
		}
		return oe
	}
	return m.Validate(reg.GrantTypes)
}

// ceiling decides the scopes c may ever hold from the scope it registered
// with, and sets c.RequestedScopes and c.Scopes. Every requested scope
// (offline_access aside: refresh tokens follow the grant types) must be
// offered by a registered resource. An admin's scopes are the most the
// client may hold; with none it is bound only by resources and policy. A
// dynamically registered client asks, in effect, for every offered scope
// (see Dynamic), and one the policy allows none of is refused.
func (r *Registrar) ceiling(ctx context.Context, c *store.Client, scope string, method Method, resources []*store.Resource, ip string) (*policy.Ceiling, error) {
	requested, _, oe := oauth.ParseRequestedScope(scope)
	if oe != nil {
		return nil, oauth.ErrInvalidClientMetadata("scope is not a valid space-separated list of scope tokens")
	}
	var offered []string
	for _, res := range resources {
		for _, sc := range res.Scopes {
			if !slices.Contains(offered, sc.Name) {
				offered = append(offered, sc.Name)
			}
		}
	}
	for _, sc := range requested {
		if !slices.Contains(offered, sc) {
			return nil, oauth.ErrInvalidClientMetadata("scope %q is not offered by any registered resource", truncate(sc, 100))
		}
	}
	asked := requested
	if method.selfRegistered() {
		asked = offered
	}
	probe := *c
	probe.RequestedScopes = asked
	cl, err := r.policy.Ceiling(ctx, &probe, resources, policy.Context{IP: ip, Time: r.now(), SoftwareIssuer: c.SoftwareStatementIssuer})
	if err != nil {
		return nil, fmt.Errorf("clients: ceiling: %w", err)
	}
	switch {
	case method.selfRegistered() && len(cl.Scopes) == 0:
		return nil, oauth.ErrInvalidClientMetadata("none of the offered scopes may be held by this client")
	case cl.Bounded && len(cl.Scopes) == 0:
		return nil, oauth.ErrInvalidClientMetadata("the policy allows this client none of the requested scopes")
	}
	c.RequestedScopes, c.Scopes = asked, cl.Scopes
	return cl, nil
}

// validClientID accepts 1–128 RFC 3986 unreserved characters: client ids
// travel in URLs (/register/{id}), form bodies and HTTP Basic credentials,
// where anything else needs escaping that clients get wrong.
func validClientID(id string) *oauth.Error {
	if len(id) == 0 || len(id) > 128 {
		return oauth.ErrInvalidClientMetadata("client_id must be 1 to 128 characters")
	}
	for i := 0; i < len(id); i++ {
		if !isUnreserved(id[i]) {
			return oauth.ErrInvalidClientMetadata("client_id may contain only letters, digits, '-', '.', '_' and '~'")
		}
	}
	return nil
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// ValidTag accepts an admin tag of 1–64 printable ASCII characters without
// spaces; anything else is invalid_client_metadata.
func ValidTag(t string) error {
	if len(t) == 0 || len(t) > 64 {
		return oauth.ErrInvalidClientMetadata("tag %q must be 1 to 64 characters", truncate(t, 70))
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return oauth.ErrInvalidClientMetadata("tag %q must be printable ASCII without spaces", truncate(t, 70))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
