package server

import (
	"context"
	"testing"
	"time"
)

// TestVerifierSlotsBounded: password checks (64 MiB of argon2id memory
// each) run at most cap(verifying) at a time; a login finding no free slot
// gives up instead of adding to the pile.
func TestVerifierSlotsBounded(t *testing.T) {
	s := &Server{verifying: make(chan struct{}, 2)}
	ctx := context.Background()
	for i := range 2 {
		if !s.acquireVerifier(ctx) {
			t.Fatalf("free slot %d refused", i+1)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if s.acquireVerifier(short) {
		t.Fatal("a third concurrent password check was allowed")
	}
	<-s.verifying
	if !s.acquireVerifier(ctx) {
		t.Fatal("a released slot was not reusable")
	}
}
