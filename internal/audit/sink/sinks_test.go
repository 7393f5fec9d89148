package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/internal/store"
)

// runOnce runs a dispatcher with one sink until the trail's events up to
// last are delivered.
func runOnce(t *testing.T, tr *trail, c sink.Config, last int64) {
	t.Helper()
	clk := newClock()
	d, err := sink.New(sink.Options{Store: tr.st, Now: clk.Now, Sleep: clk.Sleep, Sinks: []sink.Config{c}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	waitFor(t, "the cursor", func() bool {
		sinks, err := tr.st.ListAuditSinks(t.Context())
		return err == nil && len(sinks) == 1 && sinks[0].Cursor >= last
	})
	cancel()
	<-done
}

// TestSplunkHEC: a fake collector receives the events in OCSF form, one
// HEC event object each, with the token in the Authorization header.
func TestSplunkHEC(t *testing.T) {
	tr := newTrail(t)
	ids := tr.write(t, 7)
	var mu sync.Mutex
	got := map[int64]map[string]any{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/collector/event" || r.Header.Get("Authorization") != "Splunk hec-token-1" {
			http.Error(w, `{"text":"Invalid token","code":4}`, http.StatusForbidden)
			return
		}
		dec := json.NewDecoder(r.Body)
		mu.Lock()
		defer mu.Unlock()
		for {
			var ev struct {
				Time       json.Number    `json:"time"`
				Source     string         `json:"source"`
				SourceType string         `json:"sourcetype"`
				Index      string         `json:"index"`
				Event      map[string]any `json:"event"`
			}
			if err := dec.Decode(&ev); err == io.EOF {
				break
			} else if err != nil {
				t.Errorf("HEC body: %v", err)
				return
			}
			if ev.Source != "agentid" || ev.SourceType != "agentid:ocsf" || ev.Index != "security" {
				t.Errorf("HEC envelope = %+v", ev)
			}
			if _, err := ev.Time.Float64(); err != nil {
				t.Errorf("HEC time %q", ev.Time)
			}
			meta, _ := ev.Event["metadata"].(map[string]any)
			uid, _ := strconv.ParseInt(meta["uid"].(string), 10, 64)
			got[uid] = ev.Event
		}
		w.Write([]byte(`{"text":"Success","code":0}`))
	}))
	defer srv.Close()
	hec, err := sink.NewSplunkHEC(sink.HTTPOptions{URL: srv.URL, Secret: []byte("hec-token-1"), Client: srv.Client(), Index: "security"}, sink.FormatOCSF)
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, tr, sink.Config{Name: "splunk", Type: "splunk_hec", Sink: hec, Format: sink.FormatOCSF}, ids[len(ids)-1])
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		ev := got[id]
		if ev == nil {
			t.Fatalf("event %d did not reach the collector", id)
		}
		// token.issued is Authorize Session (3003); the chain link rides in unmapped.
		if ev["class_uid"] != float64(audit.OCSFAuthorizeSession) || ev["type_uid"] == nil {
			t.Errorf("event %d: class %v, want OCSF %d", id, ev["class_uid"], audit.OCSFAuthorizeSession)
		}
		if u, _ := ev["unmapped"].(map[string]any); u["chain_hash"] == nil {
			t.Errorf("event %d: no chain_hash in unmapped", id)
		}
	}
}

// TestSyslog: a TCP (and a TLS) collector parses the octet-counted RFC
// 5424 frames; priority, MSGID and the JSON message are as specified.
func TestSyslog(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(t *testing.T) {
			tr := newTrail(t)
			ids := tr.write(t, 5)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var clientTLS *tls.Config
			if useTLS {
				ts := httptest.NewUnstartedServer(nil)
				ts.StartTLS()
				cert := ts.TLS.Certificates[0]
				ts.Close()
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
				pool := x509.NewCertPool()
				leaf, _ := x509.ParseCertificate(cert.Certificate[0])
				pool.AddCert(leaf)
				// The address's host (127.0.0.1) is what the certificate is checked for.
				clientTLS = &tls.Config{RootCAs: pool}
			}
			defer ln.Close()
			frames := make(chan string, 100)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					f, err := readFrame(r)
					if err != nil {
						return
					}
					frames <- f
				}
			}()
			s, err := sink.NewSyslog(sink.SyslogOptions{Address: ln.Addr().String(), TLS: clientTLS, Hostname: "hub-1"})
			if err != nil {
				t.Fatal(err)
			}
			runOnce(t, tr, sink.Config{Name: "syslog", Type: "syslog", Sink: s}, ids[len(ids)-1])
			re := regexp.MustCompile(`^<86>1 (\S+) hub-1 agentid \d+ token\.issued - \x{FEFF}(\{.*\})$`)
			for _, id := range ids {
				var f string
				select {
				case f = <-frames:
				case <-time.After(5 * time.Second):
					t.Fatalf("frame of event %d not received", id)
				}
				m := re.FindStringSubmatch(f)
				if m == nil {
					t.Fatalf("frame %q is not the RFC 5424 message expected", f)
				}
				if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
					t.Errorf("TIMESTAMP %q: %v", m[1], err)
				}
				var rec audit.Record
				if err := json.Unmarshal([]byte(m[2]), &rec); err != nil || rec.ID != id {
					t.Errorf("MSG of event %d = %s (%v)", id, m[2], err)
				}
			}
		})
	}
}

// readFrame reads one octet-counted frame (RFC 6587 §3.4.1): MSG-LEN SP
// SYSLOG-MSG.
func readFrame(r *bufio.Reader) (string, error) {
	n, err := r.ReadString(' ')
	if err != nil {
		return "", err
	}
	size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
	if err != nil || size <= 0 || size > 1<<20 {
		return "", io.ErrUnexpectedEOF
	}
	b := make([]byte, size)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// TestFileRotation: the file sink appends JSON lines and rotates by size,
// keeping MaxFiles old files; every kept line is a whole event.
func TestFileRotation(t *testing.T) {
	tr := newTrail(t)
	ids := tr.write(t, 60)
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	f, err := sink.NewFile(sink.FileOptions{Path: path, MaxBytes: 4096, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, tr, sink.Config{Name: "file", Type: "file", Sink: f, BatchSize: 5}, ids[len(ids)-1])
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists; MaxFiles is 2", path)
	}
	var seen []int64
	for _, p := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("rotated file: %v", err)
		}
		if len(b) > 4096 {
			t.Errorf("%s holds %d bytes, over MaxBytes", p, len(b))
		}
		info, _ := os.Stat(p)
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, info.Mode().Perm())
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			var rec audit.Record
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatalf("%s: line %q: %v", p, line, err)
			}
			seen = append(seen, rec.ID)
		}
	}
	// The kept files hold the newest events, in order, up to the last.
	if len(seen) == 0 || seen[len(seen)-1] != ids[len(ids)-1] {
		t.Fatalf("kept events %v do not end with %d", seen, ids[len(ids)-1])
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] != seen[i-1]+1 {
			t.Fatalf("kept events not consecutive: %v", seen)
		}
	}
	if len(seen) >= len(ids) {
		t.Fatalf("nothing was rotated away (%d of %d events kept)", len(seen), len(ids))
	}
}

// TestMasking: each sink masks its own fields, in both formats; other
// sinks and the stored events are untouched.
func TestMasking(t *testing.T) {
	ev := &store.AuditEvent{ID: 1, TenantID: store.DefaultTenant, Time: time.Unix(1_800_000_000, 0), Type: audit.LoginFailed,
		Outcome: audit.Failure, UserID: "alice@example.com", IP: "203.0.113.77", Details: map[string]string{"os_user": "root", "reason": "bad_password"}}
	cases := []struct {
		name    string
		mask    []string
		event   *store.AuditEvent
		want    map[string]string // field → value in the native form
		absent  []string          // values that must not appear in either form
		present []string
	}{
		{"nothing masked", nil, ev, map[string]string{"ip": "203.0.113.77", "user_id": "alice@example.com"}, nil, []string{"203.0.113.77"}},
		{"ip v4", []string{"ip"}, ev, map[string]string{"ip": "203.0.113.0/24"}, []string{"203.0.113.77"}, []string{"alice@example.com"}},
		{"ip v6", []string{"ip"}, withIP(ev, "2001:db8:1234:5678::9"), map[string]string{"ip": "2001:db8:1234::/48"}, []string{"5678"}, nil},
		{"email", []string{"user_id"}, ev, map[string]string{"user_id": "a***@example.com"}, []string{"alice@"}, []string{"203.0.113.77"}},
		{"detail", []string{"details.os_user"}, ev, map[string]string{"details.os_user": "***", "details.reason": "bad_password"}, []string{`"root"`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, format := range []sink.Format{sink.FormatNative, sink.FormatOCSF} {
				var buf bytes.Buffer
				b := sink.EncodeForTest(t, format, tc.mask, tc.event)
				buf.Write(b)
				out := buf.String()
				for _, v := range tc.absent {
					if strings.Contains(out, v) {
						t.Errorf("%s: %q still in %s", format, v, out)
					}
				}
				for _, v := range tc.present {
					if !strings.Contains(out, v) {
						t.Errorf("%s: %q missing from %s", format, v, out)
					}
				}
				if format != sink.FormatNative {
					continue
				}
				var rec audit.Record
				if err := json.Unmarshal(b, &rec); err != nil {
					t.Fatal(err)
				}
				for k, want := range tc.want {
					got := map[string]string{"ip": rec.IP, "user_id": rec.UserID}[k]
					if d, ok := strings.CutPrefix(k, "details."); ok {
						got = rec.Details[d]
					}
					if got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
			}
		})
	}
	if ev.IP != "203.0.113.77" || ev.UserID != "alice@example.com" || ev.Details["os_user"] != "root" {
		t.Fatalf("masking changed the event itself: %+v", ev)
	}
	if err := sink.CheckMask([]string{"email"}); err == nil {
		t.Error("CheckMask accepted an unknown field")
	}
}

func withIP(ev *store.AuditEvent, ip string) *store.AuditEvent {
	c := *ev
	c.IP = ip
	return &c
}

// TestWebhookSignature: Verify accepts what the sink signs and refuses a
// changed body, a wrong key, and a stale or missing timestamp.
func TestWebhookSignature(t *testing.T) {
	key := []byte("k-0123456789abcdef")
	body := []byte(`{"events":[{"id":1}]}`)
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	h.Set(sink.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(sink.HeaderSignature, sink.Sign(key, h.Get(sink.HeaderTimestamp), body))
	if err := sink.Verify(key, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	cases := map[string]func() (http.Header, []byte, []byte, time.Time){
		"changed body": func() (http.Header, []byte, []byte, time.Time) { return h, key, []byte(`{"events":[]}`), now },
		"wrong key":    func() (http.Header, []byte, []byte, time.Time) { return h, []byte("other"), body, now },
		"stale":        func() (http.Header, []byte, []byte, time.Time) { return h, key, body, now.Add(6 * time.Minute) },
		"no timestamp": func() (http.Header, []byte, []byte, time.Time) {
			h2 := h.Clone()
			h2.Del(sink.HeaderTimestamp)
			return h2, key, body, now
		},
		"timestamp moved": func() (http.Header, []byte, []byte, time.Time) {
			h2 := h.Clone()
			h2.Set(sink.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return h2, key, body, now
		},
	}
	for name, tc := range cases {
		hh, k, b, at := tc()
		if err := sink.Verify(k, hh, b, at, 5*time.Minute); err == nil {
			t.Errorf("%s: Verify accepted it", name)
		}
	}
}

// TestNativeEncoding: the hand-written native encoder writes exactly what
// encoding/json writes for audit.Record with the link, for awkward text
// too.
func TestNativeEncoding(t *testing.T) {
	awkward := "q\"b\\s/\n\r\t\x00\x1f<>&\u2028\u2029é😀\xff\xfe end"
	cases := map[string]*store.AuditEvent{
		"minimal": {ID: 1, TenantID: "default", Type: "t", Outcome: "success"},
		"full": {ID: 1 << 40, TenantID: "default", Time: time.Date(2026, 12, 3, 9, 0, 0, 123456000, time.FixedZone("x", 3600)),
			Type: audit.TokenIssued, Outcome: audit.Success, ClientID: "agent", UserID: "alice@example.com",
			Resource: "https://mcp.example.com/mcp", Scopes: []string{"a", "b c"}, IP: "2001:db8::1", RequestID: "req-1",
			Details: map[string]string{"jti": "j", "b": "2", "a": "1"}, ClientRequestID: "client-req"},
		"awkward": {ID: 7, TenantID: awkward, Type: awkward, Outcome: awkward, ClientID: awkward, Scopes: []string{awkward},
			Details: map[string]string{awkward: awkward}},
	}
	for name, ev := range cases {
		// The details' text as a store keeps it (encoding/json's, "{}"
		// for none) takes the place of encoding them.
		kept := "{}"
		if d := ev.StoredDetails(); len(d) > 0 {
			j, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			kept = string(j)
		}
		for _, l := range []*store.AuditLink{{Event: ev}, {Event: ev, PrevHash: []byte{0, 1}, Hash: []byte{0xfe, 0xff}},
			{Event: ev, PrevHash: []byte{2}, Hash: []byte{3}, DetailsJSON: kept}} {
			got, want := sink.NativePair(t, ev, l)
			if string(got) != string(want) {
				t.Errorf("%s (sealed %v, kept details %q):\n got %s\nwant %s", name, l.Sealed(), l.DetailsJSON, got, want)
			}
		}
	}
	// A masked event is a copy: its own details are encoded, never the
	// kept text of the stored ones.
	ev := &store.AuditEvent{ID: 1, TenantID: "default", Type: "t", Outcome: "success", Details: map[string]string{"owner_id": "***"}}
	l := &store.AuditLink{Event: &store.AuditEvent{ID: 1}, DetailsJSON: `{"owner_id":"alice@example.com"}`}
	if got, want := sink.NativePair(t, ev, l); string(got) != string(want) || strings.Contains(string(got), "alice") {
		t.Errorf("masked event:\n got %s\nwant %s", got, want)
	}
}
