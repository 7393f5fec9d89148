package mcpauth

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzBearerToken: whatever Authorization header is accepted yields a
// token68 that the MCP SDK's own header split (strings.Fields, two fields)
// sees identically, which the middleware's hand-over to the SDK relies on.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer   x==", "Bearer", "Bearer ", "Basic dXNlcjpw", "Bearer a b", "BEARER\ttok", "Bearer tok\u00a0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/mcp", nil)
		r.Header.Set("Authorization", header)
		tok, err := bearerToken(r)
		if err != nil {
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TokenError", err)
			}
			return
		}
		if !isToken68(tok) {
			t.Fatalf("accepted %q, not a token68", tok)
		}
		fields := strings.Fields(header)
		if len(fields) != 2 || !strings.EqualFold(fields[0], "bearer") || fields[1] != tok {
			t.Fatalf("header %q: we read %q, the SDK would read %q", header, tok, fields)
		}
	})
}

// FuzzParseClaims: claims that parse survive a round trip through JSON with
// the same meaning.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"https://hub","sub":"u","aud":"https://mcp/mcp","exp":1900000000,"iat":1.5e9,"scope":"a b","jti":"j","client_id":"c"}`,
		`{"aud":["x","y"],"act":{"sub":"agent","act":{"sub":"inner"}},"auth_time":1700000000}`,
		`{"exp":-1}`, `{"exp":"soon"}`, `{"aud":[1]}`, `{"act":"x"}`, `null`, `[]`, `{} {}`,
		`{"act":{"sub":"a","iss":"https://x","act":{"sub":""}}}`, `{"act":{"sub":"a","act":{"iss":"i"}}}`,
		`{"may_act":{"sub":"m","iss":"i"}}`, `{"may_act":{"sub":7}}`, `{"act":{"sub":"a","act":null}}`,
		`{"sub":"u","groups":["eng","Site Ops"],"department":"R&D","roles":[],"Scope":"admin","mixed":["a",1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := parseClaims(payload)
		if err != nil {
			return
		}
		// Every actor of an accepted chain names someone.
		for _, a := range c.Actors() {
			if a.Subject == "" {
				t.Fatalf("accepted an actor without sub in %q", payload)
			}
		}
		if (c.Act == nil) != (len(c.Actors()) == 0) {
			t.Fatalf("Act %s but %d actors", c.Act, len(c.Actors()))
		}
		// No registered claim ever reads as a user claim, and what does
		// read as one is the token's own value.
		for name, v := range c.Raw {
			s, sok := c.UserClaim(name)
			l, lok := c.UserClaimList(name)
			if registeredClaim(name) && (sok || lok) {
				t.Fatalf("registered claim %q read as a user claim", name)
			}
			if sok && v != s {
				t.Fatalf("UserClaim(%q) = %q, token holds %v", name, s, v)
			}
			if lok && len(l) != len(v.([]any)) {
				t.Fatalf("UserClaimList(%q) = %q, token holds %v", name, l, v)
			}
		}
		again, err := json.Marshal(c.Raw)
		if err != nil {
			t.Fatalf("Raw does not marshal: %v", err)
		}
		c2, err := parseClaims(again)
		if err != nil {
			t.Fatalf("round trip of %q failed: %v", again, err)
		}
		if c.Issuer != c2.Issuer || c.Subject != c2.Subject || c.ClientID != c2.ClientID || c.JTI != c2.JTI ||
			!slices.Equal(c.Scopes, c2.Scopes) || !slices.Equal(c.Audience, c2.Audience) ||
			!c.ExpiresAt.Equal(c2.ExpiresAt) || !c.IssuedAt.Equal(c2.IssuedAt) || !c.AuthTime.Equal(c2.AuthTime) ||
			string(c.Act) != string(c2.Act) || !slices.Equal(c.Actors(), c2.Actors()) ||
			(c.MayAct == nil) != (c2.MayAct == nil) || c.MayAct != nil && *c.MayAct != *c2.MayAct {
			t.Fatalf("round trip changed the claims: %+v vs %+v", c, c2)
		}
	})
}

// FuzzTokenResponse: whatever the token endpoint answers, a success is a
// usable bearer token cached no longer than its lifetime, and a failure is
// an *ExchangeError whose text is printable and bounded.
func FuzzTokenResponse(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"a.b.c","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":300,"scope":"x y"}`,
		`{"access_token":"a","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"bearer","expires_in":1}`,
		`{"error":"invalid_grant","error_description":"no\n\"way\""}`, `{"error":"bad code"}`, `{"expires_in":"7"}`, `null`, `<html>`,
	} {
		f.Add(200, []byte(s))
		f.Add(400, []byte(s))
	}
	now := time.Unix(1_900_000_000, 0)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		tok, refreshAt, err := parseTokenResponse(status, body, now, []string{"r"}, 30*time.Second)
		if err != nil {
			xe, ok := errors.AsType[*ExchangeError](err)
			if !ok {
				t.Fatalf("error %T", err)
			}
			if quoteSafe(xe.Description) != xe.Description || len(xe.Description) > maxDescription || !validScopeToken(xe.Code) && xe.Code != "" {
				t.Fatalf("unsafe error %q %q", xe.Code, xe.Description)
			}
			return
		}
		if status != 200 || !isToken68(tok.AccessToken) {
			t.Fatalf("accepted status %d token %q", status, tok.AccessToken)
		}
		if !refreshAt.IsZero() && (refreshAt.Before(now) || refreshAt.After(tok.ExpiresAt)) {
			t.Fatalf("refresh at %v outside [%v, %v]", refreshAt, now, tok.ExpiresAt)
		}
	})
}
