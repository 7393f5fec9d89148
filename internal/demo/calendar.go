package demo

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The demo calendar's one scope, which the hub's provider "calendar"
// offers and the demo MCP server's calendar.read reaches.
const calendarScope = "calendar.read"

// CalendarOptions configures the demo calendar.
type CalendarOptions struct {
	// ClientID and ClientSecret are the hub's client at the calendar;
	// RedirectURI the hub's one exact callback (<issuer>/connections/callback).
	ClientID, ClientSecret, RedirectURI string
	// TokenTTL is the access tokens' lifetime (zero: one hour).
	TokenTTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Calendar is the demo's downstream service: a small OAuth 2
// authorization server (RFC 6749 authorization code with PKCE S256, RFC
// 7636; refresh tokens rotated on use; RFC 7009 revocation) and a calendar
// API, for one person. It stands in for Google Calendar and the like, so
// that `agentid demo` shows the hub's vault without an account anywhere.
// Everything lives in memory; a restart forgets every grant.
type Calendar struct {
	opts CalendarOptions
	page *template.Template

	mu      sync.Mutex
	codes   map[string]calendarCode
	access  map[string]calendarToken
	refresh map[string]calendarToken
	stats   CalendarStats
}

// CalendarStats counts what the calendar did, for the demo's output and
// tests.
type CalendarStats struct {
	Approvals, CodeGrants, Refreshes, Revocations, APICalls, Refused int
}

type calendarCode struct {
	challenge, scope string
	expires          time.Time
}

type calendarToken struct {
	grant, scope string
	expires      time.Time // zero for refresh tokens
}

// NewCalendar returns the demo calendar; serve its Handler.
func NewCalendar(opts CalendarOptions) *Calendar {
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Calendar{opts: opts, page: template.Must(template.New("authorize").Parse(calendarPage)),
		codes: map[string]calendarCode{}, access: map[string]calendarToken{}, refresh: map[string]calendarToken{}}
}

// Stats returns the calendar's counters.
func (c *Calendar) Stats() CalendarStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Handler serves /authorize, /token, /revoke and /api/events.
func (c *Calendar) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", c.authorizePage)
	mux.HandleFunc("POST /authorize", c.authorizeDecision)
	mux.HandleFunc("POST /token", c.token)
	mux.HandleFunc("POST /revoke", c.revoke)
	mux.HandleFunc("GET /api/events", c.events)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

const calendarPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo Calendar: allow access?</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 2rem auto; padding: 0 1rem">
<h1>Demo Calendar</h1>
<p><strong>agentid</strong> (client <code>{{.ClientID}}</code>) asks to <strong>read your calendar</strong> ({{.Scope}}).</p>
<p>This calendar is part of <code>agentid demo</code>; there is one person here, you.</p>
<form method="post" action="/authorize">
<input type="hidden" name="state" value="{{.State}}">
<input type="hidden" name="code_challenge" value="{{.Challenge}}">
<input type="hidden" name="scope" value="{{.Scope}}">
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form></body></html>`

// authorizePage checks the authorization request (RFC 6749 §4.1.1, RFC
// 7636 §4.3) and asks the person. Errors in client_id or redirect_uri are
// shown, never redirected (§4.1.2.1).
func (c *Calendar) authorizePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != c.opts.ClientID || q.Get("redirect_uri") != c.opts.RedirectURI {
		http.Error(w, "Unknown client or redirect URI.", http.StatusBadRequest)
		return
	}
	fail := func(code string) { c.redirect(w, r, url.Values{"error": {code}, "state": {q.Get("state")}}) }
	scope := q.Get("scope")
	if scope == "" {
		scope = calendarScope
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type")
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		fail("invalid_request")
	case scope != calendarScope:
		fail("invalid_scope")
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
		_ = c.page.Execute(w, map[string]string{"ClientID": c.opts.ClientID, "Scope": scope, "State": q.Get("state"), "Challenge": q.Get("code_challenge")})
	}
}

// authorizeDecision answers the hub's callback with a code or
// access_denied. The calendar has no sessions of its own: a forged
// decision could only send a code to the hub's callback, which refuses
// any answer whose state its own browser flow does not hold.
func (c *Calendar) authorizeDecision(w http.ResponseWriter, r *http.Request) {
	state := r.PostFormValue("state")
	if r.PostFormValue("decision") != "allow" {
		c.redirect(w, r, url.Values{"error": {"access_denied"}, "state": {state}})
		return
	}
	code := randomToken()
	c.mu.Lock()
	c.codes[code] = calendarCode{challenge: r.PostFormValue("code_challenge"), scope: calendarScope, expires: c.opts.Now().Add(time.Minute)}
	c.stats.Approvals++
	c.mu.Unlock()
	c.redirect(w, r, url.Values{"code": {code}, "state": {state}})
}

func (c *Calendar) redirect(w http.ResponseWriter, r *http.Request, v url.Values) {
	if v.Get("state") == "" {
		v.Del("state")
	}
	http.Redirect(w, r, c.opts.RedirectURI+"?"+v.Encode(), http.StatusSeeOther)
}

// clientAuthenticated checks client_secret_basic (credentials
// form-urlencoded first, RFC 6749 §2.3.1) or client_secret_post.
func (c *Calendar) clientAuthenticated(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	return subtle.ConstantTimeCompare([]byte(id), []byte(c.opts.ClientID))&
		subtle.ConstantTimeCompare([]byte(secret), []byte(c.opts.ClientSecret)) == 1
}

func oauthError(w http.ResponseWriter, status int, code string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="demo calendar"`)
	}
	writeCalendarJSON(w, status, map[string]string{"error": code})
}

func writeCalendarJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// token is the token endpoint (RFC 6749 §4.1.3, §6): codes are single use
// and checked against PKCE; a refresh token is replaced at every use.
func (c *Calendar) token(w http.ResponseWriter, r *http.Request) {
	if !c.clientAuthenticated(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var grant, scope string
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		code, ok := c.codes[r.PostFormValue("code")]
		delete(c.codes, r.PostFormValue("code"))
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || !now.Before(code.expires) || r.PostFormValue("redirect_uri") != c.opts.RedirectURI ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != code.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		grant, scope = randomToken(), code.scope
		c.stats.CodeGrants++
	case "refresh_token":
		old, ok := c.refresh[r.PostFormValue("refresh_token")]
		if !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(c.refresh, r.PostFormValue("refresh_token"))
		grant, scope = old.grant, old.scope
		c.stats.Refreshes++
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	at, rt := randomToken(), randomToken()
	c.access[at] = calendarToken{grant: grant, scope: scope, expires: now.Add(c.opts.TokenTTL)}
	c.refresh[rt] = calendarToken{grant: grant, scope: scope}
	writeCalendarJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": int(c.opts.TokenTTL / time.Second),
		"refresh_token": rt, "scope": scope,
	})
}

// revoke is RFC 7009: revoking either token ends the whole grant; an
// unknown token is answered 200 too (§2.2).
func (c *Calendar) revoke(w http.ResponseWriter, r *http.Request) {
	if !c.clientAuthenticated(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	tok := r.PostFormValue("token")
	c.mu.Lock()
	grant := c.access[tok].grant
	if g := c.refresh[tok].grant; g != "" {
		grant = g
	}
	if grant != "" {
		c.stats.Revocations++
		for _, m := range []map[string]calendarToken{c.access, c.refresh} {
			for k, t := range m {
				if t.grant == grant {
					delete(m, k)
				}
			}
		}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// CalendarEvent is one entry of the demo calendar.
type CalendarEvent struct {
	Start string `json:"start"`
	Title string `json:"title"`
}

// events is the calendar API: today's events for a valid access token
// with calendar.read (RFC 6750 errors otherwise).
func (c *Calendar) events(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c.mu.Lock()
	t, known := c.access[tok]
	valid := ok && known && c.opts.Now().Before(t.expires) && slices.Contains(strings.Fields(t.scope), calendarScope)
	if valid {
		c.stats.APICalls++
	} else {
		c.stats.Refused++
	}
	c.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer realm="demo calendar", error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeCalendarJSON(w, http.StatusOK, map[string]any{"events": []CalendarEvent{
		{"09:30", "stand-up"}, {"12:00", "lunch with Sam"}, {"15:00", "design review"},
	}})
}

func randomToken() string {
	return rand.Text() + rand.Text()
}
