package oauth

import (
	"encoding/json"
	"net/http"
)

// IntrospectionResponse is the RFC 7662 §2.2 introspection response.
type IntrospectionResponse struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	// Act and MayAct are the token's act and may_act claims (RFC 8693
	// §4.1, §4.4) as JSON objects: the delegation chain, current actor
	// outermost, and who may act on it.
	Act    json.RawMessage `json:"act,omitempty"`
	MayAct json.RawMessage `json:"may_act,omitempty"`
	// Extra are further top-level members, as the token carries them (the
	// user claims of its resource); a name of a member above is never one
	// of them.
	Extra map[string]json.RawMessage `json:"-"`
}

// introspectionJSON has IntrospectionResponse's fields without its methods.
type introspectionJSON IntrospectionResponse

// MarshalJSON writes exactly {"active":false} for an inactive token whatever
// else is set: RFC 7662 §2.2 says such a response SHOULD NOT reveal more.
func (r IntrospectionResponse) MarshalJSON() ([]byte, error) {
	if !r.Active {
		return []byte(`{"active":false}`), nil
	}
	b, err := json.Marshal(introspectionJSON(r))
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	var known map[string]json.RawMessage
	if err := json.Unmarshal(b, &known); err != nil {
		return nil, err
	}
	for name, v := range r.Extra {
		if _, taken := known[name]; !taken {
			known[name] = v
		}
	}
	return json.Marshal(known)
}

// WriteIntrospection writes r with 200, byte for byte as WriteJSON would,
// from its MarshalJSON directly: WriteJSON's encoder would check and
// compact that output once more. A response that cannot be encoded (user
// claims that are not JSON) writes nothing and returns the error.
func WriteIntrospection(w http.ResponseWriter, r *IntrospectionResponse) error {
	body, err := IntrospectionBody(r)
	if err != nil {
		return err
	}
	WriteIntrospectionBody(w, body)
	return nil
}

// IntrospectionBody is the body WriteIntrospection writes for r, for a
// server that keeps it to answer again.
func IntrospectionBody(r *IntrospectionResponse) ([]byte, error) {
	b, err := r.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteIntrospectionBody writes body, made by IntrospectionBody, with 200
// and the headers WriteIntrospection writes.
func WriteIntrospectionBody(w http.ResponseWriter, body []byte) {
	writeJSONHeader(w, http.StatusOK)
	_, _ = w.Write(body)
}
