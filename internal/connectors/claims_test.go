package connectors_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/store"
)

func TestMapClaims(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m       store.ClaimMapping
		claims  map[string]any
		want    *connectors.Identity
		wantErr bool
	}{
		{"defaults", store.ClaimMapping{}, map[string]any{"preferred_username": "alice", "email": "a@x.example", "email_verified": true, "name": "A"},
			&connectors.Identity{Username: "alice", Email: "a@x.example", EmailVerified: true, Name: "A"}, false},
		{"username falls back to email", store.ClaimMapping{}, map[string]any{"email": "a@x.example"},
			&connectors.Identity{Username: "a@x.example", Email: "a@x.example"}, false},
		{"custom names; email_verified only for email", store.ClaimMapping{Username: "upn", Email: "mail", Name: "cn"},
			map[string]any{"upn": "alice@corp", "mail": "alice@corp.example", "email_verified": true, "cn": "Alice"},
			&connectors.Identity{Username: "alice@corp", Email: "alice@corp.example", Name: "Alice"}, false},
		{"groups and roles; nested path; duplicates dropped", store.ClaimMapping{Groups: "groups", Roles: "realm_access.roles"},
			map[string]any{"sub": "s", "preferred_username": "a", "groups": []any{"eng", "eng"}, "realm_access": map[string]any{"roles": []any{"admin"}}},
			&connectors.Identity{Username: "a", Groups: []string{"eng"}, Roles: []string{"admin"}}, false},
		{"namespaced claim with dots", store.ClaimMapping{Groups: "https://corp.example/groups"},
			map[string]any{"preferred_username": "a", "https://corp.example/groups": "eng"},
			&connectors.Identity{Username: "a", Groups: []string{"eng"}}, false},
		{"mapped groups absent clear", store.ClaimMapping{Groups: "groups"}, map[string]any{"preferred_username": "a"},
			&connectors.Identity{Username: "a", Groups: []string{}}, false},
		{"attributes: scalars only", store.ClaimMapping{Attributes: map[string]string{"dept": "department", "level": "lvl", "ft": "fulltime", "x": "obj", "gone": "nope"}},
			map[string]any{"preferred_username": "a", "department": "R&D", "lvl": float64(7), "fulltime": true, "obj": map[string]any{}},
			&connectors.Identity{Username: "a", Attributes: map[string]string{"dept": "R&D", "level": "7", "ft": "true"}}, false},
		{"no username", store.ClaimMapping{}, map[string]any{"name": "A"}, nil, true},
		{"username not a string", store.ClaimMapping{}, map[string]any{"preferred_username": 5}, nil, true},
		{"username with newline", store.ClaimMapping{}, map[string]any{"preferred_username": "a\nb"}, nil, true},
		{"username with an escape sequence", store.ClaimMapping{}, map[string]any{"preferred_username": "carol\x1b[2K"}, nil, true},
		{"username with a tab", store.ClaimMapping{}, map[string]any{"preferred_username": "carol\tadmin"}, nil, true},
		{"name with a C1 control", store.ClaimMapping{}, map[string]any{"preferred_username": "a", "name": "A\u0085B"}, nil, true},
		{"email with DEL", store.ClaimMapping{}, map[string]any{"preferred_username": "a", "email": "a\x7f@x.example"}, nil, true},
		{"group with an escape", store.ClaimMapping{Groups: "g"}, map[string]any{"preferred_username": "a", "g": []any{"eng\x1b"}}, nil, true},
		{"username with a zero-width space", store.ClaimMapping{}, map[string]any{"preferred_username": "carol\u200b"}, nil, true},
		{"username with a bidi override", store.ClaimMapping{}, map[string]any{"preferred_username": "\u202elorac"}, nil, true},
		{"email as username with a soft hyphen", store.ClaimMapping{}, map[string]any{"email": "car\u00adol@x.example"}, nil, true},
		// Letters of several scripts in one name read as another's.
		{"username with a Cyrillic a among Latin letters", store.ClaimMapping{}, map[string]any{"preferred_username": "\u0430lice"}, nil, true},
		{"username with a Greek o among Latin letters", store.ClaimMapping{}, map[string]any{"preferred_username": "b\u03bfb@corp.example"}, nil, true},
		{"username all Cyrillic", store.ClaimMapping{}, map[string]any{"preferred_username": "\u0430\u043b\u0438\u0441\u0430"},
			&connectors.Identity{Username: "\u0430\u043b\u0438\u0441\u0430"}, false},
		{"username of Latin, Han and Hiragana", store.ClaimMapping{}, map[string]any{"preferred_username": "taro.\u5c71\u7530\u305f\u308d\u3046"},
			&connectors.Identity{Username: "taro.\u5c71\u7530\u305f\u308d\u3046"}, false},
		{"username of Latin and Hangul", store.ClaimMapping{}, map[string]any{"preferred_username": "kim\ud55c"},
			&connectors.Identity{Username: "kim\ud55c"}, false},
		{"username of Hangul and Cyrillic", store.ClaimMapping{}, map[string]any{"preferred_username": "\ud55c\u0430"}, nil, true},
		{"name may hold a zero-width joiner", store.ClaimMapping{}, map[string]any{"preferred_username": "a", "name": "A\u200dB"},
			&connectors.Identity{Username: "a", Name: "A\u200dB"}, false},
		// OpenID Connect Core §5.6.2: a claim the provider left out as
		// distributed (Entra ID's group overage) is not an empty one.
		{"groups distributed", store.ClaimMapping{Groups: "groups"}, map[string]any{"preferred_username": "a",
			"_claim_names": map[string]any{"groups": "src1"}, "_claim_sources": map[string]any{"src1": map[string]any{"endpoint": "https://graph.example/x"}}}, nil, true},
		{"attribute aggregated", store.ClaimMapping{Attributes: map[string]string{"emp": "employment"}}, map[string]any{"preferred_username": "a",
			"_claim_names": map[string]any{"employment": "src1"}, "_claim_sources": map[string]any{"src1": map[string]any{"JWT": "x.y.z"}}}, nil, true},
		{"another claim distributed", store.ClaimMapping{Groups: "groups"}, map[string]any{"preferred_username": "a", "groups": "eng",
			"_claim_names": map[string]any{"payment_info": "src1"}}, &connectors.Identity{Username: "a", Groups: []string{"eng"}}, false},
		{"too long", store.ClaimMapping{}, map[string]any{"preferred_username": strings.Repeat("a", 300)}, nil, true},
		{"group not a string", store.ClaimMapping{Groups: "g"}, map[string]any{"preferred_username": "a", "g": []any{"x", 1}}, nil, true},
		{"too many groups", store.ClaimMapping{Groups: "g"}, map[string]any{"preferred_username": "a", "g": manyGroups(257)}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := connectors.MapClaims(tc.m, tc.claims)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("MapClaims = %+v, want an error", got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("MapClaims = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func manyGroups(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = "g" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return out
}

// FuzzMapClaims: whatever claims a provider signs, the mapping neither
// panics nor lets through a value over its bounds, an empty username or
// a group that is not plain text.
func FuzzMapClaims(f *testing.F) {
	f.Add([]byte(`{"preferred_username":"a","email":"a@x.example","groups":["g"],"realm_access":{"roles":["r"]},"dept":7}`))
	f.Add([]byte(`{"email":"a@x.example","groups":"g","realm_access":{"roles":"r"}}`))
	f.Add([]byte(`{"preferred_username":"","groups":[null],"realm_access":[]}`))
	m := store.ClaimMapping{Groups: "groups", Roles: "realm_access.roles", Attributes: map[string]string{"dept": "dept", "deep": "a.b.c"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var claims map[string]any
		if json.Unmarshal(data, &claims) != nil {
			return
		}
		id, err := connectors.MapClaims(m, claims)
		if err != nil {
			return
		}
		if id.Username == "" || len(id.Username) > 256 || len(id.Email) > 256 || len(id.Name) > 256 {
			t.Fatalf("identity out of bounds: %+v", id)
		}
		for _, l := range [][]string{id.Groups, id.Roles} {
			if len(l) > 256 {
				t.Fatalf("%d values", len(l))
			}
			for _, v := range l {
				if v == "" || len(v) > 256 || strings.ContainsAny(v, "\x00\r\n") {
					t.Fatalf("value %q", v)
				}
			}
		}
		for _, v := range id.Attributes {
			if len(v) > 1024 {
				t.Fatalf("attribute of %d bytes", len(v))
			}
		}
	})
}
