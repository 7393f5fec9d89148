package consent

import (
	"time"
)

// Choice is how long a person grants access on the consent screen.
type Choice string

// The durations a person can choose from, shortest first.
const (
	// ForSession lasts as long as the access token issued now; no refresh
	// token is issued on its strength.
	ForSession Choice = "session"
	ForHour    Choice = "1h"
	ForDay     Choice = "1d"
	For30Days  Choice = "30d"
	// UntilRevoked never expires; the person revokes it on the account page.
	UntilRevoked Choice = "revoke"
)

// choices lists every Choice shortest first, with its fixed length (zero
// for ForSession, whose length is the access-token lifetime, and for
// UntilRevoked, which has none) and its label on the consent screen.
var choices = []struct {
	c     Choice
	ttl   time.Duration
	label string
}{
	{ForSession, 0, "Only for this session"},
	{ForHour, time.Hour, "1 hour"},
	{ForDay, 24 * time.Hour, "1 day"},
	{For30Days, 30 * 24 * time.Hour, "30 days"},
	{UntilRevoked, 0, "Until I revoke it"},
}

// DefaultTTL is the duration preselected when a resource sets none: access
// that nobody chose to make permanent ends on its own.
const DefaultTTL = 30 * 24 * time.Hour

// ParseChoice parses the duration field of the consent form. It accepts
// exactly the values of the Choice constants.
func ParseChoice(s string) (Choice, bool) {
	for _, ch := range choices {
		if string(ch.c) == s {
			return ch.c, true
		}
	}
	return "", false
}

// Label is the choice's text on the consent screen.
func (c Choice) Label() string {
	for _, ch := range choices {
		if ch.c == c {
			return ch.label
		}
	}
	return string(c)
}

// fixedTTL is the length of a choice that has a fixed one.
func (c Choice) fixedTTL() (time.Duration, bool) {
	for _, ch := range choices {
		if ch.c == c && ch.ttl > 0 {
			return ch.ttl, true
		}
	}
	return 0, false
}

// Menu is the set of durations a resource lets a person choose from, and
// the one preselected.
type Menu struct {
	Offered []Choice
	Default Choice
}

// MenuFor builds the menu of a resource with the given cap (zero: none) and
// default (zero: DefaultTTL). Choices longer than the cap are not offered,
// nor is UntilRevoked under a cap; ForSession is always offered. The
// preselected choice is the longest offered fixed duration not longer than
// defaultTTL (ForSession when there is none): UntilRevoked is never
// preselected, a person picks it on purpose.
func MenuFor(maxTTL, defaultTTL time.Duration) Menu {
	if defaultTTL <= 0 {
		defaultTTL = DefaultTTL
	}
	var m Menu
	for _, ch := range choices {
		switch {
		case ch.c == ForSession:
		case ch.c == UntilRevoked:
			if maxTTL > 0 {
				continue
			}
		case maxTTL > 0 && ch.ttl > maxTTL:
			continue
		}
		m.Offered = append(m.Offered, ch.c)
	}
	m.Default = ForSession
	for _, c := range m.Offered {
		if ttl, fixed := c.fixedTTL(); fixed && ttl <= defaultTTL {
			m.Default = c
		}
	}
	return m
}

// Allows reports whether c is on the menu; the server re-checks a submitted
// choice with it, since a form can be tampered with.
func (m Menu) Allows(c Choice) bool {
	for _, o := range m.Offered {
		if o == c {
			return true
		}
	}
	return false
}

// ExpiresAt is when a grant made at now with choice c ends; the zero time
// means until revoked. accessTTL is the lifetime of the resource's access
// tokens (the length of ForSession); maxTTL is the resource's cap, applied
// here too so that no grant outlives it whatever was chosen.
func ExpiresAt(c Choice, now time.Time, accessTTL, maxTTL time.Duration) time.Time {
	var ttl time.Duration
	switch c {
	case ForSession:
		if accessTTL <= 0 {
			return now // no token lifetime to last for: fail closed
		}
		ttl = accessTTL
	case UntilRevoked:
		ttl = 0
	default:
		var ok bool
		if ttl, ok = c.fixedTTL(); !ok {
			return now // not a choice: fail closed
		}
	}
	if maxTTL > 0 && (ttl == 0 || ttl > maxTTL) {
		ttl = maxTTL
	}
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl)
}
