package clients

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// CIMD is a client identified by the URL of its Client ID Metadata Document
// (draft-ietf-oauth-client-id-metadata-document): the hub fetched the
// document and registered what it says (store.RegistrationCIMD). Like a
// dynamic registration it was not vetted by anyone, so its ceiling is
// every offered scope the policy allows it.
const CIMD Method = "cimd"

// selfRegistered reports whether clients of method m registered
// themselves, so that their scope is where they start rather than their
// ceiling (see Dynamic).
func (m Method) selfRegistered() bool { return m == Dynamic || m == CIMD }

// Document is a Client ID Metadata Document as fetched and parsed
// (oauth.ParseClientMetadataDocument), to be registered.
type Document struct {
	// URL is the document's URL: the client's id.
	URL      string
	Metadata *oauth.ClientMetadata
	// GrantTypes are the grant types the hub's token endpoint serves.
	GrantTypes []oauth.SupportedGrant
	// IP is the address of the request that made the hub fetch the
	// document; a new client records it as CreatedIP.
	IP    string
	Audit audit.Meta
}

// Synced is the outcome of SyncDocument.
type Synced struct {
	Client *store.Client
	// New: the document was seen for the first time and registered.
	New bool
	// Changed names the metadata fields that differed from the stored
	// client's (RFC 7591 §2 names); empty when nothing changed.
	Changed []string
}

// SyncDocument makes the stored client of a Client ID Metadata Document
// agree with the document. The first time a document is seen its client
// is registered (client.registered, method cimd). Later, when the document
// differs from the stored client in anything registration keeps — redirect
// URIs, keys (jwks, jwks_uri), the authentication method, grant or
// response types, display fields — the client is updated with the same
// rules and its ceiling recomputed, and a client.updated event (change
// "document") names the fields that changed: a new redirect URI or key is
// something an administrator must be able to find. An unchanged document
// writes nothing. The client's status, tags, disabled flag and last use
// are kept. A document the registration rules refuse is an *oauth.Error
// (invalid_client_metadata or invalid_redirect_uri) and changes nothing.
func (r *Registrar) SyncDocument(ctx context.Context, d *Document) (*Synced, error) {
	if d.Metadata == nil {
		return nil, oauth.ErrInvalidClientMetadata("no client metadata")
	}
	reg := &Registration{Method: CIMD, ClientID: d.URL, Metadata: d.Metadata, GrantTypes: d.GrantTypes, IP: d.IP, Audit: d.Audit}
	if oe := r.validate(reg); oe != nil {
		return nil, oe
	}
	for attempt := 1; ; attempt++ {
		current, err := r.st.GetClient(ctx, r.tenant, d.URL)
		if errors.Is(err, store.ErrNotFound) {
			out, err := r.Register(ctx, reg)
			if errors.Is(err, store.ErrConflict) && attempt < maxAttempts {
				continue // registered meanwhile by another request: compare with it
			}
			if err != nil {
				return nil, err
			}
			return &Synced{Client: out.Client, New: true}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("clients: %w", err)
		}
		if current.RegistrationMethod != store.RegistrationCIMD {
			return nil, fmt.Errorf("clients: client %q is not a metadata-document client", d.URL)
		}
		changed := DocumentChanges(current, d.Metadata)
		if len(changed) == 0 {
			return &Synced{Client: current}, nil
		}
		stored, err := r.updateDocument(ctx, current, reg, changed)
		if err != nil {
			return nil, err
		}
		return &Synced{Client: stored, Changed: changed}, nil
	}
}

// DocumentChanges names the fields of validated metadata m (defaults
// applied) that differ from the stored client c, in RFC 7591 §2 names.
// The document's scope is not compared: a self-registered client's ceiling
// does not follow it.
func DocumentChanges(c *store.Client, m *oauth.ClientMetadata) []string {
	var changed []string
	lists := []struct {
		name      string
		was, want []string
	}{
		{"redirect_uris", c.RedirectURIs, m.RedirectURIs},
		{"grant_types", c.GrantTypes, m.GrantTypes},
		{"response_types", c.ResponseTypes, m.ResponseTypes},
		{"contacts", c.Contacts, m.Contacts},
	}
	for _, l := range lists {
		if !slices.Equal(l.was, l.want) {
			changed = append(changed, l.name)
		}
	}
	strs := []struct{ name, was, want string }{
		{"token_endpoint_auth_method", c.TokenEndpointAuthMethod, m.TokenEndpointAuthMethod},
		{"jwks", c.JWKS, string(m.JWKS)},
		{"jwks_uri", c.JWKSURI, m.JWKSURI},
		{"application_type", c.ApplicationType, m.ApplicationType},
		{"client_name", c.Name, m.ClientName},
		{"client_uri", c.ClientURI, m.ClientURI},
		{"logo_uri", c.LogoURI, m.LogoURI},
		{"tos_uri", c.TOSURI, m.TOSURI},
		{"policy_uri", c.PolicyURI, m.PolicyURI},
		{"software_id", c.SoftwareID, m.SoftwareID},
		{"software_version", c.SoftwareVersion, m.SoftwareVersion},
	}
	for _, f := range strs {
		if f.was != f.want {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// updateDocument stores the document's metadata on current as Update
// does (the same optimistic re-read when the client changes meanwhile),
// with a client.updated event of change "document" naming changed.
func (r *Registrar) updateDocument(ctx context.Context, current *store.Client, reg *Registration, changed []string) (*store.Client, error) {
	c := current
	for attempt := 1; ; attempt++ {
		next := *c
		next.UpdatedAt = r.now()
		out, err := r.apply(ctx, &next, reg, CIMD)
		if err != nil {
			return nil, err
		}
		d := out.Ceiling.Audit()
		ev := audit.NewClientUpdated(reg.Audit.Stamped(r.tenant, next.UpdatedAt).WithAgent(&next), audit.ClientUpdatedFields{
			ClientID: next.ID, Change: audit.ChangeDocument, Method: next.RegistrationMethod,
			Ceiling: next.Scopes, Policy: &d, Fields: changed,
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
			return nil, fmt.Errorf("clients: update document client: %w", err)
		}
		return stored, nil
	}
}
