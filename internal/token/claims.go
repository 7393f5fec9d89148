package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentid/agentid/internal/jsontext"
	"github.com/agentid/agentid/internal/store"
)

// AccessClaims is the payload of an RFC 9068 JWT access token.
type AccessClaims struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// Audience is the resource (RFC 9068 §3, RFC 8707). One element is
	// written as a plain string, as in the RFC 9068 examples; both forms are
	// read (RFC 7519 §4.1.3).
	Audience  []string `json:"aud"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	JTI       string   `json:"jti"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf,omitempty"`
	Expiry    int64    `json:"exp"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	// Act is the current actor of a delegated token (RFC 8693 §4.1); it
	// nests the prior actors in its own Act.
	Act *Actor `json:"act,omitempty"`
	// MayAct names the party allowed to become the actor when this token
	// is exchanged (RFC 8693 §4.4).
	MayAct *Actor `json:"may_act,omitempty"`
	// Confirmation binds the token to a key (RFC 7800 §3.1), e.g. the DPoP
	// key thumbprint "jkt" (RFC 9449 §6.1).
	Confirmation *Confirmation `json:"cnf,omitempty"`
	// UserClaims are claims about the person that the token's resource
	// asked for (store.Resource.UserClaims): name → a string or a list of
	// strings. Written beside the claims above, never in place of one: a
	// reserved name (store.ReservedClaim) is an error at minting. Not read
	// back by Verify (UserClaimsOf reads them).
	UserClaims map[string]any `json:"-"`
}

// Actor is one party of a delegation chain, the value of an act or may_act
// claim (RFC 8693 §4.1, §4.4): who acts, and, nested in Actor, who acted
// before it (the current actor outermost). Only identity claims belong
// here; exp, aud and the like mean nothing inside act.
type Actor struct {
	// Subject is the actor: for agentid's own tokens the actor's client_id.
	Subject string `json:"sub"`
	// Issuer names who vouches for Subject when it is not the hub.
	Issuer string `json:"iss,omitempty"`
	// Actor is the prior actor (nil for the first).
	Actor *Actor `json:"act,omitempty"`
}

// Depth is the number of actors in the chain that starts at a (0 for nil).
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Actor {
		n++
	}
	return n
}

// Confirmation is the "cnf" claim.
type Confirmation struct {
	JKT string `json:"jkt,omitempty"` // RFC 9449 §6.1
}

// claimsIn is the decoded form: aud may be a string or an array.
type claimsIn struct {
	Issuer       string        `json:"iss"`
	Subject      string        `json:"sub"`
	Audience     audience      `json:"aud"`
	ClientID     string        `json:"client_id"`
	Scope        string        `json:"scope"`
	JTI          string        `json:"jti"`
	IssuedAt     int64         `json:"iat"`
	NotBefore    int64         `json:"nbf"`
	Expiry       int64         `json:"exp"`
	AuthTime     int64         `json:"auth_time"`
	Act          *Actor        `json:"act"`
	MayAct       *Actor        `json:"may_act"`
	Confirmation *Confirmation `json:"cnf"`
}

type audience []string

// UnmarshalJSON accepts a string or an array of strings (RFC 7519 §4.1.3).
func (a *audience) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*a = nil
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = l
	return nil
}

// MarshalJSON writes a single audience as a string.
func (c *AccessClaims) MarshalJSON() ([]byte, error) {
	return c.payload()
}

// payload is the JSON claims set: the registered claims as encoding/json
// encodes claimsOut (appendRegistered), then the user claims in name order
// (encoding/json sorts map keys).
func (c *AccessClaims) payload() ([]byte, error) {
	b := c.appendRegistered(make([]byte, 0, 320))
	if len(c.UserClaims) == 0 {
		return b, nil
	}
	for name := range c.UserClaims {
		if store.ReservedClaim(name) {
			return nil, fmt.Errorf("token: user claim %q is reserved", name)
		}
	}
	extra, err := json.Marshal(c.UserClaims)
	if err != nil {
		return nil, err
	}
	// Both are JSON objects: join their members into one.
	b = append(b[:len(b)-1], ',')
	return append(b, extra[1:]...), nil
}

// appendRegistered appends the claims other than UserClaims exactly as
// encoding/json writes them (field order, omitempty, a single audience as
// a string, HTML-safe escaping; TestPayloadMatchesEncodingJSON
// and FuzzPayloadMatchesEncodingJSON hold it to that), without reflection:
// every access token is minted through here.
func (c *AccessClaims) appendRegistered(b []byte) []byte {
	str := jsontext.AppendString
	b = append(b, `{"iss":`...)
	b = str(b, c.Issuer)
	b = append(b, `,"sub":`...)
	b = str(b, c.Subject)
	switch len(c.Audience) {
	case 0:
	case 1:
		b = append(b, `,"aud":`...)
		b = str(b, c.Audience[0])
	default:
		b = append(b, `,"aud":[`...)
		for i, a := range c.Audience {
			if i > 0 {
				b = append(b, ',')
			}
			b = str(b, a)
		}
		b = append(b, ']')
	}
	b = append(b, `,"client_id":`...)
	b = str(b, c.ClientID)
	if c.Scope != "" {
		b = append(b, `,"scope":`...)
		b = str(b, c.Scope)
	}
	b = append(b, `,"jti":`...)
	b = str(b, c.JTI)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, c.IssuedAt, 10)
	if c.NotBefore != 0 {
		b = append(b, `,"nbf":`...)
		b = strconv.AppendInt(b, c.NotBefore, 10)
	}
	b = append(b, `,"exp":`...)
	b = strconv.AppendInt(b, c.Expiry, 10)
	if c.AuthTime != 0 {
		b = append(b, `,"auth_time":`...)
		b = strconv.AppendInt(b, c.AuthTime, 10)
	}
	if c.Act != nil {
		b = append(b, `,"act":`...)
		b = c.Act.appendJSON(b)
	}
	if c.MayAct != nil {
		b = append(b, `,"may_act":`...)
		b = c.MayAct.appendJSON(b)
	}
	if cnf := c.Confirmation; cnf != nil {
		b = append(b, `,"cnf":{`...)
		if cnf.JKT != "" {
			b = append(b, `"jkt":`...)
			b = str(b, cnf.JKT)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSON appends the actor as encoding/json encodes it.
func (a *Actor) appendJSON(b []byte) []byte {
	b = append(b, `{"sub":`...)
	b = jsontext.AppendString(b, a.Subject)
	if a.Issuer != "" {
		b = append(b, `,"iss":`...)
		b = jsontext.AppendString(b, a.Issuer)
	}
	if a.Actor != nil {
		b = append(b, `,"act":`...)
		b = a.Actor.appendJSON(b)
	}
	return append(b, '}')
}

// UserClaimsOf returns the claims of a verified access token's payload
// that are not registered or protocol claims (store.ReservedClaim): the
// user claims the hub put in it. The signature must have been checked
// (Keys.Verify) first; introspection uses it to show them.
func UserClaimsOf(raw string) (map[string]json.RawMessage, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrInvalidToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
	}
	// Most tokens carry none: their member names tell, without decoding
	// every value into a map.
	if onlyReservedNames(payload) && json.Valid(payload) {
		return nil, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &all); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidToken, err)
	}
	var out map[string]json.RawMessage
	for name, v := range all {
		if store.ReservedClaim(name) {
			continue
		}
		if out == nil {
			out = make(map[string]json.RawMessage)
		}
		out[name] = v
	}
	return out, nil
}

// onlyReservedNames reports whether the JSON object b names reserved
// claims (store.ReservedClaim) only, reading its member names and skipping
// their values. It is false whenever it cannot tell: b not an object, a
// name with an escape or a non-ASCII byte (json would decode it to
// something else than its bytes), or a value it cannot find the end of.
// b's validity as JSON is the caller's to check (json.Valid): the values
// are skipped, not checked.
func onlyReservedNames(b []byte) bool {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for i < len(b) && b[i] == '"' {
		j := i + 1
		for j < len(b) && b[j] != '"' {
			if c := b[j]; c == '\\' || c < 0x20 || c >= 0x80 {
				return false
			}
			j++
		}
		if j == len(b) || !store.ReservedClaim(string(b[i+1:j])) {
			return false
		}
		i = skipSpace(b, j+1)
		if i == len(b) || b[i] != ':' {
			return false
		}
		if i = skipValue(b, skipSpace(b, i+1)); i < 0 {
			return false
		}
		switch i = skipSpace(b, i); {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
	return false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just after the JSON value starting at i, or
// -1: strings to their closing quote (past escapes), objects and arrays to
// their matching bracket (brackets inside strings aside), anything else to
// the next delimiter.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return -1
			}
			i++
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && i < len(b) && (b[i] == ',' || b[i] == '}' || b[i] == ']' || b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			return i
		}
	}
	if depth != 0 {
		return -1
	}
	return i
}

// UnmarshalJSON reads aud as a string or an array.
func (c *AccessClaims) UnmarshalJSON(b []byte) error {
	d, err := decodeClaims(b)
	if err != nil {
		return err
	}
	*c = *d
	return nil
}

// decodeClaims is UnmarshalJSON for a fresh value: a JSON document is
// scanned once (json.Unmarshal into AccessClaims scans it, then again in
// UnmarshalJSON).
func decodeClaims(b []byte) (*AccessClaims, error) {
	var in claimsIn
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("token: claims: %w", err)
	}
	return &AccessClaims{
		Issuer: in.Issuer, Subject: in.Subject, Audience: []string(in.Audience), ClientID: in.ClientID,
		Scope: in.Scope, JTI: in.JTI, IssuedAt: in.IssuedAt, NotBefore: in.NotBefore, Expiry: in.Expiry,
		AuthTime: in.AuthTime, Act: in.Act, MayAct: in.MayAct, Confirmation: in.Confirmation,
	}, nil
}

// validate checks the claims RFC 9068 §2.2 requires.
func (c *AccessClaims) validate() error {
	var missing []string
	if c.Issuer == "" {
		missing = append(missing, "iss")
	}
	if c.Subject == "" {
		missing = append(missing, "sub")
	}
	if len(c.Audience) == 0 {
		missing = append(missing, "aud")
	}
	for _, a := range c.Audience {
		if a == "" {
			missing = append(missing, "aud (empty element)")
			break
		}
	}
	if c.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if c.JTI == "" {
		missing = append(missing, "jti")
	}
	if c.IssuedAt == 0 {
		missing = append(missing, "iat")
	}
	if c.Expiry == 0 {
		missing = append(missing, "exp")
	}
	if len(missing) > 0 {
		return fmt.Errorf("token: access token claims missing %v (RFC 9068 §2.2)", missing)
	}
	if c.Expiry <= c.IssuedAt {
		return errors.New("token: access token exp must be after iat")
	}
	return nil
}
