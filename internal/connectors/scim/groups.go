package scim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// groups is the /Groups resource handler.
type groups struct{ h *handler }

var groupSchema = schema.CoreGroupSchema()

// people are the tenant's users SCIM sees (not deleted by SCIM), by id.
func (h *handler) people(ctx context.Context) (map[string]*store.User, error) {
	sts, err := h.visible(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*store.User, len(sts))
	for _, st := range sts {
		out[st.u.ID] = st.u
	}
	return out, nil
}

// members are the ids of the people in group name, sorted.
func members(people map[string]*store.User, name string) []string {
	var ids []string
	for id, u := range people {
		if slices.Contains(u.Groups, name) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (h *handler) groupResource(g *store.SCIMGroup, people map[string]*store.User) scim.Resource {
	attrs := scim.ResourceAttributes{"displayName": g.DisplayName}
	var ms []any
	for _, id := range members(people, g.DisplayName) {
		ms = append(ms, map[string]any{
			"value":   id,
			"display": people[id].Username,
			"$ref":    h.cfg.BaseURL + "/Users/" + url.PathEscape(id),
			"type":    "User",
		})
	}
	if len(ms) > 0 {
		attrs["members"] = ms
	}
	created, modified := g.CreatedAt, g.UpdatedAt
	return scim.Resource{
		ID:         g.ID,
		ExternalID: externalID(g.ExternalID),
		Attributes: attrs,
		Meta:       scim.Meta{Created: &created, LastModified: &modified, Version: version(modified)},
	}
}

// groupSpec is what a Group's attributes say.
type groupSpec struct {
	name, externalID string
	members          []string // user ids, sorted, once each
}

func groupSpecOf(attrs map[string]any) (groupSpec, error) {
	var s groupSpec
	s.name, _ = attrs["displayName"].(string)
	if err := store.CheckRoleOrGroup("group", s.name); err != nil || strings.TrimSpace(s.name) == "" {
		return s, scimError(scimerrors.ScimErrorInvalidValue, "displayName must be a group name: not empty, at most 128 characters, no control characters")
	}
	s.externalID, _ = attrs["externalId"].(string)
	for _, e := range list(attrs["members"]) {
		m, _ := e.(map[string]any)
		id, _ := m["value"].(string)
		if t, _ := m["type"].(string); t != "" && t != "User" {
			return s, scimError(scimerrors.ScimErrorInvalidValue, "members are users; groups in groups are not supported")
		}
		if id == "" {
			return s, scimError(scimerrors.ScimErrorInvalidValue, "a member needs a value (the user's id)")
		}
		if !slices.Contains(s.members, id) {
			s.members = append(s.members, id)
		}
	}
	slices.Sort(s.members)
	return s, nil
}

func (x groups) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	defer x.h.write()()
	h, ctx := x.h, r.Context()
	spec, err := groupSpecOf(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	people, err := h.people(ctx)
	if err != nil {
		return scim.Resource{}, h.internal(r, "create group", err)
	}
	if err := knownMembers(people, spec.members); err != nil {
		return scim.Resource{}, err
	}
	now := h.cfg.Now()
	g := &store.SCIMGroup{TenantID: h.cfg.Tenant, ID: token.NewID(nil), DisplayName: spec.name, ExternalID: spec.externalID, CreatedAt: now, UpdatedAt: now}
	if err := h.cfg.Store.CreateSCIMGroup(ctx, g, audit.NewGroupCreated(h.meta(r, now), g.ID, g.DisplayName)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return scim.Resource{}, scimError(scimerrors.ScimErrorUniqueness, "displayName is another group's")
		}
		return scim.Resource{}, h.passOn(r, "create group", err)
	}
	// Exactly the members given: a person who had the name already (from
	// the CLI or a connector) and is not among them loses it.
	if err := h.setMembers(r, people, spec.name, spec.name, spec.members); err != nil {
		return scim.Resource{}, err
	}
	return h.groupResource(g, people), nil
}

func knownMembers(people map[string]*store.User, ids []string) error {
	for _, id := range ids {
		if people[id] == nil {
			return scimError(scimerrors.ScimErrorInvalidValue, "no user "+id)
		}
	}
	return nil
}

// setMembers makes the members of the group (named from before, to now;
// from "" for a new group, to "" for a deleted one) exactly ids: each
// person whose membership changes gets one update and one user.updated
// event (change groups, the names added and removed). people is updated.
func (h *handler) setMembers(r *http.Request, people map[string]*store.User, from, to string, ids []string) error {
	ctx := r.Context()
	now := h.cfg.Now()
	m := h.meta(r, now)
	var old []string
	if from != "" {
		old = members(people, from)
	}
	touched := slices.Clone(old)
	for _, id := range ids {
		if !slices.Contains(touched, id) {
			touched = append(touched, id)
		}
	}
	slices.Sort(touched)
	for _, id := range touched {
		u := people[id]
		was := from != "" && slices.Contains(u.Groups, from)
		will := to != "" && slices.Contains(ids, id)
		var added, removed []string
		groups := slices.Clone(u.Groups)
		if was && (!will || from != to) {
			groups = slices.DeleteFunc(groups, func(g string) bool { return g == from })
			removed = []string{from}
		}
		if will && (!was || from != to) && !slices.Contains(groups, to) {
			groups = append(groups, to)
			added = []string{to}
		}
		if added == nil && removed == nil {
			continue
		}
		nu := *u
		nu.Groups, nu.UpdatedAt = groups, now
		err := h.cfg.Store.UpdateUser(ctx, &nu, audit.NewUserAccessUpdated(m, id, audit.ChangeGroups, added, removed))
		h.changed(id)
		if err != nil {
			return h.passOn(r, "update membership", err)
		}
		people[id] = &nu
	}
	return nil
}

func (x groups) Get(r *http.Request, id string) (scim.Resource, error) {
	h, ctx := x.h, r.Context()
	g, err := h.cfg.Store.GetSCIMGroup(ctx, h.cfg.Tenant, id)
	if err != nil {
		return scim.Resource{}, h.lookupFailed(r, id, err)
	}
	people, err := h.people(ctx)
	if err != nil {
		return scim.Resource{}, h.internal(r, "get group", err)
	}
	return h.groupResource(g, people), nil
}

func (x groups) GetAll(r *http.Request, params scim.ListRequestParams) (scim.Page, error) {
	h, ctx := x.h, r.Context()
	gs, err := h.cfg.Store.ListSCIMGroups(ctx, h.cfg.Tenant)
	if err != nil {
		return scim.Page{}, h.internal(r, "list groups", err)
	}
	people, err := h.people(ctx)
	if err != nil {
		return scim.Page{}, h.internal(r, "list groups", err)
	}
	all := make([]scim.Resource, len(gs))
	for i, g := range gs {
		all[i] = h.groupResource(g, people)
	}
	return listPage(params, all)
}

func (x groups) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	defer x.h.write()()
	spec, err := groupSpecOf(attrs)
	if err != nil {
		return scim.Resource{}, err
	}
	return x.h.updateGroup(r, id, func(map[string]any) (groupSpec, error) { return spec, nil })
}

func (x groups) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	defer x.h.write()()
	return x.h.updateGroup(r, id, func(cur map[string]any) (groupSpec, error) {
		if err := applyPatch(cur, groupSchema, ops); err != nil {
			return groupSpec{}, err
		}
		return groupSpecOf(cur)
	})
}

// updateGroup makes group id what next(its current attributes) says:
// the row first (a taken displayName is 409 before anyone changes),
// then the members.
func (h *handler) updateGroup(r *http.Request, id string, next func(map[string]any) (groupSpec, error)) (scim.Resource, error) {
	ctx := r.Context()
	g, err := h.cfg.Store.GetSCIMGroup(ctx, h.cfg.Tenant, id)
	if err != nil {
		return scim.Resource{}, h.lookupFailed(r, id, err)
	}
	people, err := h.people(ctx)
	if err != nil {
		return scim.Resource{}, h.internal(r, "update group", err)
	}
	cur := map[string]any(h.groupResource(g, people).Attributes)
	if g.ExternalID != "" {
		cur["externalId"] = g.ExternalID
	}
	spec, err := next(cur)
	if err != nil {
		return scim.Resource{}, err
	}
	if err := knownMembers(people, spec.members); err != nil {
		return scim.Resource{}, err
	}
	from := g.DisplayName
	if spec.name != g.DisplayName || spec.externalID != g.ExternalID {
		now := h.cfg.Now()
		ev := audit.NewGroupUpdated(h.meta(r, now), g.ID, spec.name, audit.GroupChangeExternalID, "")
		if spec.name != g.DisplayName {
			ev = audit.NewGroupUpdated(h.meta(r, now), g.ID, spec.name, audit.GroupChangeRenamed, g.DisplayName)
		}
		g.DisplayName, g.ExternalID, g.UpdatedAt = spec.name, spec.externalID, now
		if err := h.cfg.Store.UpdateSCIMGroup(ctx, g, ev); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return scim.Resource{}, scimError(scimerrors.ScimErrorUniqueness, "displayName is another group's")
			}
			return scim.Resource{}, h.passOn(r, "update group", err)
		}
	}
	if !slices.Equal(members(people, from), spec.members) || from != spec.name {
		if err := h.setMembers(r, people, from, spec.name, spec.members); err != nil {
			return scim.Resource{}, err
		}
		if from == spec.name {
			now := h.cfg.Now()
			g.UpdatedAt = now
			ev := audit.NewGroupUpdated(h.meta(r, now), g.ID, g.DisplayName, audit.GroupChangeMembers, "")
			if err := h.cfg.Store.UpdateSCIMGroup(ctx, g, ev); err != nil {
				return scim.Resource{}, h.passOn(r, "update group", err)
			}
		}
	}
	return h.groupResource(g, people), nil
}

// Delete takes the group from its members, then removes it.
func (x groups) Delete(r *http.Request, id string) error {
	defer x.h.write()()
	h, ctx := x.h, r.Context()
	g, err := h.cfg.Store.GetSCIMGroup(ctx, h.cfg.Tenant, id)
	if err != nil {
		return h.lookupFailed(r, id, err)
	}
	people, err := h.people(ctx)
	if err != nil {
		return h.internal(r, "delete group", err)
	}
	if err := h.setMembers(r, people, g.DisplayName, "", nil); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteSCIMGroup(ctx, h.cfg.Tenant, id, audit.NewGroupDeleted(h.meta(r, h.cfg.Now()), g.ID, g.DisplayName)); err != nil {
		return h.lookupFailed(r, id, err)
	}
	return nil
}
