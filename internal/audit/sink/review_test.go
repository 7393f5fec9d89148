package sink_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/internal/store"
)

// bigBatch is a batch of n events whose encoded items are size bytes each.
func bigBatch(n, size int) *sink.Batch {
	b := &sink.Batch{Sink: "syslog", FirstID: 1, LastID: int64(n)}
	item := []byte(`{"x":"` + strings.Repeat("a", size-8) + `"}`)
	for i := range n {
		b.Events = append(b.Events, &store.AuditEvent{ID: int64(i + 1), Type: audit.TokenIssued, Outcome: audit.Success, Time: time.Unix(1_800_000_000, 0)})
		b.Items = append(b.Items, item)
	}
	return b
}

// TestSyslogStalledCollector: a collector that accepts the connection and
// never reads must not hold a delivery past the sink's Timeout, nor past
// the end of the dispatcher's context.
func TestSyslogStalledCollector(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		cancel  time.Duration // 0: never
	}{
		{"timeout", 200 * time.Millisecond, 0},
		{"context ends", time.Hour, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var mu sync.Mutex
			var conns []net.Conn // held open, never read
			accepted := make(chan struct{})
			go func() {
				defer close(accepted)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			}()
			release := func() {
				ln.Close()
				<-accepted
				mu.Lock()
				defer mu.Unlock()
				for _, c := range conns {
					c.Close()
				}
				conns = nil
			}
			defer release()
			s, err := sink.NewSyslog(sink.SyslogOptions{Address: ln.Addr().String(), Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancel > 0 {
				time.AfterFunc(tc.cancel, cancel)
			}
			done := make(chan error, 1)
			start := time.Now()
			// 64 MiB: more than the kernel buffers on both ends hold.
			go func() { done <- s.Deliver(ctx, bigBatch(1024, 64<<10)) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Deliver to a collector that never reads succeeded")
				}
				if el := time.Since(start); el > 5*time.Second {
					t.Fatalf("Deliver returned after %v", el)
				}
			case <-time.After(10 * time.Second):
				release()
				<-done
				t.Fatal("Deliver to a collector that never reads did not return")
			}
		})
	}
}

// TestSyslogAfterIdle: a batch larger than the write buffer, sent after
// the connection was idle for longer than Timeout, is delivered at the
// first attempt (the write deadline is the batch's own).
func TestSyslogAfterIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan int, 4)
	go func() {
		n := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n++
			accepted <- n
			go func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, bufio.NewReader(c))
			}()
		}
	}()
	s, err := sink.NewSyslog(sink.SyslogOptions{Address: ln.Addr().String(), Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2 {
		if err := s.Deliver(t.Context(), bigBatch(4, 8<<10)); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(accepted) != 1 {
		t.Fatalf("the sink dialled %d times, want once", len(accepted))
	}
}

// TestMaskUserEverywhere: masking user_id hides the user's id wherever the
// event repeats it (a connection's owner_id), in both formats, and keeps
// details that are not the user as they are.
func TestMaskUserEverywhere(t *testing.T) {
	ev := audit.NewConnectionCreated(audit.Meta{TenantID: store.DefaultTenant, Time: time.Unix(1_800_000_000, 0)},
		audit.ConnectionFields{ProviderID: "github", ConnectionID: "conn-1", OwnerKind: store.OwnerUser, OwnerID: "alice@example.com"})
	ev.ID = 7
	if ev.UserID != "alice@example.com" || ev.Details["owner_id"] != "alice@example.com" {
		t.Fatalf("fixture: the event does not name its owner twice: %+v", ev)
	}
	for _, format := range []sink.Format{sink.FormatNative, sink.FormatOCSF} {
		out := string(sink.EncodeForTest(t, format, []string{"user_id"}, ev))
		if strings.Contains(out, "alice@") {
			t.Errorf("%s: the masked user id is still in %s", format, out)
		}
		for _, keep := range []string{"conn-1", "github"} {
			if !strings.Contains(out, keep) {
				t.Errorf("%s: %q missing from %s", format, keep, out)
			}
		}
	}
	if ev.Details["owner_id"] != "alice@example.com" {
		t.Fatal("masking changed the event itself")
	}
}

// errSink fails every delivery with its error.
type errSink struct{ err error }

func (s errSink) Deliver(context.Context, *sink.Batch) error { return s.err }
func (s errSink) Close() error                               { return nil }

// TestHostileErrorText: a delivery error carries text the receiver chose
// (a TLS certificate's names, a network peer's words): what is stored as
// last_error, in the dead letter and in the alert event is one line of
// printable, valid UTF-8, bounded, whatever the error held.
func TestHostileErrorText(t *testing.T) {
	tr := newTrail(t)
	ids := tr.write(t, 2)
	hostile := "x509: certificate is valid for evil\x1b[2J\x1b]0;pwned\x07.example, \u009b31m\u202eolleh\r\nlevel=ERROR msg=forged \xff\xfe" +
		strings.Repeat("\x00long", 200)
	clk := newClock()
	d, err := sink.New(sink.Options{Store: tr.st, Now: clk.Now, Sleep: clk.Sleep,
		Sinks: []sink.Config{{Name: "siem", Type: "syslog", Sink: errSink{errors.New(hostile)}, MaxAttempts: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	waitFor(t, "the dead letter", func() bool {
		dls, err := tr.st.AuditDeadLetters(t.Context(), "siem", 0)
		return err == nil && len(dls) > 0
	})
	cancel()
	<-done
	sinks, err := tr.st.ListAuditSinks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dls, err := tr.st.AuditDeadLetters(t.Context(), "siem", 0)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := tr.st.ListAudit(t.Context(), store.AuditFilter{Type: audit.AuditSinkDeadLettered})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no alert event (%v)", err)
	}
	if dls[len(dls)-1].FirstID != ids[0] {
		t.Fatalf("dead letter %+v", dls[len(dls)-1])
	}
	for what, s := range map[string]string{"last_error": sinks[0].LastError, "dead letter": dls[len(dls)-1].Error,
		"alert event": evs[0].Details["sink_error"]} {
		if !utf8.ValidString(s) || len(s) > 310 || !strings.Contains(s, "x509: certificate is valid for evil") {
			t.Errorf("%s = %q: want valid UTF-8, at most ~300 bytes, the error's start", what, s)
		}
		for _, r := range s {
			if !unicode.IsPrint(r) {
				t.Errorf("%s holds %U: %q", what, r, s)
				break
			}
		}
	}
}

// TestRetryAfter: a 429 or 503 asks the sink to wait in either form of
// RFC 9110 §10.2.3 (seconds or an HTTP-date); a huge number does not
// overflow into a short (or negative) wait.
func TestRetryAfter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name, header string
		status       int
		want         time.Duration // 0: no RetryAfter
	}{
		{"seconds", "30", http.StatusServiceUnavailable, 30 * time.Second},
		{"date", now.Add(90 * time.Second).UTC().Format(http.TimeFormat), http.StatusTooManyRequests, 90 * time.Second},
		{"date in the past", now.Add(-time.Minute).UTC().Format(http.TimeFormat), http.StatusTooManyRequests, 0},
		{"huge", "99999999999999", http.StatusTooManyRequests, 24 * time.Hour},
		{"garbage", "soon", http.StatusTooManyRequests, 0},
		{"not asked", "30", http.StatusInternalServerError, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", tc.header)
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			s, err := sink.NewWebhook(sink.HTTPOptions{URL: srv.URL, Secret: []byte("k-0123456789abcdef"), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Deliver(t.Context(), bigBatch(1, 16))
			var ra *sink.RetryAfter
			got := time.Duration(0)
			if errors.As(err, &ra) {
				got = ra.After
			}
			if err == nil || got != tc.want {
				t.Fatalf("Deliver = %v, wait %v, want %v", err, got, tc.want)
			}
		})
	}
}
