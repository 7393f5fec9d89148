package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientAnswers reads the answers' framings a server may use: a
// length, chunks (with a trailer), no body, a close after the answer;
// and sends the prebuilt request whole: method, path under the hub's
// path, Host, Basic credentials (form-encoded first) and the body.
func TestClientAnswers(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, secret, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/base/token" || !ok || id != "a%3Ab" || secret != "s+%26" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.Host != strings.TrimPrefix(srvURL(r), "http://") {
			http.Error(w, "bad request "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		f, _ := url.ParseQuery(string(body))
		switch f.Get("mode") {
		case "length":
			w.Write([]byte(`{"access_token":"x"}`))
		case "chunked":
			w.Header().Set("Trailer", "X-T")
			w.Write([]byte(`{"access_token":`))
			w.(http.Flusher).Flush()
			w.Write([]byte(`"` + strings.Repeat("y", 5000) + `"}`))
			w.Header().Set("X-T", "1")
		case "empty":
			w.WriteHeader(http.StatusNoContent)
		case "close":
			w.Header().Set("Connection", "close")
			w.Write([]byte(`{"access_token":"z"}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := newClient([]string{srv.URL + "/base/"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.closeAll()
	req := c.newRequest("/token", &Credentials{ID: "a:b", Secret: "s &"})
	var buf exchangeBuf
	for _, tc := range []struct {
		mode   string
		status int
		body   string
		conns  int64
	}{
		{"length", 200, `{"access_token":"x"}`, 1},
		{"chunked", 200, `{"access_token":"` + strings.Repeat("y", 5000) + `"}`, 1},
		{"empty", 204, "", 1},
		{"length", 200, `{"access_token":"x"}`, 1},
		{"close", 200, `{"access_token":"z"}`, 1},
		{"length", 200, `{"access_token":"x"}`, 2}, // a new connection after the close
	} {
		ans, err := c.do(context.Background(), 0, req, &buf, "mode=", tc.mode)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if ans.status != tc.status || string(ans.body) != tc.body || conns.Load() != tc.conns {
			t.Errorf("%s: %d %.60q on %d connections, want %d %.60q on %d", tc.mode, ans.status, ans.body, conns.Load(), tc.status, tc.body, tc.conns)
		}
	}
}

func srvURL(r *http.Request) string {
	return "http://" + r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()
}

// TestClientIdleClosed: a server that closed a kept-alive connection
// between requests costs no failure (once more on a new connection); a
// new connection closed after the server read the request, before it
// answered, is the request's failure, not sent again.
func TestClientIdleClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var requests atomic.Int64
	// Each connection answers one request, then closes: between requests
	// on the first two, without a word after the third request.
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				r, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					return
				}
				io.Copy(io.Discard, r.Body)
				if requests.Add(1) == 3 {
					return
				}
				fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	c, err := newClient([]string{"http://" + ln.Addr().String()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.closeAll()
	req := c.newRequest("/x", nil)
	var buf exchangeBuf
	for i := range 2 {
		if ans, err := c.do(context.Background(), 0, req, &buf, "a=b"); err != nil || string(ans.body) != "ok" {
			t.Fatalf("request %d: %q %v", i, ans.body, err)
		}
	}
	if requests.Load() != 2 {
		t.Fatalf("%d requests reached the server, want 2", requests.Load())
	}
	if _, err := c.do(context.Background(), 0, req, &buf, "a=b"); err == nil {
		t.Fatal("an unanswered request succeeded")
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests reached the server, want 3: the unanswered one was sent again", n)
	}
}

// TestAnswerChecks: what counts as a token or an active introspection.
func TestAnswerChecks(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		field  string
		want   string
		err    string
	}{
		{200, `{"access_token":"at","token_type":"Bearer"}`, "", "", ""},
		{200, `{ "access_token" : "at" }`, "", "", ""}, // not compact: decoded
		{200, `{"access_token":"at","refresh_token":"rt"}` + "\n", "refresh_token", "rt", ""},
		{200, `{"access_token":"at","refresh_token":"r\u002ft"}`, "refresh_token", "r/t", ""},
		{200, `{"access_token":"at"}`, "refresh_token", "", "no refresh_token"},
		{200, `{"access_token":""}`, "", "", "no access_token"},
		{200, `{"error_description":"\"access_token\":\"x\""}`, "", "", "no access_token"},
		{200, `<html>"access_token":"x"</html>`, "", "", "undecodable"},
		{400, `{"error":"invalid_grant","error_description":"expired"}`, "", "", "HTTP 400 invalid_grant: expired"},
		{502, `bad gateway`, "", "", "HTTP 502"},
	} {
		got, err := tokenAnswer(answer{status: tc.status, body: []byte(tc.body)}, tc.field)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%d %s: %q %v, want %q %q", tc.status, tc.body, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		status int
		body   string
		ok     bool
	}{
		{200, `{"active":true,"scope":"a"}`, true},
		{200, `{"active": true}`, true},
		{200, `{"active":false}`, false},
		{200, `{}`, false},
		{200, `"active":true`, false},
		{401, `{"error":"invalid_client"}`, false},
	} {
		if err := introspectionAnswer(answer{status: tc.status, body: []byte(tc.body)}); (err == nil) != tc.ok {
			t.Errorf("%d %s: %v", tc.status, tc.body, err)
		}
	}
}

// TestClientCloseAll: closing the client (what cancelling the bench's
// context does) ends a request waiting for an answer that never comes,
// and the client dials no more.
func TestClientCloseAll(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close() // read nothing, answer nothing
		}
	}()
	c, err := newClient([]string{"http://" + ln.Addr().String()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	req := c.newRequest("/x", nil)
	done := make(chan error, 1)
	go func() {
		var buf exchangeBuf
		_, err := c.do(context.Background(), 0, req, &buf, "a=b")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c.closeAll()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an unanswered request succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closeAll did not end the request")
	}
	var buf exchangeBuf
	if _, err := c.do(context.Background(), 0, req, &buf, "a=b"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("after closeAll: %v, want net.ErrClosed", err)
	}
}
