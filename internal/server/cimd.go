package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/fetch"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
// MCP 2026-07-28 client registration): a client_id that is an https URL
// names a JSON document the hub fetches — through the SSRF-safe fetcher —
// parses (oauth.ParseClientMetadataDocument) and registers as a client of
// method cimd (clients.SyncDocument), so that the rest of the hub (policy,
// consent, tokens, the inventory) sees an ordinary stored client.
//
// Freshness: a document is used for clamp(its HTTP freshness, 5m, 24h) after
// it was fetched; a failed fetch or an invalid document is never cached: a
// stale document that cannot be fetched, or that turned invalid, leaves its
// stored client unused until a valid document is fetched again.
// When a request does not validate against a cached document — a
// redirect_uri not in it, an assertion its keys do not verify — the
// document is fetched again once, at most every 30 s per URL, since the
// client may have just changed it. A blocked domain is refused before any
// fetch.
const (
	cimdMinTTL     = 5 * time.Minute
	cimdMaxTTL     = 24 * time.Hour
	cimdRefetchGap = 30 * time.Second
	// cimdMaxEntries bounds the freshness table under a flood of distinct
	// URLs; when full it is emptied (the documents are fetched again).
	cimdMaxEntries = 10000
)

// cimdCache remembers, per document URL, until when the stored client is
// fresh, and serialises fetches of one URL so that concurrent requests wait
// for one fetch rather than each making their own.
type cimdCache struct {
	mu sync.Mutex
	m  map[string]*cimdEntry
}

type cimdEntry struct {
	mu sync.Mutex // held while fetching
	// fresh is until when the stored client is the document's, fetched
	// when the document was last fetched (valid or not); both Unix
	// nanoseconds, read without mu by lookups that need no fetch.
	fresh, fetched atomic.Int64
}

// evictLocked makes room: first the entries whose document is no longer
// fresh and that no fetch holds (a flood of unknown URLs leaves only
// such entries), and only if that frees nothing, everything.
func (c *cimdCache) evictLocked(now time.Time) {
	for id, e := range c.m {
		if time.Unix(0, e.fresh.Load()).After(now) || !e.mu.TryLock() {
			continue
		}
		delete(c.m, id)
		e.mu.Unlock()
	}
	if len(c.m) >= cimdMaxEntries {
		clear(c.m)
	}
}

func (c *cimdCache) entry(id string, now time.Time) *cimdEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*cimdEntry)
	}
	if len(c.m) >= cimdMaxEntries {
		c.evictLocked(now)
	}
	e := c.m[id]
	if e == nil {
		e = &cimdEntry{}
		c.m[id] = e
	}
	return e
}

// cimdTTL is how long a fetched document is used: its HTTP freshness
// (fetch.Response.TTL) clamped to 5m..24h.
func cimdTTL(ttl time.Duration) time.Duration {
	return min(max(ttl, cimdMinTTL), cimdMaxTTL)
}

// cimdError is why the client of a metadata-document client_id could not
// be resolved. Its message is fit for the hub's error page and for an
// invalid_client description.
type cimdError struct {
	reason string // "blocked", "fetch", "invalid"
	host   string
	msg    string
	cause  error
	wait   time.Duration // cimdThrottled: when to retry
}

func (e *cimdError) Error() string { return e.msg }
func (e *cimdError) Unwrap() error { return e.cause }

// Reasons of a cimdError, also the client.auth_failed reasons at /token.
const (
	cimdBlocked = "blocked"
	cimdFetch   = "fetch"
	cimdInvalid = "invalid"
	// cimdThrottled: the first sight of a document, which registers a
	// client, is over the registration rate limits of the request's
	// address or of the hub.
	cimdThrottled = "throttled"
)

// lookup is how a lookup found the client.
type lookup struct {
	client *store.Client
	// fetched: the metadata document was fetched by this lookup, so a
	// second lookup would learn nothing new.
	fetched bool
}

// lookupClient finds the client a request names. An id that is not an
// https URL is looked up in the store (through the short-lived cache when
// cached is set, as the token endpoint does). An https URL is the client
// of a Client ID Metadata Document: fetched and registered as needed (see
// the rules above); refetch asks for the document to be fetched again
// even though it is fresh (a request did not validate against it), which
// happens at most every cimdRefetchGap per URL. It returns store.ErrNotFound
// for an unknown client (and for every https id while documents are
// disabled), a *cimdError when a document cannot be used, and other
// errors from the store.
func (s *Server) lookupClient(ctx context.Context, r *http.Request, id string, cached, refetch bool) (lookup, error) {
	get := func() (*store.Client, error) {
		if cached {
			return s.clients.get(id, func() (*store.Client, error) { return s.st.GetClient(ctx, s.tenant, id) })
		}
		return s.st.GetClient(ctx, s.tenant, id)
	}
	if !oauth.IsMetadataDocumentClientID(id) {
		c, err := get()
		return lookup{client: c}, err
	}
	// An administrator may register a client under a document's URL
	// (draft-ietf-oauth-client-id-metadata-document §7: pre-registration);
	// such a client is used as registered, never fetched.
	stored, err := get()
	if err == nil && stored.RegistrationMethod != store.RegistrationCIMD {
		return lookup{client: stored}, nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return lookup{}, err
	}
	firstSight := stored == nil
	if s.cfg.DisableCIMD {
		return lookup{}, store.ErrNotFound
	}
	if oe := oauth.ValidateMetadataDocumentURL(id); oe != nil {
		return lookup{}, &cimdError{reason: cimdInvalid, msg: oe.Description}
	}
	host := documentHost(id)
	domains, err := s.domains.get("", func() ([]*store.Domain, error) { return s.st.ListDomains(ctx, s.tenant) })
	if err != nil {
		return lookup{}, err
	}
	d := clients.MatchDomain(domains, host)
	if d != nil && d.Trust == store.DomainBlocked {
		return lookup{}, &cimdError{reason: cimdBlocked, host: host,
			msg: fmt.Sprintf("applications from %s are blocked by the administrator of this server", host)}
	}

	e := s.cimd.entry(id, s.now())
	asked := s.now()
	if c, ok, err := s.freshDocument(e, get, asked, refetch); ok || err != nil {
		return lookup{client: c}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Another request may have fetched the document while this one waited.
	if c, ok, err := s.freshDocument(e, get, asked, refetch); ok || err != nil {
		return lookup{client: c}, err
	}
	if firstSight {
		// A document never seen before registers a client, as a dynamic
		// registration does, and costs an outbound fetch: both count
		// against the registration limits, so that one address cannot
		// fill the store with clients from endless URLs on its own host or
		// make the hub fetch without bound.
		if ok, wait := s.regLimit.allow(addressKey(clientIP(r))); !ok {
			return lookup{}, &cimdError{reason: cimdThrottled, host: host, wait: wait,
				msg: fmt.Sprintf("too many new applications from this address; retry in %d seconds", int(math.Ceil(wait.Seconds())))}
		}
	}
	now := s.now()
	e.fetched.Store(now.UnixNano())
	// A failed fetch leaves the freshness as it was: a stale document
	// stays stale (nothing is cached), and a fresh one whose forced
	// re-fetch failed is still the last valid word of its client. An
	// invalid document ends it.
	resp, err := s.fetcher.Get(ctx, fetch.Request{URL: id, MaxBytes: oauth.MaxMetadataDocument, AllowTextPlain: d != nil && d.AllowTextPlain})
	if err != nil {
		if ctx.Err() != nil {
			return lookup{}, ctx.Err()
		}
		s.log.InfoContext(ctx, "metadata document not fetched", "client_id", id, "err", err)
		return lookup{}, &cimdError{reason: cimdFetch, host: host, cause: err,
			msg: "the client's metadata document could not be fetched (" + fetchProblem(err) + ")"}
	}
	md, oe := oauth.ParseClientMetadataDocument(id, resp.Body)
	if oe != nil {
		e.fresh.Store(0)
		return lookup{}, &cimdError{reason: cimdInvalid, host: host, cause: oe, msg: oe.Description}
	}
	synced, err := s.registrar.SyncDocument(ctx, &clients.Document{
		URL: id, Metadata: md, GrantTypes: supportedGrants(s.grants), IP: clientIP(r), Audit: s.meta(r),
	})
	var invalid *oauth.Error
	if errors.As(err, &invalid) {
		e.fresh.Store(0)
		return lookup{}, &cimdError{reason: cimdInvalid, host: host, cause: err,
			msg: "the client's metadata document is not acceptable: " + invalid.Description}
	}
	if err != nil {
		return lookup{}, err
	}
	s.clients.invalidate(id)
	e.fresh.Store(now.Add(cimdTTL(resp.TTL)).UnixNano())
	return lookup{client: synced.Client, fetched: true}, nil
}

// freshDocument returns the stored client of e's document when no fetch
// is needed: the document is fresh and either no refetch was asked for or
// the last fetch was too recent (or happened after the request asked). ok
// is false when the document must be fetched.
func (s *Server) freshDocument(e *cimdEntry, get func() (*store.Client, error), asked time.Time, refetch bool) (*store.Client, bool, error) {
	now := s.now()
	fresh, fetched := time.Unix(0, e.fresh.Load()), time.Unix(0, e.fetched.Load())
	if !now.Before(fresh) {
		return nil, false, nil
	}
	if refetch && now.Sub(fetched) >= cimdRefetchGap && !fetched.After(asked) {
		return nil, false, nil
	}
	c, err := get()
	if errors.Is(err, store.ErrNotFound) {
		// Deleted (by an admin or expiry) while the document was fresh:
		// register it again.
		return nil, false, nil
	}
	return c, err == nil, err
}

// documentHost is the host of a metadata document URL, lower-cased,
// without port or IPv6 brackets: what the domain list matches and what the
// pages show.
func documentHost(id string) string {
	u, err := url.Parse(id)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// fetchProblem says in words why a fetch failed, for a page and an error
// description. It never contains the body. Why a host could not be
// reached (no such name, a non-public address, a refused connection, a TLS
// failure, a timeout) is one phrase: anyone may name any URL, and the
// difference would map the hub's network — which internal names exist,
// which ports answer. The log has the detail.
func fetchProblem(err error) string {
	var fe *fetch.Error
	if !errors.As(err, &fe) {
		return "the request failed"
	}
	switch fe.Reason {
	case fetch.ReasonResolve, fetch.ReasonAddress, fetch.ReasonConnect, fetch.ReasonTLS, fetch.ReasonTimeout:
		return "its host " + fe.Host + " could not be reached over https at a public address"
	}
	return fe.Error()
}

// cimdPage renders the error page for a metadata-document client_id that
// could not be resolved at /authorize. Nothing is redirected: the hub does
// not know the client's redirect URIs.
func (s *Server) cimdPage(w http.ResponseWriter, e *cimdError) {
	switch e.reason {
	case cimdThrottled:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.wait.Seconds()))))
		s.pages.errorPage(w, http.StatusTooManyRequests, "Too many new applications",
			"This server has seen too many applications it did not know from your network recently. Nothing was shared. Try again in a few minutes.")
	case cimdBlocked:
		s.pages.errorPage(w, http.StatusForbidden, "Application blocked",
			"The administrator of this server has blocked applications from "+e.host+". Nothing was shared with it.")
	case cimdFetch:
		render(w, s.pages.error_, http.StatusBadGateway, errorView{
			Title:   "Application could not be identified",
			Message: "agentid could not read the description the application publishes about itself, so it cannot tell who is asking. Nothing was shared with it. Try again later.",
			Detail:  e.msg,
		})
	default:
		render(w, s.pages.error_, http.StatusBadRequest, errorView{
			Title:   "Application could not be identified",
			Message: "The description the application publishes about itself is not valid, so agentid cannot tell who is asking. Nothing was shared with it.",
			Detail:  e.msg,
		})
	}
}
