package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// Cookie names, before the __Host- prefix that cookieName adds over https.
const (
	sessionCookie = "agentid_session"
	// preSessionCookie binds the form tokens of a browser that has not
	// signed in (the login form itself).
	preSessionCookie = "agentid_csrf"
)

// cookieName is name with the __Host- prefix when cookies are Secure: a
// browser then accepts the cookie only if it is Secure, has Path=/ and no
// Domain, so a sibling subdomain cannot plant or shadow it (RFC 6265bis
// §4.1.3.2).
func (s *Server) cookieName(name string) string {
	if s.secure {
		return "__Host-" + name
	}
	return name
}

// cookieValue is the value of the named cookie, or "" when it is missing or
// has a length no handle of ours has.
func (s *Server) cookieValue(r *http.Request, name string) string {
	ck, err := r.Cookie(s.cookieName(name))
	if err != nil || len(ck.Value) < 32 || len(ck.Value) > 128 {
		return ""
	}
	return ck.Value
}

// setCookie sets one of the hub's cookies: HttpOnly, Path=/, no Domain,
// Secure when the hub is served over https.
func (s *Server) setCookie(w http.ResponseWriter, name, value string, sameSite http.SameSite, expires time.Time, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(name), Value: value, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: sameSite, Expires: expires, MaxAge: maxAge})
}

// currentSession returns the logged-in session and its user, or nils.
func (s *Server) currentSession(r *http.Request) (*store.Session, *store.User) {
	handle := s.cookieValue(r, sessionCookie)
	if handle == "" {
		return nil, nil
	}
	sess, err := s.st.GetSession(r.Context(), token.Hash(handle), s.now())
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(r.Context(), "session lookup failed", "request_id", requestID(r.Context()), "err", err)
		}
		return nil, nil
	}
	u, err := s.st.GetUser(r.Context(), sess.TenantID, sess.UserID)
	if err != nil || u.Disabled {
		return nil, nil
	}
	return sess, u
}

// csrfToken returns the form token of this browser, bound to its session:
// derived from the session cookie when there is one, else from the
// pre-session cookie, which it sets when missing. Forms carry it in a
// hidden field; the browser mux also runs cross-origin protection.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if v := s.csrfBinding(r); v != "" {
		return csrfFor(v)
	}
	v, err := token.NewHandle(s.rand, "")
	if err != nil {
		return ""
	}
	s.setCookie(w, preSessionCookie, v, http.SameSiteStrictMode, time.Time{}, 0)
	return csrfFor(v)
}

// checkCSRF reports whether the form's token was made for this browser's
// session (or, signed out, its pre-session): a token from another session,
// or from before a sign-in or sign-out, is refused.
func (s *Server) checkCSRF(r *http.Request) bool {
	form := r.PostForm.Get("csrf_token")
	v := s.csrfBinding(r)
	if v == "" || form == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(csrfFor(v)), []byte(form)) == 1
}

// csrfBinding is the secret a form token is derived from: the session
// handle, or the pre-session handle of a browser without a session.
func (s *Server) csrfBinding(r *http.Request) string {
	if v := s.cookieValue(r, sessionCookie); v != "" {
		return v
	}
	return s.cookieValue(r, preSessionCookie)
}

// csrfFor derives a form token from a session or pre-session handle. The
// handle is a 256-bit secret only this browser holds (in an HttpOnly
// cookie), so no one else can compute the token, and the token, which pages
// show, does not reveal the handle.
func csrfFor(handle string) string {
	sum := sha256.Sum256([]byte("agentid csrf v1\x00" + handle))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// safeReturn keeps login redirects on this server's own pages: an
// authorization request, the account and connections pages, the page
// a connect link opens (connections.go) and the admin console's pages.
func safeReturn(p string) string {
	if strings.HasPrefix(p, "/authorize?") || p == "/account" || p == "/connections" || isConnectPagePath(p) || isConsolePath(p) {
		if !strings.ContainsAny(p, "\\\r\n") {
			return p
		}
	}
	return "/account"
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	returnTo := safeReturn(r.URL.Query().Get("return_to"))
	hint := cleanHint(r.URL.Query().Get("login_hint"))
	// A login_hint (OpenID Connect Core §3.1.2.1) whose email domain
	// belongs to a connector goes straight to that connector.
	if s.routeToConnector(w, r, hint, returnTo) {
		return
	}
	s.renderLogin(w, r, http.StatusOK, loginView{CSRF: s.csrfToken(w, r), ReturnTo: returnTo, Username: truncate(hint, maxUsernameShown)})
}

// renderLogin renders the login page with the sign-in options: the
// enabled connectors and, unless turned off, the password form.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, v loginView) {
	if v.CSRF == "" {
		v.CSRF = s.csrfToken(w, r)
	}
	v.Local = !s.cfg.DisableLocalLogin
	cs, err := s.enabledConnectors(r.Context())
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	for _, c := range cs {
		v.Connectors = append(v.Connectors, connectorButton{ID: c.ID, Name: connectorLabel(c), URL: connectorStartURL(c, v.ReturnTo, "")})
		if len(c.EmailDomains) > 0 {
			v.EmailRouting = true
		}
	}
	s.pages.login(w, status, v)
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	ctx := r.Context()
	returnTo := safeReturn(r.PostForm.Get("return_to"))
	view := loginView{CSRF: s.csrfToken(w, r), ReturnTo: returnTo, Username: truncate(r.PostForm.Get("username"), maxUsernameShown)}
	if !s.checkCSRF(r) {
		view.Error = "This form expired. Please sign in again."
		s.renderLogin(w, r, http.StatusForbidden, view)
		return
	}
	username, pw := strings.TrimSpace(r.PostForm.Get("username")), r.PostForm.Get("password")
	view.Username = truncate(username, maxUsernameShown)
	// An address whose domain belongs to a connector signs in there,
	// whatever was typed as a password.
	if s.routeToConnector(w, r, username, returnTo) {
		return
	}
	if s.cfg.DisableLocalLogin {
		view.Error = "There is no sign-in option for this address. Use one of the buttons below."
		if !strings.Contains(username, "@") {
			view.Error = "Enter your work email address, or use one of the buttons below."
		}
		s.renderLogin(w, r, http.StatusUnauthorized, view)
		return
	}
	// Failures are counted per user name from one address, so that a
	// stranger elsewhere cannot lock a person out, and per address, so
	// that one address cannot try many names. Address first: a refused
	// address adds no (user, address) entry.
	addr := addressKey(clientIP(r))
	ipKey, okIP, retry := s.ipThrottle.begin(addr)
	if !okIP {
		s.throttled(w, r, view, retry)
		return
	}
	userKey, okUser, retry := s.userThrottle.begin(username + "\x00" + addr)
	if !okUser {
		s.ipThrottle.end(ipKey, false)
		s.throttled(w, r, view, retry)
		return
	}
	failed := false // only a wrong password or user counts; errors do not
	defer func() {
		s.userThrottle.end(userKey, failed)
		s.ipThrottle.end(ipKey, failed)
	}()
	u, err := s.st.GetUserByUsername(ctx, s.tenant, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internalErrorPage(w, r, err)
		return
	}
	if !s.acquireVerifier(ctx) {
		view.Error = "The server is busy. Try again in a moment."
		s.renderLogin(w, r, http.StatusServiceUnavailable, view)
		return
	}
	ok := false
	// A person a connector provisioned signs in at their provider only:
	// a password here would bypass it, and outlive the connector.
	if u != nil && !u.Disabled && u.ConnectorID == "" {
		ok = password.Verify(u.PasswordHash, pw) == nil
	} else {
		// Spend the same time on unknown users as on known ones.
		_ = password.Verify(dummyHash(), pw)
	}
	<-s.verifying
	if !ok {
		failed = true
		var userID string
		if u != nil {
			userID = u.ID
		}
		if err := s.st.AppendAudit(ctx, audit.NewLoginFailed(s.meta(r), userID)); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		view.Error = "The username or password is not correct."
		s.renderLogin(w, r, http.StatusUnauthorized, view)
		return
	}
	handle, err := token.NewHandle(s.rand, "")
	if err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	now := s.now()
	sess := &store.Session{Hash: token.Hash(handle), TenantID: s.tenant, UserID: u.ID, AuthTime: now, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.st.CreateSession(ctx, sess, audit.NewLoginSucceeded(s.meta(r), u.ID)); err != nil {
		s.internalErrorPage(w, r, err)
		return
	}
	s.setCookie(w, sessionCookie, handle, http.SameSiteLaxMode, sess.ExpiresAt, 0)
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.pages.errorPage(w, http.StatusForbidden, "Form expired", "Sign-out needs a valid form. Reload the page and try again.")
		return
	}
	if handle := s.cookieValue(r, sessionCookie); handle != "" {
		if err := s.st.DeleteSession(r.Context(), token.Hash(handle)); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.internalErrorPage(w, r, err)
			return
		}
	}
	s.setCookie(w, sessionCookie, "", http.SameSiteLaxMode, time.Time{}, -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// dummyHash is verified for unknown users so that timing does not reveal
// which usernames exist. It is made on first use, not at start-up, so that
// every CLI command does not pay an argon2id hash.
var dummyHash = sync.OnceValue(func() string {
	h, err := password.Hash("agentid-no-such-user")
	if err != nil {
		panic(err)
	}
	return h
})

// maxUsernameShown bounds the user name echoed back into the login form.
const maxUsernameShown = 256

// throttled answers a sign-in refused by the throttle: 429 with
// Retry-After (RFC 6585 §4) and the wait in words.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request, view loginView, retry time.Duration) {
	mins := int(math.Ceil(retry.Minutes()))
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	if mins <= 1 {
		view.Error = "Too many failed attempts. Wait a minute and try again."
	} else {
		view.Error = fmt.Sprintf("Too many failed attempts. Wait %d minutes and try again.", mins)
	}
	s.renderLogin(w, r, http.StatusTooManyRequests, view)
}

// verifierWait is how long a login waits for a free password check.
const verifierWait = 5 * time.Second

// acquireVerifier takes one of the bounded argon2id slots, waiting at most
// verifierWait; it reports false when none came free.
func (s *Server) acquireVerifier(ctx context.Context) bool {
	t := time.NewTimer(verifierWait)
	defer t.Stop()
	select {
	case s.verifying <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
