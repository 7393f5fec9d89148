package oauth

import (
	"net/url"
	"strconv"
	"strings"
)

// ResponseTypeCode is the only response_type of OAuth 2.1 (§4.1.1).
const ResponseTypeCode = "code"

// Prompt values (OpenID Connect Core §3.1.2.1, Initiating User Registration
// §4 for "create").
const (
	PromptNone          = "none"
	PromptLogin         = "login"
	PromptConsent       = "consent"
	PromptSelectAccount = "select_account"
	PromptCreate        = "create"
)

// AuthorizeRequest is an authorization request (RFC 6749 §4.1.1, OAuth 2.1
// §4.1.1) parsed once from the query or form.
type AuthorizeRequest struct {
	ResponseType, ClientID, RedirectURI, State string
	// Scopes are the resource scopes asked for, without offline_access,
	// which sets OfflineAccess instead (see ParseRequestedScope).
	Scopes                             []string
	OfflineAccess                      bool
	CodeChallenge, CodeChallengeMethod string
	// Resources are the resource parameters as sent (RFC 8707 §2 allows
	// several); the server canonicalises and checks them.
	Resources []string
	// Prompt holds the space-separated values of prompt, deduplicated.
	Prompt              []string
	Nonce, ResponseMode string
	// MaxAge is max_age in seconds (OpenID Connect Core §3.1.2.1), -1 when
	// absent.
	MaxAge int
}

// HasPrompt reports whether the request carries prompt value p.
func (r *AuthorizeRequest) HasPrompt(p string) bool {
	for _, v := range r.Prompt {
		if v == p {
			return true
		}
	}
	return false
}

// authorizeSingle are the authorization request parameters that RFC 6749
// §3.1 says "MUST NOT be included more than once".
var authorizeSingle = []string{
	"response_type", "client_id", "redirect_uri", "state", "scope",
	"code_challenge", "code_challenge_method", "prompt", "nonce",
	"response_mode", "max_age",
}

// ParseAuthorizeRequest parses an authorization request. Empty values count
// as absent. It always returns a non-nil request holding whatever could be
// read, together with the first error found: the server must check
// client_id and redirect_uri against the client's registration before it
// may send an error to the redirect URI (RFC 6749 §4.1.2.1).
//
// If client_id or redirect_uri is repeated, ClientID and RedirectURI are
// both left empty, so the server cannot identify a redirect target and shows
// the error to the user instead of redirecting it; a repeated state is
// likewise left empty.
func ParseAuthorizeRequest(q url.Values) (*AuthorizeRequest, *Error) {
	values := make(map[string][]string, len(q))
	for k, vs := range q {
		for _, v := range vs {
			if v != "" {
				values[k] = append(values[k], v)
			}
		}
	}
	get := func(k string) string {
		if vs := values[k]; len(vs) == 1 {
			return vs[0]
		}
		return ""
	}
	req := &AuthorizeRequest{
		ResponseType:        get("response_type"),
		ClientID:            get("client_id"),
		RedirectURI:         get("redirect_uri"),
		State:               get("state"),
		CodeChallenge:       get("code_challenge"),
		CodeChallengeMethod: get("code_challenge_method"),
		Resources:           values["resource"],
		Nonce:               get("nonce"),
		ResponseMode:        get("response_mode"),
		MaxAge:              -1,
	}
	if len(values["client_id"]) > 1 || len(values["redirect_uri"]) > 1 {
		req.ClientID, req.RedirectURI = "", ""
	}

	var first *Error
	fail := func(e *Error) {
		if first == nil {
			first = e
		}
	}
	// RFC 6749 §3.1: request parameters MUST NOT be included more than once.
	for _, k := range authorizeSingle {
		if len(values[k]) > 1 {
			fail(ErrInvalidRequest("parameter %s is repeated", k))
		}
	}
	if req.ClientID == "" && len(values["client_id"]) == 0 {
		fail(ErrInvalidRequest("client_id is required"))
	}
	switch req.ResponseType {
	case ResponseTypeCode:
	case "":
		if len(values["response_type"]) == 0 {
			fail(ErrInvalidRequest("response_type is required"))
		}
	default:
		fail(NewError(CodeUnsupportedResponseType, "only response_type=code is supported"))
	}
	// OAuth 2.1 §4.1.1 / RFC 7636 §4.4.1: PKCE is required, and an absent
	// method means "plain", which agentid does not accept.
	switch {
	case len(values["code_challenge"]) == 0:
		fail(ErrInvalidRequest("PKCE code_challenge is required"))
	case req.CodeChallengeMethod != PKCEMethodS256 && len(values["code_challenge_method"]) <= 1:
		fail(ErrInvalidRequest("code_challenge_method must be S256"))
	case req.CodeChallenge != "" && !ValidCodeChallenge(req.CodeChallenge):
		fail(ErrInvalidRequest("code_challenge is not a valid S256 challenge"))
	}
	if s := get("scope"); s != "" {
		scopes, offline, err := ParseRequestedScope(s)
		if err != nil {
			fail(err)
		}
		req.Scopes, req.OfflineAccess = scopes, offline
	}
	if req.ResponseMode != "" && req.ResponseMode != "query" {
		fail(ErrInvalidRequest("only response_mode=query is supported"))
	}
	if p := get("prompt"); p != "" {
		prompt, err := parsePrompt(p)
		if err != nil {
			fail(err)
		}
		req.Prompt = prompt
	}
	if s := get("max_age"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || s[0] == '+' {
			fail(ErrInvalidRequest("max_age must be a non-negative integer"))
		} else {
			req.MaxAge = n
		}
	}
	return req, first
}

// parsePrompt splits prompt (OpenID Connect Core §3.1.2.1): known values
// only, "none" never combined with another value.
func parsePrompt(s string) ([]string, *Error) {
	var out []string
	for v := range strings.SplitSeq(s, " ") {
		switch v {
		case "":
			continue
		case PromptNone, PromptLogin, PromptConsent, PromptSelectAccount, PromptCreate:
		default:
			return out, ErrInvalidRequest("unsupported prompt value")
		}
		dup := false
		for _, o := range out {
			dup = dup || o == v
		}
		if !dup {
			out = append(out, v)
		}
	}
	if len(out) > 1 {
		for _, v := range out {
			if v == PromptNone {
				return out, ErrInvalidRequest("prompt=none cannot be combined with other values")
			}
		}
	}
	return out, nil
}

// SuccessRedirect builds the authorization response redirect (RFC 6749
// §4.1.2): code, state if non-empty, and iss (RFC 9207 §2). The redirect
// URI's own query is kept as registered (RFC 6749 §3.1.2).
func SuccessRedirect(redirectURI, code, state, issuer string) string {
	v := url.Values{}
	v.Set("code", code)
	if state != "" {
		v.Set("state", state)
	}
	if issuer != "" {
		v.Set("iss", issuer)
	}
	return appendQuery(redirectURI, v)
}

// ErrorRedirect builds the error redirect (RFC 6749 §4.1.2.1): error,
// error_description, state if non-empty, and iss (RFC 9207 §2, which asks for
// iss on error responses too).
func ErrorRedirect(redirectURI string, e *Error, state, issuer string) string {
	v := url.Values{}
	code, desc := CodeServerError, ""
	if e != nil {
		code, desc = e.Code, e.Description
	}
	v.Set("error", code)
	if desc = sanitizeDescription(desc); desc != "" {
		v.Set("error_description", desc)
	}
	if state != "" {
		v.Set("state", state)
	}
	if issuer != "" {
		v.Set("iss", issuer)
	}
	return appendQuery(redirectURI, v)
}

// appendQuery adds v to uri's query without re-encoding what is there.
func appendQuery(uri string, v url.Values) string {
	if i := strings.IndexByte(uri, '#'); i >= 0 {
		uri = uri[:i] // RFC 6749 §3.1.2: no fragment; never forward one.
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
		if strings.HasSuffix(uri, "?") || strings.HasSuffix(uri, "&") {
			sep = ""
		}
	}
	return uri + sep + v.Encode()
}

// sanitizeDescription keeps only the characters RFC 6749 §4.1.2.1 and §5.2
// allow in error_description (%x20-21 / %x23-5B / %x5D-7E): a double quote
// (from %q) becomes a single one, an ellipsis three dots, and any other
// character outside the set a space.
func sanitizeDescription(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < 0x20 || r > 0x7e || r == '\\':
			return ' '
		}
		return r
	}, strings.ReplaceAll(s, "…", "..."))
}
