package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// promptedScopes are the scopes the consent screen asks about: those of
// allowed without live consent, or all of them when the client asked for
// prompt=consent (OpenID Connect Core §3.1.2.1).
func promptedScopes(allowed []string, snap *consent.Snapshot, prompt []string) []string {
	if slices.Contains(prompt, "consent") {
		return slices.Clone(allowed)
	}
	live := snap.Live(allowed)
	return slices.DeleteFunc(slices.Clone(allowed), func(sc string) bool { return slices.Contains(live, sc) })
}

// consentMenu is the consent screen's choice of durations, with the one
// preselected by trust (see ConsentPreselect): a person who clicks Allow
// without looking grants an unverified agent, or a new sensitive scope,
// less than the resource's default.
func (s *Server) consentMenu(a *authz, allowed, prompted []string, snap *consent.Snapshot) consent.Menu {
	def := a.resource.ConsentDefaultTTL
	if def <= 0 {
		def = consent.DefaultTTL
	}
	if !s.trustedAgent(a.client) {
		def = min(def, s.cfg.ConsentPreselect.SelfRegistered)
	}
	stepUp := len(snap.Live(allowed)) > 0
	sensitive := slices.ContainsFunc(a.resource.Scopes, func(sc store.Scope) bool {
		return sc.Sensitive && slices.Contains(prompted, sc.Name)
	})
	if stepUp && sensitive {
		def = min(def, s.cfg.ConsentPreselect.StepUpSensitive)
	}
	return consent.MenuFor(a.resource.ConsentMaxTTL, def)
}

// trustedAgent reports whether an administrator vouched for the agent: it
// registered it, tagged it "trusted", or (a Client ID Metadata Document
// client) trusted its domain.
func (s *Server) trustedAgent(c *store.Client) bool {
	switch {
	case c.RegistrationMethod == store.RegistrationManual, slices.Contains(c.Tags, "trusted"):
		return true
	case c.RegistrationMethod == store.RegistrationCIMD:
		return s.policy.DomainTrust(cimdHost(c)) == store.DomainTrusted
	}
	return false
}

// accessTTL is the lifetime of the resource's access tokens.
func (s *Server) accessTTL(res *store.Resource) time.Duration {
	if res.AccessTokenTTL > 0 {
		return min(res.AccessTokenTTL, MaxAccessTokenTTL)
	}
	return s.cfg.AccessTokenTTL
}

// handleDecision receives the consent form. The person approves any subset
// of the prompted scopes for the chosen duration; an empty approval is a
// denial. The code then carries what was approved now plus what was already
// granted and not asked about again (the union, for step-up).
func (s *Server) handleDecision(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	if !s.checkCSRF(r) {
		s.pages.errorPage(w, http.StatusForbidden, "Form expired", "This form is no longer valid. Go back to the application and start again.")
		return
	}
	q, err := url.ParseQuery(r.PostForm.Get("request"))
	if err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The authorization request could not be read.")
		return
	}
	a := s.checkAuthorize(w, r, q)
	if a == nil {
		return
	}
	ctx := r.Context()
	sess, u := s.currentSession(r)
	if sess == nil {
		s.redirectToLogin(w, r, a)
		return
	}
	allowed, _, err := s.allowedScopes(ctx, r, a, u, sess)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	key := consent.Key{UserID: u.ID, ClientID: a.client.ID, Resource: a.resource.URI}
	snap, err := s.ledger.Snapshot(ctx, key)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	allow := r.PostForm.Get("decision") == "allow"
	prompted := promptedScopes(allowed, snap, a.req.Prompt)
	if len(allowed) > 0 && len(prompted) == 0 && allow {
		// Granted meanwhile (another tab): nothing left to decide.
		s.issueCode(w, r, a, u, sess, allowed)
		return
	}
	var approved []string
	if allow {
		for _, sc := range r.PostForm["scope"] {
			if slices.Contains(prompted, sc) && !slices.Contains(approved, sc) {
				approved = append(approved, sc)
			}
		}
	}
	if len(approved) == 0 {
		ev := audit.NewConsentDenied(s.meta(r).WithAgent(a.client), audit.ConsentDeniedFields{ConsentKey: consentKey(key), Scopes: prompted})
		if err := s.st.AppendAudit(ctx, ev); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		s.sendError(w, r, a, oauth.ErrAccessDenied("the user denied the request"))
		return
	}
	// The menu is re-checked here: a tampered form must not grant longer
	// than the resource allows.
	menu := s.consentMenu(a, allowed, prompted, snap)
	choice := menu.Default
	if v := r.PostForm.Get("duration"); v != "" {
		c, ok := consent.ParseChoice(v)
		if !ok || !menu.Allows(c) {
			s.pages.errorPage(w, http.StatusBadRequest, "Duration not offered", "The duration you chose is not offered for this service. Go back and choose one of those listed.")
			return
		}
		choice = c
	}
	if expired := snap.Expired(approved); len(expired) > 0 {
		// Consent that ran out without a token request noticing is recorded
		// now, before the new grant replaces it.
		xev := audit.NewConsentExpired(s.meta(r).WithAgent(a.client), audit.ConsentExpiredFields{ConsentKey: consentKey(key), Scopes: expired})
		if err := s.st.AppendAudit(ctx, xev); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
	}
	m := s.meta(r).WithAgent(a.client)
	if err := s.ledger.GrantFor(ctx, key, approved, choice, s.accessTTL(a.resource), a.resource.ConsentMaxTTL, &m); err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	// The agent and the person were read alive before the grant; one of
	// them may have been switched off meanwhile. Deprovisioning (and a
	// person's) disables first and then revokes every consent, so a grant
	// written after that revocation would outlive it: read again, from the
	// store, now that the grant is written, and take it back.
	if alive, err := s.alive(ctx, key.ClientID, key.UserID); err != nil || !alive {
		if err == nil {
			_, err = s.ledger.Revoke(ctx, key, approved, &m, "admin")
		}
		if err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		s.pages.errorPage(w, http.StatusBadRequest, "Not granted", "The application, or your account, was switched off by an administrator while you were deciding. Nothing was granted.")
		return
	}
	// On a prompt=consent screen already granted scopes are offered again:
	// unticking one while allowing the rest takes it back, with the same
	// cascade as revoking it from the account page.
	if withdrawn := snap.Live(slices.DeleteFunc(slices.Clone(prompted), func(sc string) bool { return slices.Contains(approved, sc) })); len(withdrawn) > 0 {
		if _, err := s.ledger.Revoke(ctx, key, withdrawn, &m, ""); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
	}
	if denied := slices.DeleteFunc(slices.Clone(prompted), func(sc string) bool { return slices.Contains(approved, sc) }); len(denied) > 0 {
		// A partial denial is recorded with the scopes refused.
		dev := audit.NewConsentDenied(m, audit.ConsentDeniedFields{ConsentKey: consentKey(key), Scopes: denied, Granted: approved})
		if err := s.st.AppendAudit(ctx, dev); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
	}
	live := snap.Live(allowed)
	scopes := slices.DeleteFunc(slices.Clone(allowed), func(sc string) bool {
		return !slices.Contains(approved, sc) && (slices.Contains(prompted, sc) || !slices.Contains(live, sc))
	})
	s.issueCode(w, r, a, u, sess, scopes)
}

type scopeView struct {
	Name        string
	Description string
	Sensitive   bool
	Granted     bool // consent is in force (shown as already granted)
	Checked     bool
	Expires     string // of a granted scope
	ExpiresISO  string
}

type durationView struct {
	Value   string
	Label   string
	Hint    string
	Checked bool
}

type consentView struct {
	Title        string
	CSRF         string
	Request      string
	ClientName   string
	ClientID     string
	Registration string // manual | dcr | cimd
	// ClientHost is the verified host of a CIMD client_id; with it set,
	// pages name the application by it and show ClientName (the
	// document's client_name, "" if none) only beside it.
	ClientHost   string
	RedirectHost string
	LocalOnly    bool
	ResourceName string
	ResourceURI  string
	Username     string
	// Via names the connector the person signed in through ("": a local
	// account).
	Via string
	// Scopes are asked about, each with a checkbox; Granted are in force
	// already and not asked about again.
	Scopes    []scopeView
	Granted   []scopeView
	Durations []durationView
	// Refused were asked for and will not be granted, with why.
	Refused []refusal
	// Identity says what signing the person in with OpenID Connect tells
	// the application about them ("": it asked for no sign-in).
	Identity string
}

// consentPage describes an authorization request for the consent and
// continue pages: who asks, for what, and what is asked now or granted
// already.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, a *authz, u *store.User, allowed []string, snap *consent.Snapshot, title string) consentView {
	v := consentView{
		Title:        title,
		CSRF:         s.csrfToken(w, r),
		Request:      a.query.Encode(),
		ClientName:   clientName(a.client),
		ClientID:     a.client.ID,
		Registration: a.client.RegistrationMethod,
		ResourceName: a.resource.Name,
		ResourceURI:  a.resource.URI,
		Username:     u.Username,
		Via:          s.viaConnector(r.Context(), u),
	}
	if v.ResourceName == "" {
		v.ResourceName = a.resource.URI
	}
	if ru, err := url.Parse(a.redirectURI); err == nil {
		v.RedirectHost = redirectHost(a.redirectURI)
		v.LocalOnly = oauth.IsLoopbackHost(ru.Hostname())
	}
	if a.client.RegistrationMethod == store.RegistrationCIMD {
		// A Client ID Metadata Document client is known by the host its
		// document was fetched from; the name in the document is shown
		// only beside it (MCP authorization, client ID metadata documents:
		// phishing).
		v.ClientHost, v.ClientName = cimdHost(a.client), displayName(a.client.Name)
	}
	v.Identity = identityNote(a.oidc)
	v.Identity = identityNote(a.oidc)
	prompted := promptedScopes(allowed, snap, a.req.Prompt)
	live := snap.Live(allowed)
	for _, name := range allowed {
		i := slices.IndexFunc(a.resource.Scopes, func(sc store.Scope) bool { return sc.Name == name })
		sc := a.resource.Scopes[i]
		sv := scopeView{Name: name, Description: sc.Description, Sensitive: sc.Sensitive, Granted: slices.Contains(live, name)}
		if sv.Description == "" {
			sv.Description = name
		}
		if sv.Granted {
			g := snap.Grant(name)
			sv.Expires, sv.ExpiresISO = until(g.ExpiresAt, snap.At), isoTime(g.ExpiresAt)
		}
		sv.Checked = sv.Granted || !sc.Sensitive
		if slices.Contains(prompted, name) {
			v.Scopes = append(v.Scopes, sv)
		} else {
			v.Granted = append(v.Granted, sv)
		}
	}
	menu := s.consentMenu(a, allowed, prompted, snap)
	for _, c := range menu.Offered {
		d := durationView{Value: string(c), Label: c.Label(), Checked: c == menu.Default}
		switch c {
		case consent.ForSession:
			d.Hint = fmt.Sprintf("Ends when the access it gets now expires, in %s. It cannot be renewed.", humanDuration(s.accessTTL(a.resource)))
		case consent.UntilRevoked:
			d.Hint = "Until you take it back on your account page."
		}
		v.Durations = append(v.Durations, d)
	}
	return v
}

// cimdHost is the verified host of a Client ID Metadata Document client:
// the host of its client_id URL, or the whole client_id should it name
// none (the store holds only ids the fetch verified).
func cimdHost(c *store.Client) string {
	if h := policy.AgentFromClient(c).VerifiedDomain; h != "" {
		return h
	}
	return c.ID
}

// displayName makes a client-chosen name safe to show beside other text:
// bidirectional controls, which could reorder what follows them, and
// other invisible format characters are dropped, and white space is
// collapsed.
func displayName(name string) string {
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unicode.Is(unicode.Cf, r), unicode.IsControl(r):
			return -1
		}
		return r
	}, name)
	return strings.Join(strings.Fields(name), " ")
}

// humanDuration writes d in the largest whole unit that fits.
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int64(d/time.Minute), "minute")
	default:
		return plural(int64(d/time.Second), "second")
	}
}

// until describes an expiry for people: "until you revoke it" for none,
// otherwise the time in UTC with the time left.
func until(exp, now time.Time) string {
	if exp.IsZero() {
		return "until you revoke it"
	}
	left := exp.Sub(now).Round(time.Minute)
	if left < time.Minute {
		left = time.Minute
	}
	var rel string
	switch {
	case left >= 48*time.Hour:
		rel = humanDuration(left.Truncate(24 * time.Hour))
	case left >= 2*time.Hour:
		rel = humanDuration(left.Truncate(time.Hour))
	default:
		rel = humanDuration(left)
	}
	return "until " + displayTime(exp) + " (in " + rel + ")"
}

// displayTime is how pages show an instant. Pages carry no script, so the
// time is in UTC and says so.
func displayTime(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") }

// isoTime is the machine-readable form for <time datetime>.
func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// SweepExpiredConsent records consent that ran out while its agent never
// came back: one consent.expired event per user, agent and resource. serve
// runs it periodically.
func (s *Server) SweepExpiredConsent(ctx context.Context) error {
	_, err := s.ledger.SweepExpired(ctx, &audit.Meta{TenantID: s.tenant, Time: s.now()})
	return err
}

// consentKey names a consent key in an audit event.
func consentKey(k consent.Key) audit.ConsentKey {
	return audit.ConsentKey{ClientID: k.ClientID, UserID: k.UserID, Resource: k.Resource}
}

// identityNote says in words what the OpenID Connect scopes oidc let the
// application learn about the person: their account id always, their name
// and username with profile, their email address with email.
func identityNote(oidc []string) string {
	if !slices.Contains(oidc, scopeOpenID) {
		return ""
	}
	parts := []string{"your account id"}
	if slices.Contains(oidc, scopeProfile) {
		parts = append(parts, "your name and username")
	}
	if slices.Contains(oidc, scopeEmail) {
		parts = append(parts, "your email address")
	}
	switch len(parts) {
	case 1:
		return "Who you are: " + parts[0] + "."
	case 2:
		return "Who you are: " + parts[0] + " and " + parts[1] + "."
	}
	return "Who you are: " + strings.Join(parts[:len(parts)-1], ", ") + ", and " + parts[len(parts)-1] + "."
}
