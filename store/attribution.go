package store

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// UnixMilli is t in Unix milliseconds as the schema stores times: 0 for the
// zero time.
func UnixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMilli is the time of a stored Unix millisecond count (UTC): the zero
// time for 0.
func FromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// APIHost returns the host of r.Address when it is an IP address (not a
// name).
func (r *Router) APIHost() (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.Address)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Claims returns the addresses that are r's, for attributing flows: its
// ExporterAddr, its /ip/address addresses, and the host of its API
// address when that is an IP address (a router reached through NAT
// exports from the NAT's address). Addresses are unmapped and listed once.
func (r *Router) Claims() []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		a = a.Unmap()
		if a.IsValid() && !a.IsUnspecified() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	add(r.ExporterAddr)
	for _, p := range r.Addresses {
		add(p.Addr())
	}
	if a, ok := r.APIHost(); ok {
		add(a)
	}
	return out
}

// Sources returns the addresses r may export flows from: its ExporterAddr
// when flowbox pinned one (the router sends from that address only), else
// every address it claims (RouterOS sends from the address of the
// interface towards the collector, which flowbox cannot know in advance).
func (r *Router) Sources() []netip.Addr {
	if r.ExporterAddr.IsValid() {
		return []netip.Addr{r.ExporterAddr.Unmap()}
	}
	return r.Claims()
}

// AttributionConflict is an address that several routers may export from
// (see Router.Sources): their flows cannot be told apart, so flows from it
// are attributed to none of them.
type AttributionConflict struct {
	Addr netip.Addr
	// Routers are the names of the routers, sorted.
	Routers []string
}

// String renders the conflict as "10.0.0.1 (tower-a, tower-b)".
func (c AttributionConflict) String() string {
	return fmt.Sprintf("%s (%s)", c.Addr, strings.Join(c.Routers, ", "))
}

// Attribute maps exporter addresses to routers, and never merges two
// routers:
//   - an address exactly one router may export from (Sources) is that
//     router's;
//   - an address several routers may export from is ambiguous: it maps to
//     id 0 (an onboarded router's address, whose flows are kept but
//     attributed to none) and is returned as a conflict;
//   - an address that no router may export from but that one router
//     claims (an address of a router pinned to another one) is that
//     router's; claimed by several, it maps to nothing.
//
// A loopback API host that several routers share is nobody's and no
// conflict: flowbox reaches those routers through local tunnels (or they
// are simulated on this host), and they export from addresses of their
// own. Conflicts are sorted by address.
func Attribute(routers []Router) (map[netip.Addr]int64, []AttributionConflict) {
	loopbackAPI := map[netip.Addr]int{}
	for i := range routers {
		if a, ok := routers[i].APIHost(); ok && a.IsLoopback() {
			loopbackAPI[a]++
		}
	}
	// tunnelled reports a that is only router i's shared loopback API host.
	tunnelled := func(i int, a netip.Addr) bool {
		r := &routers[i]
		if host, _ := r.APIHost(); host != a || loopbackAPI[a] < 2 || r.ExporterAddr.Unmap() == a {
			return false
		}
		return !slices.ContainsFunc(r.Addresses, func(p netip.Prefix) bool { return p.Addr().Unmap() == a })
	}
	may := map[netip.Addr][]int{}
	claims := map[netip.Addr][]int{}
	for i := range routers {
		for _, a := range routers[i].Sources() {
			if !tunnelled(i, a) {
				may[a] = append(may[a], i)
			}
		}
		for _, a := range routers[i].Claims() {
			if !tunnelled(i, a) {
				claims[a] = append(claims[a], i)
			}
		}
	}
	m := make(map[netip.Addr]int64, len(claims))
	var conflicts []AttributionConflict
	for a, idx := range may {
		if len(idx) == 1 {
			m[a] = routers[idx[0]].ID
			continue
		}
		m[a] = 0
		c := AttributionConflict{Addr: a}
		for _, i := range idx {
			c.Routers = append(c.Routers, routers[i].Name)
		}
		slices.Sort(c.Routers)
		conflicts = append(conflicts, c)
	}
	for a, idx := range claims {
		if _, done := may[a]; !done && len(idx) == 1 {
			m[a] = routers[idx[0]].ID
		}
	}
	slices.SortFunc(conflicts, func(x, y AttributionConflict) int { return x.Addr.Compare(y.Addr) })
	return m, conflicts
}
