package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Webhook signature headers: the Unix time of the attempt and
// "v1=" + hex(HMAC-SHA256(key, timestamp + "." + body)).
const (
	HeaderTimestamp = "X-Agentid-Timestamp"
	HeaderSignature = "X-Agentid-Signature"
	// HeaderBatch names the batch ("<sink>:<first id>-<last id>"), the
	// same on every attempt: a receiver may use it as an idempotency key.
	HeaderBatch = "X-Agentid-Batch"
)

// HTTPOptions configure the webhook and Splunk HEC sinks.
type HTTPOptions struct {
	// URL is the webhook's endpoint, or the HEC's base URL (or its
	// /services/collector/event endpoint).
	URL string
	// Secret is the webhook's HMAC key or the HEC token.
	Secret []byte
	// Client sends the requests (default: a client with a 10 s timeout).
	// Redirects are never followed.
	Client *http.Client
	// Now dates webhook signatures (default time.Now).
	Now func() time.Time
	// Index, Source and SourceType go into each HEC event when set
	// (Source default "agentid", SourceType default "agentid:ocsf" or
	// "agentid:audit" by format); Host default the host name.
	Index, Source, SourceType, Host string
}

type httpSink struct {
	u      *url.URL
	secret []byte
	client *http.Client
	now    func() time.Time
	// body builds a batch's request body; sign adds headers.
	body func(b *Batch) ([]byte, error)
	auth func(h http.Header, body []byte)
}

func newHTTPSink(o HTTPOptions) (*httpSink, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("sink: the URL must be an absolute https URL")
	}
	if len(o.Secret) == 0 {
		return nil, errors.New("sink: a secret is required")
	}
	c := o.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &httpSink{u: u, secret: o.Secret, client: &nc, now: now}, nil
}

// NewWebhook returns a sink that POSTs each batch as one JSON object,
// {"events": [...]}, signed with HMAC-SHA256 (HeaderTimestamp,
// HeaderSignature). Any 2xx answer is a delivery; anything else is
// retried.
func NewWebhook(o HTTPOptions) (Sink, error) {
	s, err := newHTTPSink(o)
	if err != nil {
		return nil, err
	}
	s.body = func(b *Batch) ([]byte, error) {
		const head, tail = `{"events":[`, "]}"
		n := len(head) + len(tail) + len(b.Items)
		for _, it := range b.Items {
			n += len(it)
		}
		buf := make([]byte, 0, n)
		buf = append(buf, head...)
		for i, it := range b.Items {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, it...)
		}
		return append(buf, tail...), nil
	}
	s.auth = func(h http.Header, body []byte) {
		ts := strconv.FormatInt(s.now().Unix(), 10)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, Sign(s.secret, ts, body))
	}
	return s, nil
}

// Sign is the webhook signature of body sent at ts (Unix seconds, as in
// HeaderTimestamp): "v1=" + hex(HMAC-SHA256(key, ts + "." + body)).
func Sign(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request's signature as a receiver should: the
// signature must match (compared in constant time) and the timestamp be
// within tolerance of now, so that a captured request cannot be replayed
// later. Every attempt is signed afresh, so a tolerance of a few minutes
// (5 is usual) covers clock skew only. Within it a captured request can
// still be replayed: receivers de-duplicate by the events' ids, which the
// signature covers; HeaderBatch is not signed.
func Verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("sink: missing or malformed " + HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("sink: the signature's timestamp is outside the tolerance")
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(key, ts, body))) {
		return errors.New("sink: the signature does not verify")
	}
	return nil
}

// HEC defaults.
const hecPath = "/services/collector/event"

// NewSplunkHEC returns a sink that sends each batch to a Splunk HTTP
// Event Collector: the events as concatenated JSON objects ({"time",
// "host", "source", "sourcetype", "index", "event"}) to
// /services/collector/event with "Authorization: Splunk <token>". format
// names the sourcetype's default.
func NewSplunkHEC(o HTTPOptions, format Format) (Sink, error) {
	s, err := newHTTPSink(o)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(s.u.Path, hecPath) {
		s.u = s.u.JoinPath(hecPath)
	}
	source := orDefault(o.Source, "agentid")
	sourceType := o.SourceType
	if sourceType == "" {
		sourceType = "agentid:audit"
		if format == FormatOCSF {
			sourceType = "agentid:ocsf"
		}
	}
	host := o.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	type hecEvent struct {
		Time       json.Number     `json:"time"`
		Host       string          `json:"host,omitempty"`
		Source     string          `json:"source"`
		SourceType string          `json:"sourcetype"`
		Index      string          `json:"index,omitempty"`
		Event      json.RawMessage `json:"event"`
	}
	s.body = func(b *Batch) ([]byte, error) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for i, it := range b.Items {
			ms := b.Events[i].Time.UnixMilli()
			t := json.Number(fmt.Sprintf("%d.%03d", ms/1000, ms%1000))
			if err := enc.Encode(hecEvent{Time: t, Host: host, Source: source, SourceType: sourceType, Index: o.Index, Event: it}); err != nil {
				return nil, err
			}
		}
		return buf.Bytes(), nil
	}
	s.auth = func(h http.Header, _ []byte) { h.Set("Authorization", "Splunk "+string(s.secret)) }
	return s, nil
}

// Deliver implements Sink.
func (s *httpSink) Deliver(ctx context.Context, b *Batch) error {
	body, err := s.body(b)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", s.where(), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "agentid-audit-sink")
	req.Header.Set(HeaderBatch, fmt.Sprintf("%s:%d-%d", b.Sink, b.FirstID, b.LastID))
	s.auth(req.Header, body)
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may carry credentials in its
		// query; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST %s: %w", s.where(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("POST %s: status %d", s.where(), resp.StatusCode)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d := retryAfter(resp.Header.Get("Retry-After"), s.now()); d > 0 {
			return &RetryAfter{Err: err, After: d}
		}
	}
	return err
}

// maxRetryAfter bounds what a Retry-After may ask for (the dispatcher
// caps it again at the sink's maximum backoff).
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After value (RFC 9110 §10.2.3): delay-seconds
// or an HTTP-date; 0 when absent, malformed or past.
func retryAfter(v string, now time.Time) time.Duration {
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(min(max(sec, 0), int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// where names the endpoint in errors: scheme, host and path only.
func (s *httpSink) where() string {
	return s.u.Scheme + "://" + s.u.Host + s.u.Path
}

// Close implements Sink.
func (s *httpSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
