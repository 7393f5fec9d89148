package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// The resource and scope rules shared by /authorize, /authorize/decision and
// the token pipeline. They return *oauth.Error and leave the rendering to
// the caller: a redirect to the client there, a JSON error here.

// resolveResource finds the registered resource a request is for (RFC 8707
// §2): the one it names, else the client's default resource, else the one
// inferred from the scopes asked. Anything else is invalid_target; a store
// failure is a server_error wrapping its cause.
func (s *Server) resolveResource(ctx context.Context, c *store.Client, raw, scopes []string) (*store.Resource, *oauth.Error) {
	uri, oe := s.resourceForms.requested(raw)
	if oe != nil {
		return nil, oe
	}
	if uri == "" {
		uri = c.DefaultResource
	}
	if uri == "" {
		inferred, err := s.inferResource(ctx, scopes)
		if err != nil {
			return nil, oauth.ErrServer(err)
		}
		uri = inferred
	}
	if uri == "" {
		return nil, oauth.ErrInvalidTarget("resource is required: name the MCP server the token is for (RFC 8707)")
	}
	return s.lookupResource(ctx, uri)
}

// requestedResource canonicalises the request's resource parameters (RFC
// 8707 §2). agentid issues single-audience tokens, so at most one is allowed.
func requestedResource(raw []string) (string, *oauth.Error) {
	switch len(raw) {
	case 0:
		return "", nil
	case 1:
		return oauth.CanonicalResource(raw[0])
	default:
		return "", oauth.ErrInvalidTarget("only one resource may be requested per token")
	}
}

// canonicalForms remembers oauth.CanonicalResource's accepted answers:
// a pure function of its input, so the remembered form is the form, and
// every token request would otherwise parse the same few URLs again. A
// refused parameter is not remembered (it is refused afresh each time).
// At most maxCanonicalForms parameters of at most 2,000 characters are
// kept; a full memo is emptied.
type canonicalForms struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxCanonicalForms = 1024

// requested is requestedResource through the memo.
func (f *canonicalForms) requested(raw []string) (string, *oauth.Error) {
	if len(raw) != 1 {
		return requestedResource(raw)
	}
	f.mu.RLock()
	uri, ok := f.m[raw[0]]
	f.mu.RUnlock()
	if ok {
		return uri, nil
	}
	uri, oe := requestedResource(raw)
	if oe != nil {
		return "", oe
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || len(f.m) >= maxCanonicalForms {
		f.m = make(map[string]string)
	}
	// A copy: the parameter may share the request body's memory.
	f.m[strings.Clone(raw[0])] = uri
	return uri, nil
}

// inferResource picks the resource of a request that names none, for
// clients that predate RFC 8707 in MCP (2025-03-26) and have no default
// resource: the one registered resource offering every requested scope (or,
// with no scope asked, the only resource). Anything ambiguous yields "".
func (s *Server) inferResource(ctx context.Context, scopes []string) (string, error) {
	resources, err := s.st.ListResources(ctx, s.tenant)
	if err != nil {
		return "", err
	}
	found := ""
	for _, res := range resources {
		if !slices.ContainsFunc(scopes, func(sc string) bool { return !offers(res, sc) }) {
			if found != "" {
				return "", nil
			}
			found = res.URI
		}
	}
	return found, nil
}

// lookupResource finds a registered resource (through the 2-second cache)
// or fails with invalid_target.
func (s *Server) lookupResource(ctx context.Context, uri string) (*store.Resource, *oauth.Error) {
	res, err := s.resources.get(uri, func() (*store.Resource, error) { return s.st.GetResource(ctx, s.tenant, uri) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.ErrInvalidTarget("resource %q is not registered", truncate(uri, 200))
	}
	if err != nil {
		return nil, oauth.ErrServer(err)
	}
	return res, nil
}

// offers reports whether res offers scope name.
func offers(res *store.Resource, name string) bool {
	return slices.ContainsFunc(res.Scopes, func(sc store.Scope) bool { return sc.Name == name })
}

// scopesOnResource returns the scopes a request asks for on res: those
// asked, or with none asked the client's registered scopes that res offers.
// A scope res does not offer is invalid_scope.
func scopesOnResource(c *store.Client, res *store.Resource, asked []string) ([]string, *oauth.Error) {
	if len(asked) == 0 {
		var registered []string
		for _, sc := range res.Scopes {
			if policy.WithinCeiling(c, sc.Name) {
				registered = append(registered, sc.Name)
			}
		}
		return registered, nil
	}
	for _, name := range asked {
		if !offers(res, name) {
			return nil, oauth.ErrInvalidScope("scope %q is not offered by %s", truncate(name, 100), res.URI)
		}
	}
	return asked, nil
}

// decideScopes filters scopes (each offered by res) by the client's ceiling,
// then asks the central policy about the rest, under the action of the
// grant type and, in the same call, the register action. It returns the
// granted scopes in request order and the decision for the audit event: a
// verdict per scope, in request order, and the policy version.
func (s *Server) decideScopes(ctx context.Context, r *http.Request, grantType string, p *principal, res *store.Resource, scopes []string) ([]string, audit.Decision, error) {
	verdicts := make([]audit.ScopeDecision, 0, len(scopes))
	asked := make([]policy.Scope, 0, len(scopes))
	for _, name := range scopes {
		if !policy.WithinCeiling(p.client, name) {
			verdicts = append(verdicts, audit.ScopeDecision{Scope: name, Reason: audit.ReasonCeiling})
			continue
		}
		i := slices.IndexFunc(res.Scopes, func(sc store.Scope) bool { return sc.Name == name })
		asked = append(asked, policy.Scope{Name: name, Sensitive: i >= 0 && res.Scopes[i].Sensitive})
		verdicts = append(verdicts, audit.ScopeDecision{Scope: name, Reason: audit.ReasonPolicy})
	}
	if len(asked) == 0 {
		// The policy is not asked; the version in force set the ceiling.
		return nil, audit.Decision{PolicyVersion: s.policy.Active(ctx).Version(), Scopes: verdicts}, nil
	}
	now := s.now()
	action := policy.ActionForGrantType(grantType)
	req := &policy.Request{
		Action:   action,
		TenantID: s.tenant,
		Resource: policy.ResourceFromStore(res),
		Scopes:   asked,
		// auth_method is how the client authenticated at the token
		// endpoint, as docs/policy.md defines it.
		Context: policy.Context{GrantType: grantType, IP: clientIP(r), Time: now, Resource: res.URI, AuthMethod: p.client.TokenEndpointAuthMethod},
	}
	p.describe(req, now)
	// The stored ceiling is by scope name; the register action is also
	// decided here for this very resource, under the current policy set, so
	// that a register denial on one MCP server cannot be bypassed through
	// another offering a scope of the same name, and a tightened register
	// policy bites before any ceiling is recomputed.
	actions, n := [2]policy.Action{action, policy.ActionRegister}, 2
	if action == policy.ActionRegister {
		n = 1
	}
	results, err := s.decideAs(ctx, req, actions[:n]...)
	if err != nil {
		return nil, audit.Decision{}, err
	}
	// Decisions are in the order of req.Scopes, that is of the verdicts
	// left to the policy. A register denial is the verdict; otherwise the
	// grant action's.
	granted := make([]string, 0, len(asked))
	j := 0
	for i := range verdicts {
		v := &verdicts[i]
		if v.Reason != audit.ReasonPolicy {
			continue
		}
		d := results[0].Decisions[j]
		if len(results) == 2 && !results[1].Decisions[j].Allowed {
			d = results[1].Decisions[j]
		}
		j++
		v.Allowed, v.PolicyIDs, v.Errors = d.Allowed, d.PolicyIDs, d.Errors
		if d.Allowed {
			granted = append(granted, v.Scope)
		}
	}
	return granted, audit.Decision{PolicyVersion: results[0].Version, Scopes: verdicts}, nil
}
