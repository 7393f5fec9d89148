package server

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"seconds", 30 * time.Second, "30 seconds"},
		{"one minute", time.Minute, "1 minute"},
		{"minutes", 10 * time.Minute, "10 minutes"},
		{"odd minutes stay minutes", 90 * time.Minute, "90 minutes"},
		{"one hour", time.Hour, "1 hour"},
		{"hours", 5 * time.Hour, "5 hours"},
		{"one day", 24 * time.Hour, "1 day"},
		{"days", 30 * 24 * time.Hour, "30 days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := humanDuration(tc.in); got != tc.want {
				t.Fatalf("humanDuration(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestUntil(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 0, 0, time.UTC)
	tests := []struct {
		name string
		exp  time.Time
		want string
	}{
		{"never", time.Time{}, "until you revoke it"},
		{"an hour", now.Add(time.Hour), "until 6 May 2030, 08:08 UTC (in 1 hour)"},
		{"rounded to the minute", now.Add(59*time.Minute + 40*time.Second), "until 6 May 2030, 08:07 UTC (in 1 hour)"},
		{"under a minute says a minute", now.Add(10 * time.Second), "until 6 May 2030, 07:08 UTC (in 1 minute)"},
		{"hours truncate", now.Add(23*time.Hour + 50*time.Minute), "until 7 May 2030, 06:58 UTC (in 23 hours)"},
		{"days truncate", now.Add(29*24*time.Hour + 23*time.Hour), "until 5 Jun 2030, 06:08 UTC (in 29 days)"},
		{"other zones shown in UTC", now.Add(time.Hour).In(time.FixedZone("X", 3600)), "until 6 May 2030, 08:08 UTC (in 1 hour)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := until(tc.exp, now); got != tc.want {
				t.Fatalf("until = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDescribeEvent(t *testing.T) {
	for _, typ := range []string{"consent.given", "consent.denied", "consent.revoked", "consent.expired", "code.issued", "token.issued", "token.denied", "refresh.rotated", "refresh.reuse_detected", "code.replayed", "token.revoked"} {
		t.Run(typ, func(t *testing.T) {
			if got := describeEvent(typ); got == typ || got == "" {
				t.Fatalf("describeEvent(%q) = %q: no words for people", typ, got)
			}
		})
	}
	if got := describeEvent("something.new"); got != "something.new" {
		t.Errorf("unknown types are shown as they are, got %q", got)
	}
}
