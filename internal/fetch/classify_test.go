package fetch

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	refused := []struct{ addr, rfc string }{
		{"0.0.0.0", "RFC 791"}, {"0.255.255.255", "RFC 791"},
		{"10.0.0.0", "RFC 1918"}, {"10.255.255.255", "RFC 1918"},
		{"100.64.0.0", "RFC 6598"}, {"100.127.255.255", "RFC 6598"},
		{"127.0.0.1", "RFC 1122"}, {"127.255.255.255", "RFC 1122"},
		{"169.254.0.0", "RFC 3927"}, {"169.254.169.254", "RFC 3927"},
		{"172.16.0.0", "RFC 1918"}, {"172.31.255.255", "RFC 1918"},
		{"192.0.0.1", "RFC 6890"}, {"192.0.0.255", "RFC 6890"},
		{"192.0.2.1", "RFC 5737"}, {"198.51.100.7", "RFC 5737"}, {"203.0.113.255", "RFC 5737"},
		{"192.88.99.1", "RFC 7526"},
		{"192.168.0.0", "RFC 1918"}, {"192.168.255.255", "RFC 1918"},
		{"198.18.0.0", "RFC 2544"}, {"198.19.255.255", "RFC 2544"},
		{"224.0.0.1", "RFC 5771"}, {"239.255.255.255", "RFC 5771"},
		{"240.0.0.1", "RFC 1112"}, {"255.255.255.255", "RFC 919"},
		{"::", "unspecified"}, {"::1", "loopback"},
		{"::ffff:10.0.0.1", "IPv4-mapped form of a private"}, {"::ffff:127.0.0.1", "IPv4-mapped form of a loopback"},
		{"::ffff:169.254.169.254", "RFC 3927"},
		{"::10.0.0.1", "IPv4-compatible"}, {"::8.8.8.8", "IPv4-compatible"},
		{"64:ff9b::10.0.0.1", "NAT64 form (RFC 6052) of a private"}, {"64:ff9b::127.0.0.1", "RFC 6052"},
		{"64:ff9b::169.254.169.254", "RFC 6052"}, {"64:ff9b:1::8.8.8.8", "RFC 8215"},
		{"2002:0a00:0001::1", "6to4 form (RFC 3056) of a private"}, {"2002:c0a8:0101::", "RFC 3056"},
		{"2002:7f00:1::", "RFC 3056"},
		{"2001::1", "RFC 2928"}, {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "RFC 2928"}, // Teredo
		{"2001:2::1", "RFC 2928"}, {"2001:1ff:ffff::1", "RFC 2928"},
		{"2001:db8::1", "RFC 3849"}, {"2001:db8:ffff:ffff::1", "RFC 3849"}, {"3fff::1", "RFC 9637"},
		{"fc00::1", "RFC 4193"}, {"fd00::1", "RFC 4193"}, {"fdff:ffff::1", "RFC 4193"},
		{"fe80::1", "link-local"}, {"febf::1", "link-local"},
		{"ff02::1", "multicast"}, {"ff0e::1", "multicast"},
		{"100::1", "outside global unicast"}, {"5f00::1", "outside global unicast"}, {"4000::1", "outside global unicast"},
		{"fe80::1%eth0", "zone"}, {"2606:4700::1111%eth0", "zone"},
	}
	for _, c := range refused {
		t.Run("refuse "+c.addr, func(t *testing.T) {
			ok, why := Classify(netip.MustParseAddr(c.addr))
			if ok {
				t.Fatalf("Classify(%s) = ok, want refused", c.addr)
			}
			if !strings.Contains(why, c.rfc) {
				t.Errorf("Classify(%s) why = %q, want it to mention %q", c.addr, why, c.rfc)
			}
		})
	}
	// Public addresses, many just outside a refused range.
	public := []string{
		"1.0.0.0", "1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "93.184.216.34",
		"100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
		"169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
		"192.0.1.255", "192.0.3.0", "192.31.196.1", "192.52.193.1", "192.167.255.255", "192.169.0.0",
		"198.17.255.255", "198.20.0.0", "223.255.255.255",
		"::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:0808:0808::1",
		"2606:4700::1111", "2a00:1450:4001::200e", "2001:200::1", "2001:db7:ffff::1", "2001:db9::1",
		"3ffe::1", "3ffe:ffff::1",
	}
	for _, a := range public {
		t.Run("allow "+a, func(t *testing.T) {
			if ok, why := Classify(netip.MustParseAddr(a)); !ok {
				t.Errorf("Classify(%s) refused (%s), want ok", a, why)
			}
		})
	}
	if ok, _ := Classify(netip.Addr{}); ok {
		t.Error("the zero Addr is ok")
	}
}

// FuzzClassify checks Classify against netip's own predicates and the
// embedding rules: nothing netip calls private, loopback, multicast,
// link-local or unspecified is ever ok; the IPv4-mapped and NAT64 forms of an
// IPv4 address agree with it; the IPv4-compatible form is never ok; a 6to4
// address is ok only when its IPv4 address is.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "8.8.8.8", "::1", "fd00::1", "::ffff:10.0.0.1", "64:ff9b::a00:1",
		"2002:a00:1::", "2606:4700::1111", "fe80::1", "ff02::1", "100.64.0.1", "169.254.169.254"} {
		b := netip.MustParseAddr(s).AsSlice()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		good, why := Classify(a)
		if good && why != "" || !good && why == "" {
			t.Fatalf("Classify(%s) = %v, %q: why must be set exactly when refused", a, good, why)
		}
		if good && (a.IsPrivate() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() ||
			a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsUnspecified() || !a.IsGlobalUnicast()) {
			t.Fatalf("Classify(%s) = ok, but netip says it is not public unicast", a)
		}
		if a.Is4() {
			v4 := a.As4()
			mapped := netip.AddrFrom16(a.As16())
			if g, _ := Classify(mapped); g != good {
				t.Fatalf("Classify(%s) = %v but Classify(%s) = %v", a, good, mapped, g)
			}
			n := netip.MustParseAddr("64:ff9b::").As16()
			copy(n[12:], v4[:])
			if g, _ := Classify(netip.AddrFrom16(n)); g != good {
				t.Fatalf("Classify(%s) = %v but its NAT64 form = %v", a, good, g)
			}
			var c [16]byte
			copy(c[12:], v4[:])
			if g, _ := Classify(netip.AddrFrom16(c)); g {
				t.Fatalf("IPv4-compatible form of %s is ok", a)
			}
			s := netip.MustParseAddr("2002::").As16()
			copy(s[2:6], v4[:])
			if g, _ := Classify(netip.AddrFrom16(s)); g != good {
				t.Fatalf("Classify(%s) = %v but its 6to4 form = %v", a, good, g)
			}
		}
		if a.Is6() {
			if g, _ := Classify(a.WithZone("eth0")); g {
				t.Fatalf("%s with a zone is ok", a)
			}
		}
	})
}
