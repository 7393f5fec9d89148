// Package consent is agentid's consent ledger: what each person granted each
// agent (client) on each resource (MCP server), per scope, each scope with
// its own expiry. It decides which scopes are live at a given instant, how a
// later grant adds to an earlier one (step-up), how long the tokens minted
// on the strength of a consent may live, and it revokes consent with the
// cascade to tokens that the store performs in the same transaction. Time
// comes from an injected clock. Rendering is the server's business.
package consent

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Options configures a Ledger.
type Options struct {
	// Store holds the grants; any store.Store will do.
	Store store.Consents
	// TenantID defaults to store.DefaultTenant.
	TenantID string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Ledger reads and writes consent for one tenant.
type Ledger struct {
	st     store.Consents
	tenant string
	now    func() time.Time
}

// New builds a Ledger.
func New(o Options) (*Ledger, error) {
	if o.Store == nil {
		return nil, errors.New("consent: Store is required")
	}
	l := &Ledger{st: o.Store, tenant: o.TenantID, now: o.Now}
	if l.tenant == "" {
		l.tenant = store.DefaultTenant
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// Key names the consent of one person to one agent for one resource. An
// empty Resource in Revoke means every resource.
type Key struct {
	UserID   string
	ClientID string
	Resource string
}

// audit names k in an event.
func (k Key) audit() audit.ConsentKey {
	return audit.ConsentKey{ClientID: k.ClientID, UserID: k.UserID, Resource: k.Resource}
}

func (l *Ledger) filter(k Key) store.ConsentFilter {
	return store.ConsentFilter{TenantID: l.tenant, UserID: k.UserID, ClientID: k.ClientID, Resource: k.Resource}
}

// Snapshot is the consent of one key as it stands at one instant.
type Snapshot struct {
	// At is the instant the snapshot judges liveness at.
	At     time.Time
	grants map[string]*store.ConsentGrant
}

// Snapshot reads the ledger for k at the clock's now.
func (l *Ledger) Snapshot(ctx context.Context, k Key) (*Snapshot, error) {
	if k.UserID == "" || k.ClientID == "" || k.Resource == "" {
		return nil, errors.New("consent: a snapshot needs user, client and resource")
	}
	grants, err := l.st.ListConsents(ctx, l.filter(k))
	if err != nil {
		return nil, err
	}
	return NewSnapshot(grants, l.now()), nil
}

// NewSnapshot judges grants (of one key) at at.
func NewSnapshot(grants []*store.ConsentGrant, at time.Time) *Snapshot {
	s := &Snapshot{At: at, grants: make(map[string]*store.ConsentGrant, len(grants))}
	for _, g := range grants {
		s.grants[g.Scope] = g
	}
	return s
}

// Grant returns the recorded grant of scope, live or not, or nil.
func (s *Snapshot) Grant(scope string) *store.ConsentGrant { return s.grants[scope] }

// Live returns the scopes of want that are consented and unexpired at s.At,
// in the order of want, without duplicates.
func (s *Snapshot) Live(want []string) []string {
	return s.pick(want, func(g *store.ConsentGrant) bool { return g.Live(s.At) })
}

// Expired returns the scopes of want whose consent ran out (not revoked, but
// past its expiry) at s.At.
func (s *Snapshot) Expired(want []string) []string {
	return s.pick(want, func(g *store.ConsentGrant) bool {
		return g.RevokedAt.IsZero() && !g.ExpiresAt.IsZero() && !s.At.Before(g.ExpiresAt)
	})
}

func (s *Snapshot) pick(want []string, keep func(*store.ConsentGrant) bool) []string {
	var out []string
	for _, sc := range want {
		if g := s.grants[sc]; g != nil && keep(g) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// AccessExpiry caps exp, the expiry an access token for scopes would get,
// at the earliest expiry among their consents: no token carries a scope
// past the consent behind it. Scopes without a live grant are ignored.
func (s *Snapshot) AccessExpiry(scopes []string, exp time.Time) time.Time {
	for _, sc := range s.Live(scopes) {
		if e := s.grants[sc].ExpiresAt; !e.IsZero() && e.Before(exp) {
			exp = e
		}
	}
	return exp
}

// RefreshExpiry caps exp, the expiry a refresh token for scopes would get,
// at the latest expiry among their live consents: a refresh token never
// outlives the longest consent behind it. A consent until revoked does not
// cap it. With no live consent at all it returns s.At (nothing to refresh).
func (s *Snapshot) RefreshExpiry(scopes []string, exp time.Time) time.Time {
	live := s.Live(scopes)
	if len(live) == 0 {
		return s.At
	}
	var longest time.Time
	for _, sc := range live {
		e := s.grants[sc].ExpiresAt
		if e.IsZero() {
			return exp
		}
		if e.After(longest) {
			longest = e
		}
	}
	if longest.Before(exp) {
		return longest
	}
	return exp
}

// Grant records that the person behind k approved scopes until expiresAt
// (zero: until revoked). Scopes not named keep their own grant and expiry,
// so a later, wider authorization adds to the earlier one (step-up) and the
// live consent is the union. A scope granted again gets the new expiry and
// is no longer revoked. Its consent.given event, made with m (nil: none),
// is written in the same transaction.
func (l *Ledger) Grant(ctx context.Context, k Key, scopes []string, expiresAt time.Time, m *audit.Meta) error {
	return l.grant(ctx, k, scopes, l.now(), expiresAt, "", m)
}

// GrantFor is Grant for the duration a person chose, computed by ExpiresAt
// from the same instant the grant is recorded at; the event also records
// the choice.
func (l *Ledger) GrantFor(ctx context.Context, k Key, scopes []string, c Choice, accessTTL, maxTTL time.Duration, m *audit.Meta) error {
	now := l.now()
	return l.grant(ctx, k, scopes, now, ExpiresAt(c, now, accessTTL, maxTTL), c, m)
}

func (l *Ledger) grant(ctx context.Context, k Key, scopes []string, now, expiresAt time.Time, c Choice, m *audit.Meta) error {
	if k.UserID == "" || k.ClientID == "" || k.Resource == "" {
		return errors.New("consent: a grant needs user, client and resource")
	}
	if len(scopes) == 0 {
		return errors.New("consent: nothing to grant")
	}
	grants := make([]*store.ConsentGrant, 0, len(scopes))
	var seen []string
	for _, sc := range scopes {
		if slices.Contains(seen, sc) {
			continue
		}
		seen = append(seen, sc)
		grants = append(grants, &store.ConsentGrant{
			TenantID: l.tenant, UserID: k.UserID, ClientID: k.ClientID, Resource: k.Resource,
			Scope: sc, GrantedAt: now, ExpiresAt: expiresAt,
		})
	}
	var ev *store.AuditEvent
	if m != nil {
		ev = audit.NewConsentGiven(m.Stamped(l.tenant, now), audit.ConsentGivenFields{ConsentKey: k.audit(), Scopes: seen, Duration: string(c), ExpiresAt: expiresAt})
	}
	return l.st.UpsertConsents(ctx, grants, ev)
}

// Revoke withdraws the live consent of k for scopes (nil: every scope; an
// empty k.Resource: on every resource) and returns the scopes it withdrew.
// The store revokes, in the same transaction, the refresh tokens and
// recorded access tokens of that person and agent carrying a withdrawn
// scope, so introspection reports them inactive at once. Its
// consent.revoked event, made with m (nil: none) and naming by as who
// revoked ("user" from the account page; may be empty), lists the withdrawn
// scopes; nothing is written when nothing was live.
func (l *Ledger) Revoke(ctx context.Context, k Key, scopes []string, m *audit.Meta, by string) ([]string, error) {
	if k.UserID == "" || k.ClientID == "" {
		return nil, errors.New("consent: a revocation needs user and client")
	}
	now := l.now()
	grants, err := l.st.ListConsents(ctx, l.filter(k))
	if err != nil {
		return nil, err
	}
	var withdrawn []string
	for _, g := range grants {
		if !g.RevokedAt.IsZero() || (scopes != nil && !slices.Contains(scopes, g.Scope)) {
			continue
		}
		// Expired grants are withdrawn too (their tokens may still be
		// recorded), but only live ones are reported as taken back.
		if g.Live(now) && !slices.Contains(withdrawn, g.Scope) {
			withdrawn = append(withdrawn, g.Scope)
		}
	}
	if len(withdrawn) == 0 {
		return nil, nil
	}
	var ev *store.AuditEvent
	if m != nil {
		ev = audit.NewConsentRevoked(m.Stamped(l.tenant, now), audit.ConsentRevokedFields{
			ConsentKey: k.audit(), Scopes: withdrawn, By: by, WholeAgent: scopes == nil && k.Resource == "",
		})
	}
	if err := l.st.RevokeConsents(ctx, l.filter(k), scopes, now, ev); err != nil {
		return nil, err
	}
	return withdrawn, nil
}

// ForUser returns every grant of a person that is live now, across agents
// and resources, ordered by agent, resource and scope.
func (l *Ledger) ForUser(ctx context.Context, userID string) ([]*store.ConsentGrant, error) {
	if userID == "" {
		return nil, errors.New("consent: a user is required")
	}
	grants, err := l.st.ListConsents(ctx, store.ConsentFilter{TenantID: l.tenant, UserID: userID})
	if err != nil {
		return nil, err
	}
	now := l.now()
	return slices.DeleteFunc(grants, func(g *store.ConsentGrant) bool { return !g.Live(now) }), nil
}

// SweepExpired finds consent that ran out without any request noticing (an
// agent that never came back) and records it: the expired grants are
// retired, each user, agent and resource with the event newEvent builds
// for its scopes, in one statement's worth of truth (store.ExpireConsents):
// a retired grant is not expired again and a grant renewed meanwhile is
// not retired, so each expiry is recorded once however many sweeps run at
// once (one per hub replica). Each consent.expired event is made with m
// (nil: none; a zero m.Time is the ledger's clock) and says the sweep
// noticed it. It returns how many grants it retired.
func (l *Ledger) SweepExpired(ctx context.Context, m *audit.Meta) (int, error) {
	now := l.now()
	var ev func(store.ConsentFilter, []string) *store.AuditEvent
	if m != nil {
		ev = func(f store.ConsentFilter, scopes []string) *store.AuditEvent {
			k := Key{UserID: f.UserID, ClientID: f.ClientID, Resource: f.Resource}
			return audit.NewConsentExpired(m.Stamped(l.tenant, now), audit.ConsentExpiredFields{ConsentKey: k.audit(), Scopes: scopes, NoticedBy: "sweep"})
		}
	}
	return l.st.ExpireConsents(ctx, l.tenant, now, ev)
}
