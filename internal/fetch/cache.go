package fetch

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// freshness is the remaining freshness lifetime of a response received at
// now, as a private cache computes it (RFC 9111 §4.2): max-age, else Expires
// minus Date; minus the response's current age (Age, or now minus Date).
// It is 0 when the response must not be reused without revalidation
// (no-store, no-cache), when nothing gives a lifetime (heuristic freshness,
// RFC 9111 §4.2.2, is not used), or when the information is invalid (§4.2.1:
// treat as stale). s-maxage is for shared caches and ignored.
func freshness(h http.Header, now time.Time) time.Duration {
	var maxAge time.Duration
	haveMaxAge := false
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if haveMaxAge {
					continue // §4.2.1: the first occurrence counts
				}
				haveMaxAge = true
				n, ok := deltaSeconds(strings.Trim(strings.TrimSpace(val), `"`))
				if !ok {
					return 0
				}
				maxAge = n
			}
		}
	}
	date, dateErr := http.ParseTime(h.Get("Date"))
	var life time.Duration
	switch {
	case haveMaxAge:
		life = maxAge
	case h.Get("Expires") != "":
		exp, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			return 0 // e.g. "Expires: 0" means already expired (§5.3)
		}
		base := now
		if dateErr == nil {
			base = date
		}
		life = exp.Sub(base)
	default:
		return 0
	}
	// Current age (§4.2.3), without the request/response delay correction.
	var age time.Duration
	if dateErr == nil && now.After(date) {
		age = now.Sub(date)
	}
	if v := h.Get("Age"); v != "" {
		if a, ok := deltaSeconds(strings.TrimSpace(v)); ok && a > age {
			age = a
		}
	}
	if life <= age {
		return 0
	}
	return life - age
}

// deltaSeconds parses delta-seconds (RFC 9111 §1.2.2): non-negative decimal
// digits; values too large saturate (at about 68 years, plenty here).
func deltaSeconds(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		n = 1<<31 - 1
	}
	return time.Duration(n) * time.Second, true
}
