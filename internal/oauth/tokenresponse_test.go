package oauth

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// encodingJSON is the token response as encoding/json writes it, the
// reference appendJSON must match byte for byte.
func encodingJSON(t testing.TB, resp *TokenResponse) []byte {
	out := *resp
	if out.TokenType == "" {
		out.TokenType = TokenTypeBearer
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(&out); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestTokenResponseJSON: WriteTokenResponse writes 200, the no-store
// headers (RFC 6749 §5.1) and exactly encoding/json's body, for plain
// values and for values that need escaping.
func TestTokenResponseJSON(t *testing.T) {
	for name, resp := range map[string]*TokenResponse{
		"access token only": {AccessToken: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", ExpiresIn: 300},
		"every field": {AccessToken: "a.b.c", TokenType: "N_A", ExpiresIn: -1, RefreshToken: "rt_x", Scope: "read write",
			IDToken: "i.d.t", IssuedTokenType: TokenTypeAccessToken, Provider: "github", ConnectionID: "conn_1",
			KeyHeader: "Authorization", KeyHeaderValue: "Bearer k", KeyQuery: "api_key"},
		"html and quotes":    {AccessToken: `<script>"&'</script>`, Scope: `a\b`},
		"controls":           {AccessToken: "\x00\x01\t\n\r\x1f\x7f", KeyHeaderValue: "v\u2028\u2029"},
		"unicode":            {AccessToken: "tök€n", Provider: "日本"},
		"invalid utf-8":      {AccessToken: "a\xffb\xc3", Scope: "\xed\xa0\x80"},
		"zero expiry, empty": {},
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteTokenResponse(rec, resp)
			if rec.Code != http.StatusOK {
				t.Errorf("status %d", rec.Code)
			}
			for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"} {
				if got := rec.Header().Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if want := encodingJSON(t, resp); !bytes.Equal(rec.Body.Bytes(), want) {
				t.Errorf("body\n%s\nwant\n%s", rec.Body.Bytes(), want)
			}
		})
	}
	// The shared header values stay intact when a later writer adds to
	// the response's headers.
	rec := httptest.NewRecorder()
	WriteTokenResponse(rec, &TokenResponse{AccessToken: "x"})
	rec.Header().Add("Cache-Control", "private")
	if headerNoStore[0] != "no-store" || len(headerNoStore) != 1 {
		t.Errorf("the shared Cache-Control value changed: %q", headerNoStore)
	}
}

// FuzzTokenResponseJSON: for any field values, appendJSON is what
// encoding/json writes.
func FuzzTokenResponseJSON(f *testing.F) {
	f.Add("a.b.c", "", int64(300), "", "read", "", "")
	f.Add("<&>", "Bearer", int64(0), "r\u2028", "\xff", "i\"d", "x\\y")
	f.Fuzz(func(t *testing.T, at, typ string, exp int64, rt, scope, id, provider string) {
		resp := &TokenResponse{AccessToken: at, TokenType: typ, ExpiresIn: exp, RefreshToken: rt, Scope: scope, IDToken: id, Provider: provider, KeyQuery: id + provider}
		if got, want := resp.appendJSON(nil), encodingJSON(t, resp); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON\n%q\nencoding/json\n%q", got, want)
		}
	})
}
