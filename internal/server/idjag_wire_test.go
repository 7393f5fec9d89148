package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
)

// TestWireIDJAG pins the ID-JAG exchange on the wire, like TestWire:
// testdata/wire/token_exchange_id_jag.txtar. Regenerate with
// go test ./internal/server -run TestWireIDJAG -update.
func TestWireIDJAG(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk), withIdentityAssertions(0))
	w := newWireRecorder(t, h)
	w.clock = clk
	secret := h.idjagClient("agent-1")
	w.secret(secret, "agent-1 secret")
	idt, _ := h.idToken(t, "agent-1", secret) // sign-in, not recorded
	w.secret(idt, "ID token")
	form := idjagForm(idt, "scope", "notes.read")
	form.Set("client_id", "agent-1")
	form.Set("client_secret", secret)
	w.do(http.MethodPost, "/token", form, "")
	w.do(http.MethodPost, "/token", idjagForm(idt, "audience", "https://unknown.example.com"), "agent-1:"+secret)
	w.check(filepath.Join("testdata", "wire", "token_exchange_id_jag.txtar"),
		"Token exchange (RFC 8693) of an ID token the hub issued for an Identity Assertion JWT Authorization Grant (ID-JAG) to another authorization server (MCP enterprise-managed authorization, the IdP side), with client_secret_post as the Go SDK's EnterpriseHandler sends it: issued_token_type id-jag, token_type N_A, no refresh token; then an audience the configuration does not list (invalid_target).")
}

// idjagOf shows an ID-JAG's header and claims, its expiry relative to iat.
func (w *wireRecorder) idjagOf(jwt string) string {
	hdr, c := jwtParts(w.t, jwt)
	iat, _ := c["iat"].(float64)
	if exp, ok := c["exp"].(float64); ok {
		c["exp"] = fmt.Sprintf("{iat%+d}", int64(exp-iat))
	}
	if _, ok := c["auth_time"]; ok {
		c["auth_time"] = "{auth_time}"
	}
	c["iat"] = "{iat}"
	w.seen("jti", c["jti"].(string))
	w.seen("kid", hdr["kid"].(string))
	b, _ := json.MarshalIndent(map[string]any{"header": hdr, "claims": c}, "", "  ")
	return string(b)
}
