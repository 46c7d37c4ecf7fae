package simulator

import (
	"net/netip"
	"testing"
	"time"
)

// TestFleetDNSCache: each simulated router's API serves a DNS cache that
// names the remote hosts of the flows it exports (v6 and v7 alike), on the
// API server's clock.
func TestFleetDNSCache(t *testing.T) {
	f, err := New(Config{Routers: 2, Seed: 3, Password: "x", Subscribers: 50}, discard())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 20, 0, 0, 0, time.UTC)
	for _, r := range f.Routers() {
		r.Server.SetClock(func() time.Time { return now.Add(20 * time.Second) })
		flows := r.Model.AppendFlows(nil, 2000, now)
		named := map[netip.Addr]bool{}
		for _, rec := range r.Server.DNSCache() {
			if a, err := netip.ParseAddr(rec.Data); err == nil {
				named[a] = true
			}
		}
		web, hit := 0, 0
		for _, fl := range flows {
			if fl.DstPort == 443 && fl.InIf != r.Model.Interfaces()[0].Index {
				web++
				if named[fl.DstAddr] {
					hit++
				}
			}
		}
		if web == 0 || hit*10 < web*9 {
			t.Errorf("router %s (v%d): %d of %d web flows have a named remote host", r.Identity, r.Major, hit, web)
		}
	}
}
