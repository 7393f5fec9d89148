package consent

import (
	"slices"
	"testing"
	"time"
)

func TestParseChoice(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Choice
		ok   bool
	}{
		{"session", "session", ForSession, true},
		{"hour", "1h", ForHour, true},
		{"day", "1d", ForDay, true},
		{"30 days", "30d", For30Days, true},
		{"until revoked", "revoke", UntilRevoked, true},
		{"empty", "", "", false},
		{"go duration is not a choice", "2h", "", false},
		{"case matters", "Session", "", false},
		{"padded", " 1h", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseChoice(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ParseChoice(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseChoice: the duration field comes from a form anyone can post.
// Whatever it says, the result is either refused or one of the known
// choices, which round-trips and has a label.
func FuzzParseChoice(f *testing.F) {
	for _, s := range []string{"session", "1h", "1d", "30d", "revoke", "", "forever", "-1h", "1h\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := ParseChoice(s)
		if !ok {
			if c != "" {
				t.Fatalf("refused %q but returned %q", s, c)
			}
			return
		}
		if string(c) != s {
			t.Fatalf("ParseChoice(%q) = %q", s, c)
		}
		if c.Label() == string(c) {
			t.Fatalf("choice %q has no label", c)
		}
		if !slices.Contains(MenuFor(0, 0).Offered, c) {
			t.Fatalf("choice %q is not on the uncapped menu", c)
		}
	})
}

func TestMenuFor(t *testing.T) {
	all := []Choice{ForSession, ForHour, ForDay, For30Days, UntilRevoked}
	tests := []struct {
		name        string
		max, def    time.Duration
		wantOffered []Choice
		wantDefault Choice
	}{
		{"no cap, no default", 0, 0, all, For30Days},
		{"no cap, default 1h", 0, time.Hour, all, ForHour},
		{"no cap, default between choices rounds down", 0, 36 * time.Hour, all, ForDay},
		{"no cap, default shorter than an hour", 0, 10 * time.Minute, all, ForSession},
		{"no cap, long default never preselects forever", 0, 365 * 24 * time.Hour, all, For30Days},
		{"cap 1d drops 30d and forever", 24 * time.Hour, 0, []Choice{ForSession, ForHour, ForDay}, ForDay},
		{"cap 1d, default 1h", 24 * time.Hour, time.Hour, []Choice{ForSession, ForHour, ForDay}, ForHour},
		{"cap 30d keeps 30d, drops forever", 30 * 24 * time.Hour, 0, []Choice{ForSession, ForHour, ForDay, For30Days}, For30Days},
		{"cap between choices", 12 * time.Hour, 0, []Choice{ForSession, ForHour}, ForHour},
		{"cap below an hour leaves the session", 30 * time.Minute, time.Hour, []Choice{ForSession}, ForSession},
		{"default above the cap is cut to the cap", time.Hour, 24 * time.Hour, []Choice{ForSession, ForHour}, ForHour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := MenuFor(tc.max, tc.def)
			if !slices.Equal(m.Offered, tc.wantOffered) || m.Default != tc.wantDefault {
				t.Fatalf("MenuFor(%v, %v) = %v default %q; want %v default %q", tc.max, tc.def, m.Offered, m.Default, tc.wantOffered, tc.wantDefault)
			}
			for _, c := range all {
				if m.Allows(c) != slices.Contains(tc.wantOffered, c) {
					t.Errorf("Allows(%q) = %v", c, m.Allows(c))
				}
			}
		})
	}
}

func TestExpiresAt(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const access = 10 * time.Minute
	tests := []struct {
		name   string
		c      Choice
		access time.Duration
		max    time.Duration
		want   time.Time
	}{
		{"session lasts one access token", ForSession, access, 0, now.Add(access)},
		{"session without a token lifetime ends at once", ForSession, 0, 0, now},
		{"hour", ForHour, access, 0, now.Add(time.Hour)},
		{"day", ForDay, access, 0, now.Add(24 * time.Hour)},
		{"30 days", For30Days, access, 0, now.Add(30 * 24 * time.Hour)},
		{"until revoked", UntilRevoked, access, 0, time.Time{}},
		{"cap shortens a longer choice", For30Days, access, 24 * time.Hour, now.Add(24 * time.Hour)},
		{"cap bounds until revoked", UntilRevoked, access, 24 * time.Hour, now.Add(24 * time.Hour)},
		{"cap bounds the session", ForSession, time.Hour, 30 * time.Minute, now.Add(30 * time.Minute)},
		{"cap above the choice changes nothing", ForHour, access, 24 * time.Hour, now.Add(time.Hour)},
		{"unknown choice ends at once", Choice("x"), access, 0, now},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExpiresAt(tc.c, now, tc.access, tc.max); !got.Equal(tc.want) {
				t.Fatalf("ExpiresAt = %v, want %v", got, tc.want)
			}
		})
	}
}
