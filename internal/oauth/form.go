package oauth

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// ClientAssertionTypeJWTBearer is the client_assertion_type of RFC 7523 §2.2.
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Client authentication methods (RFC 7591 §2, OpenID Connect Core §9).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodPrivateKeyJWT     = "private_key_jwt"
)

// multiValued are the form parameters that may legitimately repeat:
// resource (RFC 8707 §2) and audience (RFC 8693 §2.1).
var multiValued = map[string]bool{"resource": true, "audience": true}

// ParseForm parses the body of a direct request to the token, revocation,
// introspection or registration-management endpoints. It requires POST with
// Content-Type application/x-www-form-urlencoded (RFC 6749 §3.2), reads only
// the body (query-string parameters are ignored: credentials must not travel
// in URLs), drops empty values (clients send "code=" and the like; RFC 6749
// §3.1 treats them as omitted) and rejects any parameter other than resource
// and audience sent more than once (RFC 6749 §3.2). The caller limits the
// body size with http.MaxBytesReader; exceeding it is invalid_request.
func ParseForm(r *http.Request) (url.Values, *Error) {
	if r.Method != http.MethodPost {
		return nil, ErrInvalidRequest("the request must use POST")
	}
	if ct := r.Header.Get("Content-Type"); ct != formType {
		// Anything but the exact type clients send (parameters, another
		// case) is parsed in full.
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formType {
			return nil, ErrInvalidRequest("Content-Type must be application/x-www-form-urlencoded")
		}
	}
	if r.Body == nil {
		return url.Values{}, nil
	}
	body, err := readBody(r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, ErrInvalidRequest("request body too large").WithCause(err)
		}
		return nil, ErrInvalidRequest("could not read the request body").WithCause(err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, ErrInvalidRequest("malformed form body").WithCause(err)
	}
	for k, vs := range form {
		// Empty values are dropped in place (the values' order kept).
		n := 0
		for _, v := range vs {
			if v != "" {
				vs[n] = v
				n++
			}
		}
		if n == 0 {
			delete(form, k)
			continue
		}
		form[k] = vs[:n]
		if n > 1 && !multiValued[k] {
			return nil, ErrInvalidRequest("parameter %s is repeated", paramName(k))
		}
	}
	return form, nil
}

// formType is the media type of every direct request's body.
const formType = "application/x-www-form-urlencoded"

// maxBodyPrealloc bounds the buffer readBody sizes from Content-Length, a
// number the client chose.
const maxBodyPrealloc = 16 << 10

// readBody reads r.Body to its end (io.ReadAll), into a buffer sized from
// Content-Length when the client sent one: a form is read in one piece.
func readBody(r *http.Request) ([]byte, error) {
	size := 512
	if r.ContentLength > 0 {
		size = int(min(r.ContentLength, maxBodyPrealloc)) + 1 // +1: the read that sees EOF
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow
		}
	}
}

// paramName renders a client-chosen parameter name for an error
// description: quoted and short.
func paramName(k string) string {
	if len(k) > 40 || !visibleASCII(k) {
		return "(unnamed)"
	}
	return `"` + strings.ReplaceAll(k, `"`, "") + `"`
}

// ClientAuth is the client authentication a direct request presented.
type ClientAuth struct {
	ClientID     string
	ClientSecret string
	// AssertionType and Assertion are client_assertion_type and
	// client_assertion (RFC 7521 §4.2).
	AssertionType, Assertion string
	// Method is what was presented: client_secret_basic,
	// client_secret_post, private_key_jwt, or none (a client_id without a
	// secret, in the body or as HTTP Basic with an empty password).
	Method string
}

// ParseClientAuth reads the client authentication of a direct request:
//   - HTTP Basic (RFC 6749 §2.3.1): user and password are form-urlencoded
//     client_id and client_secret; each is decoded, and used raw if it does
//     not decode (some clients do not encode). An empty password is a
//     public client identifying itself, reported as Method "none": the
//     standard Go client sends exactly that first;
//   - client_id and client_secret in the body (client_secret_post);
//   - client_assertion with client_assertion_type
//     urn:ietf:params:oauth:client-assertion-type:jwt-bearer (RFC 7523 §2.2);
//     ClientID is the body's client_id, or "" when absent (the server then
//     reads it from the assertion, see PeekAssertionSubject);
//   - a bare client_id in the body (none).
//
// Presenting more than one method, or a body client_id that differs from the
// Basic user, is invalid_request (RFC 6749 §2.3: "MUST NOT use more than one
// authentication method in each request"); no client identification at all
// is invalid_client.
func ParseClientAuth(r *http.Request, form url.Values) (ClientAuth, *Error) {
	var ca ClientAuth
	bodyID, bodySecret := form.Get("client_id"), form.Get("client_secret")
	assertion, assertionType := form.Get("client_assertion"), form.Get("client_assertion_type")

	basicID, basicSecret, hasBasic, err := basicAuth(r)
	if err != nil {
		return ca, err
	}
	hasAssertion := assertion != "" || assertionType != ""
	methods := 0
	for _, present := range []bool{hasBasic, bodySecret != "", hasAssertion} {
		if present {
			methods++
		}
	}
	if methods > 1 {
		return ca, ErrInvalidRequest("more than one client authentication method was used")
	}

	switch {
	case hasBasic:
		if bodyID != "" && bodyID != basicID {
			return ca, ErrInvalidRequest("client_id in the body differs from the HTTP Basic user")
		}
		ca.ClientID, ca.ClientSecret = basicID, basicSecret
		ca.Method = AuthMethodClientSecretBasic
		if basicSecret == "" {
			ca.Method = AuthMethodNone
		}
	case bodySecret != "":
		if bodyID == "" {
			return ca, ErrInvalidRequest("client_secret requires client_id")
		}
		ca.ClientID, ca.ClientSecret = bodyID, bodySecret
		ca.Method = AuthMethodClientSecretPost
	case hasAssertion:
		if assertion == "" || assertionType == "" {
			return ca, ErrInvalidRequest("client_assertion and client_assertion_type must be sent together")
		}
		if assertionType != ClientAssertionTypeJWTBearer {
			return ca, ErrInvalidClient("unsupported client_assertion_type")
		}
		ca.ClientID, ca.AssertionType, ca.Assertion = bodyID, assertionType, assertion
		ca.Method = AuthMethodPrivateKeyJWT
	case bodyID != "":
		ca.ClientID, ca.Method = bodyID, AuthMethodNone
	default:
		return ca, errNoClientAuth
	}
	return ca, nil
}

// errNoClientAuth: the request identifies no client at all.
var errNoClientAuth = ErrInvalidClient("client authentication is required")

// basicAuth extracts HTTP Basic credentials (RFC 7617) with the RFC 6749
// §2.3.1 form-urlencoding undone. Other Authorization schemes are not client
// authentication and are ignored; a malformed Basic header is
// invalid_client, and several Authorization headers are invalid_request.
func basicAuth(r *http.Request) (id, secret string, ok bool, e *Error) {
	if len(r.Header.Values("Authorization")) > 1 {
		return "", "", false, ErrInvalidRequest("more than one Authorization header")
	}
	h := r.Header.Get("Authorization")
	scheme, payload, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", false, ErrInvalidClient("malformed HTTP Basic credentials")
	}
	user, pass, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false, ErrInvalidClient("malformed HTTP Basic credentials")
	}
	user, pass = formDecode(user), formDecode(pass)
	if user == "" {
		return "", "", false, ErrInvalidClient("HTTP Basic credentials without a client_id")
	}
	return user, pass, true, nil
}

// formDecode undoes application/x-www-form-urlencoded encoding, returning s
// unchanged if it is not validly encoded.
func formDecode(s string) string {
	d, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return d
}
