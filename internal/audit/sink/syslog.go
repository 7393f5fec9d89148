package sink

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// SyslogOptions configure the syslog sink.
type SyslogOptions struct {
	// Address is the collector's host:port.
	Address string
	// TLS, when set, wraps the connection (RFC 5425), checking the
	// collector's certificate for the address's host unless ServerName
	// says otherwise; nil is plain TCP (RFC 6587).
	TLS *tls.Config
	// Facility is the syslog facility code (RFC 5424 §6.2.1; default 10,
	// security/authorization messages, authpriv).
	Facility int
	// Hostname and AppName fill the header (defaults: the host name and
	// "agentid").
	Hostname, AppName string
	// Timeout bounds dialing and each batch's write (default 10s).
	Timeout time.Duration
	// Dial replaces the dialer in tests.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

type syslogSink struct {
	o    SyslogOptions
	pid  string
	mu   sync.Mutex
	conn net.Conn
}

// NewSyslog returns a sink that writes each event as an RFC 5424 message
// over one TCP (or TLS) connection with octet-counting framing (RFC 6587
// §3.4.1, RFC 5425 §4.3): "<length> <message>". The message's MSGID is the
// event type, its MSG the encoded event (UTF-8, with a BOM), its severity
// informational for a success, notice for a denial, warning for a
// failure. A connection that fails is closed and dialled again on the
// next attempt; TCP has no acknowledgement, so what the kernel buffered
// when a connection broke may be lost.
func NewSyslog(o SyslogOptions) (Sink, error) {
	host, _, err := net.SplitHostPort(o.Address)
	if err != nil {
		return nil, errors.New("sink: the syslog address must be host:port")
	}
	if o.TLS != nil && o.TLS.ServerName == "" {
		// The collector's certificate is checked for the host dialled.
		o.TLS = o.TLS.Clone()
		o.TLS.ServerName = host
	}
	if o.Facility < 0 || o.Facility > 23 {
		return nil, errors.New("sink: the syslog facility must be 0-23")
	}
	if o.Facility == 0 {
		o.Facility = 10
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	o.Hostname = headerField(o.Hostname, 255)
	o.AppName = headerField(orDefault(o.AppName, "agentid"), 48)
	o.Timeout = orDefault(o.Timeout, 10*time.Second)
	if o.Dial == nil {
		d := &net.Dialer{Timeout: o.Timeout}
		o.Dial = d.DialContext
	}
	return &syslogSink{o: o, pid: strconv.Itoa(os.Getpid())}, nil
}

// Deliver implements Sink.
func (s *syslogSink) Deliver(ctx context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, err := s.o.Dial(ctx, "tcp", s.o.Address)
		if err != nil {
			return fmt.Errorf("syslog %s: %w", s.o.Address, err)
		}
		if s.o.TLS != nil {
			tc := tls.Client(c, s.o.TLS)
			hctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				c.Close()
				return fmt.Errorf("syslog %s: TLS: %w", s.o.Address, err)
			}
			c = tc
		}
		s.conn = c
	}
	// The deadline covers the whole batch, set before the first write
	// (the buffer flushes whenever it fills), and the end of ctx cuts it
	// short: a collector that stops reading holds the sink at most this
	// long.
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.o.Timeout))
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	w := bufio.NewWriter(conn)
	for i, ev := range b.Events {
		msg := FormatSyslog(s.o.Facility, ev, s.o.Hostname, s.o.AppName, s.pid, b.Items[i])
		w.WriteString(strconv.Itoa(len(msg)))
		w.WriteByte(' ')
		w.Write(msg)
	}
	err := w.Flush()
	if !stop() || err != nil {
		// A write failed, or ctx ended meanwhile and may yet spoil the
		// connection's deadline: the next batch dials again.
		s.conn.Close()
		s.conn = nil
	}
	if err != nil {
		return fmt.Errorf("syslog %s: %w", s.o.Address, err)
	}
	return nil
}

// Close implements Sink.
func (s *syslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// FormatSyslog is the RFC 5424 message of ev (§6):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG
//
// with PRI = facility*8 + severity, the event's time in UTC with
// microseconds, the event type as MSGID, no structured data and the
// encoded event as MSG.
func FormatSyslog(facility int, ev *store.AuditEvent, host, app, procID string, item []byte) []byte {
	sev := 6 // informational
	switch ev.Outcome {
	case audit.Denied:
		sev = 5 // notice
	case audit.Failure:
		sev = 4 // warning
	}
	ts := "-"
	if !ev.Time.IsZero() {
		ts = ev.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	}
	b := make([]byte, 0, len(item)+128)
	b = fmt.Appendf(b, "<%d>1 %s %s %s %s %s - \ufeff", facility*8+sev, ts, headerField(host, 255),
		headerField(app, 48), headerField(procID, 128), headerField(ev.Type, 32))
	return append(b, item...)
}

// headerField makes s a header field of RFC 5424 §6: printable US-ASCII
// without spaces, at most n characters, "-" when empty.
func headerField(s string, n int) string {
	out := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(out) < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}
