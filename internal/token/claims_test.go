package token

import (
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
