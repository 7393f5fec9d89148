package main

import (
	"net"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/config"
)

// TestLoopbackAllowanceNeedsLoopbackListener: cimd.allow_loopback is
// refused when the address the hub actually bound is not loopback (a name
// in listen may resolve anywhere), and accepted on 127.0.0.1 and ::1.
func TestLoopbackAllowanceNeedsLoopbackListener(t *testing.T) {
	cfg := config.Default()
	for _, tc := range []struct {
		ip    string
		allow bool
		ok    bool
	}{
		{"127.0.0.1", true, true},
		{"::1", true, true},
		{"0.0.0.0", true, false},
		{"192.0.2.10", true, false},
		{"192.0.2.10", false, true},
	} {
		cfg.CIMD.AllowLoopback = tc.allow
		err := checkLoopbackAllowance(cfg, &net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 8080})
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "cimd.allow_loopback") {
			t.Errorf("%s allow=%v: %v", tc.ip, tc.allow, err)
		}
	}
}
