package collector

import (
	"net/netip"
	"slices"
	"sync/atomic"
)

// RouterResolver says whether an exporter address belongs to an onboarded
// router (*inventory.Inventory implements it).
type RouterResolver interface {
	RouterFor(addr netip.Addr) (int64, bool)
}

// Allowlist is the collector's Trust: an exporter is trusted when its
// address belongs to an onboarded router (the store's router attribution,
// current within seconds of an onboarding) or lies in an allowed prefix
// (collector.allowed-exporters plus those accepted from the console). It is
// safe for concurrent use; the prefixes are swapped atomically.
type Allowlist struct {
	routers  RouterResolver
	prefixes atomic.Pointer[[]netip.Prefix]
}

var _ Trust = (*Allowlist)(nil)

// NewAllowlist returns an Allowlist over routers (nil: none) and prefixes.
func NewAllowlist(routers RouterResolver, prefixes []netip.Prefix) *Allowlist {
	a := &Allowlist{routers: routers}
	a.SetPrefixes(prefixes)
	return a
}

// SetPrefixes replaces the allowed prefixes.
func (a *Allowlist) SetPrefixes(prefixes []netip.Prefix) {
	ps := slices.Clone(prefixes)
	a.prefixes.Store(&ps)
}

// Prefixes returns the allowed prefixes.
func (a *Allowlist) Prefixes() []netip.Prefix { return slices.Clone(*a.prefixes.Load()) }

// Trusted implements Trust.
func (a *Allowlist) Trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	if a.routers != nil {
		if _, ok := a.routers.RouterFor(addr); ok {
			return true
		}
	}
	for _, p := range *a.prefixes.Load() {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
