package policy

import (
	"encoding/binary"
	"maps"
	"slices"
	"sync"

	xast "github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/agentid/agentid/internal/store"
)

// A set's decisions are a function of the request: Cedar evaluation has no
// I/O, no clock and no randomness, and the entities a policy can reach are
// built from the request's fields alone (entities.build). So the results
// of DecideAs can be remembered by a key that holds every field of the
// request a policy can read, and served again for an equal key by the same
// set. The cache belongs to the Set, which is immutable: a new policy
// version (the change feed's reload, or the engine's periodic re-read) is
// a new Set with an empty cache, so no decision outlives the rules that
// made it.
//
// Two inputs change with every request: the time (context.time) and the
// age of the person's login (context.auth_age_seconds). The key leaves
// them out, so a set whose policies can read either is never cached
// (readsVolatileContext). Everything else of the request is in the key
// (TestDecisionKeyCoversRequest checks every field by reflection).

// volatileContext are the context attributes whose values differ between
// otherwise equal requests.
var volatileContext = map[string]bool{"time": true, "auth_age_seconds": true}

// readsVolatileContext reports whether conds may read a volatile context
// attribute: by name (context.time, context has time), or through the
// context record used whole anywhere else (compared, put in a set, the
// branch of an if), where any attribute could matter. Cedar reaches a
// record's attributes only by literal names, so every other use of the
// context variable is one of these.
func readsVolatileContext(conds []xast.ConditionType) bool {
	volatile := false
	attr := func(n xast.StrOpNode) (handled bool) {
		v, ok := n.Arg.(xast.NodeTypeVariable)
		if !ok || v.Name != "context" {
			return false
		}
		if volatileContext[string(n.Value)] {
			volatile = true
		}
		return true
	}
	for _, c := range conds {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			switch n := n.(type) {
			case xast.NodeTypeAccess:
				if attr(n.StrOpNode) {
					return false
				}
			case xast.NodeTypeHas:
				if attr(n.StrOpNode) {
					return false
				}
			case xast.NodeTypeVariable:
				if n.Name == "context" {
					volatile = true
				}
			}
			return !volatile
		})
	}
	return volatile
}

// appendDecisionKey appends to b the key of deciding req under actions:
// every field of the request a policy can read, except the volatile
// context (Context.Time, Context.AuthAge), each length-prefixed so that no
// two different requests share a key. req.Action is not in it: DecideAs
// decides under actions.
func appendDecisionKey(b []byte, req *Request, actions []Action) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(n int) { b = binary.AppendUvarint(b, uint64(n)) }
	flag := func(v bool) {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	list := func(l []string) {
		num(len(l))
		for _, s := range l {
			str(s)
		}
	}
	num(len(actions))
	for _, a := range actions {
		str(string(a))
	}
	tenant := req.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	str(tenant)

	a := &req.Agent
	str(a.ID)
	str(a.RegistrationMethod)
	str(a.ClientType)
	str(a.SoftwareID)
	str(a.VerifiedDomain)
	str(a.DomainTrust)
	str(a.CreatedIP)
	str(a.OwnerUserID)
	list(a.Tags)

	flag(req.User != nil)
	if u := req.User; u != nil {
		str(u.ID)
		str(u.TenantID)
		list(u.Roles)
		list(u.Groups)
		num(len(u.Attributes))
		if len(u.Attributes) > 0 {
			for _, k := range slices.Sorted(maps.Keys(u.Attributes)) {
				str(k)
				str(u.Attributes[k])
			}
		}
	}

	r := &req.Resource
	str(r.URI)
	str(r.Name)
	str(r.TenantID)
	list(r.Tags)

	num(len(req.Scopes))
	for _, sc := range req.Scopes {
		str(sc.Name)
		flag(sc.Sensitive)
	}

	flag(req.Service != nil)
	if sv := req.Service; sv != nil {
		str(sv.Name)
		str(sv.TenantID)
	}

	c := &req.Context
	str(c.GrantType)
	str(c.IP)
	str(c.AuthMethod)
	num(c.ChainDepth)
	list(c.Actors)
	str(c.FirstActor)
	str(c.Resource)
	str(c.SoftwareIssuer)
	return b
}

// decisionCache maps a decision key to the results of DecideAs. It is
// bounded like the entity caches: a full cache is emptied and refills with
// the requests in use.
type decisionCache struct {
	mu sync.RWMutex
	m  map[string][]*Result
}

// get returns a copy of the results remembered for key.
func (c *decisionCache) get(key []byte) ([]*Result, bool) {
	c.mu.RLock()
	res, ok := c.m[string(key)]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return shareResults(res), true
}

// put remembers a copy of res for key.
func (c *decisionCache) put(key []byte, res []*Result) {
	own := make([]*Result, len(res))
	for i, r := range res {
		own[i] = &Result{Version: r.Version, Granted: slices.Clip(slices.Clone(r.Granted)), Decisions: make([]Decision, len(r.Decisions))}
		for j, d := range r.Decisions {
			d.PolicyIDs = slices.Clip(slices.Clone(d.PolicyIDs))
			d.Errors = slices.Clip(slices.Clone(d.Errors))
			own[i].Decisions[j] = d
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheMax {
		c.m = make(map[string][]*Result)
	}
	c.m[string(key)] = own
}

// shareResults copies the cached results for one caller: its own Result
// values and slices of decisions and granted scopes, so that a caller
// changing them changes nothing of the cache. The policy ids and errors
// of a decision stay shared, at their full capacity, so an append to one
// copies it; callers only read them.
func shareResults(cached []*Result) []*Result {
	out := make([]*Result, len(cached))
	for i, r := range cached {
		out[i] = &Result{Version: r.Version, Granted: slices.Clone(r.Granted), Decisions: slices.Clone(r.Decisions)}
	}
	return out
}
