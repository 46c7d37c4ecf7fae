package enrich

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// v7RouterIPv6 is v7Router with the ipv6 package in use: a global address
// on the LAN bridge and on the uplink, a pool for prefix delegation, and
// DHCPv6 bindings of every kind (a commented static prefix, a prefix
// delegated over PPPoE, one named only by its DUID, a /128), plus rows
// that must be skipped (a waiting binding, two unparseable addresses).
func v7RouterIPv6() routerostest.Personality {
	p := v7Router("bob-laptop")
	p.IPv6Addresses = []routerostest.Address{
		{Address: netip.MustParsePrefix("2001:db8:100:1::1/64"), Interface: "bridge-lan"},
		{Address: netip.MustParsePrefix("2001:db8:ffff::2/64"), Interface: "ether1"},
		{Address: netip.MustParsePrefix("2001:db8:dead::1/64"), Interface: "ether2", Disabled: true},
	}
	p.IPv6Pools = []routerostest.IPv6Pool{{Name: "pd-customers", Prefix: netip.MustParsePrefix("2001:db8:200::/48"), PrefixLength: 56}}
	p.DHCPv6Bindings = []routerostest.DHCPv6Binding{
		{Address: "2001:db8:300:1::/64", DUID: "0x00030001aabbcc000020", Server: "dhcp6-lan", Status: "bound", Comment: "Bob Smith"},
		{Address: "2001:db8:200:500::/56", DUID: "0x00030001aabbcc000021", Server: "<pppoe-alice>", Status: "bound", Dynamic: true},
		{Address: "2001:db8:300:2::/64", DUID: "0x00030001aabbcc000022", Server: "dhcp6-lan", Status: "bound", Dynamic: true},
		{Address: "2001:db8:300:3::10", DUID: "0x00030001aabbcc000023", Server: "dhcp6-lan", Status: "bound", Comment: "Carol"},
		{Address: "2001:db8:300:4::/64", DUID: "0x00030001aabbcc000024", Server: "dhcp6-lan", Status: "waiting", Comment: "Dave"},
		{Address: "2001:db8:300:5::/200", Server: "dhcp6-lan", Status: "bound", Comment: "Broken"},
		{Address: "10.0.0.5/32", Server: "dhcp6-lan", Status: "bound", Comment: "Not IPv6"},
	}
	return p
}

// TestPollerIPv6 polls a router with IPv6 menus, with a real store: IPv6
// flows of customers get a direction and the binding's name, the uplink's
// network is not a customer network, bad rows are skipped and counted,
// and the prefixes survive a restart through the store. A router without
// the ipv6 package polls as before.
func TestPollerIPv6(t *testing.T) {
	ctx := context.Background()
	st, err := storetest.Open(ctx, t.TempDir(), store.DefaultConfig(), testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := testutil.StartRouter(t, v7RouterIPv6())
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	router := store.Router{ID: 3, Name: "tower-1", Address: srv.Addr(), Username: "admin"}
	cfg := DefaultConfig()
	cfg.UpstreamInterfaces = []string{"ether1"}
	e, sink, _ := newTestEnricher(t, cfg, Deps{Dial: DialRouterOS, Subscribers: st, Now: clk.Now})
	e.PollRouter(ctx, router)
	if n := promtestutil.ToFloat64(e.metrics.polls.WithLabelValues("ok")); n != 1 {
		t.Fatalf("polls ok = %v", n)
	}
	if n := promtestutil.ToFloat64(e.metrics.pollBadRows.WithLabelValues("/ipv6/dhcp-server/binding")); n != 2 {
		t.Errorf("bad binding rows = %v, want 2", n)
	}
	clk.Set(clk.Now().Add(time.Minute))
	start := ms(clk.Now())
	up := func(src, dst string) store.Flow {
		return store.Flow{RouterID: 3, Start: start, SrcAddr: addr(src), DstAddr: addr(dst), Proto: 6, SrcPort: 50000, DstPort: 443}
	}
	down := func(src, dst string) store.Flow {
		return store.Flow{RouterID: 3, Start: start, SrcAddr: addr(src), DstAddr: addr(dst), Proto: 6, SrcPort: 443, DstPort: 50000}
	}
	flows := []store.Flow{
		up("2001:db8:200:5a0:1c2:3ff:fe44:5566", "2606:4700::1111"), // inside alice's /56, a device's SLAAC address
		down("2a03:2880::1", "2001:db8:300:1:aaaa:bbbb:cccc:dddd"),  // Bob's /64
		up("2001:db8:300:2::9", "2606:4700::1111"),                  // no comment, no PPPoE: the DUID
		down("2a03:2880::1", "2001:db8:300:3::10"),                  // a /128 binding
		up("2001:db8:300:3::11", "2606:4700::1111"),                 // next to it: nobody's
		up("2001:db8:100:1::99", "2606:4700::1111"),                 // on the LAN /64, no binding
		up("2001:db8:200:ff00::1", "2606:4700::1111"),               // in the pool, not delegated yet
		down("2a03:2880::1", "2001:db8:ffff::2"),                    // the router's uplink address: its own traffic
		up("2001:db8:ffff::7", "2606:4700::1111"),                   // another host on the uplink: not ours
		up("2001:db8:300:4::1", "2606:4700::1111"),                  // a waiting binding: not a customer
		up("2001:db8:dead::5", "2606:4700::1111"),                   // a disabled address's network
		up("10.0.0.20", "8.8.8.8"),                                  // IPv4 as before
	}
	if err := e.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		dir store.Direction
		sub string
	}{
		{store.DirUpload, "alice"},
		{store.DirDownload, "Bob Smith"},
		{store.DirUpload, "0x00030001aabbcc000022"},
		{store.DirDownload, "Carol"},
		{store.DirTransit, ""},
		{store.DirUpload, ""},
		{store.DirUpload, ""},
		{store.DirRouterIn, "tower-1"},
		{store.DirTransit, ""},
		{store.DirTransit, ""},
		{store.DirTransit, ""},
		{store.DirUpload, "bob-laptop"},
	}
	for i, w := range want {
		if f := sink.flows[i]; f.Direction != w.dir || f.Subscriber != w.sub {
			t.Errorf("flow %d %v -> %v: dir=%v sub=%q, want %v %q", i, f.SrcAddr, f.DstAddr, f.Direction, f.Subscriber, w.dir, w.sub)
		}
	}

	// The store holds the prefixes, and a restarted Enricher names IPv6
	// flows from them before any poll.
	s, err := st.SubscriberAt(ctx, addr("2001:db8:200:5a0::77"), clk.Now())
	if err != nil || s.Name != "alice" || s.Source != SourceDHCPv6 || s.Prefix.String() != "2001:db8:200:500::/56" || s.RouterID != 3 {
		t.Errorf("store: %+v, %v", s, err)
	}
	e2, _, _ := newTestEnricher(t, DefaultConfig(), Deps{Subscribers: st, Now: clk.Now})
	if err := e2.subs.load(ctx, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if got := e2.SubscriberAt(addr("2001:db8:300:1::1234"), clk.Now()); got != "Bob Smith" {
		t.Errorf("after restart: %q", got)
	}

	// Without the ipv6 package: a clean poll, the IPv4 results of
	// TestPollerRouterOS, and IPv6 flows are nobody's.
	p := v7RouterIPv6()
	p.NoIPv6 = true
	bare := testutil.StartRouter(t, p)
	e3, sink3, _ := newTestEnricher(t, cfg, Deps{Dial: DialRouterOS, Now: clk.Now})
	e3.PollRouter(ctx, store.Router{ID: 4, Name: "tower-2", Address: bare.Addr(), Username: "admin"})
	if n := promtestutil.ToFloat64(e3.metrics.polls.WithLabelValues("ok")); n != 1 {
		t.Fatalf("polls ok without IPv6 = %v", n)
	}
	if n := promtestutil.CollectAndCount(e3.metrics.pollMenuErrors); n != 0 {
		t.Errorf("%d menu error series without IPv6", n)
	}
	if got := e3.subs.size(); got != 3 {
		t.Errorf("%d subscriber records without IPv6, want 3", got)
	}
	batch := []store.Flow{up("10.0.0.20", "8.8.8.8"), up("10.0.1.5", "1.1.1.1"), up("2001:db8:300:2::9", "2606:4700::1111")}
	for i := range batch {
		batch[i].RouterID = 4
	}
	if err := e3.InsertFlows(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i, w := range []struct {
		dir store.Direction
		sub string
	}{{store.DirUpload, "bob-laptop"}, {store.DirUpload, "alice"}, {store.DirTransit, ""}} {
		if f := sink3.flows[i]; f.Direction != w.dir || f.Subscriber != w.sub {
			t.Errorf("without IPv6, flow %d: dir=%v sub=%q, want %v %q", i, f.Direction, f.Subscriber, w.dir, w.sub)
		}
	}
}

// TestSubscriberIndexIPv6 checks the longest-prefix rules of the
// subscriber index on IPv6: a longer prefix wins within a source, a more
// trusted source wins over a longer prefix, records end, and a lookup
// allocates nothing.
func TestSubscriberIndexIPv6(t *testing.T) {
	h := newHistory(nil, time.Hour, 1000, newMetrics())
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	obs := []observation{
		{prefix: netip.MustParsePrefix("2001:db8:1::/48"), source: SourceDHCPv6, name: "wide"},
		{prefix: netip.MustParsePrefix("2001:db8:1:100::/56"), source: SourceDHCPv6, name: "pd56"},
		{prefix: netip.MustParsePrefix("2001:db8:1:142::/64"), source: SourceDHCPv6, name: "pd64"},
		{prefix: netip.MustParsePrefix("2001:db8:1:142::5/128"), source: SourceDHCPv6, name: "host"},
		{prefix: netip.MustParsePrefix("2001:db8:1:200::/56"), source: store.SourceQueue, name: "queue"},
		{prefix: netip.MustParsePrefix("2001:db8:1:2aa::/64"), source: SourceDHCPv6, name: "under-queue"},
		{prefix: netip.MustParsePrefix("10.1.0.0/16"), source: store.SourceQueue, name: "v4-net"},
	}
	if _, err := h.apply(context.Background(), 1, []string{SourceDHCPv6, store.SourceQueue}, obs, t0, t0, false); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute).UnixMilli()
	idx := h.idx.Load()
	for a, want := range map[string]string{
		"2001:db8:1:142::5":     "host",
		"2001:db8:1:142::6":     "pd64",
		"2001:db8:1:1ff::1":     "pd56",
		"2001:db8:1:ff00::1":    "wide",
		"2001:db8:2::1":         "",
		"2001:db8:1:2aa::1":     "queue", // the queue's rank beats the longer binding
		"10.1.2.3":              "v4-net",
		"::ffff:10.1.2.3":       "v4-net",
		"10.2.0.1":              "",
		"2001:db8:1:142:ffff::": "pd64",
	} {
		if got := idx.lookup(addr(a), at); got != want {
			t.Errorf("%s: %q, want %q", a, got, want)
		}
	}
	if got := idx.lookup(addr("2001:db8:1:142::6"), t0.Add(-time.Minute).UnixMilli()); got != "" {
		t.Errorf("before the record: %q", got)
	}
	probe := addr("2001:db8:1:1ff::1")
	if n := testing.AllocsPerRun(100, func() { idx.lookup(probe, at) }); n != 0 {
		t.Errorf("lookup allocates %v times", n)
	}
}

// modelPersonality is the API state of a router of the netflowtest model
// with its IPv6 part: the IPv4 addresses, leases and PPPoE sessions, the
// IPv6 addresses, the pool the customers' prefixes come from, and a
// DHCPv6 binding per customer with IPv6 (over its PPPoE session, or on
// its sector's DHCPv6 server with its name as comment). It is what the
// fleet serves (simulator/personality.go).
func modelPersonality(m *netflowtest.Model, major int) routerostest.Personality {
	p := routerostest.V7(m.Identity())
	if major == 6 {
		p = routerostest.V6(m.Identity())
	}
	p.Interfaces, p.Addresses, p.Leases, p.PPP, p.Queues, p.ARP, p.Pools = nil, nil, nil, nil, nil, nil, nil
	for _, i := range m.Interfaces() {
		mac := ""
		if i.MAC != 0 {
			mac = strings.ToUpper(store.FormatMAC(i.MAC))
		}
		p.Interfaces = append(p.Interfaces, routerostest.Interface{Index: i.Index, Name: i.Name, Type: i.Type, MAC: mac})
	}
	for _, a := range m.Addresses() {
		ra := routerostest.Address{Address: a.Prefix, Interface: a.Interface, Dynamic: a.Dynamic}
		if a.Prefix.Addr().Is4() {
			p.Addresses = append(p.Addresses, ra)
		} else {
			p.IPv6Addresses = append(p.IPv6Addresses, ra)
		}
	}
	p.IPv6Pools = []routerostest.IPv6Pool{{Name: "pd-customers", Prefix: m.IPv6Pool(), PrefixLength: netflowtest.Prefix6Bits}}
	for _, s := range m.Subscribers() {
		mac := strings.ToUpper(store.FormatMAC(s.MAC))
		b := routerostest.DHCPv6Binding{Address: s.Prefix6().String(), Status: "bound",
			DUID: "0x00030001" + strings.ReplaceAll(strings.ToLower(mac), ":", "")}
		if s.Kind == netflowtest.KindPPPoE {
			p.PPP = append(p.PPP, routerostest.PPPSession{Name: s.Login, Service: "pppoe", CallerID: mac, Address: s.Addr})
			b.Server, b.Dynamic = s.Interface, true
		} else {
			p.Leases = append(p.Leases, routerostest.Lease{Address: s.Addr, MAC: mac, HostName: s.HostName,
				Server: "dhcp-" + s.Sector, Status: "bound", Comment: s.Name})
			b.Server, b.Comment = "dhcp6-"+s.Sector, s.Name
		}
		if s.Addr6.IsValid() {
			p.DHCPv6Bindings = append(p.DHCPv6Bindings, b)
		}
	}
	return p
}

// TestPollWISPModelIPv6 polls a fake router (RouterOS 6 and 7) serving a
// netflowtest model's state over the API, then enriches the model's
// traffic: every IPv6 flow of a customer gets download or upload and the
// customer's name (the DHCP lease comment, the PPPoE login), and so does
// every IPv4 one.
func TestPollWISPModelIPv6(t *testing.T) {
	for _, major := range []int{6, 7} {
		t.Run(fmt.Sprintf("v%d", major), func(t *testing.T) {
			m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 11, Index: 2, Subscribers: 300, IPv6Share: 0.5})
			if err != nil {
				t.Fatal(err)
			}
			srv := testutil.StartRouter(t, modelPersonality(m, major))
			now := time.Date(2026, 3, 2, 20, 30, 0, 0, time.UTC)
			clk := &clock{t: now.Add(-time.Hour)}
			e, sink, _ := newTestEnricher(t, DefaultConfig(), Deps{Dial: DialRouterOS, Now: clk.Now})
			e.PollRouter(context.Background(), store.Router{ID: 1, Name: m.Identity(), Address: srv.Addr(), Username: "admin"})
			if n := promtestutil.ToFloat64(e.metrics.polls.WithLabelValues("ok")); n != 1 {
				t.Fatalf("polls ok = %v", n)
			}
			clk.Set(now)
			names := map[netip.Addr]string{}
			for _, s := range m.Subscribers() {
				name := s.Name
				if s.Kind == netflowtest.KindPPPoE {
					name = s.Login
				}
				names[s.Addr] = name
				if s.Addr6.IsValid() {
					names[s.Addr6] = name
				}
			}
			flows := m.AppendFlows(nil, 20_000, now)
			for i := range flows {
				flows[i].RouterID = 1
			}
			if err := e.InsertFlows(context.Background(), flows); err != nil {
				t.Fatal(err)
			}
			v6, own := 0, 0
			for _, f := range sink.flows {
				local, _ := f.LocalRemote()
				if (f.Direction == store.DirDownload || f.Direction == store.DirUpload) && f.Subscriber == "" {
					t.Fatalf("customer flow %v -> %v (post-NAT %v -> %v) without a name", f.SrcAddr, f.DstAddr, f.PostNATSrcAddr, f.PostNATDstAddr)
				}
				if local == m.PublicAddr() {
					// The router's own NTP and DNS from its WAN address.
					if own++; !f.Direction.Router() || f.Subscriber != m.Identity() {
						t.Fatalf("router flow %v -> %v: %v %q, want the router's own traffic of %q",
							f.SrcAddr, f.DstAddr, f.Direction, f.Subscriber, m.Identity())
					}
				}
				want, ok := names[local]
				if !ok {
					continue // the router's own traffic
				}
				if local.Is6() {
					v6++
				}
				if (f.Direction != store.DirUpload && f.Direction != store.DirDownload && f.Direction != store.DirInternal) ||
					f.Subscriber != want {
					t.Fatalf("flow %v -> %v: %v %q, want %q", f.SrcAddr, f.DstAddr, f.Direction, f.Subscriber, want)
				}
			}
			if v6 < 500 {
				t.Errorf("only %d IPv6 customer flows", v6)
			}
			if own == 0 {
				t.Error("no flow of the router's own traffic")
			}
		})
	}
}
