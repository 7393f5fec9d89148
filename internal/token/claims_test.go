package token

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestClaimsAudienceEncoding(t *testing.T) {
	tests := []struct {
		name    string
		aud     []string
		wantAud string // raw JSON of the aud member; "" means absent
	}{
		{"single audience is a string", []string{"https://mcp.example.com"}, `"aud":"https://mcp.example.com"`},
		{"several audiences are an array", []string{"https://a.example", "https://b.example"}, `"aud":["https://a.example","https://b.example"]`},
		{"no audience is omitted", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &AccessClaims{Issuer: "i", Subject: "s", Audience: tc.aud, ClientID: "c", JTI: "j", IssuedAt: 1, Expiry: 2}
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAud == "" {
				if strings.Contains(string(b), `"aud"`) {
					t.Fatalf("aud present in %s", b)
				}
			} else if !strings.Contains(string(b), tc.wantAud) {
				t.Fatalf("%s lacks %s", b, tc.wantAud)
			}
			var back AccessClaims
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back.Audience, tc.aud) {
				t.Fatalf("round trip aud %q", back.Audience)
			}
		})
	}
}

func TestClaimsDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantAud []string
		ok      bool
	}{
		{"string aud", `{"aud":"x"}`, []string{"x"}, true},
		{"array aud", `{"aud":["x","y"]}`, []string{"x", "y"}, true},
		{"null aud", `{"aud":null}`, nil, true},
		{"absent aud", `{}`, nil, true},
		{"number aud", `{"aud":1}`, nil, false},
		{"array of numbers", `{"aud":[1]}`, nil, false},
		{"object aud", `{"aud":{}}`, nil, false},
		{"exp as string", `{"exp":"1"}`, nil, false},
		{"not an object", `[]`, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c AccessClaims
			err := json.Unmarshal([]byte(tc.in), &c)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !slices.Equal(c.Audience, tc.wantAud) {
				t.Fatalf("aud %q", c.Audience)
			}
		})
	}
}

func FuzzClaimsJSON(f *testing.F) {
	f.Add(`{"iss":"https://id.example.com","sub":"u","aud":"https://r.example","client_id":"c","jti":"j","iat":1,"exp":2}`)
	f.Add(`{"aud":["a","b"],"act":{"sub":"agent","act":{"sub":"inner"}},"cnf":{"jkt":"x"}}`)
	f.Add(`{"aud":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		var c AccessClaims
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			return
		}
		// Decode → encode → decode is stable.
		b, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		var c2 AccessClaims
		if err := json.Unmarshal(b, &c2); err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		b2, _ := json.Marshal(&c2)
		if string(b) != string(b2) {
			t.Fatalf("unstable:\n%s\n%s", b, b2)
		}
	})
}

// claimsOut is how encoding/json would write the registered claims (aud
// a string or an array): the reference appendRegistered is held to.
type claimsOut struct {
	Issuer       string        `json:"iss"`
	Subject      string        `json:"sub"`
	Audience     any           `json:"aud,omitempty"`
	ClientID     string        `json:"client_id"`
	Scope        string        `json:"scope,omitempty"`
	JTI          string        `json:"jti"`
	IssuedAt     int64         `json:"iat"`
	NotBefore    int64         `json:"nbf,omitempty"`
	Expiry       int64         `json:"exp"`
	AuthTime     int64         `json:"auth_time,omitempty"`
	Act          *Actor        `json:"act,omitempty"`
	MayAct       *Actor        `json:"may_act,omitempty"`
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

func (c *AccessClaims) out() *claimsOut {
	o := &claimsOut{
		Issuer: c.Issuer, Subject: c.Subject, ClientID: c.ClientID, Scope: c.Scope, JTI: c.JTI,
		IssuedAt: c.IssuedAt, NotBefore: c.NotBefore, Expiry: c.Expiry, AuthTime: c.AuthTime,
		Act: c.Act, MayAct: c.MayAct, Confirmation: c.Confirmation,
	}
	switch len(c.Audience) {
	case 0:
	case 1:
		o.Audience = c.Audience[0]
	default:
		o.Audience = c.Audience
	}
	return o
}

// registeredJSON is the reference encoding of c's registered claims.
func registeredJSON(t *testing.T, c *AccessClaims) []byte {
	t.Helper()
	b, err := json.Marshal(c.out())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPayloadMatchesEncodingJSON: the appended claims are encoding/json's,
// byte for byte, for every field, in every form a field takes.
func TestPayloadMatchesEncodingJSON(t *testing.T) {
	full := func() *AccessClaims {
		return &AccessClaims{Issuer: "https://id.example.com", Subject: "u-1", Audience: []string{"https://r.example/mcp"},
			ClientID: "c", Scope: "read write", JTI: "j", IssuedAt: 1700000000, NotBefore: 1700000001, Expiry: 1700000300,
			AuthTime: 1699999999, Act: &Actor{Subject: "agent", Issuer: "https://other.example", Actor: &Actor{Subject: "inner"}},
			MayAct: &Actor{Subject: "next"}, Confirmation: &Confirmation{JKT: "thumb"}}
	}
	cases := map[string]func(*AccessClaims){
		"every field":           func(*AccessClaims) {},
		"minimal":               func(c *AccessClaims) { *c = AccessClaims{} },
		"no audience":           func(c *AccessClaims) { c.Audience = nil },
		"empty audience string": func(c *AccessClaims) { c.Audience = []string{""} },
		"several audiences":     func(c *AccessClaims) { c.Audience = []string{"a", "<b>", "c"} },
		"empty list audience":   func(c *AccessClaims) { c.Audience = []string{} },
		"no optional claims": func(c *AccessClaims) {
			c.Scope, c.NotBefore, c.AuthTime, c.Act, c.MayAct, c.Confirmation = "", 0, 0, nil, nil, nil
		},
		"negative times":       func(c *AccessClaims) { c.IssuedAt, c.Expiry, c.NotBefore, c.AuthTime = -1, -2, -3, -4 },
		"empty confirmation":   func(c *AccessClaims) { c.Confirmation = &Confirmation{} },
		"actor without issuer": func(c *AccessClaims) { c.Act = &Actor{Subject: "a"} },
		"html and quotes":      func(c *AccessClaims) { c.Subject, c.Scope, c.JTI = `<script>"&'</script>`, `a\b`, "a&b" },
		"controls and separators": func(c *AccessClaims) {
			c.Issuer, c.ClientID, c.Act.Subject = "\x00\t\n\x1f\x7f", "v\u2028\u2029", "\r"
		},
		"unicode and invalid utf-8": func(c *AccessClaims) {
			c.Subject, c.ClientID, c.MayAct.Subject = "tök€n日本", "a\xffb\xc3", "\xed\xa0\x80"
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			c := full()
			change(c)
			if got, want := c.appendRegistered(nil), registeredJSON(t, c); !bytes.Equal(got, want) {
				t.Fatalf("appended\n%s\nencoding/json\n%s", got, want)
			}
			got, err := c.payload()
			if err != nil {
				t.Fatal(err)
			}
			if want := registeredJSON(t, c); !bytes.Equal(got, want) {
				t.Fatalf("payload\n%s\nwant\n%s", got, want)
			}
		})
	}
	// With user claims, the payload is both objects' members, in one.
	c := full()
	c.UserClaims = map[string]any{"groups": []string{"b", "a"}, "email": "a@example.com"}
	got, err := c.payload()
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	if err := json.Unmarshal(got, &all); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if all["email"] != "a@example.com" || all["iss"] != "https://id.example.com" || len(all) != 15 {
		t.Fatalf("payload with user claims: %s", got)
	}
}

// FuzzPayloadMatchesEncodingJSON holds the appended claims to
// encoding/json's bytes for any strings and numbers.
func FuzzPayloadMatchesEncodingJSON(f *testing.F) {
	f.Add("https://id.example.com", "u", "https://r.example", "", "c", "read", "j", int64(1), int64(0), int64(2), int64(0), "agent", "", "thumb")
	f.Add("<&>", "\u2028", "a", "b", "\xff", "", "\"", int64(-1), int64(5), int64(1<<62), int64(3), "", "https://x", "")
	f.Fuzz(func(t *testing.T, iss, sub, aud1, aud2, client, scope, jti string, iat, nbf, exp, authTime int64, actor, actorIss, jkt string) {
		c := &AccessClaims{Issuer: iss, Subject: sub, ClientID: client, Scope: scope, JTI: jti, IssuedAt: iat, NotBefore: nbf, Expiry: exp, AuthTime: authTime}
		if aud1 != "" {
			c.Audience = append(c.Audience, aud1)
		}
		if aud2 != "" {
			c.Audience = append(c.Audience, aud2)
		}
		if actor != "" {
			c.Act = &Actor{Subject: actor, Issuer: actorIss, Actor: &Actor{Subject: actorIss}}
			c.MayAct = &Actor{Subject: actor}
		}
		if jkt != "" {
			c.Confirmation = &Confirmation{JKT: jkt}
		}
		if got, want := c.appendRegistered(nil), registeredJSON(t, c); !bytes.Equal(got, want) {
			t.Fatalf("appended\n%q\nencoding/json\n%q", got, want)
		}
	})
}
