package fetch

import "net/netip"

// special is one non-public range and the phrase that names it.
type special struct {
	p   netip.Prefix
	why string
}

// special4 lists the IPv4 ranges the hub never connects to: the IANA IPv4
// Special-Purpose Address Registry (RFC 6890 and its updates), minus the few
// entries marked globally reachable that serve real hosts (AS112, AMT), plus
// multicast and the reserved class E block. The list is small enough to read.
var special4 = []special{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" (RFC 791, RFC 6890)`},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address (RFC 1122)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (RFC 3927)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment (RFC 6890)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address (RFC 5737)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a deprecated 6to4 relay address (RFC 7526)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address (RFC 2544)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address (RFC 5737)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address (RFC 5737)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address (RFC 5771)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address (RFC 1112, RFC 919 broadcast)"},
}

// IPv6 prefixes with special handling.
var (
	// Only global unicast space is ever public (RFC 4291 §2.4, IANA IPv6
	// Address Space). Everything outside it is refused: unspecified and
	// loopback, IPv4-compatible ::/96 (deprecated, RFC 4291 §2.5.5.1),
	// discard-only 100::/64 (RFC 6666), ULA fc00::/7 (RFC 4193), link-local
	// fe80::/10 (RFC 4291), multicast ff00::/8 (RFC 4291), SRv6 5f00::/16
	// (RFC 9602) and the rest of the unassigned space. IPv4-mapped and NAT64
	// addresses live outside it too and are handled before this test.
	global6 = netip.MustParsePrefix("2000::/3")
	// NAT64 well-known prefix (RFC 6052 §2.1): the last 32 bits are an IPv4
	// address, and RFC 6052 §3.1 forbids it for non-global IPv4 addresses;
	// we judge it by that IPv4 address, so an IPv6-only hub behind DNS64 can
	// still reach public hosts.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// Local-use NAT64 (RFC 8215): the operator chooses the embedding length,
	// so the IPv4 address cannot be read reliably; refused whole.
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	// IPv4-compatible IPv6 addresses (RFC 4291 §2.5.5.1, deprecated).
	compat4 = netip.MustParsePrefix("::/96")
	// Unique local addresses (RFC 4193).
	ula = netip.MustParsePrefix("fc00::/7")
	// 6to4 (RFC 3056 §2): bits 16..47 are an IPv4 address; judged by it.
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// special6 lists ranges inside 2000::/3 that are not public (IANA IPv6
// Special-Purpose Address Registry).
var special6 = []special{
	// Includes Teredo 2001::/32 (RFC 4380, refused whole: its addresses
	// tunnel to hosts we cannot judge), benchmarking 2001:2::/48 (RFC 5180),
	// ORCHID (RFC 7343) and the other protocol assignments.
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol assignment (RFC 2928, RFC 6890)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address (RFC 3849)"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address (RFC 9637)"},
}

// Classify reports whether a is a public unicast address the hub may
// connect to, and when not, why (a short phrase naming the range and its RFC,
// fit to follow "it resolves to 10.0.0.1, ").
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) is judged
// as its IPv4 address, and so are NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
// addresses, whose embedded IPv4 address must itself be public. An address
// with a zone is never public. Loopback is refused here like everything else;
// the Fetcher's AllowLoopback is a separate, explicit allowance.
func Classify(a netip.Addr) (ok bool, why string) {
	switch {
	case !a.IsValid():
		return false, "not an IP address"
	case a.Zone() != "":
		return false, "a scoped address (with a zone)"
	case a.Is4():
		return classify4(a)
	case a.Is4In6():
		if ok, why := classify4(a.Unmap()); !ok {
			return false, "the IPv4-mapped form of " + why
		}
		return true, ""
	case nat64.Contains(a):
		b := a.As16()
		if ok, why := classify4(netip.AddrFrom4([4]byte(b[12:16]))); !ok {
			return false, "the NAT64 form (RFC 6052) of " + why
		}
		return true, ""
	case nat64Local.Contains(a):
		return false, "a local-use NAT64 address (RFC 8215)"
	case a.IsLoopback():
		return false, "a loopback address (RFC 4291)"
	case a.IsUnspecified():
		return false, "the unspecified address (RFC 4291)"
	case a.IsMulticast():
		return false, "a multicast address (RFC 4291)"
	case a.IsLinkLocalUnicast():
		return false, "a link-local address (RFC 4291)"
	case compat4.Contains(a):
		return false, "an IPv4-compatible address (deprecated, RFC 4291 §2.5.5.1)"
	case ula.Contains(a):
		return false, "a unique local address (RFC 4193)"
	case !global6.Contains(a):
		return false, "outside global unicast space (RFC 4291)"
	case sixToFour.Contains(a):
		b := a.As16()
		if ok, why := classify4(netip.AddrFrom4([4]byte(b[2:6]))); !ok {
			return false, "the 6to4 form (RFC 3056) of " + why
		}
		return true, ""
	}
	for _, s := range special6 {
		if s.p.Contains(a) {
			return false, s.why
		}
	}
	return true, ""
}

// classify4 judges an IPv4 address against special4.
func classify4(a netip.Addr) (bool, string) {
	for _, s := range special4 {
		if s.p.Contains(a) {
			return false, s.why
		}
	}
	return true, ""
}
