package scim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/mail"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// users is the /Users resource handler.
type users struct{ h *handler }

var userSchema = schema.CoreUserSchema()

// enterpriseSchema is the enterprise User extension (RFC 7643 §4.3), whose
// attributes a User keeps in store.User.Attributes under their own names
// (manager: the manager's user id), where policy reads them
// (getTag("department")).
var enterpriseSchema = schema.ExtensionEnterpriseUser()

// enterpriseAttrs are the enterprise extension's simple attributes.
var enterpriseAttrs = []string{"employeeNumber", "costCenter", "organization", "division", "department"}

// enterpriseOf is the extension's part of a person's attributes.
func enterpriseOf(attrs map[string]string) map[string]any {
	ext := map[string]any{}
	for _, k := range enterpriseAttrs {
		if v := attrs[k]; v != "" {
			ext[k] = v
		}
	}
	if v := attrs["manager"]; v != "" {
		ext["manager"] = map[string]any{"value": v}
	}
	return ext
}

// userState is a user with what SCIM keeps beside it.
type userState struct {
	u  *store.User
	su *store.SCIMUser
}

// lookup finds a user SCIM may see: not deleted by SCIM.
func (h *handler) lookup(ctx context.Context, id string) (*userState, error) {
	u, err := h.cfg.Store.GetUser(ctx, h.cfg.Tenant, id)
	if err != nil {
		return nil, err
	}
	su, err := h.cfg.Store.GetSCIMUser(ctx, h.cfg.Tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		su = &store.SCIMUser{TenantID: h.cfg.Tenant, UserID: id}
	case err != nil:
		return nil, err
	case su.Deleted:
		return nil, store.ErrNotFound
	}
	return &userState{u, su}, nil
}

// userResource is the SCIM User of st; groups are the tenant's SCIM
// groups (its read-only groups attribute lists those it is a member of).
func (h *handler) userResource(st *userState, gs []*store.SCIMGroup) scim.Resource {
	u := st.u
	attrs := scim.ResourceAttributes{
		"userName": u.Username,
		"active":   !u.Disabled,
	}
	if u.Name != "" {
		attrs["name"] = map[string]any{"formatted": u.Name}
		attrs["displayName"] = u.Name
	}
	if u.Email != "" {
		// The hub keeps one address, the work address: answered with its
		// type, so that a client's emails[type eq "work"] finds it.
		attrs["emails"] = []any{map[string]any{"value": u.Email, "type": "work", "primary": true}}
	}
	var member []any
	for _, g := range gs {
		if slices.Contains(u.Groups, g.DisplayName) {
			member = append(member, map[string]any{
				"value":   g.ID,
				"display": g.DisplayName,
				"$ref":    h.cfg.BaseURL + "/Groups/" + url.PathEscape(g.ID),
				"type":    "direct",
			})
		}
	}
	if len(member) > 0 {
		attrs["groups"] = member
	}
	if ext := enterpriseOf(u.Attributes); len(ext) > 0 {
		attrs[enterpriseSchema.ID] = ext
	}
	created, modified := u.CreatedAt, u.UpdatedAt
	if st.su.UpdatedAt.After(modified) {
		modified = st.su.UpdatedAt
	}
	return scim.Resource{
		ID:         u.ID,
		ExternalID: externalID(st.su.ExternalID),
		Attributes: attrs,
		Meta:       scim.Meta{Created: &created, LastModified: &modified, Version: version(modified)},
	}
}

// profile is what a User's attributes set of a store.User.
type profile struct {
	username, name, email, password string
	// active is nil when the attributes do not say: a new user is
	// active, a replaced one keeps its state (a PUT that leaves active
	// out never reactivates a person offboarded).
	active     *bool
	externalID string
	// enterprise is what the enterprise extension says: its attributes
	// and manager by their names (empty: none).
	enterprise map[string]string
}

// profileOf reads validated User attributes (schema names as keys).
func profileOf(attrs map[string]any) (profile, error) {
	var p profile
	p.username, _ = attrs["userName"].(string)
	if strings.TrimSpace(p.username) == "" {
		return p, scimError(scimerrors.ScimErrorInvalidValue, "userName is required")
	}
	if a, ok := attrs["active"].(bool); ok {
		p.active = &a
	}
	p.externalID, _ = attrs["externalId"].(string)
	p.password, _ = attrs["password"].(string)
	p.enterprise = map[string]string{}
	if ext, ok := attrs[enterpriseSchema.ID].(map[string]any); ok {
		for _, k := range enterpriseAttrs {
			if v, _ := ext[k].(string); v != "" {
				p.enterprise[k] = v
			}
		}
		if m, ok := ext["manager"].(map[string]any); ok {
			if v, _ := m["value"].(string); v != "" {
				p.enterprise["manager"] = v
			}
		}
	}
	if n, ok := attrs["name"].(map[string]any); ok {
		if f, _ := n["formatted"].(string); f != "" {
			p.name = f
		} else {
			var parts []string
			for _, k := range []string{"honorificPrefix", "givenName", "middleName", "familyName", "honorificSuffix"} {
				if s, _ := n[k].(string); s != "" {
					parts = append(parts, s)
				}
			}
			p.name = strings.Join(parts, " ")
		}
	}
	if p.name == "" {
		p.name, _ = attrs["displayName"].(string)
	}
	// The primary address, else the first.
	for i, e := range list(attrs["emails"]) {
		m, _ := e.(map[string]any)
		v, _ := m["value"].(string)
		if primary, _ := m["primary"].(bool); primary || i == 0 {
			p.email = v
		}
		if primary, _ := m["primary"].(bool); primary {
			break
		}
	}
	return p, nil
}

// Bounds of what a client may give as a person's name and address.
const (
	maxName  = 256
	maxEmail = 254 // RFC 5321 §4.5.3.1.3, as the CLI takes
)

// checkProfile refuses a name or email that is not plain text (control
// characters, invisible or direction characters, which would make a name
// on the console, the consent page or an ID token read as another's) or
// too long, and an email that is not a plain address (local@domain).
func checkProfile(p profile) error {
	if len(p.name) > maxName || !connectors.PlainText(p.name) || strings.ContainsFunc(p.name, bidiControl) {
		return scimError(scimerrors.ScimErrorInvalidValue, fmt.Sprintf("the name must be plain text of at most %d bytes, without control or direction characters", maxName))
	}
	if p.email == "" {
		return nil
	}
	a, err := mail.ParseAddress(p.email)
	local, domain, _ := strings.Cut(p.email, "@")
	if len(p.email) > maxEmail || err != nil || a.Name != "" || a.Address != p.email || local == "" || domain == "" ||
		!connectors.PlainText(p.email) || connectors.CheckUsername(p.email) != nil {
		return scimError(scimerrors.ScimErrorInvalidValue, fmt.Sprintf("the email must be a plain address (local@domain) of at most %d bytes", maxEmail))
	}
	return nil
}

// bidiControl reports the explicit directional embeddings, overrides and
// isolates (UAX #9 §2.1–2.4), which reorder the text after them on a
// page. (Joiners and marks stay allowed in names: Persian and Indic
// names need them.)
func bidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// emailFree refuses an address another user of the tenant has.
func (h *handler) emailFree(ctx context.Context, id, email string) error {
	if email == "" {
		return nil
	}
	us, err := h.cfg.Store.ListUsers(ctx, h.cfg.Tenant)
	if err != nil {
		return err
	}
	for _, o := range us {
		if o.ID != id && strings.EqualFold(o.Email, email) {
			return scimError(scimerrors.ScimErrorUniqueness, "the email address is another user's")
		}
	}
	return nil
}

func (x users) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	defer x.h.write()()
	h, ctx := x.h, r.Context()
	p, err := profileOf(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	if err := store.CheckUsername(p.username); err != nil {
		return scim.Resource{}, scimError(scimerrors.ScimErrorInvalidValue, err.Error())
	}
	if err := checkProfile(p); err != nil {
		return scim.Resource{}, err
	}
	if err := h.emailFree(ctx, "", p.email); err != nil {
		return scim.Resource{}, h.passOn(r, "create user", err)
	}
	now := h.cfg.Now()
	m := h.meta(r, now)
	u := &store.User{
		TenantID: h.cfg.Tenant, ID: token.NewID(nil), Username: p.username, Name: p.name, Email: p.email,
		Disabled: p.active != nil && !*p.active, CreatedAt: now, UpdatedAt: now,
	}
	if len(p.enterprise) > 0 {
		u.Attributes = p.enterprise
	}
	if p.password != "" {
		if u.PasswordHash, err = h.cfg.HashPassword(p.password); err != nil {
			return scim.Resource{}, h.internal(r, "hash password", err)
		}
	}
	if err := h.cfg.Store.CreateUser(ctx, u, audit.NewUserCreated(m, u.ID)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return scim.Resource{}, scimError(scimerrors.ScimErrorUniqueness, "userName is taken")
		}
		return scim.Resource{}, h.passOn(r, "create user", err)
	}
	su := &store.SCIMUser{TenantID: h.cfg.Tenant, UserID: u.ID, ExternalID: p.externalID, UpdatedAt: now}
	if err := h.cfg.Store.PutSCIMUser(ctx, su); err != nil {
		return scim.Resource{}, h.internal(r, "create user", err)
	}
	return h.userResource(&userState{u, su}, nil), nil
}

func (x users) Get(r *http.Request, id string) (scim.Resource, error) {
	h, ctx := x.h, r.Context()
	st, err := h.lookup(ctx, id)
	if err != nil {
		return scim.Resource{}, h.lookupFailed(r, id, err)
	}
	gs, err := h.cfg.Store.ListSCIMGroups(ctx, h.cfg.Tenant)
	if err != nil {
		return scim.Resource{}, h.internal(r, "get user", err)
	}
	return h.userResource(st, gs), nil
}

func (x users) GetAll(r *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	h, ctx := x.h, r.Context()
	sts, err := h.visible(ctx)
	if err != nil {
		return scim.Page{}, h.internal(r, "list users", err)
	}
	gs, err := h.cfg.Store.ListSCIMGroups(ctx, h.cfg.Tenant)
	if err != nil {
		return scim.Page{}, h.internal(r, "list users", err)
	}
	all := make([]scim.Resource, len(sts))
	for i, st := range sts {
		all[i] = h.userResource(st, gs)
	}
	return listPage(params, all)
}

// visible are the tenant's users SCIM sees (not deleted by SCIM) with
// their SCIM state, in id order.
func (h *handler) visible(ctx context.Context) ([]*userState, error) {
	us, err := h.cfg.Store.ListUsers(ctx, h.cfg.Tenant)
	if err != nil {
		return nil, err
	}
	sus, err := h.cfg.Store.ListSCIMUsers(ctx, h.cfg.Tenant)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*store.SCIMUser, len(sus))
	for _, su := range sus {
		byID[su.UserID] = su
	}
	slices.SortFunc(us, func(a, b *store.User) int { return strings.Compare(a.ID, b.ID) })
	out := make([]*userState, 0, len(us))
	for _, u := range us {
		su := byID[u.ID]
		if su == nil {
			su = &store.SCIMUser{TenantID: h.cfg.Tenant, UserID: u.ID}
		} else if su.Deleted {
			continue
		}
		out = append(out, &userState{u, su})
	}
	return out, nil
}

func (x users) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	defer x.h.write()()
	h, ctx := x.h, r.Context()
	st, err := h.lookup(ctx, id)
	if err != nil {
		return scim.Resource{}, h.lookupFailed(r, id, err)
	}
	p, err := profileOf(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	return h.updateUser(r, st, p)
}

func (x users) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	defer x.h.write()()
	h, ctx := x.h, r.Context()
	st, err := h.lookup(ctx, id)
	if err != nil {
		return scim.Resource{}, h.lookupFailed(r, id, err)
	}
	res := h.userResource(st, nil)
	attrs := map[string]any(res.Attributes)
	if st.su.ExternalID != "" {
		attrs["externalId"] = st.su.ExternalID
	}
	// The name is answered twice (name.formatted, displayName): a patch
	// of displayName alone renames too.
	oldName, _ := attrs["name"].(map[string]any)
	oldName = maps.Clone(oldName)
	delete(attrs, "displayName")
	if err := applyPatch(attrs, userSchema, ops); err != nil {
		return scim.Resource{}, err
	}
	p, err := profileOf(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	if dn, ok := attrs["displayName"].(string); ok && reflect.DeepEqual(attrs["name"], maybeNil(oldName)) {
		p.name = dn
	}
	return h.updateUser(r, st, p)
}

// maybeNil is m, or an untyped nil for a nil map (as a missing
// attribute reads).
func maybeNil(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// updateUser makes st's user what p says: the profile (userName, name,
// email, a new password) in one update, then the activity: deactivating
// runs clients.DeprovisionUser, reactivating enables the account (what
// deprovisioning revoked stays revoked). externalId is SCIM's own.
func (h *handler) updateUser(r *http.Request, st *userState, p profile) (scim.Resource, error) {
	ctx := r.Context()
	defer h.changed(st.u.ID)
	now := h.cfg.Now()
	m := h.meta(r, now)
	u := st.u
	// A deactivation is carried out first, whatever else the request
	// asks: an identity provider offboarding someone sends the person's
	// whole record (Okta's PUT, a PATCH of several attributes), and a
	// change refused below (a new userName, a taken email) must not keep
	// them signed in.
	if p.active != nil && !*p.active && !u.Disabled {
		res, err := clients.DeprovisionUser(ctx, h.cfg.Store, h.cfg.Vault, m, h.cfg.Tenant, u.ID, now)
		if err != nil {
			return scim.Resource{}, h.deprovisionFailed(r, err)
		}
		u = res.User
	}
	if err := checkProfile(p); err != nil {
		return scim.Resource{}, err
	}
	if p.email != u.Email {
		if err := h.emailFree(ctx, u.ID, p.email); err != nil {
			return scim.Resource{}, h.passOn(r, "update user", err)
		}
	}
	// A username is what people sign in with and what policy and the
	// audit trail name: it does not change (the store keeps it as created).
	if p.username != u.Username {
		return scim.Resource{}, scimError(scimerrors.ScimErrorMutability, "userName cannot change on this hub; delete the user and create a new one")
	}
	profileChanged := p.name != u.Name || p.email != u.Email
	if p.email != u.Email {
		u.EmailVerified = false
	}
	u.Name, u.Email = p.name, p.email
	var changes []string
	if profileChanged {
		changes = append(changes, "profile")
	}
	if p.password != "" && h.cfg.Privileged != nil && h.cfg.Privileged(u) {
		return scim.Resource{}, scimerrors.ScimError{Status: http.StatusForbidden,
			Detail: "the password of an administrator of this hub is not set by provisioning; an operator sets it with agentid users set-password"}
	}
	if p.password != "" {
		hash, err := h.cfg.HashPassword(p.password)
		if err != nil {
			return scim.Resource{}, h.internal(r, "hash password", err)
		}
		u.PasswordHash = hash
		changes = append(changes, "password")
	}
	// The first update carries every change; each change's event is
	// written with an update of its own.
	for _, change := range changes {
		u.UpdatedAt = now
		if err := h.cfg.Store.UpdateUser(ctx, u, audit.NewUserUpdated(m, u.ID, change)); err != nil {
			return scim.Resource{}, h.passOn(r, "update user", err)
		}
	}
	if attrs, added, removed := withEnterprise(u.Attributes, p.enterprise); len(added)+len(removed) > 0 {
		u.Attributes, u.UpdatedAt = attrs, now
		if err := h.cfg.Store.UpdateUser(ctx, u, audit.NewUserAccessUpdated(m, u.ID, audit.ChangeAttributes, added, removed)); err != nil {
			return scim.Resource{}, h.passOn(r, "update user", err)
		}
	}
	if p.active != nil && *p.active && u.Disabled {
		u.Disabled, u.UpdatedAt = false, now
		if err := h.cfg.Store.UpdateUser(ctx, u, audit.NewUserUpdated(m, u.ID, audit.ChangeEnabled)); err != nil {
			return scim.Resource{}, h.passOn(r, "enable user", err)
		}
	}
	if p.externalID != st.su.ExternalID {
		st.su.ExternalID, st.su.UpdatedAt = p.externalID, now
		if err := h.cfg.Store.PutSCIMUser(ctx, st.su); err != nil {
			return scim.Resource{}, h.internal(r, "update user", err)
		}
	}
	gs, err := h.cfg.Store.ListSCIMGroups(ctx, h.cfg.Tenant)
	if err != nil {
		return scim.Resource{}, h.internal(r, "update user", err)
	}
	return h.userResource(&userState{u, st.su}, gs), nil
}

// withEnterprise is attrs with the enterprise extension's keys made
// ext's, and the keys set (or changed) and removed.
func withEnterprise(attrs, ext map[string]string) (out map[string]string, added, removed []string) {
	out = maps.Clone(attrs)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range append(slices.Clone(enterpriseAttrs), "manager") {
		old, had := out[k]
		v, has := ext[k]
		switch {
		case has && (!had || old != v):
			out[k] = v
			added = append(added, k)
		case !has && had:
			delete(out, k)
			removed = append(removed, k)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, added, removed
}

// Delete deprovisions the user at once and hides them from SCIM.
func (x users) Delete(r *http.Request, id string) error {
	defer x.h.write()()
	h, ctx := x.h, r.Context()
	st, err := h.lookup(ctx, id)
	if err != nil {
		return h.lookupFailed(r, id, err)
	}
	now := h.cfg.Now()
	defer h.changed(id)
	if _, err := clients.DeprovisionUser(ctx, h.cfg.Store, h.cfg.Vault, h.meta(r, now), h.cfg.Tenant, id, now); err != nil {
		return h.deprovisionFailed(r, err)
	}
	st.su.Deleted, st.su.UpdatedAt = true, now
	if err := h.cfg.Store.PutSCIMUser(ctx, st.su); err != nil {
		return h.internal(r, "delete user", err)
	}
	return nil
}

func (h *handler) lookupFailed(r *http.Request, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound(id)
	}
	return h.internal(r, "lookup", err)
}

// passOn keeps SCIM errors, answers the store's ErrInvalid as
// invalidValue, and anything else as 500.
func (h *handler) passOn(r *http.Request, op string, err error) error {
	var se scimerrors.ScimError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, store.ErrInvalid):
		return scimError(scimerrors.ScimErrorInvalidValue, "a value is out of bounds: "+strings.TrimPrefix(err.Error(), "store: "))
	}
	return h.internal(r, op, err)
}

// deprovisionFailed: a person owning vault connections on a hub without
// a vault is 409 after the rest was done.
func (h *handler) deprovisionFailed(r *http.Request, err error) error {
	if errors.Is(err, clients.ErrNoVault) {
		return scimerrors.ScimError{Status: http.StatusConflict, Detail: "the user owns vault connections and this hub has no vault to revoke them with; the rest of the deprovisioning was done"}
	}
	return h.internal(r, "deprovision user", err)
}
