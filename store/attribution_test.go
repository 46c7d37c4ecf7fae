package store

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

var addr = netip.MustParseAddr

// TestAttribute: an address goes to a router only when no other router may
// export from it; a pinned exporter address wins over the other routers'
// /ip/address entries; a loopback API host shared by several routers
// (local tunnels, the simulator) is nobody's, one used by one router is
// that router's.
func TestAttribute(t *testing.T) {
	routers := []Router{
		{ID: 1, Name: "tower-a", Address: "203.0.113.5:8728", Addresses: pfx("10.0.0.1/24", "192.168.88.1/24")},
		{ID: 2, Name: "tower-b", Address: "198.51.100.7:8728", Addresses: pfx("10.0.0.1/24", "100.64.0.1/24")},
		// Behind tower-a's NAT: reached at tower-a's public address.
		{ID: 3, Name: "behind-a", Address: "203.0.113.5:8729", Addresses: pfx("172.16.0.2/30")},
		// Pinned to 100.64.9.1: its other addresses are only fallbacks.
		{ID: 4, Name: "pinned", Address: "127.0.0.1:18728", Addresses: pfx("100.64.9.1/24", "192.168.88.1/24", "10.9.9.9/32"),
			ExporterAddr: addr("100.64.9.1")},
		{ID: 5, Name: "pinned-2", Address: "127.0.0.1:18729", Addresses: pfx("100.64.10.1/24", "10.9.9.9/32"),
			ExporterAddr: addr("100.64.10.1")},
		{ID: 6, Name: "tunnelled", Address: "127.0.0.2:8728", Addresses: pfx("100.64.11.1/24")},
	}
	m, conflicts := Attribute(routers)
	want := map[netip.Addr]int64{
		addr("10.0.0.1"):     0, // tower-a and tower-b
		addr("192.168.88.1"): 1, // tower-a; pinned exports from 100.64.9.1
		addr("100.64.0.1"):   2,
		addr("198.51.100.7"): 2,
		addr("203.0.113.5"):  0, // tower-a and behind-a
		addr("172.16.0.2"):   3,
		addr("100.64.9.1"):   4,
		addr("100.64.10.1"):  5,
		addr("100.64.11.1"):  6,
		addr("127.0.0.2"):    6,
		// 10.9.9.9: an address of two pinned routers, neither exports
		// from it: nobody's. 127.0.0.1: the API host of two routers
		// reached through local tunnels: nobody's.
	}
	if diff := cmp.Diff(m, want, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("attribution (-got +want):\n%s", diff)
	}
	wantConflicts := []AttributionConflict{
		{Addr: addr("10.0.0.1"), Routers: []string{"tower-a", "tower-b"}},
		{Addr: addr("203.0.113.5"), Routers: []string{"behind-a", "tower-a"}},
	}
	if diff := cmp.Diff(conflicts, wantConflicts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("conflicts (-got +want):\n%s", diff)
	}
	if got := conflicts[1].String(); got != "203.0.113.5 (behind-a, tower-a)" {
		t.Errorf("conflict renders as %q", got)
	}
}
