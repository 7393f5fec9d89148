package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

const (
	sessionCookie = "agentid_session"
	csrfCookie    = "agentid_csrf"
)

// currentSession returns the logged-in session and its user, or nils.
func (s *Server) currentSession(r *http.Request) (*store.Session, *store.User) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil, nil
	}
	sess, err := s.st.GetSession(r.Context(), token.Hash(ck.Value), s.now())
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

// csrfToken returns the double-submit token for this browser, setting the
// cookie when it is missing. Forms carry it in a hidden field; the browser
// mux also runs cross-origin protection.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 && len(ck.Value) <= 128 {
		return ck.Value
	}
	v, err := token.NewHandle(s.rand, "")
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	return v
}

func (s *Server) checkCSRF(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	form := r.PostForm.Get("csrf_token")
	if err != nil || ck.Value == "" || form == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(ck.Value), []byte(form)) == 1
}

// safeReturn keeps login redirects on this server's own pages.
func safeReturn(p string) string {
	if strings.HasPrefix(p, "/authorize?") || p == "/account" {
		if !strings.ContainsAny(p, "\\\r\n") {
			return p
		}
	}
	return "/account"
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	s.pages.login(w, http.StatusOK, loginView{CSRF: s.csrfToken(w, r), ReturnTo: safeReturn(r.URL.Query().Get("return_to"))})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.pages.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	ctx := r.Context()
	returnTo := safeReturn(r.PostForm.Get("return_to"))
	view := loginView{CSRF: s.csrfToken(w, r), ReturnTo: returnTo, Username: r.PostForm.Get("username")}
	if !s.checkCSRF(r) {
		view.Error = "This form expired. Please sign in again."
		s.pages.login(w, http.StatusForbidden, view)
		return
	}
	username, pw := strings.TrimSpace(r.PostForm.Get("username")), r.PostForm.Get("password")
	ip := clientIP(r)
	// Every attempt takes a token before the password is checked, so that
	// parallel attempts cannot all slip past the limit; a success gives it
	// back, a failure keeps it spent.
	refundUser, okUser := s.userThrottle.attempt(username)
	refundIP, okIP := s.ipThrottle.attempt(ip)
	if !okUser || !okIP {
		refundUser()
		refundIP()
		view.Error = "Too many failed attempts. Wait a minute and try again."
		s.pages.login(w, http.StatusTooManyRequests, view)
		return
	}
	u, err := s.st.GetUserByUsername(ctx, s.tenant, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		refundUser()
		refundIP()
		s.internalErrorPage(w, r, err)
		return
	}
	if !s.acquireVerifier(ctx) {
		refundUser()
		refundIP()
		view.Error = "The server is busy. Try again in a moment."
		s.pages.login(w, http.StatusServiceUnavailable, view)
		return
	}
	ok := false
	if u != nil && !u.Disabled {
		ok = password.Verify(u.PasswordHash, pw) == nil
	} else {
		// Spend the same time on unknown users as on known ones.
		_ = password.Verify(dummyHash(), pw)
	}
	<-s.verifying
	if ok {
		refundUser()
		refundIP()
	}
	if !ok {
		var userID string
		if u != nil {
			userID = u.ID
		}
		if err := s.st.AppendAudit(ctx, audit.NewLoginFailed(s.meta(r), userID)); err != nil {
			s.internalErrorPage(w, r, err)
			return
		}
		view.Error = "The username or password is not correct."
		s.pages.login(w, http.StatusUnauthorized, view)
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
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: handle, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, Expires: sess.ExpiresAt})
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !s.checkCSRF(r) {
		s.pages.errorPage(w, http.StatusForbidden, "Form expired", "Sign-out needs a valid form. Reload the page and try again.")
		return
	}
	if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" {
		if err := s.st.DeleteSession(r.Context(), token.Hash(ck.Value)); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.internalErrorPage(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
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

// throttle limits failed logins per key (a username or an IP) with token buckets;
// only failures spend tokens.
type throttle struct {
	mu    sync.Mutex
	limit LoginLimit
	now   func() time.Time
	m     map[string]*rate.Limiter
}

func newThrottle(l LoginLimit, now func() time.Time) *throttle {
	return &throttle{limit: l, now: now, m: make(map[string]*rate.Limiter)}
}

func (t *throttle) limiter(key string) *rate.Limiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	lim, ok := t.m[key]
	if !ok {
		if len(t.m) > 100000 {
			// Bound memory under a flood of distinct keys: full buckets are
			// equivalent to fresh ones, so dropping them loses nothing.
			for k, l := range t.m {
				if l.TokensAt(t.now()) >= float64(t.limit.Burst) {
					delete(t.m, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Limit(t.limit.PerMinute/60), t.limit.Burst)
		t.m[key] = lim
	}
	return lim
}

// attempt takes a token for one login attempt. When none is left it takes
// nothing and ok is false. refund gives the token back (after a success, or
// when the attempt was refused); it is always safe to call.
func (t *throttle) attempt(key string) (refund func(), ok bool) {
	now := t.now()
	r := t.limiter(key).ReserveN(now, 1)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return func() {}, false
	}
	var once sync.Once
	return func() { once.Do(func() { r.CancelAt(t.now()) }) }, true
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
