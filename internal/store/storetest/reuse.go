package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

const reuseInterval = 10 * time.Second

// rotation is one RotateRefresh call's issuance at now with the reuse
// interval open (its acceptance event set).
func rotation(tn, grant string, now time.Time) *store.Issuance {
	rt := refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
	rt.CreatedAt = now
	return &store.Issuance{
		AccessToken:  accessToken(tn, grant, "c1", "u1", "https://r/", "a"),
		RefreshToken: rt,
		Events:       []*store.AuditEvent{event(tn, "refresh.rotated")},
		Reuse:        &store.ReuseInterval{Since: now.Add(-reuseInterval), Event: event(tn, "refresh.reused_within_interval")},
	}
}

// current returns the tokens among rts that are current at now.
func current(t *testing.T, s store.Store, now time.Time, rts ...*store.RefreshToken) []*store.RefreshToken {
	t.Helper()
	var out []*store.RefreshToken
	for _, rt := range rts {
		if refreshState(t, s, rt).Active(now) {
			out = append(out, rt)
		}
	}
	return out
}

// testRotateRefreshReuseInterval: a rotated token presented again within
// the interval is accepted (the family's current token retired, exactly one
// current token after), outside it revokes the family; a revoked token and
// strict rotation (no interval) never get the grace.
func testRotateRefreshReuseInterval(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	t0 := base().Add(time.Hour)

	grant := uniq("g")
	first := refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
	issue(t, s, first, nil)
	r1 := rotation(tn, grant, t0)
	must(t, "first rotation", s.RotateRefresh(ctx(t), first.Hash, t0, r1, event(tn, "refresh.reuse")))
	wantAudit(t, s, r1.Events[0])
	wantNoAudit(t, s, r1.Reuse.Event)

	// The same token again, 5 s later: accepted; the first successor is
	// retired in favour of the new one.
	at := t0.Add(5 * time.Second)
	r2 := rotation(tn, grant, at)
	reuse := event(tn, "refresh.reuse")
	must(t, "presentation within the interval", s.RotateRefresh(ctx(t), first.Hash, at, r2, reuse))
	wantAudit(t, s, r2.Reuse.Event)
	wantAudit(t, s, r2.Events[0])
	wantNoAudit(t, s, reuse)
	if got := current(t, s, at, first, r1.RefreshToken, r2.RefreshToken); len(got) != 1 || got[0] != r2.RefreshToken {
		t.Fatalf("current tokens of the family: %d, want only the newest", len(got))
	}
	if got := refreshState(t, s, r1.RefreshToken); !sameTime(at, got.RotatedAt) || !got.RevokedAt.IsZero() {
		t.Fatalf("the earlier successor = %+v, want retired at %v, not revoked", got, at)
	}
	if revoked(t, s, r1.AccessToken) || revoked(t, s, r2.AccessToken) {
		t.Fatal("an access token of the family was revoked")
	}

	// The retired successor is itself within its interval.
	at2 := at.Add(2 * time.Second)
	r3 := rotation(tn, grant, at2)
	must(t, "the retired successor within its interval", s.RotateRefresh(ctx(t), r1.RefreshToken.Hash, at2, r3, nil))
	if got := current(t, s, at2, first, r1.RefreshToken, r2.RefreshToken, r3.RefreshToken); len(got) != 1 || got[0] != r3.RefreshToken {
		t.Fatalf("current tokens after a second acceptance: %d, want only the newest", len(got))
	}

	// The first token after its interval: the family is revoked.
	late := t0.Add(reuseInterval + time.Second)
	r4 := rotation(tn, grant, late)
	reuse = event(tn, "refresh.reuse")
	wantErr(t, "presentation after the interval", s.RotateRefresh(ctx(t), first.Hash, late, r4, reuse), store.ErrAlreadyUsed)
	wantAudit(t, s, reuse)
	wantNoAudit(t, s, r4.Reuse.Event)
	for _, rt := range []*store.RefreshToken{first, r1.RefreshToken, r2.RefreshToken, r3.RefreshToken} {
		if refreshState(t, s, rt).RevokedAt.IsZero() {
			t.Fatal("a token of the family survived reuse after the interval")
		}
	}
	_, err := s.GetRefreshToken(ctx(t), r4.RefreshToken.Hash)
	wantErr(t, "successor of a refused presentation", err, store.ErrNotFound)

	t.Run("revoked token", func(t *testing.T) {
		grant := uniq("g")
		rt := refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
		issue(t, s, rt, nil)
		must(t, "RevokeGrant", s.RevokeGrant(ctx(t), tn, grant, t0, nil))
		wantErr(t, "RotateRefresh", s.RotateRefresh(ctx(t), rt.Hash, t0, rotation(tn, grant, t0), nil), store.ErrAlreadyUsed)
	})
	t.Run("strict", func(t *testing.T) {
		grant := uniq("g")
		rt := refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
		issue(t, s, rt, nil)
		next := rotation(tn, grant, t0)
		next.Reuse = nil
		must(t, "RotateRefresh", s.RotateRefresh(ctx(t), rt.Hash, t0, next, nil))
		again := rotation(tn, grant, t0.Add(time.Second))
		again.Reuse = nil
		wantErr(t, "RotateRefresh again", s.RotateRefresh(ctx(t), rt.Hash, t0.Add(time.Second), again, nil), store.ErrAlreadyUsed)
		if refreshState(t, s, next.RefreshToken).RevokedAt.IsZero() {
			t.Fatal("strict rotation: reuse did not revoke the family")
		}
	})
}

// testRotateRefreshReuseConcurrent: presentations of a rotated token and of
// its current successor race; all are accepted and the family ends with
// exactly one current token.
func testRotateRefreshReuseConcurrent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	t0 := base().Add(time.Hour)
	for round := range 5 {
		grant := uniq("g")
		first := refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
		issue(t, s, first, nil)
		r1 := rotation(tn, grant, t0)
		must(t, "first rotation", s.RotateRefresh(ctx(t), first.Hash, t0, r1, nil))
		const n = 10
		now := t0.Add(time.Second)
		issued := make([]*store.Issuance, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			issued[i] = rotation(tn, grant, now)
			presented := first
			if i%2 == 1 {
				presented = r1.RefreshToken
			}
			wg.Go(func() {
				<-start
				errs[i] = s.RotateRefresh(ctx(t), presented.Hash, now, issued[i], event(tn, "refresh.reuse"))
			})
		}
		close(start)
		wg.Wait()
		all := []*store.RefreshToken{first, r1.RefreshToken}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, presentation %d: %v", round, i, errors.Unwrap(err))
			}
			all = append(all, issued[i].RefreshToken)
		}
		if got := current(t, s, now, all...); len(got) != 1 {
			t.Fatalf("round %d: %d current tokens in the family, want exactly 1", round, len(got))
		}
		for _, rt := range all {
			if !refreshState(t, s, rt).RevokedAt.IsZero() {
				t.Fatalf("round %d: a token of the family was revoked", round)
			}
		}
	}
}
