package server

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// authz is a validated authorization request.
type authz struct {
	req         *oauth.AuthorizeRequest
	query       url.Values // the request's parameters, to carry through login and consent
	client      *store.Client
	redirectURI string
	resource    *store.Resource
	scopes      []string // requested (or defaulted), all offered by the resource
	// oidc are the OpenID Connect scopes asked (openid, and profile beside
	// it): protocol scopes, kept out of resource and policy resolution.
	oidc []string
}

// errorRedirect answers an authorization request the hub refuses before
// the person has decided anything. For a client an administrator
// registered, the error goes to its redirect URI with state and iss (RFC
// 6749 §4.1.2.1, RFC 9207 §2). Anyone can register a redirect URI through
// dynamic registration, so for a self-registered client the hub shows its
// own error page instead: bouncing a browser there would make the hub an
// open redirector for any URI an attacker registers (RFC 9700 §4.11.2). A
// signed-in person gets a link back to the application on that page, to
// follow knowing where it leads.
func (s *Server) errorRedirect(w http.ResponseWriter, r *http.Request, a *authz, e *oauth.Error) {
	if trustedRedirect(a.client) {
		s.sendError(w, r, a, e)
		return
	}
	v := errorView{Title: "This request cannot be completed", Message: refusalMessage(e), Detail: e.Code}
	if e.Description != "" {
		v.Detail += ": " + e.Description
	}
	if sess, _ := s.currentSession(r); sess != nil {
		v.App = clientName(a.client)
		v.BackURL = oauth.ErrorRedirect(a.redirectURI, e, a.req.State, s.issuer)
		v.BackHost = redirectHost(a.redirectURI)
	}
	render(w, s.pages.error_, http.StatusBadRequest, v)
}

// sendError sends an error to the client's redirect URI with state and iss
// (RFC 6749 §4.1.2.1, RFC 9207 §2), without condition: for answers the
// signed-in person chose (a denial) or saw first.
func (s *Server) sendError(w http.ResponseWriter, r *http.Request, a *authz, e *oauth.Error) {
	http.Redirect(w, r, oauth.ErrorRedirect(a.redirectURI, e, a.req.State, s.issuer), http.StatusFound)
}

// TagSkipContinue is the client tag with which an administrator lets a
// public native client be re-authorized without the "Continue" page.
const TagSkipContinue = "skip-continue"

// confirmsReauthorization reports whether an authorization with nothing new
// to approve still needs the person's click. A public client proves nothing
// about itself, and a loopback or private-use redirect URI can be claimed by
// any program on the device (RFC 8252 §8.6): without the click, anyone who
// knows the client_id of an app the person once approved gets a code for it.
func confirmsReauthorization(c *store.Client, redirectURI string) bool {
	return c.Public() && oauth.IsNativeRedirect(redirectURI) && !slices.Contains(c.Tags, TagSkipContinue)
}

// trustedRedirect reports whether the hub may send the browser to c's
// redirect URI without the person's say: an administrator registered it.
func trustedRedirect(c *store.Client) bool {
	return c.RegistrationMethod == store.RegistrationManual
}

// refusalMessage says in plain words why an authorization request was
// refused; the OAuth error follows as a detail for the developer.
func refusalMessage(e *oauth.Error) string {
	switch e.Code {
	case oauth.CodeInvalidScope:
		return "The application asked for a permission this server does not offer. Nothing was shared with it."
	case oauth.CodeInvalidTarget:
		return "The application asked for access to a service this server does not know. Nothing was shared with it."
	case oauth.CodeLoginRequired:
		return "The application asked to continue without showing you a sign-in page, but you are not signed in here."
	default:
		return "The application sent a request this server cannot accept. Nothing was shared with it."
	}
}

// clientName is how pages name a client.
func clientName(c *store.Client) string {
	if c.RegistrationMethod == store.RegistrationCIMD {
		// The document's name is free text anyone can choose: alone it
		// never names the application (see consentPage).
		return cimdHost(c)
	}
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// redirectHost is how pages name where a redirect URI leads: its host, or
// its private-use scheme.
func redirectHost(uri string) string {
	ru, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	if h := ru.Hostname(); h != "" {
		return h
	}
	return ru.Scheme + ":"
}

// checkAuthorize validates an authorization request. Problems with the
// client or the redirect URI get an error page and are never redirected
// (RFC 6749 §4.1.2.1); everything else is redirected to the client. It
// returns nil when it has written the response.
func (s *Server) checkAuthorize(w http.ResponseWriter, r *http.Request, q url.Values) *authz {
	ctx := r.Context()
	req, perr := oauth.ParseAuthorizeRequest(q)
	if req.ClientID == "" {
		s.pages.errorPage(w, http.StatusBadRequest, "Missing client", "The request does not say which application is asking (client_id is missing).")
		return nil
	}
	found, err := s.lookupClient(ctx, r, req.ClientID, false, false)
	// A metadata document is checked against the redirect URI on every
	// request; when a cached one does not list it, the client may just
	// have added it, so the document is fetched again (at most every
	// cimdRefetchGap).
	if err == nil && !found.fetched && found.client.RegistrationMethod == store.RegistrationCIMD &&
		req.RedirectURI != "" && !oauth.MatchRedirectURI(found.client.RedirectURIs, req.RedirectURI) {
		found, err = s.lookupClient(ctx, r, req.ClientID, false, true)
	}
	c := found.client
	var ce *cimdError
	switch {
	case errors.As(err, &ce):
		s.cimdPage(w, ce)
		return nil
	case errors.Is(err, store.ErrNotFound) || (err == nil && c.Disabled):
		s.pages.errorPage(w, http.StatusBadRequest, "Unknown application", "The application that sent you here is not registered with this server, or has been disabled.")
		return nil
	case err != nil:
		s.internalErrorPage(w, r, err)
		return nil
	}
	if c.Pending() {
		s.pendingPage(w, c)
		return nil
	}
	a := &authz{req: req, query: q, client: c}
	switch {
	case req.RedirectURI == "" && len(c.RedirectURIs) == 1:
		a.redirectURI = c.RedirectURIs[0]
	case req.RedirectURI == "":
		s.pages.errorPage(w, http.StatusBadRequest, "Missing redirect URI", "The application registered several redirect URIs, so the request must name one.")
		return nil
	case oauth.MatchRedirectURI(c.RedirectURIs, req.RedirectURI):
		a.redirectURI = req.RedirectURI
	case c.RegistrationMethod == store.RegistrationCIMD:
		s.pages.errorPage(w, http.StatusBadRequest, "Redirect URI not registered", "The address this request wants to send you back to is not listed in the application's metadata document ("+documentHost(c.ID)+"), so agentid will not send you there.")
		return nil
	default:
		s.pages.errorPage(w, http.StatusBadRequest, "Redirect URI not registered", "The address this request wants to send you back to is not registered for the application, so agentid will not send you there.")
		return nil
	}
	if perr != nil {
		s.errorRedirect(w, r, a, perr)
		return nil
	}
	if !slices.Contains(c.GrantTypes, oauth.GrantAuthorizationCode) {
		s.errorRedirect(w, r, a, oauth.NewError(oauth.CodeUnauthorizedClient, "the client is not registered for the authorization code grant"))
		return nil
	}
	a.oidc, req.Scopes = splitOIDC(req.Scopes)
	res, oe := s.resolveResource(ctx, c, req.Resources, req.Scopes)
	if oe != nil {
		s.authorizeError(w, r, a, oe)
		return nil
	}
	a.resource = res
	scopes, oe := scopesOnResource(c, res, req.Scopes)
	if oe != nil {
		s.authorizeError(w, r, a, oe)
		return nil
	}
	if len(scopes) == 0 {
		s.errorRedirect(w, r, a, oauth.ErrInvalidScope("no scope was requested and the client has none registered"))
		return nil
	}
	a.scopes = scopes
	return a
}

// authorizeError answers a request whose client and redirect URI are
// valid: a protocol error goes back to the client, a server error is a page.
func (s *Server) authorizeError(w http.ResponseWriter, r *http.Request, a *authz, oe *oauth.Error) {
	if oe.Code == oauth.CodeServerError {
		s.internalErrorPage(w, r, errors.Unwrap(oe))
		return
	}
	s.errorRedirect(w, r, a, oe)
}

// allowedScopes asks the central policy which requested scopes this user may
// grant this client; the consent screen never offers any other. refused
// explains the scopes the request named that will not be granted (a
// request naming none asks for the client's registered scopes, and
// policy's cut of those is no news to anyone).
func (s *Server) allowedScopes(ctx context.Context, r *http.Request, a *authz, u *store.User, sess *store.Session) (allowed []string, refused []refusal, err error) {
	p := &principal{client: a.client, user: u, authTime: sess.AuthTime}
	granted, details, err := s.decideScopes(ctx, r, oauth.GrantAuthorizationCode, p, a.resource, a.scopes)
	if err != nil || len(granted) == len(a.scopes) || len(a.req.Scopes) == 0 && len(granted) > 0 {
		return granted, nil, err
	}
	refused, err = s.refusals(ctx, a, u, granted, details)
	return granted, refused, err
}

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The authorization request could not be read.")
			return
		}
		q = r.PostForm
	}
	a := s.checkAuthorize(w, r, q)
	if a == nil {
		return
	}
	ctx := r.Context()
	sess, u := s.currentSession(r)
	prompt := a.req.Prompt
	if sess == nil || !s.freshLogin(r, sess, a.req) {
		if slices.Contains(prompt, "none") {
			s.errorRedirect(w, r, a, oauth.NewError(oauth.CodeLoginRequired, "the user is not logged in"))
			return
		}
		s.redirectToLogin(w, r, a)
		return
	}
	allowed, refused, err := s.allowedScopes(ctx, r, a, u, sess)
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	snap, err := s.ledger.Snapshot(ctx, consent.Key{UserID: u.ID, ClientID: a.client.ID, Resource: a.resource.URI})
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	if len(promptedScopes(allowed, snap, prompt)) == 0 {
		if len(refused) > 0 {
			// Nothing left to approve, and something asked for will not be
			// granted: issuing the rest silently would send the client
			// round again for the same refusal. The person sees why and
			// takes the client back an invalid_scope naming it.
			if slices.Contains(prompt, "none") {
				s.sendError(w, r, a, refusedError(refused))
				return
			}
			v := s.consentPage(w, r, a, u, allowed, snap, "")
			v.Refused = refused
			s.renderRefused(w, v, a, refused)
			return
		}
		if len(allowed) == 0 {
			s.errorRedirect(w, r, a, oauth.ErrInvalidScope("none of the requested scopes may be granted to this application"))
			return
		}
		if !confirmsReauthorization(a.client, a.redirectURI) {
			// Everything asked for is already granted: no prompt fatigue.
			s.issueCode(w, r, a, u, sess, allowed)
			return
		}
		if slices.Contains(prompt, "none") {
			s.sendError(w, r, a, oauth.NewError(oauth.CodeInteractionRequired, "the user must confirm the authorization"))
			return
		}
		render(w, s.pages.continue_, http.StatusOK, s.consentPage(w, r, a, u, allowed, snap, "Continue?"))
		return
	}
	if slices.Contains(prompt, "none") {
		s.sendError(w, r, a, oauth.NewError(oauth.CodeConsentRequired, "the user has not granted the requested scopes"))
		return
	}
	v := s.consentPage(w, r, a, u, allowed, snap, "Allow access?")
	v.Refused = refused
	render(w, s.pages.consent, http.StatusOK, v)
}

// issueCode stores a new authorization code and redirects to the client.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, a *authz, u *store.User, sess *store.Session, scopes []string) {
	now := s.now()
	handle, err := token.NewHandle(s.rand, "")
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	code := &store.AuthCode{
		Hash: token.Hash(handle), TenantID: s.tenant, GrantID: token.NewID(s.rand), ClientID: a.client.ID, UserID: u.ID,
		RedirectURI: a.redirectURI, Scopes: append(slices.Clone(a.oidc), scopes...), Resource: a.resource.URI,
		CodeChallenge: a.req.CodeChallenge, CodeChallengeMethod: a.req.CodeChallengeMethod, Nonce: a.req.Nonce,
		AuthTime: sess.AuthTime, CreatedAt: now, ExpiresAt: now.Add(s.cfg.AuthCodeTTL),
	}
	ev := audit.NewCodeIssued(s.meta(r).WithAgent(a.client), audit.CodeIssuedFields{ClientID: a.client.ID, UserID: u.ID, Resource: a.resource.URI, Scopes: scopes, GrantID: code.GrantID})
	if err := s.st.CreateAuthCode(r.Context(), code, ev); err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	http.Redirect(w, r, oauth.SuccessRedirect(a.redirectURI, handle, a.req.State, s.issuer), http.StatusFound)
}

// reauthWindow is how recent a sign-in satisfies a max_age below it on the
// way back from the sign-in the request caused, so that the request does
// not loop back to the login page.
const reauthWindow = time.Minute

// freshLogin reports whether the session's sign-in is recent enough for req
// (OpenID Connect Core §3.1.2.1): with prompt=login none is (the person
// signs in again whatever the session), with max_age=N one at most N
// seconds old, otherwise any.
func (s *Server) freshLogin(_ *http.Request, sess *store.Session, req *oauth.AuthorizeRequest) bool {
	switch {
	case req.HasPrompt(oauth.PromptLogin):
		return false
	case req.MaxAge >= 0:
		return s.now().Sub(sess.AuthTime) <= time.Duration(req.MaxAge)*time.Second
	}
	return true
}

// redirectToLogin sends the browser to the login page, which comes back to
// the request once the person has signed in. The way back no longer asks
// for a sign-in: prompt=login is dropped from it and a max_age below
// reauthWindow raised to it, as the sign-in it returns from satisfies both.
func (s *Server) redirectToLogin(w http.ResponseWriter, r *http.Request, a *authz) {
	q := maps.Clone(a.query)
	if a.req.HasPrompt(oauth.PromptLogin) {
		rest := slices.DeleteFunc(slices.Clone(a.req.Prompt), func(p string) bool { return p == oauth.PromptLogin })
		if q.Del("prompt"); len(rest) > 0 {
			q.Set("prompt", strings.Join(rest, " "))
		}
	}
	if win := int(reauthWindow / time.Second); a.req.MaxAge >= 0 && a.req.MaxAge < win {
		q.Set("max_age", strconv.Itoa(win))
	}
	back := "/authorize?" + q.Encode()
	login := "/login?return_to=" + url.QueryEscape(back)
	// The login page routes a hint whose email domain is a connector's
	// straight to it.
	if hint := cleanHint(a.query.Get("login_hint")); hint != "" {
		login += "&login_hint=" + url.QueryEscape(hint)
	}
	http.Redirect(w, r, login, http.StatusSeeOther)
}

func (s *Server) internalErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "page failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
	s.pages.errorPage(w, http.StatusInternalServerError, "Something went wrong", "agentid could not complete the request. Try again in a moment. Reference: "+requestID(r.Context()))
}
