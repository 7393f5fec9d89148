package loadtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/oauth"
)

// Credentials are a confidential client's, sent with client_secret_basic.
type Credentials struct {
	ID, Secret string
}

// Fixture is what the hub must hold for the scenarios, as the setup made
// it: clients, resources, a person and (for retrieval) a provider.
type Fixture struct {
	// Issuer is the hub's issuer, the base of its endpoints.
	Issuer string
	// Hubs are the base URLs the scenarios' requests go to, in turn (the
	// replicas of one hub, all with Issuer as their issuer); none means
	// Issuer. The setup (sign-in, consent, the first tokens) uses Issuer.
	Hubs []string
	// Resource is the MCP server the tokens are for, with Scope one of
	// its scopes; Server is its resource server's client (which
	// introspects, exchanges and retrieves).
	Resource string
	Scope    string
	Server   Credentials
	// CC is a client_credentials client allowed Scope on Resource.
	CC Credentials
	// Agent is an authorization-code client (with refresh tokens) whose
	// redirect URI is RedirectURI; User and Password sign the person in.
	Agent       Credentials
	RedirectURI string
	User        string
	Password    string
	// Target is the resource a token exchange asks for, TargetScope its
	// scope.
	Target      string
	TargetScope string
	// Provider is an API-key provider linked to Resource for Scope; ""
	// leaves retrieval out.
	Provider string
}

// NewHTTPClient is a client for concurrency workers: keep-alive with an
// idle connection per worker (the default keeps two per host, and every
// other request would open a connection), no compression, no redirects
// followed (the hub's protocol endpoints answer none).
func NewHTTPClient(concurrency int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency + 16,
		MaxIdleConnsPerHost: concurrency + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// tokenResponse is what the hub's /token answers: a token (RFC 6749 §5.1)
// or an error (§5.2).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// statusError is a failed request: its status and, for OAuth errors, the
// error code and description (never a token).
type statusError struct {
	what   string
	status int
	code   string
	desc   string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.what, e.status)
	if e.code != "" {
		s += " " + e.code
	}
	if e.desc != "" {
		s += ": " + e.desc
	}
	return s
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 1 << 20

// post posts form to path as c (nil: unauthenticated) and decodes a JSON
// answer into v. It returns the status; a non-200 answer is a
// *statusError.
func post(ctx context.Context, hc *http.Client, issuer, path string, c *Credentials, form url.Values, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c != nil {
		// RFC 6749 §2.3.1: form-urlencode both before Basic.
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		var oe tokenResponse
		_ = json.Unmarshal(body, &oe)
		return resp.StatusCode, &statusError{what: "POST " + path, status: resp.StatusCode, code: oe.Error, desc: oe.Description}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resp.StatusCode, fmt.Errorf("POST %s: undecodable answer: %w", path, err)
	}
	return resp.StatusCode, nil
}

// token posts a token request and checks an access token came back.
func token(ctx context.Context, hc *http.Client, issuer string, c *Credentials, form url.Values) (*tokenResponse, int, error) {
	var tr tokenResponse
	status, err := post(ctx, hc, issuer, "/token", c, form, &tr)
	if err != nil {
		return nil, status, err
	}
	if tr.AccessToken == "" {
		return nil, status, errors.New("POST /token: no access_token in the answer")
	}
	return &tr, status, nil
}

// person is the fixture's user in a browser: a cookie jar, stopping at
// redirects to the agent.
type person struct {
	fx *Fixture
	c  *http.Client
}

func newPerson(fx *Fixture) *person {
	jar, _ := cookiejar.New(nil)
	return &person{fx: fx, c: &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), fx.Issuer+"/") {
			return http.ErrUseLastResponse // the agent's redirect URI
		}
		return nil
	}}}
}

// page is a fetched page: where it ended and its body, or the redirect
// that left the hub.
type page struct {
	status   int
	body     string
	location *url.URL
}

func (p *person) do(req *http.Request) (*page, error) {
	resp, err := p.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	pg := &page{status: resp.StatusCode, body: string(b)}
	if resp.StatusCode/100 == 3 {
		pg.location, _ = resp.Location()
	}
	return pg, nil
}

func (p *person) get(ctx context.Context, u string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return p.do(req)
}

func (p *person) post(ctx context.Context, path string, form url.Values) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.fx.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", p.fx.Issuer) // the pages' cross-origin protection
	return p.do(req)
}

var (
	csrfField     = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	returnToField = regexp.MustCompile(`name="return_to" value="([^"]*)"`)
	requestField  = regexp.MustCompile(`name="request" value="([^"]*)"`)
)

func formField(re *regexp.Regexp, body string) (string, bool) {
	m := re.FindStringSubmatch(body)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(m[1]), true
}

// authorize runs the browser part of the code flow for the agent on the
// fixture's resource and scope: signing in when asked, approving the
// consent screen when shown. It returns the code.
func (p *person) authorize(ctx context.Context, challenge string) (string, error) {
	q := url.Values{
		"response_type": {"code"}, "client_id": {p.fx.Agent.ID}, "redirect_uri": {p.fx.RedirectURI},
		"scope": {p.fx.Scope}, "resource": {p.fx.Resource}, "state": {"bench"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	pg, err := p.get(ctx, p.fx.Issuer+"/authorize?"+q.Encode())
	if err != nil {
		return "", err
	}
	if strings.Contains(pg.body, `action="/login"`) {
		csrf, ok1 := formField(csrfField, pg.body)
		ret, ok2 := formField(returnToField, pg.body)
		if !ok1 || !ok2 {
			return "", errors.New("the login page has no csrf_token or return_to field")
		}
		if pg, err = p.post(ctx, "/login", url.Values{"csrf_token": {csrf}, "return_to": {ret}, "username": {p.fx.User}, "password": {p.fx.Password}}); err != nil {
			return "", err
		}
	}
	if pg.location == nil && strings.Contains(pg.body, `action="/authorize/decision"`) {
		csrf, ok1 := formField(csrfField, pg.body)
		r, ok2 := formField(requestField, pg.body)
		if !ok1 || !ok2 {
			return "", errors.New("the consent page has no csrf_token or request field")
		}
		if pg, err = p.post(ctx, "/authorize/decision", url.Values{"csrf_token": {csrf}, "request": {r}, "decision": {"allow"}, "scope": {p.fx.Scope}}); err != nil {
			return "", err
		}
	}
	if pg.location == nil {
		return "", fmt.Errorf("the authorization did not return to the agent (HTTP %d)", pg.status)
	}
	q = pg.location.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("the authorization was refused: %s: %s", e, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("the redirect to the agent has no code")
	}
	return code, nil
}

// userTokens runs one code flow (RFC 6749 §4.1 with PKCE, RFC 7636) and
// returns the access and refresh token.
func (p *person) userTokens(ctx context.Context, hc *http.Client) (*tokenResponse, error) {
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	code, err := p.authorize(ctx, base64.RawURLEncoding.EncodeToString(sum[:]))
	if err != nil {
		return nil, err
	}
	tr, _, err := token(ctx, hc, p.fx.Issuer, &p.fx.Agent, url.Values{
		"grant_type": {oauth.GrantAuthorizationCode}, "code": {code}, "redirect_uri": {p.fx.RedirectURI},
		"code_verifier": {verifier}, "resource": {p.fx.Resource},
	})
	if err != nil {
		return nil, err
	}
	if tr.RefreshToken == "" {
		return nil, errors.New("the code grant returned no refresh token")
	}
	return tr, nil
}

// connectAPIKey saves an API key for the person at the fixture's provider
// through the connections page, as the person would.
func (p *person) connectAPIKey(ctx context.Context) error {
	pg, err := p.get(ctx, p.fx.Issuer+"/connections")
	if err != nil {
		return err
	}
	csrf, ok := formField(csrfField, pg.body)
	if !ok {
		return fmt.Errorf("the connections page (HTTP %d) has no csrf_token field", pg.status)
	}
	pg, err = p.post(ctx, "/connections/"+url.PathEscape(p.fx.Provider)+"/key", url.Values{
		"csrf_token": {csrf}, "key": {"bench-" + rand.Text()}, "label": {"bench"},
	})
	if err != nil {
		return err
	}
	if pg.status != http.StatusSeeOther && pg.status != http.StatusOK {
		return fmt.Errorf("saving the API key: HTTP %d", pg.status)
	}
	return nil
}
