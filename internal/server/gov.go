package server

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// Registration governance (docs/design.md, "Registration governance"):
// rate limits and size limits on dynamic registration, the quarantine of
// pending clients, the renewal of a client's last use on issuance and the
// expiry of unused self-registered clients.

// Fixed limits on a dynamic registration. The oauth package's own limits
// (2000-character URIs, 200-character names) apply to every registration;
// these are tighter, for registrations anyone may send.
const (
	// maxRegistrationBody bounds a registration request's body.
	maxRegistrationBody = 16 << 10
	// maxDynamicRedirectURIs bounds the redirect URIs of a dynamic
	// registration.
	maxDynamicRedirectURIs = 10
)

// Defaults of RegistrationConfig.
const (
	defaultRegistrationsPerIP = 60
	defaultRegistrations      = 1000
	defaultClientExpiry       = 30 * 24 * time.Hour
	// touchInterval is how stale a client's recorded last use may get: an
	// issuance moves it forward only when it is older than this, so the
	// token path rarely writes the client row.
	touchInterval = time.Hour
	// pruneBatch bounds the clients one expiry pass removes.
	pruneBatch = 1000
)

// registrationLimiter limits registrations per client address (an IPv6
// address counts as its /64) and in total, with token buckets of
// golang.org/x/time/rate driven by the server's clock.
type registrationLimiter struct {
	now   func() time.Time
	total *rate.Limiter

	mu    sync.Mutex
	limit rate.Limit
	burst int
	max   int
	perIP map[string]*rate.Limiter
}

// registrationLimiterMax bounds the per-address map. When it is full,
// buckets that have refilled are dropped (they equal fresh ones), and then
// arbitrary ones: an address whose bucket is dropped early gains a few
// registrations, which the total limit still bounds.
const registrationLimiterMax = 1 << 16

func newRegistrationLimiter(perIP, total LoginLimit, now func() time.Time, max int) *registrationLimiter {
	return &registrationLimiter{
		now:   now,
		total: rate.NewLimiter(perSecond(total), total.Burst),
		limit: perSecond(perIP),
		burst: perIP.Burst,
		max:   max,
		perIP: make(map[string]*rate.Limiter),
	}
}

func perSecond(l LoginLimit) rate.Limit { return rate.Limit(l.PerMinute / 60) }

// allow takes one registration from addr's bucket and the total bucket. It
// reports false, with how long until one would be allowed, when either is
// empty; a refused registration takes nothing from either.
func (l *registrationLimiter) allow(addr string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	lim, ok := l.perIP[addr]
	if !ok {
		if len(l.perIP) >= l.max {
			l.evictLocked(now)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.perIP[addr] = lim
	}
	l.mu.Unlock()
	ip := lim.ReserveN(now, 1)
	if wait := delay(ip, now); wait > 0 {
		return false, wait
	}
	all := l.total.ReserveN(now, 1)
	if wait := delay(all, now); wait > 0 {
		ip.CancelAt(now)
		return false, wait
	}
	return true, 0
}

// delay is how long a reservation would wait; a reservation that must
// wait is cancelled (nothing is taken), one that can never succeed waits
// "forever" (an hour, as Retry-After).
func delay(r *rate.Reservation, now time.Time) time.Duration {
	if !r.OK() {
		return time.Hour
	}
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
	}
	return d
}

func (l *registrationLimiter) evictLocked(now time.Time) {
	for k, lim := range l.perIP {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.perIP, k)
		}
	}
	for k := range l.perIP {
		if len(l.perIP) < l.max {
			return
		}
		delete(l.perIP, k)
	}
}

// limitRegistration answers a registration over its address's or the total
// rate limit: 429 with Retry-After in whole seconds (RFC 6585 §4).
func (s *Server) limitRegistration(r *http.Request) *oauth.Error {
	ok, wait := s.regLimit.allow(addressKey(clientIP(r)))
	if ok {
		return nil
	}
	wait = time.Duration(math.Ceil(wait.Seconds())) * time.Second
	return oauth.ErrTooManyRequests(wait, "too many registrations; retry later")
}

// dynamicLimits are the limits a dynamic registration meets beyond those of
// every registration.
func dynamicLimits(m *oauth.ClientMetadata) *oauth.Error {
	if len(m.RedirectURIs) > maxDynamicRedirectURIs {
		return oauth.ErrInvalidRedirectURI("at most %d redirect URIs may be registered", maxDynamicRedirectURIs)
	}
	return nil
}

// pendingPage tells the person at /authorize that the application waits
// for an administrator's approval, and what to do about it.
func (s *Server) pendingPage(w http.ResponseWriter, c *store.Client) {
	render(w, s.pages.error_, http.StatusForbidden, errorView{
		Title: "This application is waiting for an administrator's approval",
		Message: fmt.Sprintf("%q registered itself with this server, and an administrator must approve it before anyone can sign in to it. "+
			"Nothing was shared with it. Ask your administrator to review it; they can approve it with: agentid clients approve %s",
			clientName(c), c.ID),
		Detail: oauth.CodeAccessDenied + ": the client is pending approval",
	})
}

// errClientPending is the token endpoint's answer to a pending client.
var errClientPending = oauth.ErrInvalidClient("the client is waiting for an administrator's approval")

// touchNotes remembers when this process last recorded each client's use,
// so that a client whose row lags (another replica touched it, or the
// cache is older) is not touched on every issuance.
type touchNotes struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// maxTouchNotes bounds the notes; a full map is emptied (the worst case is
// one more write per client).
const maxTouchNotes = 10000

// touch returns the Issuance.Touch of an issuance to c at now: set when
// the client's last use, as the row and this process know it, is older
// than touchInterval.
func (s *Server) touch(c *store.Client, now time.Time) *store.ClientTouch {
	if now.Sub(c.LastUsedAt) < touchInterval {
		return nil
	}
	s.touches.mu.Lock()
	defer s.touches.mu.Unlock()
	if at, ok := s.touches.m[c.ID]; ok && now.Sub(at) < touchInterval {
		return nil
	}
	return &store.ClientTouch{TenantID: s.tenant, ClientID: c.ID, At: now}
}

// touched notes a touch that was stored.
func (s *Server) touched(t *store.ClientTouch) {
	if t == nil {
		return
	}
	s.touches.mu.Lock()
	defer s.touches.mu.Unlock()
	if s.touches.m == nil || len(s.touches.m) >= maxTouchNotes {
		s.touches.m = make(map[string]time.Time)
	}
	s.touches.m[t.ClientID] = t.At
}

// ExpireClients removes the self-registered clients (dynamic registration
// and Client ID Metadata Documents) unused for the configured client
// expiry, each with a client.expired event; never one holding a live
// token or consent (store.PruneClients). It is the hub's hourly job.
func (s *Server) ExpireClients(ctx context.Context) error {
	if s.cfg.Registration.ClientExpiry < 0 {
		return nil
	}
	for {
		gone, err := clients.Prune(ctx, s.st, clients.PruneOptions{
			TenantID: s.tenant, UnusedFor: s.cfg.Registration.ClientExpiry, Now: s.now(), Limit: pruneBatch,
		})
		for _, c := range gone {
			s.clients.invalidate(c.ID)
		}
		if err != nil || len(gone) < pruneBatch {
			return err
		}
	}
}
