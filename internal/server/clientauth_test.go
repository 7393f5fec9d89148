package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// tokenFrom posts a client-credentials token request from addr straight
// into the hub's handler, so that tests can speak from several addresses.
func (h *hub) tokenFrom(addr, clientID, secret string) *httptest.ResponseRecorder {
	h.T.Helper()
	req := httptest.NewRequest(http.MethodPost, h.URL+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	req.RemoteAddr = addr + ":40000"
	rec := httptest.NewRecorder()
	h.Server.Handler().ServeHTTP(rec, req)
	return rec
}

func errorBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return m
}

// TestClientAuthFailureLooksTheSame: an unknown client, a disabled one, a
// wrong secret and a missing one get one answer, so that the token
// endpoint does not tell which client ids exist.
func TestClientAuthFailureLooksTheSame(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	h.AddClient(&store.Client{ID: "off", GrantTypes: []string{"client_credentials"}, Disabled: true})
	want := h.tokenFrom("10.0.0.1", "no-such-client", secret)
	if want.Code != http.StatusUnauthorized || want.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("unknown client: %d %v", want.Code, want.Header())
	}
	wantBody := errorBody(t, want)
	if wantBody["error"] != "invalid_client" {
		t.Fatalf("unknown client: %v", wantBody)
	}
	for _, tc := range []struct{ name, id, secret string }{
		{"wrong secret", "bot", "wrong-secret"},
		{"disabled client", "off", "secret-off-0123456789abcdef0123456789abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h.tokenFrom("10.0.0.2", tc.id, tc.secret)
			if got.Code != want.Code || got.Header().Get("WWW-Authenticate") != want.Header().Get("WWW-Authenticate") {
				t.Fatalf("%s: %d %v, want %d like an unknown client", tc.name, got.Code, got.Header(), want.Code)
			}
			if b := errorBody(t, got); b["error"] != wantBody["error"] || b["error_description"] != wantBody["error_description"] {
				t.Fatalf("%s: %v, want %v like an unknown client", tc.name, b, wantBody)
			}
		})
	}
}

// TestClientAuthFailureAudited: every failed client authentication is a
// client.auth_failed event with the client id, the reason and the address,
// and never the secret.
func TestClientAuthFailureAudited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, h *hub) {
		h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}})
		const wrong = "not-the-secret-of-bot-4242"
		for _, tc := range []struct{ id, reason string }{
			{"bot", "secret_mismatch"},
			{"ghost", "unknown_client"},
		} {
			if rec := h.tokenFrom("192.0.2.7", tc.id, wrong); rec.Code != http.StatusUnauthorized {
				t.Fatalf("%s: %d", tc.id, rec.Code)
			}
		}
		evs := h.auditEvents("client.auth_failed")
		if len(evs) != 2 {
			t.Fatalf("client.auth_failed events = %d, want 2", len(evs))
		}
		got := map[string]string{}
		for _, ev := range evs {
			if ev.IP != "192.0.2.7" || ev.Outcome != "failure" {
				t.Errorf("event %+v: want ip 192.0.2.7, outcome failure", ev)
			}
			got[ev.ClientID] = ev.Details["reason"]
			b, _ := json.Marshal(ev)
			if strings.Contains(string(b), wrong) {
				t.Errorf("the audit event carries the presented secret: %s", b)
			}
		}
		if got["bot"] != "secret_mismatch" || got["ghost"] != "unknown_client" {
			t.Fatalf("reasons = %v", got)
		}
	})
}

// TestClientAuthThrottle: failures, and only failures, are limited per
// address and per client id from an address, with 429 and Retry-After, on
// a clock that moves.
func TestClientAuthThrottle(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		clk := newFakeClock()
		h := newHub(t, withClock(clk))
		secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
		// Successes are never counted.
		for i := range 50 {
			if rec := h.tokenFrom("10.1.0.1", "bot", secret); rec.Code != http.StatusOK {
				t.Fatalf("success %d: %d %s", i, rec.Code, rec.Body)
			}
		}
		// Failures from one address, each for another unknown client id.
		for i := range 20 {
			if rec := h.tokenFrom("10.1.0.1", fmt.Sprintf("guess-%d", i), "x"); rec.Code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i, rec.Code)
			}
		}
		rec := h.tokenFrom("10.1.0.1", "bot", secret)
		wait := retryAfter(t, rec)
		// The refused request did no check: no event for it.
		if n := len(h.auditEvents("client.auth_failed")); n != 20 {
			t.Fatalf("client.auth_failed events = %d, want 20", n)
		}
		// Another address is not affected.
		if rec := h.tokenFrom("10.1.0.2", "bot", secret); rec.Code != http.StatusOK {
			t.Fatalf("another address: %d %s", rec.Code, rec.Body)
		}
		clk.Advance(wait - time.Second/2)
		if rec := h.tokenFrom("10.1.0.1", "bot", secret); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("before Retry-After: %d", rec.Code)
		}
		clk.Advance(time.Second)
		if rec := h.tokenFrom("10.1.0.1", "bot", secret); rec.Code != http.StatusOK {
			t.Fatalf("after Retry-After: %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("per client id from an address", func(t *testing.T) {
		clk := newFakeClock()
		h := newHub(t, withClock(clk))
		secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
		other := h.AddClient(&store.Client{ID: "other", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
		for i := range 10 {
			if rec := h.tokenFrom("10.2.0.1", "bot", "wrong"); rec.Code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d", i, rec.Code)
			}
		}
		wait := retryAfter(t, h.tokenFrom("10.2.0.1", "bot", secret))
		// Another client from the same address, and the same client from
		// elsewhere — a stranger cannot lock it out — are not affected.
		if rec := h.tokenFrom("10.2.0.1", "other", other); rec.Code != http.StatusOK {
			t.Fatalf("another client: %d %s", rec.Code, rec.Body)
		}
		if rec := h.tokenFrom("10.2.0.2", "bot", secret); rec.Code != http.StatusOK {
			t.Fatalf("the client from another address: %d %s", rec.Code, rec.Body)
		}
		clk.Advance(wait)
		if rec := h.tokenFrom("10.2.0.1", "bot", secret); rec.Code != http.StatusOK {
			t.Fatalf("after Retry-After: %d %s", rec.Code, rec.Body)
		}
	})
}

// retryAfter requires a 429 with a Retry-After in seconds and returns it.
func retryAfter(t *testing.T, rec *httptest.ResponseRecorder) time.Duration {
	t.Helper()
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d %s, want 429", rec.Code, rec.Body)
	}
	n, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || n < 1 || n > 60 {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("429 without no-store: %v", rec.Header())
	}
	return time.Duration(n) * time.Second
}

// TestClientAuthParallelNotThrottled: a confidential client sending many
// token requests at once is never refused for being parallel; only
// recorded failures count against it.
func TestClientAuthParallelNotThrottled(t *testing.T) {
	h := newHub(t)
	secret := h.AddClient(&store.Client{ID: "busy", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	const workers, each = 32, 8
	codes := make(chan int, workers*each)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			<-start
			for range each {
				codes <- h.tokenFrom("10.3.0.1", "busy", secret).Code
			}
		})
	}
	close(start)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Fatalf("a parallel request got %d, want every one 200", code)
		}
	}
}
