package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/agentid/agentid/internal/store"
)

// testClientUpdateAborts pins what an update that fails writes: nothing.
func testClientUpdateAborts(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	before := fullClient(tn, "c1")
	must(t, "CreateClient", s.CreateClient(ctx(t), before, nil))
	errRefused := errors.New("the update refuses")
	tests := []struct {
		name   string
		update func(*store.Client) error
		want   error
	}{
		{"update returns an error", func(c *store.Client) error { c.Name = "half-done"; return errRefused }, errRefused},
		{"update changes the id", func(c *store.Client) error { c.ID = "c2"; return nil }, store.ErrInvalid},
		{"update changes the tenant", func(c *store.Client) error { c.TenantID = "t2"; return nil }, store.ErrInvalid},
		{"update panics", func(c *store.Client) error { c.Name = "half-done"; panic("boom") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := event(tn, "client.updated")
			got, err := s.UpdateClient(ctx(t), tn, "c1", tc.update, ev)
			if err == nil || got != nil {
				t.Fatalf("UpdateClient = %v, %v; want an error and no client", got, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("UpdateClient: %v, want %v", err, tc.want)
			}
			wantNoAudit(t, s, ev)
			stored, err := s.GetClient(ctx(t), tn, "c1")
			must(t, "GetClient", err)
			checkEqual(t, "client after a failed update", before, stored)
		})
	}
	// The store still writes after an update panicked on its writer.
	_, err := s.UpdateClient(ctx(t), tn, "c1", func(c *store.Client) error { c.Name = "fine"; return nil }, nil)
	must(t, "UpdateClient after the failures", err)
}

// testClientUpdateFillsEvent pins that the update may write the event it
// was given: the event records what only the update knew.
func testClientUpdateFillsEvent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	must(t, "CreateClient", s.CreateClient(ctx(t), fullClient(tn, "c1"), nil))
	ev := new(store.AuditEvent)
	want := event(tn, "client.updated")
	_, err := s.UpdateClient(ctx(t), tn, "c1", func(c *store.Client) error {
		c.Tags = append(c.Tags, "fresh")
		*ev = *want
		ev.Details = map[string]string{"tags": fmt.Sprint(c.Tags)}
		return nil
	}, ev)
	must(t, "UpdateClient", err)
	want.Details = map[string]string{"tags": "[trusted beta fresh]"}
	wantAudit(t, s, want)
	if ev.ID == 0 {
		t.Error("the event filled by the update has no ID")
	}
}

// testClientUpdateConcurrent runs updates of different fields at once, as
// an RFC 7592 update racing an admin's `clients tag`: every one lands.
func testClientUpdateConcurrent(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c := minimalClient(tn, "c1")
	must(t, "CreateClient", s.CreateClient(ctx(t), c, nil))
	const taggers = 12
	var wg sync.WaitGroup
	errs := make([]error, taggers+1)
	start := make(chan struct{})
	for i := range taggers {
		wg.Go(func() {
			<-start
			_, errs[i] = s.UpdateClient(ctx(t), tn, "c1", func(c *store.Client) error {
				c.Tags = append(c.Tags, fmt.Sprintf("tag-%02d", i))
				return nil
			}, event(tn, "client.updated"))
		})
	}
	wg.Go(func() {
		<-start
		_, errs[taggers] = s.UpdateClient(ctx(t), tn, "c1", func(c *store.Client) error {
			c.Name, c.RedirectURIs = "Registered metadata", []string{"https://agent.example.com/cb"}
			return nil
		}, event(tn, "client.updated"))
	})
	close(start)
	wg.Wait()
	for i, err := range errs {
		must(t, fmt.Sprintf("UpdateClient %d", i), err)
	}
	got, err := s.GetClient(ctx(t), tn, "c1")
	must(t, "GetClient", err)
	slices.Sort(got.Tags)
	var want []string
	for i := range taggers {
		want = append(want, fmt.Sprintf("tag-%02d", i))
	}
	if !slices.Equal(got.Tags, want) {
		t.Errorf("tags after concurrent updates = %v, want all %d", got.Tags, taggers)
	}
	if got.Name != "Registered metadata" || !slices.Equal(got.RedirectURIs, []string{"https://agent.example.com/cb"}) {
		t.Errorf("metadata after concurrent updates: name %q, redirect URIs %v", got.Name, got.RedirectURIs)
	}
}
