package storetest

import (
	"slices"
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

// family is a grant with one issued refresh token, rotated at t0 with the
// reuse interval open.
func family(t *testing.T, s store.Store, tn string, t0 time.Time) (grant string, first *store.RefreshToken, r1 *store.Issuance) {
	t.Helper()
	grant = uniq("g")
	first = refreshToken(tn, grant, "c1", "u1", "https://r/", "a")
	issue(t, s, first, nil)
	r1 = rotation(tn, grant, t0)
	must(t, "first rotation", s.RotateRefresh(ctx(t), first.Hash, t0, r1, event(tn, "refresh.reuse")))
	return grant, first, r1
}

// wantFamilyRevoked fails unless every token in rts is revoked.
func wantFamilyRevoked(t *testing.T, s store.Store, rts ...*store.RefreshToken) {
	t.Helper()
	for i, rt := range rts {
		if refreshState(t, s, rt).RevokedAt.IsZero() {
			t.Fatalf("token %d of the family survived reuse", i)
		}
	}
}

// testRotateRefreshReuseInterval: a rotated token presented again within
// its interval, while it is still its family's most recent rotation, is
// accepted with a sibling successor and retires nothing else; a token the
// client has moved on from (a successor rotated since), a token after its
// interval, a revoked token and strict rotation (no interval) are reuse and
// revoke the family.
func testRotateRefreshReuseInterval(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	t0 := base().Add(time.Hour)

	t.Run("siblings", func(t *testing.T) {
		grant, first, r1 := family(t, s, tn, t0)
		wantAudit(t, s, r1.Events[0])
		wantNoAudit(t, s, r1.Reuse.Event)
		// The same token again, 5 s and 6 s later: accepted each time; the
		// first successor stays current beside the new ones.
		siblings := []*store.Issuance{r1}
		for _, d := range []time.Duration{5 * time.Second, 6 * time.Second} {
			at := t0.Add(d)
			next := rotation(tn, grant, at)
			reuse := event(tn, "refresh.reuse")
			must(t, "presentation within the interval", s.RotateRefresh(ctx(t), first.Hash, at, next, reuse))
			wantAudit(t, s, next.Reuse.Event)
			wantAudit(t, s, next.Events[0])
			wantNoAudit(t, s, reuse)
			siblings = append(siblings, next)
		}
		if got := refreshState(t, s, first); !sameTime(t0, got.RotatedAt) {
			t.Fatalf("the presented token's rotation moved to %v, want %v", got.RotatedAt, t0)
		}
		// Every successor is current, and each rotates once, even long
		// after the interval.
		later := t0.Add(time.Hour)
		var rts []*store.RefreshToken
		for i, sib := range siblings {
			if !refreshState(t, s, sib.RefreshToken).Active(t0.Add(6*time.Second)) || revoked(t, s, sib.AccessToken) {
				t.Fatalf("successor %d is not current", i)
			}
			must(t, "rotating a successor after the interval", s.RotateRefresh(ctx(t), sib.RefreshToken.Hash, later, rotation(tn, grant, later), event(tn, "refresh.reuse")))
			rts = append(rts, sib.RefreshToken)
		}
		// The first token now: reuse; the family is revoked.
		wantErr(t, "the first token after the interval", s.RotateRefresh(ctx(t), first.Hash, later, rotation(tn, grant, later), nil), store.ErrAlreadyUsed)
		wantFamilyRevoked(t, s, append(rts, first)...)
	})

	t.Run("moved on", func(t *testing.T) {
		grant, first, r1 := family(t, s, tn, t0)
		// The client refreshes with the successor: it has moved on.
		r2 := rotation(tn, grant, t0.Add(2*time.Second))
		must(t, "rotating the successor", s.RotateRefresh(ctx(t), r1.RefreshToken.Hash, t0.Add(2*time.Second), r2, nil))
		// The successor again is its family's most recent rotation:
		// accepted.
		r3 := rotation(tn, grant, t0.Add(3*time.Second))
		must(t, "the just-rotated successor again", s.RotateRefresh(ctx(t), r1.RefreshToken.Hash, t0.Add(3*time.Second), r3, nil))
		// The first token, still within its own interval, is two
		// rotations old: reuse.
		at := t0.Add(4 * time.Second)
		r4 := rotation(tn, grant, at)
		reuse := event(tn, "refresh.reuse")
		wantErr(t, "a token whose successor was rotated", s.RotateRefresh(ctx(t), first.Hash, at, r4, reuse), store.ErrAlreadyUsed)
		wantAudit(t, s, reuse)
		wantNoAudit(t, s, r4.Reuse.Event)
		wantNoAudit(t, s, r4.Events[0])
		_, err := s.GetRefreshToken(ctx(t), r4.RefreshToken.Hash)
		wantErr(t, "successor of a refused presentation", err, store.ErrNotFound)
		wantFamilyRevoked(t, s, first, r1.RefreshToken, r2.RefreshToken, r3.RefreshToken)
		for _, iss := range []*store.Issuance{r1, r2, r3} {
			if !revoked(t, s, iss.AccessToken) {
				t.Fatal("an access token of the family survived reuse")
			}
		}
	})

	t.Run("after the interval", func(t *testing.T) {
		grant, first, r1 := family(t, s, tn, t0)
		late := t0.Add(reuseInterval + time.Second)
		next := rotation(tn, grant, late)
		reuse := event(tn, "refresh.reuse")
		wantErr(t, "presentation after the interval", s.RotateRefresh(ctx(t), first.Hash, late, next, reuse), store.ErrAlreadyUsed)
		wantAudit(t, s, reuse)
		wantNoAudit(t, s, next.Reuse.Event)
		_, err := s.GetRefreshToken(ctx(t), next.RefreshToken.Hash)
		wantErr(t, "successor of a refused presentation", err, store.ErrNotFound)
		wantFamilyRevoked(t, s, first, r1.RefreshToken)
	})

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

// testRotateRefreshReuseConcurrent: concurrent presentations of the
// just-rotated token are all accepted; every successor they return is
// current and rotates once, concurrently and after the interval; the
// original token after the interval is reuse and revokes the family.
func testRotateRefreshReuseConcurrent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	t0 := base().Add(time.Hour)
	const n = 10
	// race runs n RotateRefresh calls at once: of presented[i] at now.
	race := func(grant string, presented []*store.RefreshToken, now time.Time) ([]*store.Issuance, []error) {
		issued := make([]*store.Issuance, len(presented))
		errs := make([]error, len(presented))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, rt := range presented {
			issued[i] = rotation(tn, grant, now)
			wg.Go(func() {
				<-start
				errs[i] = s.RotateRefresh(ctx(t), rt.Hash, now, issued[i], event(tn, "refresh.reuse"))
			})
		}
		close(start)
		wg.Wait()
		return issued, errs
	}
	for round := range 5 {
		grant, first, r1 := family(t, s, tn, t0)
		now := t0.Add(time.Second)
		issued, errs := race(grant, slices.Repeat([]*store.RefreshToken{first}, n), now)
		successors := []*store.RefreshToken{r1.RefreshToken}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, presentation %d: %v", round, i, err)
			}
			successors = append(successors, issued[i].RefreshToken)
		}
		if got := current(t, s, now, successors...); len(got) != len(successors) {
			t.Fatalf("round %d: %d of %d successors current", round, len(got), len(successors))
		}
		// After the interval, every successor rotates once.
		later := t0.Add(time.Minute)
		next, errs := race(grant, successors, later)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, rotating successor %d after the interval: %v", round, i, err)
			}
			if !refreshState(t, s, next[i].RefreshToken).Active(later) {
				t.Fatalf("round %d: the successor of successor %d is not current", round, i)
			}
		}
		// The original token now is reuse.
		wantErr(t, "the original token after the interval", s.RotateRefresh(ctx(t), first.Hash, later, rotation(tn, grant, later), nil), store.ErrAlreadyUsed)
		all := []*store.RefreshToken{first}
		all = append(all, successors...)
		for _, iss := range next {
			all = append(all, iss.RefreshToken)
		}
		wantFamilyRevoked(t, s, all...)
	}
}
