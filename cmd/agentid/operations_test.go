package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial
// and its key to certFile and keyFile, each replaced by a rename as
// certificate tools do.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "agentid test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: kder}} {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

// servedSerial opens a new TLS connection to addr and returns the serial
// of the certificate it is shown.
func servedSerial(t *testing.T, addr string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test checks the serial itself
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

var metricsLine = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)

// TestServeTLSAndMetrics: serve terminates TLS with the configured files
// and serves a replaced certificate on new connections without a
// restart, keeping the old one while the new files do not load; the
// metrics are on their own listener, not on the hub's address.
func TestServeTLSAndMetrics(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1001)
	env := map[string]string{
		"AGENTID_DATA_DIR":       filepath.Join(dir, "data"),
		"AGENTID_LISTEN":         "127.0.0.1:0",
		"AGENTID_ISSUER":         "https://auth.example.test",
		"AGENTID_TLS_CERT_FILE":  certFile,
		"AGENTID_TLS_KEY_FILE":   keyFile,
		"AGENTID_METRICS_LISTEN": "127.0.0.1:0",
	}
	h := startServe(t, env)
	if !strings.HasPrefix(h.url, "https://") {
		t.Fatalf("listening on %s", h.url)
	}
	addr := strings.TrimPrefix(h.url, "https://")
	if got := servedSerial(t, addr); got != 1001 {
		t.Fatalf("serial %d, want 1001", got)
	}
	client := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get(h.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"ready"`) || resp.ProtoMajor != 2 {
		t.Fatalf("GET /readyz over TLS = %s %d %s", resp.Proto, resp.StatusCode, body)
	}

	// A half-written renewal: the old certificate stays.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the check interval
	if got := servedSerial(t, addr); got != 1001 {
		t.Fatalf("serial %d after a broken renewal, want the old 1001", got)
	}
	writeCert(t, certFile, keyFile, 2002)
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, addr) != 2002 {
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate is not served")
		}
		time.Sleep(100 * time.Millisecond)
	}

	m := metricsLine.FindStringSubmatch(h.stderr.String())
	if m == nil {
		t.Fatalf("no metrics listening line:\n%s", h.stderr.String())
	}
	resp, body = get(t, "http://"+m[1]+"/metrics")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `agentid_http_requests_total{code="200",route="GET /readyz"} 1`) {
		t.Fatalf("GET /metrics = %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(t, "http://"+m[1]+"/readyz"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the metrics listener serves /readyz: %d", resp.StatusCode)
	}
	resp, err = client.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the hub's address serves /metrics: %d", resp.StatusCode)
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stderr.String())
	}
}

// TestServeTLSStartErrors: a certificate that does not load stops serve
// at start, saying which files.
func TestServeTLSStartErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	other := filepath.Join(dir, "other")
	writeCert(t, other+".crt", other+".key", 2)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	cfg.Issuer = "https://auth.example.test"
	cfg.TLS = config.TLSConfig{CertFile: certFile, KeyFile: other + ".key"} // a key of another certificate
	err := serve(context.Background(), cfg, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("serve with a mismatched key: %v", err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory was created before the TLS check: %v", err)
	}
}

// TestServeSIGTERMDrains runs serve as a process, sends SIGTERM while a
// token request is in flight (its body half sent), and checks: new
// connections are refused at once, the in-flight request completes with
// a token, the process exits 0, and that request's audit event was sealed
// into the chain and delivered to the file sink before the exit.
func TestServeSIGTERMDrains(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is a Unix signal")
	}
	dir := t.TempDir()
	sinkFile := filepath.Join(dir, "audit.ndjson")
	cfgFile := filepath.Join(dir, "agentid.yaml")
	if err := os.WriteFile(cfgFile, []byte("audit:\n  sinks:\n    - name: archive\n      type: file\n      path: "+sinkFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env, secret := ccBotHub(t)

	cmd := agentidCommand(t, env, "serve", "--config", cfgFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("serve ended before listening: %v\n%s", err, stderr.String())
	}
	m := listeningLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("first line %q", line)
	}
	addr := strings.TrimPrefix(m[1], "http://")

	// The in-flight request: headers and half the body.
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}.Encode()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		addr, base64.StdEncoding.EncodeToString([]byte("bot:"+secret)), len(form), form[:10])
	time.Sleep(300 * time.Millisecond) // the server has read the headers: the connection is active

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // refused: the listener is closed
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("new connections are still accepted after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // in flight across the shutdown
	select {
	case <-exited:
		t.Fatalf("serve exited (%v) with a request in flight\n%s", exitErr, stderr.String())
	default:
	}
	if _, err := io.WriteString(conn, form[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the in-flight response: %v\n%s", err, stderr.String())
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	requestID := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusOK || err != nil || tok.AccessToken == "" || requestID == "" {
		t.Fatalf("in-flight request: %d %v %+v", resp.StatusCode, err, tok)
	}

	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("serve exit: %v\n%s", exitErr, stderr.String())
		}
	case <-time.After(shutdownTimeout + sinkFlushTimeout + 5*time.Second):
		t.Fatal("serve did not exit")
	}

	// Delivered before the exit: file sinks receive sealed events only.
	b, err := os.ReadFile(sinkFile)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for l := range strings.Lines(string(b)) {
		var rec audit.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("sink line %q: %v", l, err)
		}
		found = found || rec.Type == audit.TokenIssued && rec.RequestID == requestID
	}
	if !found {
		t.Fatalf("the in-flight request's %s event (request %s) is not in the sink:\n%s\nstderr:\n%s", audit.TokenIssued, requestID, b, stderr.String())
	}
	// And sealed in the store's chain.
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	links, mark, err := st.SealedAudit(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sealed := false
	for _, l := range links {
		sealed = sealed || l.Event.RequestID == requestID && l.Event.ID <= mark
	}
	if !sealed {
		t.Errorf("the in-flight request's event is not sealed (mark %d)", mark)
	}
	if strings.Contains(stderr.String(), secret) || strings.Contains(stderr.String(), tok.AccessToken) {
		t.Error("the log holds the client secret or the token")
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", stderr.String())
	}
}

// TestServeMetricsPprof: with metrics.pprof the metrics listener serves
// Go's profiles under /debug/pprof/, a CPU profile included; the hub's own address
// never does, and without the setting the metrics listener does not
// either.
func TestServeMetricsPprof(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("pprof=%v", on), func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{
				"AGENTID_DATA_DIR":       filepath.Join(dir, "data"),
				"AGENTID_LISTEN":         "127.0.0.1:0",
				"AGENTID_ISSUER":         "http://127.0.0.1:8080",
				"AGENTID_METRICS_LISTEN": "127.0.0.1:0",
			}
			if on {
				env["AGENTID_METRICS_PPROF"] = "true"
			}
			h := startServe(t, env)
			m := metricsLine.FindStringSubmatch(h.stderr.String())
			if m == nil {
				t.Fatalf("no metrics listening line:\n%s", h.stderr.String())
			}
			metrics := "http://" + m[1]
			for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
				resp, body := get(t, h.url+p)
				if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "goroutine") {
					t.Errorf("the hub's address serves %s: %d\n%.200s", p, resp.StatusCode, body)
				}
				resp, body = get(t, metrics+p)
				if !on {
					if resp.StatusCode != http.StatusNotFound {
						t.Errorf("GET %s with pprof off = %d\n%.200s", p, resp.StatusCode, body)
					}
					continue
				}
				if resp.StatusCode != http.StatusOK || len(body) == 0 {
					t.Errorf("GET %s = %d\n%.200s", p, resp.StatusCode, body)
				}
				if p == "/debug/pprof/goroutine?debug=1" && !strings.Contains(string(body), "goroutine profile:") {
					t.Errorf("GET %s is not a goroutine profile:\n%.200s", p, body)
				}
			}
			resp, body := get(t, metrics+"/debug/pprof/profile?seconds=1")
			if on && (resp.StatusCode != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b) {
				t.Errorf("CPU profile = %d, %d bytes, want a gzipped profile\n%.200s", resp.StatusCode, len(body), body)
			}
			if !on && resp.StatusCode != http.StatusNotFound {
				t.Errorf("CPU profile with pprof off = %d", resp.StatusCode)
			}
			if resp, _ := get(t, metrics+"/metrics"); resp.StatusCode != http.StatusOK {
				t.Errorf("GET /metrics = %d", resp.StatusCode)
			}
			if code := h.stop(); code != 0 {
				t.Fatalf("exit %d\n%s", code, h.stderr.String())
			}
		})
	}
}
