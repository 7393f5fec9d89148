package fetch

import "net/netip"

// Classify reports whether a is a public unicast address the hub may
// connect to, and when not, why (a short phrase naming the range and its RFC).
func Classify(a netip.Addr) (ok bool, why string) {
	return false, "not implemented"
}
