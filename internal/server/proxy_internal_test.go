package server

import (
	"net/netip"
	"strings"
	"testing"
)

var testProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}

func TestResolveClientIP(t *testing.T) {
	tests := []struct {
		name, peer string
		xff        []string
		trusted    []netip.Prefix
		want       string
	}{
		{"no proxies trusted", "10.0.0.1", []string{"203.0.113.1"}, nil, "10.0.0.1"},
		{"untrusted peer", "192.0.2.1", []string{"203.0.113.1"}, testProxies, "192.0.2.1"},
		{"trusted peer, no header", "10.0.0.1", nil, testProxies, "10.0.0.1"},
		{"trusted peer", "10.0.0.1", []string{"203.0.113.1"}, testProxies, "203.0.113.1"},
		{"client's own entries ignored", "10.0.0.1", []string{"1.2.3.4, 5.6.7.8, 203.0.113.1"}, testProxies, "203.0.113.1"},
		{"chain of proxies", "10.0.0.1", []string{"203.0.113.1, 10.2.2.2", "10.3.3.3"}, testProxies, "203.0.113.1"},
		{"all hops trusted", "10.0.0.1", []string{"10.2.2.2"}, testProxies, "10.2.2.2"},
		{"spaces and empty", "10.0.0.1", []string{" 203.0.113.9 ,"}, testProxies, "10.0.0.1"},
		{"malformed stops at the proxy", "10.0.0.1", []string{"203.0.113.1, 10.2.2.2, bogus"}, testProxies, "10.0.0.1"},
		{"address with port is malformed", "10.0.0.1", []string{"203.0.113.1:4000"}, testProxies, "10.0.0.1"},
		{"v4-mapped peer", "::ffff:10.0.0.1", []string{"203.0.113.1"}, testProxies, "203.0.113.1"},
		{"v6 chain", "2001:db8:ffff::1", []string{"2001:db8:1::5"}, testProxies, "2001:db8:1::5"},
		{"v4-mapped client unmapped", "10.0.0.1", []string{"::ffff:203.0.113.7"}, testProxies, "203.0.113.7"},
		{"zone is malformed", "10.0.0.1", []string{"fe80::1%eth0"}, testProxies, "10.0.0.1"},
		{"unparsable peer", "not-an-ip", []string{"203.0.113.1"}, testProxies, "not-an-ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolveClientIP(tt.peer, tt.xff, tt.trusted); got != tt.want {
				t.Errorf("resolveClientIP(%q, %q) = %q, want %q", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
	t.Run("hop limit", func(t *testing.T) {
		hops := append([]string{"203.0.113.1"}, strings.Split(strings.Repeat("10.1.1.1,", 40), ",")[:40]...)
		if got := resolveClientIP("10.0.0.1", []string{strings.Join(hops, ",")}, testProxies); got != "10.1.1.1" {
			t.Errorf("a padded chain resolved to %q, want the walk to stop at the limit on a proxy", got)
		}
	})
}

// FuzzResolveClientIP: whatever the header, the answer is the peer or an
// address written in the header, and from an untrusted peer always the
// peer.
func FuzzResolveClientIP(f *testing.F) {
	f.Add("10.0.0.1", "203.0.113.1, 10.2.2.2")
	f.Add("192.0.2.1", "10.0.0.1")
	f.Add("::ffff:10.0.0.1", "2001:db8::1,,bogus")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := resolveClientIP(peer, []string{xff}, testProxies)
		p, err := netip.ParseAddr(peer)
		if err != nil || !isTrusted(p.Unmap(), testProxies) {
			if got != peer {
				t.Fatalf("untrusted peer %q resolved to %q", peer, got)
			}
			return
		}
		if got == peer || got == p.Unmap().String() {
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("resolved to a non-address %q", got)
		}
		found := false
		for h := range strings.SplitSeq(xff, ",") {
			if b, err := netip.ParseAddr(strings.TrimSpace(h)); err == nil && b.Unmap() == a {
				found = true
			}
		}
		if !found {
			t.Fatalf("resolved to %q, not in %q", got, xff)
		}
	})
}
