package main

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

func TestKeyState(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		key  store.SigningKey
		now  time.Time
		want string
	}{
		{"active, never retired", store.SigningKey{ActivateAt: t0}, t0, keyActive},
		{"pre-published", store.SigningKey{ActivateAt: t0.Add(10 * time.Minute)}, t0, keyNext},
		{"active until its retirement", store.SigningKey{ActivateAt: t0, RetiredAt: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour)}, t0, keyActive},
		{"retired, still published", store.SigningKey{ActivateAt: t0, RetiredAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
		{"retired at this instant", store.SigningKey{ActivateAt: t0.Add(-time.Hour), RetiredAt: t0, ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
		{"expired", store.SigningKey{ActivateAt: t0.Add(-2 * time.Hour), RetiredAt: t0.Add(-time.Hour), ExpiresAt: t0}, t0, keyExpired},
		// rotate --now over a pre-published key retires it before it ever signs.
		{"retired before activation", store.SigningKey{ActivateAt: t0.Add(10 * time.Minute), RetiredAt: t0.Add(-time.Second), ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
		{"retired at its activation", store.SigningKey{ActivateAt: t0.Add(10 * time.Minute), RetiredAt: t0.Add(10 * time.Minute), ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyState(&tt.key, tt.now); got != tt.want {
				t.Errorf("keyState = %q, want %q", got, tt.want)
			}
		})
	}
}
