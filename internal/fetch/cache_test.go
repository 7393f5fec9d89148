package fetch

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	cases := []struct {
		name string
		h    map[string]string
		want time.Duration
	}{
		{"nothing", nil, 0},
		{"max-age", map[string]string{"Cache-Control": "max-age=600"}, 600 * time.Second},
		{"max-age upper case, spaces", map[string]string{"Cache-Control": "public ,  MAX-AGE=600"}, 600 * time.Second},
		{"max-age quoted", map[string]string{"Cache-Control": `max-age="600"`}, 600 * time.Second},
		{"private is fine for us", map[string]string{"Cache-Control": "private, max-age=60"}, time.Minute},
		{"first max-age counts", map[string]string{"Cache-Control": "max-age=60, max-age=6000"}, time.Minute},
		{"max-age minus Age", map[string]string{"Cache-Control": "max-age=600", "Age": "100"}, 500 * time.Second},
		{"max-age minus age from Date", map[string]string{"Cache-Control": "max-age=600", "Date": date(-200 * time.Second)}, 400 * time.Second},
		{"the larger age counts", map[string]string{"Cache-Control": "max-age=600", "Date": date(-200 * time.Second), "Age": "300"}, 300 * time.Second},
		{"Date in the future is age 0", map[string]string{"Cache-Control": "max-age=600", "Date": date(time.Hour)}, 600 * time.Second},
		{"older than max-age", map[string]string{"Cache-Control": "max-age=60", "Age": "61"}, 0},
		{"no-store", map[string]string{"Cache-Control": "max-age=600, no-store"}, 0},
		{"no-cache", map[string]string{"Cache-Control": "no-cache, max-age=600"}, 0},
		{"s-maxage ignored", map[string]string{"Cache-Control": "s-maxage=600"}, 0},
		{"s-maxage beside max-age", map[string]string{"Cache-Control": "s-maxage=6000, max-age=60"}, time.Minute},
		{"invalid max-age is stale", map[string]string{"Cache-Control": "max-age=ten", "Expires": date(time.Hour)}, 0},
		{"negative max-age is stale", map[string]string{"Cache-Control": "max-age=-1"}, 0},
		{"huge max-age saturates", map[string]string{"Cache-Control": "max-age=99999999999999"}, (1<<31 - 1) * time.Second},
		{"Expires minus Date", map[string]string{"Expires": date(2 * time.Hour), "Date": date(-time.Hour)}, 2 * time.Hour},
		{"Expires without Date", map[string]string{"Expires": date(time.Hour)}, time.Hour},
		{"Expires 0", map[string]string{"Expires": "0"}, 0},
		{"Expires past", map[string]string{"Expires": date(-time.Minute)}, 0},
		{"max-age beats Expires", map[string]string{"Cache-Control": "max-age=60", "Expires": date(time.Hour)}, time.Minute},
		{"invalid Age ignored", map[string]string{"Cache-Control": "max-age=60", "Age": "x"}, time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.h {
				h.Set(k, v)
			}
			if got := freshness(h, now); got != c.want {
				t.Errorf("freshness = %v, want %v", got, c.want)
			}
		})
	}
}

// FuzzFreshness: cache headers come from strangers; whatever they say, the
// lifetime is never negative, never longer than the largest max-age, and
// no-store always wins.
func FuzzFreshness(f *testing.F) {
	f.Add("max-age=600", "", "", "")
	f.Add("no-store, max-age=60", "Thu, 01 Jan 2026 00:00:00 GMT", "Wed, 02 Dec 2026 12:00:00 GMT", "5")
	f.Add(`max-age="1"`, "0", "", "x")
	f.Fuzz(func(t *testing.T, cc, expires, date, age string) {
		now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
		h := http.Header{}
		for k, v := range map[string]string{"Cache-Control": cc, "Expires": expires, "Date": date, "Age": age} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		got := freshness(h, now)
		if got < 0 {
			t.Fatalf("negative freshness %v", got)
		}
		if got > 1<<31*time.Second && cc != "" {
			t.Fatalf("freshness %v beyond the saturation", got)
		}
		for _, d := range strings.Split(cc, ",") {
			name, _, _ := strings.Cut(d, "=")
			if strings.EqualFold(strings.TrimSpace(name), "no-store") && got != 0 {
				t.Fatalf("no-store gave %v", got)
			}
		}
	})
}
