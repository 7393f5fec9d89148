// Package scim is the hub's SCIM 2.0 service provider (RFC 7643, RFC
// 7644) at <issuer>/scim/v2: an identity provider provisions people and
// groups into the hub's users, and offboards them. The protocol (routing,
// schemas, request validation, filters, list responses, error bodies) is
// github.com/elimity-com/scim's; this package maps its resources onto
// store.User and store.SCIMGroup:
//
//   - a User is a store.User: userName, name.formatted (or given, middle
//     and family name joined), the primary email, active (not Disabled),
//     password (hashed; write-only), externalId (store.SCIMUser), and the
//     read-only groups of the SCIM groups it is a member of;
//   - a Group is a store.SCIMGroup (id, displayName, externalId); its
//     members are the users whose Groups hold its displayName, which is
//     what policy reads, so a membership change is a user.updated event
//     on the member, as `agentid users add-group` writes.
//
// Deactivating a user (active false by PUT or PATCH) and deleting one run
// clients.DeprovisionUser at once: disabled, sessions and tokens ended,
// consents revoked, vault connections revoked. A deleted user's row stays
// (RFC 7644 §3.6 allows it), deprovisioned and answering 404 to SCIM.
// The server package authenticates the provisioning client and puts the
// event metadata in the request context (WithMeta).
package scim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/store"
)

// Path is where the service provider is mounted below the issuer; its
// base URL (RFC 7644 §1.3) is the issuer followed by Path.
const Path = "/scim/v2"

// MaxResults is the most resources one list response holds (the
// ServiceProviderConfig's filter.maxResults and the default count).
const MaxResults = 200

// Config is what the handler needs.
type Config struct {
	Store  store.Store
	Tenant string
	// BaseURL is the issuer followed by Path: meta.location and Location
	// headers start with it.
	BaseURL string
	Now     func() time.Time
	// Vault revokes a deprovisioned person's vault connections; nil when
	// the hub has none (a person owning connections then cannot be
	// deprovisioned completely: 409).
	Vault clients.ConnectionRevoker
	Log   *slog.Logger
	// HashPassword hashes a password a client provisions.
	HashPassword func(string) (string, error)
	// Privileged, if set, names the people whose password a client may
	// not set (the hub's administrators): a provisioning token is not a
	// way into the admin console.
	Privileged func(*store.User) bool
	// UserChanged, if set, is told the id of every user a request
	// changed, after the change (the server forgets its cached copy, so
	// the next issuance reads the new groups).
	UserChanged func(id string)
}

// New returns the SCIM service provider. Requests reach it with the
// path below the issuer (Path and what follows) and with WithMeta's
// context; authentication is the caller's.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil || cfg.Tenant == "" || cfg.BaseURL == "" || cfg.Now == nil || cfg.HashPassword == nil {
		return nil, errors.New("scim: store, tenant, base URL, clock and password hasher are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &handler{cfg: cfg}
	srv, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{
			AuthenticationSchemes: []scim.AuthenticationScheme{{
				Type:        scim.AuthenticationTypeOauthBearerToken,
				Name:        "OAuth Bearer Token",
				Description: "An access token of this hub for the SCIM resource with the agentid:scim scope, obtained by the provisioning client with client credentials (RFC 6750).",
				SpecURI:     optional.NewString("https://www.rfc-editor.org/rfc/rfc6750"),
				Primary:     true,
			}},
			MaxResults:       MaxResults,
			SupportFiltering: true,
			SupportPatch:     true,
		},
		ResourceTypes: []scim.ResourceType{
			{
				ID:          optional.NewString("User"),
				Name:        "User",
				Endpoint:    "/Users",
				Description: optional.NewString("A person of the hub's tenant"),
				Schema:      schema.CoreUserSchema(),
				// Its attributes are kept in store.User.Attributes.
				SchemaExtensions: []scim.SchemaExtension{{Schema: enterpriseSchema}},
				Handler:          users{h},
			},
			{
				ID:          optional.NewString("Group"),
				Name:        "Group",
				Endpoint:    "/Groups",
				Description: optional.NewString("A group of people that policy can name"),
				Schema:      schema.CoreGroupSchema(),
				Handler:     groups{h},
			},
		},
	}, scim.WithBaseURL(cfg.BaseURL), scim.WithLogger(logger{cfg.Log}))
	if err != nil {
		return nil, fmt.Errorf("scim: %w", err)
	}
	// The library routes on the path after an optional /v2.
	return http.StripPrefix(Path[:len(Path)-len("/v2")], readRequest(valueFilters(fixResponses(srv)))), nil
}

// handler serves the resources. mu serializes writes in this process:
// a membership change is a read-modify-write of the member's groups, so
// two concurrent PATCHes touching one person must not both start from the
// same groups. (Replicas writing at once can still interleave; an
// identity provider sends a person's changes one after another.)
type handler struct {
	cfg Config
	mu  sync.Mutex
}

// write holds mu for one write request; call the result when done.
func (h *handler) write() func() {
	h.mu.Lock()
	return h.mu.Unlock
}

type metaKey struct{}

// WithMeta returns ctx carrying the event metadata of an authenticated
// SCIM request (audit.ActorSCIM and the client's id).
func WithMeta(ctx context.Context, m audit.Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// changed reports a changed user to Config.UserChanged.
func (h *handler) changed(id string) {
	if h.cfg.UserChanged != nil {
		h.cfg.UserChanged(id)
	}
}

// meta is the request's event metadata, timed now.
func (h *handler) meta(r *http.Request, now time.Time) audit.Meta {
	m, _ := r.Context().Value(metaKey{}).(audit.Meta)
	if m.Actor == "" {
		m.Actor = audit.ActorSCIM
	}
	m.TenantID, m.Time = h.cfg.Tenant, now
	return m
}

// internal logs err and answers 500 without its text.
func (h *handler) internal(r *http.Request, op string, err error) error {
	h.cfg.Log.ErrorContext(r.Context(), "scim request failed", "op", op, "path", r.URL.Path, "err", err)
	return scimerrors.ScimErrorInternal
}

// scimError is a SCIM error with its own detail.
func scimError(base scimerrors.ScimError, detail string) error {
	base.Detail = detail
	return base
}

func notFound(id string) error { return scimerrors.ScimErrorResourceNotFound(id) }

type logger struct{ l *slog.Logger }

func (l logger) Error(args ...any) { l.l.Error("scim", "err", fmt.Sprint(args...)) }

// listPage is the page of the resources the request's filter passes.
func listPage(p scim.ListRequestParams, all []scim.Resource) (scim.Page, error) {
	matched, err := filtered(p, all)
	if err != nil {
		return scim.Page{}, err
	}
	return page(matched, p), nil
}

// page cuts a list to the 1-based startIndex and count (RFC 7644 §3.4.2.4).
func page(all []scim.Resource, p scim.ListRequestParams) scim.Page {
	out := scim.Page{TotalResults: len(all), Resources: []scim.Resource{}}
	start := p.StartIndex - 1
	if start >= len(all) || p.Count <= 0 {
		return out
	}
	end := min(start+p.Count, len(all))
	out.Resources = all[start:end]
	return out
}

// filtered keeps the resources the request's filter passes.
func filtered(p scim.ListRequestParams, rs []scim.Resource) ([]scim.Resource, error) {
	if p.FilterValidator == nil {
		return rs, nil
	}
	var out []scim.Resource
	for _, r := range rs {
		ok, err := passes(p.FilterValidator, filterView(r))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// passes evaluates a filter the library validated. Its evaluation panics
// on some expressions its validation lets through (a complex attribute
// compared as a whole: name eq ""); such a filter is invalidFilter.
func passes(v *scimfilter.Validator, view map[string]any) (ok bool, err error) {
	defer func() {
		if recover() != nil {
			ok, err = false, scimError(scimerrors.ScimErrorInvalidFilter, "the filter compares an attribute this service provider cannot compare")
		}
	}()
	return v.PassesFilter(view) == nil, nil
}

func filterView(r scim.Resource) map[string]any {
	v := make(map[string]any, len(r.Attributes)+3)
	for k, a := range r.Attributes {
		v[k] = a
	}
	// The library finds an extension's attribute under "<schema id>:<name>".
	if ext, ok := r.Attributes[enterpriseSchema.ID].(map[string]any); ok {
		for k, a := range ext {
			v[enterpriseSchema.ID+":"+k] = a
		}
	}
	v["id"] = r.ID
	if r.ExternalID.Present() {
		v["externalId"] = r.ExternalID.Value()
	}
	m := map[string]any{}
	if r.Meta.Created != nil {
		m["created"] = r.Meta.Created.Format(time.RFC3339)
	}
	if r.Meta.LastModified != nil {
		m["lastModified"] = r.Meta.LastModified.Format(time.RFC3339)
	}
	v["meta"] = m
	return v
}

// version is a weak entity tag of a resource last modified at t.
func version(t time.Time) string {
	return fmt.Sprintf(`W/"%x"`, t.UnixNano())
}

func externalID(s string) optional.String {
	if s == "" {
		return optional.String{}
	}
	return optional.NewString(s)
}
