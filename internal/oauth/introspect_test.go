package oauth

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestWriteIntrospection: WriteIntrospection, and WriteIntrospectionBody
// with IntrospectionBody's body, write what WriteJSON writes for the same
// response — status, headers and body byte for byte, HTML
// characters escaped and user claims compacted alike — and an inactive
// response is exactly {"active":false} whatever else is set (RFC 7662
// §2.2).
func TestWriteIntrospection(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp IntrospectionResponse
	}{
		{"inactive", IntrospectionResponse{Scope: "leak", ClientID: "c", Extra: map[string]json.RawMessage{"x": json.RawMessage(`1`)}}},
		{"active", IntrospectionResponse{Active: true, Scope: "notes.read <b>&", ClientID: "agent", TokenType: "Bearer",
			Exp: 1900000000, Iat: 1800000000, Sub: "u-1", Aud: []string{"https://mcp.example.com/"}, Iss: "https://hub", Jti: "j"}},
		{"chain and user claims", IntrospectionResponse{Active: true, ClientID: "mcp-b", Sub: "u-1",
			Act:    json.RawMessage(`{"sub":"mcp-a","act":{"sub":"agent"}}`),
			MayAct: json.RawMessage(`{"sub":"mcp-c"}`),
			Extra: map[string]json.RawMessage{
				"department": json.RawMessage(`"R&D <core>"`),
				"groups":     json.RawMessage(`[ "eng" ,  "ops" ]`),
				"sub":        json.RawMessage(`"not this one"`), // a member above wins
			}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := httptest.NewRecorder()
			WriteJSON(want, 200, tc.resp)
			got := httptest.NewRecorder()
			if err := WriteIntrospection(got, &tc.resp); err != nil {
				t.Fatal(err)
			}
			if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || got.Body.String() != want.Body.String() {
				t.Fatalf("WriteIntrospection: %d %v %q\nWriteJSON:          %d %v %q", got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
			// A body kept from IntrospectionBody answers the same again.
			body, err := IntrospectionBody(&tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			again := httptest.NewRecorder()
			WriteIntrospectionBody(again, body)
			if again.Code != want.Code || !reflect.DeepEqual(again.Header(), want.Header()) || again.Body.String() != want.Body.String() {
				t.Fatalf("WriteIntrospectionBody: %d %v %q\nWriteJSON:              %d %v %q", again.Code, again.Header(), again.Body, want.Code, want.Header(), want.Body)
			}
			if !tc.resp.Active && got.Body.String() != "{\"active\":false}\n" {
				t.Fatalf("inactive response %q", got.Body)
			}
		})
	}
	t.Run("user claims that are not JSON", func(t *testing.T) {
		w := httptest.NewRecorder()
		r := &IntrospectionResponse{Active: true, Extra: map[string]json.RawMessage{"x": json.RawMessage(`{`)}}
		if err := WriteIntrospection(w, r); err == nil || w.Body.Len() != 0 || len(w.Header()) != 0 {
			t.Fatalf("err %v, wrote %d %v %q", err, w.Code, w.Header(), w.Body)
		}
	})
}
