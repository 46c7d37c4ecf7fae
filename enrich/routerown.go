package enrich

import (
	"net/netip"
	"slices"

	"github.com/flowbox/flowbox/store"
)

// ownerIndex maps the routers' own addresses to the routers that have
// them. One address may belong to several routers (192.168.88.1, the
// RouterOS default, is on many): the flow's own router is preferred.
// It is immutable once built.
type ownerIndex struct {
	addrs map[netip.Addr][]routerOwner
}

// routerOwner is a router that has an address.
type routerOwner struct {
	id   int64
	name string
}

// newOwnerIndex indexes the own addresses of the polled routers.
func newOwnerIndex(routers map[int64]*routerState) *ownerIndex {
	x := &ownerIndex{addrs: map[netip.Addr][]routerOwner{}}
	ids := make([]int64, 0, len(routers))
	for id := range routers {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the lowest id first, so a shared address has a stable owner
	for _, id := range ids {
		rs := routers[id]
		for _, addrs := range rs.own {
			for _, a := range addrs {
				a = a.Unmap()
				if !slices.ContainsFunc(x.addrs[a], func(o routerOwner) bool { return o.id == id }) {
					x.addrs[a] = append(x.addrs[a], routerOwner{id: id, name: rs.name})
				}
			}
		}
	}
	return x
}

// owner returns the router that has address a, preferring router id.
func (x *ownerIndex) owner(a netip.Addr, id int64) (routerOwner, bool) {
	if x == nil || len(x.addrs) == 0 || !a.IsValid() {
		return routerOwner{}, false
	}
	os := x.addrs[a.Unmap()]
	for _, o := range os {
		if o.id == id {
			return o, true
		}
	}
	if len(os) > 0 {
		return os[0], true
	}
	return routerOwner{}, false
}

// routerDirection turns the upload or download direction of f into a
// router's own traffic when its local side is a router's own address, and
// returns the direction with the router's name ("" when it is not a
// router's traffic).
func (x *ownerIndex) routerDirection(f *store.Flow) (store.Direction, string) {
	switch f.Direction {
	case store.DirUpload:
		if o, ok := x.owner(f.SrcAddr, f.RouterID); ok {
			return store.DirRouterOut, o.name
		}
	case store.DirDownload:
		o, ok := x.owner(f.DstAddr, f.RouterID)
		if !ok {
			break
		}
		if nat := f.PostNATDstAddr; nat.IsValid() && !nat.IsUnspecified() {
			if nat.Unmap() != f.DstAddr.Unmap() {
				break // un-NATed to an inside host: a customer's download
			}
		} else if o.id == f.RouterID && f.OutIf != 0 {
			// No post-NAT fields, and the router forwarded it: NAT to
			// an inside host that the export does not show.
			break
		}
		return store.DirRouterIn, o.name
	}
	return f.Direction, ""
}

// RouterOf returns the name of the router whose own address a is ("" when
// none), for the web console's host names.
func (e *Enricher) RouterOf(a netip.Addr) string {
	o, _ := e.owners.Load().owner(a, 0)
	return o.name
}
