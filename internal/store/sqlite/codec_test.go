package sqlite

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestListText(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"nil", nil, "[]"},
		{"empty", []string{}, "[]"},
		{"plain", []string{"files:read", "https://x.example/cb?a=1"}, `["files:read","https://x.example/cb?a=1"]`},
		{"escaped", []string{`a"b`, "c\\d", "<&>", "é", "\n"}, `["a\"b","c\\d","\u003c\u0026\u003e","é","\n"]`},
		{"empty string", []string{""}, `[""]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := listText(tc.in); got != tc.want {
				t.Fatalf("listText = %s, want %s", got, tc.want)
			}
			var back []string
			if err := (listCol{&back}).Scan(tc.want); err != nil {
				t.Fatal(err)
			}
			if len(tc.in) == 0 && back != nil {
				t.Fatalf("empty list scanned as %#v, want nil", back)
			}
			if len(tc.in) > 0 && !slices.Equal(back, tc.in) {
				t.Fatalf("scanned %q, want %q", back, tc.in)
			}
		})
	}
}

func TestTimeCol(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
	}{
		{"zero", time.Time{}},
		{"utc", time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)},
		{"nanoseconds and zone", time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", -7*3600))},
		{"before 1970", time.Date(1960, 1, 1, 0, 0, 0, 999, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got time.Time
			v := tv(tc.in)
			if err := (timeCol{&got}).Scan(v); err != nil {
				t.Fatal(err)
			}
			if tc.in.IsZero() {
				if v != nil || !got.IsZero() {
					t.Fatalf("zero time stored as %v, read as %v", v, got)
				}
				return
			}
			if !got.Equal(tc.in.Truncate(time.Microsecond)) || got.Location() != time.UTC {
				t.Fatalf("got %v, want %v in UTC", got, tc.in.Truncate(time.Microsecond))
			}
		})
	}
}

// FuzzListText checks the fast path writes what encoding/json writes and
// that the column scanner reads it back.
func FuzzListText(f *testing.F) {
	for _, s := range []string{"", "a b", "files:read files:write", "\"\\", "<x>&", "\x00\x7f\xff", "é ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := strings.Split(s, " ")
		got := listText(l)
		want, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Fatalf("listText(%q) = %s, encoding/json: %s", l, got, want)
		}
		var back []string
		if err := (listCol{&back}).Scan(got); err != nil {
			t.Fatal(err)
		}
		var viaJSON []string
		if err := json.Unmarshal(want, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back, viaJSON) {
			t.Fatalf("round trip %q → %q", viaJSON, back)
		}
	})
}

// FuzzColumns feeds arbitrary stored text to the JSON column scanners: a
// damaged row must be an error, never a panic.
func FuzzColumns(f *testing.F) {
	for _, s := range []string{"[]", "{}", `["a"]`, `{"a":"b"}`, "null", "", "[1]", `{"a":1}`, "[", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var l []string
		_ = (listCol{&l}).Scan(s)
		_ = (listCol{&l}).Scan([]byte(s))
		var m map[string]string
		if err := (mapCol{&m}).Scan(s); err == nil && len(m) > 0 {
			if _, err := json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzFastStringMap: where the fast decoder of stored string maps answers,
// it answers what encoding/json does; it never panics.
func FuzzFastStringMap(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"b"}`, ` { "a" : "b" , "c":"d\"e\\f\/g\n" } `, `{"a":"b","a":"c"}`,
		`{"x":"\u003c"}`, `{"a":1}`, `[]`, `{"a":"b",}`, `{"":""}`, `{"k":"é"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := fastStringMap(s)
		if !ok {
			return
		}
		var want map[string]string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("fast decoder took %q, encoding/json refuses it: %v", s, err)
		}
		if !maps.Equal(got, want) || (want == nil) != (got == nil) {
			t.Fatalf("%q: fast %v, encoding/json %v", s, got, want)
		}
	})
}

// FuzzFastStringList: where the fast decoder of stored string lists
// answers, it answers what encoding/json does; it never panics.
func FuzzFastStringList(f *testing.F) {
	for _, s := range []string{`[]`, `["a"]`, ` [ "a" , "b\"c\\d\/e\n" ] `, `["x","x"]`, `["\u003c"]`, `[1]`,
		`["a",]`, `[""]`, `["é"]`, `{}`, `["a"] x`, `[null]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := fastStringList(s)
		if !ok {
			return
		}
		var want []string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("fast decoder took %q, encoding/json refuses it: %v", s, err)
		}
		if !slices.Equal(got, want) || (want == nil) != (got == nil) {
			t.Fatalf("%q: fast %q, encoding/json %q", s, got, want)
		}
	})
}
