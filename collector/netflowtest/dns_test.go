package netflowtest

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestDNSCache: the router's DNS cache names the remote hosts the model's
// customers reach on web ports (through CNAME chains for some), its TTLs
// count down and expire, and peer-to-peer hosts have no name.
func TestDNSCache(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 7, Subscribers: 200})
	flows := m.AppendFlows(nil, 4000, t0)
	cache := m.DNSCache(t0.Add(30 * time.Second))
	named := map[netip.Addr]string{}
	cnames := 0
	for _, r := range cache {
		switch r.Type {
		case "A", "AAAA":
			a := netip.MustParseAddr(r.Data)
			if a.Is4() != (r.Type == "A") {
				t.Errorf("record %+v of the wrong family", r)
			}
			named[a] = r.Name
		case "CNAME":
			cnames++
		default:
			t.Errorf("record %+v", r)
		}
		if r.TTL <= 0 || r.TTL > time.Hour || r.TTL%time.Second != 0 {
			t.Errorf("record %+v: TTL", r)
		}
	}
	var web, webNamed, p2pNamed int
	for _, f := range flows {
		if !isSubscriber(m, f.SrcAddr) {
			continue
		}
		switch {
		case f.DstPort == 443 && (f.Proto == 6 || f.Proto == 17):
			web++
			if _, ok := named[f.DstAddr]; ok {
				webNamed++
			}
		case inNetworks(f.DstAddr, netComcast, netDTAG, netOrange):
			if _, ok := named[f.DstAddr]; ok {
				p2pNamed++
			}
		}
	}
	if web == 0 || webNamed*10 < web*9 {
		t.Errorf("%d of %d web flows have a named remote host, want 90 %%", webNamed, web)
	}
	if p2pNamed != 0 {
		t.Errorf("%d peer-to-peer hosts are named", p2pNamed)
	}
	if cnames == 0 {
		t.Error("no CNAME in the cache")
	}
	var video bool
	for _, n := range named {
		video = video || strings.HasSuffix(n, ".googlevideo.com")
	}
	if !video {
		t.Error("no googlevideo.com name")
	}
	// Ten seconds later every TTL is ten seconds shorter (or gone).
	later := map[string]time.Duration{}
	for _, r := range m.DNSCache(t0.Add(40 * time.Second)) {
		later[r.Name+" "+r.Data] = r.TTL
	}
	for _, r := range cache {
		if d, ok := later[r.Name+" "+r.Data]; ok && d != r.TTL-10*time.Second && r.Type != "CNAME" {
			t.Errorf("%s %s: TTL %v then %v", r.Name, r.Data, r.TTL, d)
		}
	}
	if n := len(m.DNSCache(t0.Add(3 * time.Hour))); n != 0 {
		t.Errorf("%d records left after three hours", n)
	}
}

func isSubscriber(m *Model, a netip.Addr) bool {
	for _, s := range m.Subscribers() {
		if s.Addr == a || (s.Addr6.IsValid() && s.Prefix6().Contains(a)) {
			return true
		}
	}
	return false
}

func inNetworks(a netip.Addr, idx ...int) bool {
	nets := Networks()
	for _, i := range idx {
		for _, p := range nets[i].Prefixes {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}
