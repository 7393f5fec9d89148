package policy

import (
	"context"
	"slices"

	"github.com/agentid/agentid/internal/store"
)

// Screening is the verdict of the hold and reject actions on a new dynamic
// registration.
type Screening struct {
	// Reject is set when a reject permit matched a scope of the
	// registration; RejectPolicies name the matching permits.
	Reject         bool
	RejectPolicies []string
	// Hold is set when a hold permit matched a scope; the client is stored
	// pending until an admin approves it. HoldPolicies name the permits.
	Hold         bool
	HoldPolicies []string
	// Version is the policy set version that decided.
	Version int64
}

// Screen decides the hold and reject actions for the scopes c asks for
// (c.RequestedScopes), one request per resource offering any of them, with
// c as the agent and rc as the context (rc.IP and rc.SoftwareIssuer default
// to the client's CreatedIP and SoftwareStatementIssuer). A permit of either action on any scope sets it.
func (s *Set) Screen(c *store.Client, resources []*store.Resource, rc Context) (*Screening, error) {
	out := &Screening{Version: s.version}
	requested := uniq(c.RequestedScopes)
	if len(requested) == 0 {
		return out, nil
	}
	if rc.IP == "" {
		rc.IP = c.CreatedIP
	}
	if rc.SoftwareIssuer == "" {
		rc.SoftwareIssuer = c.SoftwareStatementIssuer
	}
	rc.GrantType = ""
	tenant := c.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	agent := AgentFromClient(c)
	for _, r := range resources {
		var scopes []Scope
		for _, sc := range r.Scopes {
			if slices.Contains(requested, sc.Name) {
				scopes = append(scopes, Scope{Name: sc.Name, Sensitive: sc.Sensitive})
			}
		}
		if len(scopes) == 0 {
			continue
		}
		ctx := rc
		ctx.Resource = r.URI
		res, err := s.DecideAs(&Request{
			TenantID: tenant, Agent: agent, Resource: ResourceFromStore(r), Scopes: scopes, Context: ctx,
		}, ActionReject, ActionHold)
		if err != nil {
			return nil, err
		}
		for _, d := range res[0].Decisions {
			if d.Allowed {
				out.Reject = true
				out.RejectPolicies = addAll(out.RejectPolicies, d.PolicyIDs)
			}
		}
		for _, d := range res[1].Decisions {
			if d.Allowed {
				out.Hold = true
				out.HoldPolicies = addAll(out.HoldPolicies, d.PolicyIDs)
			}
		}
	}
	return out, nil
}

// Screen is Set.Screen against the active policy set; a zero rc.Time
// means the engine's clock.
func (e *Engine) Screen(ctx context.Context, c *store.Client, resources []*store.Resource, rc Context) (*Screening, error) {
	if rc.Time.IsZero() {
		rc.Time = e.now()
	}
	return e.Active(ctx).Screen(c, resources, rc)
}

func addAll(list, items []string) []string {
	for _, x := range items {
		if !slices.Contains(list, x) {
			list = append(list, x)
		}
	}
	return list
}
