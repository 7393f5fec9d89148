package oauth

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/agentid/agentid/internal/jsontext"
)

// Grant types (RFC 6749 §4.1.3, §6, §4.4; RFC 8693 §2.1; RFC 7523 §2.1).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// TokenRequest is a token endpoint request (RFC 6749 §3.2) parsed once.
type TokenRequest struct {
	GrantType                       string
	Client                          ClientAuth
	Code, RedirectURI, CodeVerifier string
	RefreshToken                    string
	// Scopes are the resource scopes asked for: nil when scope is absent
	// or asks for offline_access alone.
	Scopes []string
	// OfflineAccess is set when scope named offline_access, which is not
	// kept in Scopes (see ParseRequestedScope).
	OfflineAccess                  bool
	Resources                      []string // raw, as sent (RFC 8707 §2)
	Assertion                      string   // jwt-bearer (RFC 7523 §2.1)
	SubjectToken, SubjectTokenType string   // RFC 8693 §2.1
	ActorToken, ActorTokenType     string
	RequestedTokenType             string
	Audiences                      []string
	// ForceRefresh (force_refresh=true on a token exchange, agentid's
	// extension for a credential retrieval): the resource server just had
	// the downstream credential refused and asks for a fresh one.
	ForceRefresh bool
}

// ParseTokenRequest parses a token request: ParseForm, ParseClientAuth, then
// the typed fields and each known grant's required parameters. An unknown
// grant_type is not an error here; the server answers
// unsupported_grant_type after authenticating the client (RFC 6749 §5.2).
func ParseTokenRequest(r *http.Request) (*TokenRequest, *Error) {
	form, err := ParseForm(r)
	if err != nil {
		return nil, err
	}
	req := &TokenRequest{
		GrantType:          form.Get("grant_type"),
		Code:               form.Get("code"),
		RedirectURI:        form.Get("redirect_uri"),
		CodeVerifier:       form.Get("code_verifier"),
		RefreshToken:       form.Get("refresh_token"),
		Resources:          form["resource"],
		Assertion:          form.Get("assertion"),
		SubjectToken:       form.Get("subject_token"),
		SubjectTokenType:   form.Get("subject_token_type"),
		ActorToken:         form.Get("actor_token"),
		ActorTokenType:     form.Get("actor_token_type"),
		RequestedTokenType: form.Get("requested_token_type"),
		Audiences:          form["audience"],
	}
	if req.GrantType == "" {
		return nil, ErrInvalidRequest("grant_type is required")
	}

	if req.Client, err = ParseClientAuth(r, form); err != nil {
		// RFC 7523 §3.1: client authentication is optional for the
		// jwt-bearer grant (a workload's token identifies its agent).
		if err != errNoClientAuth || req.GrantType != GrantJWTBearer {
			return nil, err
		}
	}
	if s := form.Get("scope"); s != "" {
		if req.Scopes, req.OfflineAccess, err = ParseRequestedScope(s); err != nil {
			return nil, err
		}
	}
	switch req.GrantType {
	case GrantAuthorizationCode:
		if req.Code == "" {
			return nil, ErrInvalidRequest("code is required")
		}
		if req.CodeVerifier == "" {
			return nil, ErrInvalidRequest("code_verifier is required")
		}
		// RFC 7636 §4.6: a verifier that cannot match is an invalid grant.
		if !ValidCodeVerifier(req.CodeVerifier) {
			return nil, ErrInvalidGrant("code_verifier is malformed")
		}
	case GrantRefreshToken:
		if req.RefreshToken == "" {
			return nil, ErrInvalidRequest("refresh_token is required")
		}
	case GrantJWTBearer:
		if req.Assertion == "" {
			return nil, ErrInvalidRequest("assertion is required")
		}
	case GrantTokenExchange:
		// RFC 8693 §2.1: subject_token and subject_token_type are
		// REQUIRED; actor_token_type is REQUIRED iff actor_token is sent.
		if req.SubjectToken == "" || req.SubjectTokenType == "" {
			return nil, ErrInvalidRequest("subject_token and subject_token_type are required")
		}
		if (req.ActorToken == "") != (req.ActorTokenType == "") {
			return nil, ErrInvalidRequest("actor_token and actor_token_type must be sent together")
		}
		// Anything but "true" is no request for a refresh: a parameter a
		// grant does not use is ignored (RFC 6749 §3.2).
		req.ForceRefresh = form.Get("force_refresh") == "true"
	}
	return req, nil
}

// TokenTypeBearer is the token_type of RFC 6750 access tokens.
const TokenTypeBearer = "Bearer"

// TokenResponse is the successful token response (RFC 6749 §5.1, RFC 8693
// §2.2.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in,omitempty"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	Scope           string `json:"scope,omitempty"`
	IDToken         string `json:"id_token,omitempty"` // OpenID Connect Core §3.1.3.3
	IssuedTokenType string `json:"issued_token_type,omitempty"`

	// A retrieved downstream credential (agentid's extension of the RFC
	// 8693 §2.2.1 response): the provider and connection it came from,
	// and for an API key where the key goes (a header with its value, or
	// a query parameter).
	Provider       string `json:"provider,omitempty"`
	ConnectionID   string `json:"connection_id,omitempty"`
	KeyHeader      string `json:"key_header,omitempty"`
	KeyHeaderValue string `json:"key_header_value,omitempty"`
	KeyQuery       string `json:"key_query,omitempty"`
}

// WriteTokenResponse writes resp with 200 and Cache-Control: no-store
// (RFC 6749 §5.1). An empty TokenType is sent as "Bearer".
//
// The body is what encoding/json makes of the struct, byte for byte
// (TestTokenResponseJSON, FuzzTokenResponseJSON), appended field by field:
// it is the response of every token the hub issues.
func WriteTokenResponse(w http.ResponseWriter, resp *TokenResponse) {
	h := w.Header()
	h["Content-Type"] = headerJSON[:1:1]
	h["Cache-Control"] = headerNoStore[:1:1]
	h["Pragma"] = headerNoCache[:1:1]
	w.WriteHeader(http.StatusOK)
	bp := responseBuffers.Get().(*[]byte)
	*bp = resp.appendJSON((*bp)[:0])
	_, _ = w.Write(*bp)
	if cap(*bp) <= maxPooledResponse {
		responseBuffers.Put(bp)
	}
}

// responseBuffers hold token responses while they are written; a buffer
// grown past maxPooledResponse (a response with a large ID token) is left
// to the garbage collector rather than kept.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledResponse = 8 << 10

// The values of the headers every token response carries (RFC 6749
// §5.1), shared: net/http only reads a handler's header values, and an
// Add copies a full slice before it appends.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerNoCache = []string{"no-cache"}
)

// appendJSON appends resp as encoding/json encodes it (field order,
// omitempty, HTML-safe escaping, a final newline as json.Encoder writes),
// with an empty TokenType as "Bearer".
func (resp *TokenResponse) appendJSON(b []byte) []byte {
	typ := resp.TokenType
	if typ == "" {
		typ = TokenTypeBearer
	}
	b = append(b, `{"access_token":`...)
	b = jsontext.AppendString(b, resp.AccessToken)
	b = append(b, `,"token_type":`...)
	b = jsontext.AppendString(b, typ)
	if resp.ExpiresIn != 0 {
		b = append(b, `,"expires_in":`...)
		b = strconv.AppendInt(b, resp.ExpiresIn, 10)
	}
	for _, f := range [...]struct {
		name, value string
	}{
		{`,"refresh_token":`, resp.RefreshToken},
		{`,"scope":`, resp.Scope},
		{`,"id_token":`, resp.IDToken},
		{`,"issued_token_type":`, resp.IssuedTokenType},
		{`,"provider":`, resp.Provider},
		{`,"connection_id":`, resp.ConnectionID},
		{`,"key_header":`, resp.KeyHeader},
		{`,"key_header_value":`, resp.KeyHeaderValue},
		{`,"key_query":`, resp.KeyQuery},
	} {
		if f.value != "" {
			b = append(b, f.name...)
			b = jsontext.AppendString(b, f.value)
		}
	}
	return append(b, "}\n"...)
}
