package enrich

import (
	"context"
	"net/netip"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// towerPersonality is a RouterOS 7 router whose WAN address comes from a
// DHCP client (a dynamic /ip/address entry on the upstream interface),
// with a customer LAN, the RouterOS default management address, and an
// IPv6 uplink address.
func towerPersonality(identity, wan, wan6, lan string) routerostest.Personality {
	p := routerostest.V7(identity)
	p.Addresses = []routerostest.Address{
		{Address: netip.MustParsePrefix(wan), Interface: "ether1", Dynamic: true},
		{Address: netip.MustParsePrefix(lan), Interface: "bridge-lan"},
		{Address: netip.MustParsePrefix("192.168.88.1/24"), Interface: "ether2"},
	}
	p.IPv6Addresses = []routerostest.Address{{Address: netip.MustParsePrefix(wan6), Interface: "ether1"}}
	p.Leases = []routerostest.Lease{{Address: netip.MustParsePrefix(lan).Addr().Next().Next(), MAC: "AA:BB:CC:00:00:20",
		HostName: identity + "-customer", Server: "dhcp-lan", Status: "bound", Dynamic: true}}
	p.PPP, p.Queues, p.ARP, p.Pools = nil, nil, nil, nil
	return p
}

// TestRouterOwnTraffic polls two routers and checks that traffic from or
// to their own addresses (the dynamic WAN address, IPv6 uplink, the
// default management address) is the router's own, named after the
// router, while customers' NATed traffic through the same WAN address
// stays the customers' download and upload.
func TestRouterOwnTraffic(t *testing.T) {
	a := testutil.StartRouter(t, towerPersonality("tower-a", "203.0.113.2/24", "2001:db8:ffff::2/64", "100.64.0.1/24"))
	b := testutil.StartRouter(t, towerPersonality("tower-b", "198.51.100.7/24", "2001:db8:eeee::7/64", "100.64.1.1/24"))
	clk := &clock{t: time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)}
	routers := routerList{
		{ID: 1, Name: "tower-a", Address: a.Addr(), Username: "admin"},
		{ID: 2, Name: "tower-b", Address: b.Addr(), Username: "admin"},
	}
	cfg := DefaultConfig()
	cfg.UpstreamInterfaces = []string{"ether1"}
	e, sink, reg := newTestEnricher(t, cfg, Deps{Routers: routers, Dial: DialRouterOS, Now: clk.Now})
	ctx := context.Background()
	e.pollAll(ctx)
	clk.Set(clk.Now().Add(time.Minute))
	start := ms(clk.Now())

	wanA, custA := addr("203.0.113.2"), addr("100.64.0.3")
	ntp, dns := addr("216.239.35.4"), addr("1.0.0.1")
	flows := []store.Flow{
		// 0, 1: the router's own NTP query and its answer (RouterOS fills
		// the post-NAT fields with the original addresses).
		{RouterID: 1, Start: start, SrcAddr: wanA, DstAddr: ntp, PostNATSrcAddr: wanA, PostNATDstAddr: ntp, Proto: 17, SrcPort: 40000, DstPort: 123, InIf: 0, OutIf: 1},
		{RouterID: 1, Start: start, SrcAddr: ntp, DstAddr: wanA, PostNATSrcAddr: ntp, PostNATDstAddr: wanA, Proto: 17, SrcPort: 123, DstPort: 40000, InIf: 1, OutIf: 0},
		// 2, 3: a customer's upload NATed to the WAN address, and its
		// answer un-NATed to the customer: the customer's.
		{RouterID: 1, Start: start, SrcAddr: custA, DstAddr: dns, PostNATSrcAddr: wanA, PostNATDstAddr: dns, Proto: 17, SrcPort: 50000, DstPort: 53, InIf: 7, OutIf: 1},
		{RouterID: 1, Start: start, SrcAddr: dns, DstAddr: wanA, PostNATSrcAddr: dns, PostNATDstAddr: custA, Proto: 17, SrcPort: 53, DstPort: 50000, InIf: 1, OutIf: 7},
		// 4: NetFlow v5 has no post-NAT fields: forwarded to an inside
		// host (out-interface 7), it is a download, not the router's.
		{RouterID: 1, Start: start, SrcAddr: dns, DstAddr: wanA, Proto: 17, SrcPort: 53, DstPort: 50001, InIf: 1, OutIf: 7},
		// 5: the same with out-interface 0: the router terminated it.
		{RouterID: 1, Start: start, SrcAddr: dns, DstAddr: wanA, Proto: 17, SrcPort: 53, DstPort: 40001, InIf: 1, OutIf: 0},
		// 6: IPv6 from the router's uplink address.
		{RouterID: 1, Start: start, SrcAddr: addr("2001:db8:ffff::2"), DstAddr: addr("2606:4700::1111"), Proto: 17, SrcPort: 40000, DstPort: 53, InIf: 0, OutIf: 1},
		// 7: a customer asking the router's resolver: local traffic.
		{RouterID: 1, Start: start, SrcAddr: custA, DstAddr: addr("100.64.0.1"), Proto: 17, SrcPort: 50000, DstPort: 53, InIf: 7, OutIf: 0},
		// 8: tower-b's own traffic seen by tower-a: tower-b's.
		{RouterID: 1, Start: start, SrcAddr: addr("198.51.100.7"), DstAddr: ntp, Proto: 17, SrcPort: 40000, DstPort: 123, InIf: 1, OutIf: 1},
		// 9, 10: the default management address is on both routers: the
		// exporting router's.
		{RouterID: 2, Start: start, SrcAddr: addr("192.168.88.1"), DstAddr: ntp, Proto: 17, SrcPort: 40000, DstPort: 123, OutIf: 1},
		{RouterID: 1, Start: start, SrcAddr: addr("192.168.88.1"), DstAddr: ntp, Proto: 17, SrcPort: 40000, DstPort: 123, OutIf: 1},
		// 11: a scan of the WAN address that the router answers itself.
		{RouterID: 1, Start: start, SrcAddr: addr("167.99.41.203"), DstAddr: wanA, PostNATSrcAddr: addr("167.99.41.203"), PostNATDstAddr: wanA, Proto: 6, SrcPort: 54321, DstPort: 22, InIf: 1, OutIf: 0},
	}
	if err := e.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		dir          store.Direction
		sub          string
		local, remot string
	}{
		{store.DirRouterOut, "tower-a", "203.0.113.2", "216.239.35.4"},
		{store.DirRouterIn, "tower-a", "203.0.113.2", "216.239.35.4"},
		{store.DirUpload, "tower-a-customer", "100.64.0.3", "1.0.0.1"},
		{store.DirDownload, "tower-a-customer", "100.64.0.3", "1.0.0.1"},
		{store.DirDownload, "", "203.0.113.2", "1.0.0.1"},
		{store.DirRouterIn, "tower-a", "203.0.113.2", "1.0.0.1"},
		{store.DirRouterOut, "tower-a", "2001:db8:ffff::2", "2606:4700::1111"},
		{store.DirInternal, "tower-a-customer", "100.64.0.3", "100.64.0.1"},
		{store.DirRouterOut, "tower-b", "198.51.100.7", "216.239.35.4"},
		{store.DirRouterOut, "tower-b", "192.168.88.1", "216.239.35.4"},
		{store.DirRouterOut, "tower-a", "192.168.88.1", "216.239.35.4"},
		{store.DirRouterIn, "tower-a", "203.0.113.2", "167.99.41.203"},
	}
	for i, w := range want {
		f := sink.flows[i]
		local, remote := f.LocalRemote()
		if f.Direction != w.dir || f.Subscriber != w.sub || local.String() != w.local || remote.String() != w.remot {
			t.Errorf("flow %d %v -> %v: %v %q local %v remote %v, want %+v", i, f.SrcAddr, f.DstAddr,
				f.Direction, f.Subscriber, local, remote, w)
		}
	}
	// The remote side's AS, country and service port are the remote's.
	if f := sink.flows[1]; f.Application != "ntp" {
		t.Errorf("answer to the router's NTP query labelled %q", f.Application)
	}
	if v := promtestutil.ToFloat64(e.metrics.flows.WithLabelValues("router-out")); v != 5 {
		t.Errorf("router-out flows counted %v, want 5", v)
	}
	if v := promtestutil.ToFloat64(e.metrics.flows.WithLabelValues("router-in")); v != 3 {
		t.Errorf("router-in flows counted %v, want 3", v)
	}
	if n, err := promtestutil.GatherAndCount(reg, "flowbox_enrich_flows_total"); err != nil || n != store.NumDirections {
		t.Errorf("flows_total series: %d, %v", n, err)
	}
	for a, w := range map[string]string{"203.0.113.2": "tower-a", "2001:db8:eeee::7": "tower-b", "100.64.0.3": "", "8.8.8.8": ""} {
		if got := e.RouterOf(addr(a)); got != w {
			t.Errorf("RouterOf(%s) = %q, want %q", a, got, w)
		}
	}
}
