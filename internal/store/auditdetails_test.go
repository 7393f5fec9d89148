package store

import (
	"encoding/json"
	"maps"
	"testing"
)

func TestCompactDetails(t *testing.T) {
	tests := []struct {
		name      string
		in, saved map[string]string
	}{
		{"none", nil, nil},
		{"no frequent key", map[string]string{"provider": "github", "reason": "x"}, map[string]string{"provider": "github", "reason": "x"}},
		{"token.issued", map[string]string{"jti": "j1", "grant_type": "client_credentials", "user_agent": "ua", "provider": "p"},
			map[string]string{"~j": "j1", "~g": "~c", "~u": "ua", "provider": "p"}},
		{"a key with the mark is escaped", map[string]string{"~j": "not a jti", "~~": "x", "~": "y"},
			map[string]string{"~~j": "not a jti", "~~~": "x", "~~": "y"}},
		{"empty key", map[string]string{"": "v", "jti": "j"}, map[string]string{"": "v", "~j": "j"}},
		{"enumerated values", map[string]string{"grant_type": "client_credentials", "client_type": "public",
			"auth_method": "none", "registration_method": "dcr", "reason": "client_credentials"},
			map[string]string{"~g": "~c", "~c": "~p", "~a": "none", "~r": "dcr", "reason": "client_credentials"}},
		{"a coded key's value with the mark is escaped; another key's is not", map[string]string{"grant_type": "~c", "client_type": "~", "jti": "~j"},
			map[string]string{"~g": "~~c", "~c": "~~", "~j": "~j"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.in)
			saved, changed := CompactDetails(tc.in)
			if !maps.Equal(saved, tc.saved) {
				t.Fatalf("stored %v, want %v", saved, tc.saved)
			}
			if changed == maps.Equal(tc.in, tc.saved) {
				t.Errorf("changed = %v", changed)
			}
			if !maps.Equal(tc.in, before) {
				t.Errorf("CompactDetails modified its argument: %v", tc.in)
			}
			back, err := ExpandDetails(saved)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(back, tc.in) {
				t.Errorf("expanded %v, want %v", back, tc.in)
			}
		})
	}
}

func TestExpandDetailsRejects(t *testing.T) {
	for name, d := range map[string]map[string]string{
		"unknown code":                {"~z": "v"},
		"a key stored in both forms":  {"jti": "a", "~j": "b"},
		"an escape and its plain key": {"~~j": "a", "~j": "b", "jti": "c"},
		"unknown value code":          {"~g": "~z"},
		"a bare mark as a value":      {"~g": "~"},
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := ExpandDetails(d); err == nil {
				t.Errorf("ExpandDetails(%v) = %v, want an error", d, m)
			}
		})
	}
}

// TestDetailCodesTable: the codes are distinct short names with the mark,
// and no key a query or index reads from the stored JSON has one.
func TestDetailCodesTable(t *testing.T) {
	for _, k := range []string{DetailProvider, DetailAgent, DetailReportingClient, DetailReportID} {
		if c, ok := detailCodes[k]; ok {
			t.Errorf("%s is read by SQL from the stored JSON but is stored as %s", k, c)
		}
	}
	if len(detailKeys) != len(detailCodes) {
		t.Errorf("%d codes for %d keys: a code is used twice", len(detailKeys), len(detailCodes))
	}
	for k, c := range detailCodes {
		if len(c) < 2 || c[0] != detailCodeMark || c[1] == detailCodeMark || len(c) >= len(k) {
			t.Errorf("%s: code %q", k, c)
		}
	}
	for k, codes := range detailValueCodes {
		if _, ok := detailCodes[k]; !ok {
			t.Errorf("values of %s are coded, the key is not", k)
		}
		if len(detailValues[k]) != len(codes) {
			t.Errorf("%s: a value code is used twice", k)
		}
		for v, c := range codes {
			if len(c) < 2 || c[0] != detailCodeMark || c[1] == detailCodeMark || len(c) >= len(v) {
				t.Errorf("%s=%s: code %q", k, v, c)
			}
		}
	}
	// Rows with the schema's names are never read with value codes.
	old := map[string]string{"grant_type": "~c"}
	if got, err := ExpandDetails(old); err != nil || !maps.Equal(got, old) {
		t.Errorf("ExpandDetails(%v) = %v, %v", old, got, err)
	}
}

func FuzzDetailsRoundTrip(f *testing.F) {
	f.Add("jti", "j", "~j", "x", "~~", "y")
	f.Add("user_agent", "ua", "provider", "p", "", "")
	f.Add("grant_type", "~c", "client_type", "confidential", "auth_method", "~~")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		in := map[string]string{k1: v1, k2: v2, k3: v3}
		saved, _ := CompactDetails(in)
		back, err := ExpandDetails(saved)
		if err != nil {
			t.Fatalf("%v stored as %v: %v", in, saved, err)
		}
		if !maps.Equal(back, in) {
			t.Fatalf("%v stored as %v read back as %v", in, saved, back)
		}
	})
}

// BenchmarkStoredDetails: what the short names cost an event on its way
// in (CompactDetails, then the JSON) and out (the JSON, then
// ExpandDetails), against the JSON alone; a client credentials token's
// token.issued details.
func BenchmarkStoredDetails(b *testing.B) {
	d := map[string]string{"auth_method": "client_secret_basic", "client_type": "confidential",
		"grant_type": "client_credentials", "jti": "hyinsslo3twqpqqzxufaybcvoa",
		"policy_decisions": `[{"scope":"bench.read","allowed":true,"reason":"policy","policies":["client-credentials-tagged"]}]`,
		"policy_version":   "0", "registration_method": "manual", "user_agent": "Go-http-client/1.1"}
	for _, short := range []bool{false, true} {
		name := "json"
		if short {
			name = "short-names"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := d
				if short {
					m, _ = CompactDetails(d)
				}
				text, err := json.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				var back map[string]string
				if err := json.Unmarshal(text, &back); err != nil {
					b.Fatal(err)
				}
				if short {
					if back, err = ExpandDetails(back); err != nil {
						b.Fatal(err)
					}
				}
				if len(back) != len(d) {
					b.Fatal(len(back))
				}
			}
		})
	}
}
