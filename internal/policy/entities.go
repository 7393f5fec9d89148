package policy

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/agentid/agentid/internal/store"
)

// entities holds the Cedar entities of one request. A request has a handful,
// so a linear search beats building a map.
type entities struct {
	agentTenant    types.EntityUID
	resourceTenant types.EntityUID
	agent          types.Entity
	user           types.Entity
	hasUser        bool
	resource       types.Entity
	service        types.Entity
	hasSvc         bool
	scopes         []types.Entity
	names          []string
	cur            int // index in scopes of the scope being decided
	context        types.Record
}

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid.Type {
	case typeAgent:
		if uid == e.agent.UID {
			return e.agent, true
		}
	case typeUser:
		if e.hasUser && uid == e.user.UID {
			return e.user, true
		}
	case typeResource:
		if uid == e.resource.UID {
			return e.resource, true
		}
	case typeService:
		if e.hasSvc && uid == e.service.UID {
			return e.service, true
		}
	case typeScope:
		// The scope being decided is by far the most looked up.
		if c := &e.scopes[e.cur]; uid == c.UID {
			return *c, true
		}
		for _, s := range e.scopes {
			if uid == s.UID {
				return s, true
			}
		}
	case typeTenant:
		// Tenants have neither attributes nor parents.
		return types.Entity{UID: uid}, true
	}
	return types.Entity{}, false
}

// cacheMax bounds each entity cache; a full cache is emptied and refills
// with what is in use.
const cacheMax = 4096

// boundedCache maps a key that holds everything an entity is made of to the
// built entity. Building a Cedar record (sorting and hashing its attributes)
// costs more than evaluating a policy, and the same agents, users, resources
// and scopes come back on every token.
type boundedCache[K comparable] struct {
	m sync.Map // K → types.Entity
	n atomic.Int64
}

func (c *boundedCache[K]) get(k K, build func() types.Entity) types.Entity {
	if v, ok := c.m.Load(k); ok {
		return v.(types.Entity)
	}
	ent := build()
	if c.n.Add(1) > cacheMax {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(k, ent)
	return ent
}

// entityCache is the per-set cache of request entities.
type entityCache struct {
	agents    boundedCache[agentKey]
	users     boundedCache[userKey]
	resources boundedCache[resourceKey]
	scopes    boundedCache[scopeKey]
}

type agentKey struct {
	tenant, id, method, clientType, softwareID, domain, trust, ip, owner, tags string
}

type userKey struct {
	tenant, id, roles, groups, attrs string
}

type resourceKey struct {
	tenant, uri, name, tags string
}

type scopeKey struct {
	tenant, uri, name string
	sensitive         bool
}

// joinKey encodes a list unambiguously (each item length-prefixed).
func joinKey(list []string) string {
	var b strings.Builder
	for _, s := range list {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

func attrsKey(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	list := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		list = append(list, k, m[k])
	}
	return joinKey(list)
}

func stringSet(list []string) types.Set {
	vals := make([]types.Value, len(list))
	for i, s := range list {
		vals[i] = types.String(s)
	}
	return types.NewSet(vals...)
}

func ipValue(s string) (types.IPAddr, bool) {
	if s == "" {
		return types.IPAddr{}, false
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return types.IPAddr{}, false
	}
	ip, err := types.ParseIPAddr(s)
	if err != nil {
		return types.IPAddr{}, false
	}
	return ip, true
}

func tenantUID(id string) types.EntityUID {
	return types.NewEntityUID(typeTenant, types.String(id))
}

// noActors is the context's actors without delegation.
var noActors = types.NewSet()

// build makes the entities and context of req (see the schema for the
// attribute names).
func (c *entityCache) build(req *Request) *entities {
	tenant := req.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	tUID := tenantUID(tenant)
	e := &entities{agentTenant: tUID}

	a := &req.Agent
	e.agent = c.agents.get(agentKey{tenant: tenant, id: a.ID, method: a.RegistrationMethod, clientType: a.ClientType,
		softwareID: a.SoftwareID, domain: a.VerifiedDomain, trust: a.DomainTrust, ip: a.CreatedIP, owner: a.OwnerUserID, tags: joinKey(a.Tags)},
		func() types.Entity { return agentEntity(tUID, a) })

	ctx := types.RecordMap{
		"tenant":      tUID,
		"grant_type":  types.String(req.Context.GrantType),
		"auth_method": types.String(req.Context.AuthMethod),
		"time":        types.NewDatetime(orNow(req.Context.Time)),
		"chain_depth": types.Long(req.Context.ChainDepth),
		"resource":    types.String(req.Context.Resource),
	}
	if ip, ok := ipValue(req.Context.IP); ok {
		ctx["ip"] = ip
	}
	if req.Context.SoftwareIssuer != "" {
		ctx["software_issuer"] = types.String(req.Context.SoftwareIssuer)
	}
	ctx["actors"] = noActors
	if len(req.Context.Actors) > 0 {
		actors := make([]types.Value, len(req.Context.Actors))
		for i, a := range req.Context.Actors {
			actors[i] = types.String(a)
		}
		ctx["actors"] = types.NewSet(actors...)
	}
	if req.Context.FirstActor != "" {
		ctx["first_actor"] = types.String(req.Context.FirstActor)
	}
	if u := req.User; u != nil {
		ut := u.TenantID
		if ut == "" {
			ut = tenant
		}
		e.user = c.users.get(userKey{tenant: ut, id: u.ID, roles: joinKey(u.Roles), groups: joinKey(u.Groups), attrs: attrsKey(u.Attributes)},
			func() types.Entity { return userEntity(tenantUID(ut), u) })
		e.hasUser = true
		ctx["user"] = e.user.UID
		ctx["auth_age_seconds"] = types.Long(req.Context.AuthAge / time.Second)
	}
	if sv := req.Service; sv != nil {
		st := sv.TenantID
		if st == "" {
			st = tenant
		}
		e.service = types.Entity{
			UID:     types.NewEntityUID(typeService, types.String(sv.Name)),
			Parents: types.NewEntityUIDSet(tenantUID(st)),
			Attributes: types.NewRecord(types.RecordMap{
				"tenant": tenantUID(st),
				"name":   types.String(sv.Name),
			}),
		}
		e.hasSvc = true
		ctx["service"] = e.service.UID
	}
	e.context = types.NewRecord(ctx)

	r := &req.Resource
	rt := r.TenantID
	if rt == "" {
		rt = tenant
	}
	e.resourceTenant = tenantUID(rt)
	e.resource = c.resources.get(resourceKey{tenant: rt, uri: r.URI, name: r.Name, tags: joinKey(r.Tags)},
		func() types.Entity { return resourceEntity(e.resourceTenant, r) })
	e.scopes = make([]types.Entity, len(req.Scopes))
	e.names = make([]string, len(req.Scopes))
	for i, sc := range req.Scopes {
		e.names[i] = sc.Name
		e.scopes[i] = c.scopes.get(scopeKey{tenant: rt, uri: r.URI, name: sc.Name, sensitive: sc.Sensitive},
			func() types.Entity { return scopeEntity(e.resourceTenant, r.URI, sc) })
	}
	return e
}

func agentEntity(tenant types.EntityUID, a *Agent) types.Entity {
	var cc []string
	for _, t := range a.Tags {
		if name, ok := strings.CutPrefix(t, ccTagPrefix); ok && name != "" {
			cc = append(cc, name)
		}
	}
	attrs := types.RecordMap{
		"tenant":              tenant,
		"registration_method": types.String(a.RegistrationMethod),
		"client_type":         types.String(a.ClientType),
		"software_id":         types.String(a.SoftwareID),
		"verified_domain":     types.String(a.VerifiedDomain),
		"domain_trust":        types.String(agentDomainTrust(a)),
		"owner":               types.String(a.OwnerUserID),
		"tags":                stringSet(a.Tags),
		"cc_scopes":           stringSet(cc),
	}
	if ip, ok := ipValue(a.CreatedIP); ok {
		attrs["created_ip"] = ip
	}
	return types.Entity{
		UID:        types.NewEntityUID(typeAgent, types.String(a.ID)),
		Parents:    types.NewEntityUIDSet(tenant),
		Attributes: types.NewRecord(attrs),
	}
}

// agentDomainTrust is the agent's domain_trust attribute: the trust in its
// verified domain (DomainAllowed unless an administrator said otherwise),
// "" for an agent without one.
func agentDomainTrust(a *Agent) string {
	switch {
	case a.VerifiedDomain == "":
		return ""
	case a.DomainTrust == "":
		return store.DomainAllowed
	}
	return a.DomainTrust
}

func userEntity(tenant types.EntityUID, u *User) types.Entity {
	tags := make(types.RecordMap, len(u.Attributes))
	for k, v := range u.Attributes {
		tags[types.String(k)] = types.String(v)
	}
	return types.Entity{
		UID:     types.NewEntityUID(typeUser, types.String(u.ID)),
		Parents: types.NewEntityUIDSet(tenant),
		Attributes: types.NewRecord(types.RecordMap{
			"tenant": tenant,
			"roles":  stringSet(u.Roles),
			"groups": stringSet(u.Groups),
		}),
		Tags: types.NewRecord(tags),
	}
}

func resourceEntity(tenant types.EntityUID, r *Resource) types.Entity {
	return types.Entity{
		UID:     types.NewEntityUID(typeResource, types.String(r.URI)),
		Parents: types.NewEntityUIDSet(tenant),
		Attributes: types.NewRecord(types.RecordMap{
			"tenant": tenant,
			"uri":    types.String(r.URI),
			"name":   types.String(r.Name),
			"tags":   stringSet(r.Tags),
		}),
	}
}

func scopeEntity(tenant types.EntityUID, uri string, sc Scope) types.Entity {
	res := types.NewEntityUID(typeResource, types.String(uri))
	return types.Entity{
		UID:     types.NewEntityUID(typeScope, types.String(ScopeEntityID(uri, sc.Name))),
		Parents: types.NewEntityUIDSet(res),
		Attributes: types.NewRecord(types.RecordMap{
			"tenant":    tenant,
			"name":      types.String(sc.Name),
			"sensitive": types.Boolean(sc.Sensitive),
			"resource":  res,
		}),
	}
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
