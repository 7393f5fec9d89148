package server

import (
	"context"
	"time"

	"github.com/agentid/agentid/internal/changefeed"
	"github.com/agentid/agentid/internal/store"
)

// reloadTimeout bounds a reload the change feed asks for.
const reloadTimeout = 5 * time.Second

// onChanges applies the change feed to what this process holds
// (docs/design.md §5, "Change feed"): a changed row drops its cached copy
// (a client, person or resource; the domain list; the trusted issuers);
// a changed signing key reloads the key set and then forgets which tokens
// were verified; a policy set or domain change reloads the policy engine.
// A Reset drops and reloads everything.
func (s *Server) onChanges(ev changefeed.Event) {
	var keys, pol bool
	if ev.Reset {
		s.clients.reset()
		s.resources.reset()
		s.users.reset()
		s.domains.reset()
		s.fed.Invalidate()
		keys, pol = true, true
	}
	for _, c := range ev.Changes {
		if c.Kind == store.ChangeSigningKey { // the keys are the hub's
			keys = true
			continue
		}
		if c.TenantID != s.tenant {
			continue
		}
		switch c.Kind {
		case store.ChangeClient:
			s.clients.invalidate(c.Key)
		case store.ChangeUser:
			s.users.invalidate(c.Key)
		case store.ChangeResource:
			s.resources.invalidate(c.Key)
		case store.ChangeDomain:
			s.domains.reset()
			pol = true
		case store.ChangePolicy:
			pol = true
		case store.ChangeIssuer:
			s.fed.Invalidate()
		}
	}
	if !keys && !pol {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	if keys {
		if err := s.keys.Reload(ctx); err != nil {
			s.log.WarnContext(ctx, "change feed: reloading the signing keys failed", "err", err)
		}
		// After the reload: a verification that raced it is dropped too.
		s.verified.reset()
	}
	if pol {
		if err := s.policy.Reload(ctx); err != nil {
			s.log.WarnContext(ctx, "change feed: reloading the policy set failed", "err", err)
		}
	}
}
