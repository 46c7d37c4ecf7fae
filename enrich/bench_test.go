package enrich

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/enrich/geodata"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// wispFixture is an Enricher loaded as if it had polled one router of
// the netflowtest WISP model (subscribers on DHCP and PPPoE, sector and
// WAN prefixes, interface names), and a pool of the model's flows as the
// decoder delivers them (no enrichment field set).
type wispFixture struct {
	e     *Enricher
	sink  *captureSink
	model *netflowtest.Model
	flows []store.Flow
	now   time.Time
}

// fixtureTime is when the fixtures' flows are exported: an evening, for
// the busiest application mix.
var fixtureTime = time.Date(2026, 3, 2, 20, 30, 0, 0, time.UTC)

// newWISPFixture builds the fixture with subs subscribers and n flows
// exported at fixtureTime. next receives the enriched flows (a capture
// sink when nil).
func newWISPFixture(tb testing.TB, subs, n int, next Sink) *wispFixture {
	return newWISPFixtureAt(tb, subs, n, next, fixtureTime)
}

// newWISPFixtureAt is newWISPFixture with flows exported at now.
func newWISPFixtureAt(tb testing.TB, subs, n int, next Sink, now time.Time) *wispFixture {
	tb.Helper()
	m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 7, Subscribers: subs})
	if err != nil {
		tb.Fatal(err)
	}
	exporter := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 2055)
	cfg := DefaultConfig()
	// What a poll learns: the WAN address is the router's own, the sectors
	// are customer networks (/ip/address), and so are the PPPoE sessions'
	// addresses (/ppp/active).
	for _, a := range m.Addresses() {
		if a.Interface == "ether1" {
			cfg.Prefixes = append(cfg.Prefixes, a.Prefix.Addr().String())
		} else {
			cfg.Prefixes = append(cfg.Prefixes, a.Prefix.Masked().String())
		}
	}
	// The pool the customers' IPv6 prefixes are delegated from
	// (/ipv6/pool).
	cfg.Prefixes = append(cfg.Prefixes, m.IPv6Pool().String())
	for _, s := range m.Subscribers() {
		if s.Kind == netflowtest.KindPPPoE {
			cfg.Prefixes = append(cfg.Prefixes, s.Addr.String())
		}
	}
	fx := &wispFixture{model: m, now: now}
	fx.e, fx.sink, _ = newTestEnricher(tb, cfg, Deps{Next: next, Resolver: mapResolver{exporter.Addr(): 1}})

	// Subscribers: IPv4 addresses from leases and PPP sessions, IPv6
	// prefixes (a /64 each) from DHCPv6 bindings, named like the poller
	// names them (the lease comment, the PPPoE login).
	var obs []observation
	for _, s := range m.Subscribers() {
		o := observation{prefix: netip.PrefixFrom(s.Addr, 32), source: store.SourceDHCP, name: s.Name, mac: s.MAC}
		if s.Kind == netflowtest.KindPPPoE {
			o.source, o.name = store.SourcePPP, s.Login
		}
		obs = append(obs, o)
		if p := s.Prefix6(); p.IsValid() {
			obs = append(obs, observation{prefix: p, source: SourceDHCPv6, name: o.name})
		}
	}
	start := fx.now.Add(-time.Hour)
	ctx := context.Background()
	if _, err := fx.e.subs.apply(ctx, 1, []string{store.SourceDHCP, store.SourcePPP, SourceDHCPv6}, obs, start, start, false); err != nil {
		tb.Fatal(err)
	}
	names := map[uint32]string{}
	for _, i := range m.Interfaces() {
		names[i.Index] = i.Name
	}
	if err := fx.e.ifaces.update(ctx, 1, names, start, false); err != nil {
		tb.Fatal(err)
	}

	fx.flows = m.AppendFlows(make([]store.Flow, 0, n), n, fx.now)
	for i := range fx.flows {
		fx.flows[i].Exporter = exporter
		fx.flows[i].Version = 10
	}
	return fx
}

// newWISPFixtureMMDB is newWISPFixture with MaxMind files in place of the
// built-in tables: an ASN file with the model's remote networks (their
// real prefixes and AS numbers) and a country file giving each network
// the country the built-in tables give its first address.
func newWISPFixtureMMDB(tb testing.TB, subs, n int) *wispFixture {
	tb.Helper()
	db, err := geodata.Embedded()
	if err != nil {
		tb.Fatal(err)
	}
	var asnNets, ccNets []mmdbNet
	for _, nw := range netflowtest.Networks() {
		for _, p := range nw.Prefixes {
			asnNets = append(asnNets, mmdbNet{p.String(), asnRecord(nw.ASN, nw.Name)})
			if cc := db.Lookup(p.Addr()).Country; cc != "" {
				ccNets = append(ccNets, mmdbNet{p.String(), countryRecord(cc, 1)})
			}
		}
	}
	dir := tb.TempDir()
	asnPath := mmdbPath(tb, dir, "asn.mmdb", buildMMDB(tb, "GeoLite2-ASN", time.Now(), asnNets))
	ccPath := mmdbPath(tb, dir, "country.mmdb", buildMMDB(tb, "GeoLite2-Country", time.Now(), ccNets))
	fx := newWISPFixture(tb, subs, n, discardSink{})
	g, err := newGeo(GeoIPConfig{ASNFile: asnPath, CountryFile: ccPath, ReloadInterval: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	fx.e.geo = g
	return fx
}

// newWISPFixtureFamily is newWISPFixture with a pool of n flows of one
// address family only (IPv6 or IPv4), drawn from the model's mix, to
// measure each family's cost apart.
func newWISPFixtureFamily(tb testing.TB, subs, n int, v6 bool) *wispFixture {
	tb.Helper()
	fx := newWISPFixture(tb, subs, 0, discardSink{})
	exporter := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 2055)
	chunk := make([]store.Flow, 0, 10_000)
	for len(fx.flows) < n {
		chunk = fx.model.AppendFlows(chunk[:0], cap(chunk), fx.now)
		for _, f := range chunk {
			if f.SrcAddr.Unmap().Is6() == v6 && len(fx.flows) < n {
				f.Exporter, f.Version = exporter, 10
				fx.flows = append(fx.flows, f)
			}
		}
	}
	return fx
}

// BenchmarkEnrich measures Enrich on batches of 1,000 flows of the WISP
// model (2,000 subscribers, realistic remote networks and applications),
// with the built-in geo tables and with MaxMind files, and (builtin-v4,
// builtin-v6) on IPv4 or IPv6 flows only. Batches are
// enriched in place, in turn from a pool of 100,000 flows; the fields that
// Enrich fills only when they are 0 are reset first, so every pass does
// the full work.
func BenchmarkEnrich(b *testing.B) {
	for _, tc := range []struct {
		name  string
		build func() *wispFixture
	}{
		{"builtin", func() *wispFixture { return newWISPFixture(b, 2000, 100_000, discardSink{}) }},
		{"mmdb", func() *wispFixture { return newWISPFixtureMMDB(b, 2000, 100_000) }},
		{"builtin-v4", func() *wispFixture { return newWISPFixtureFamily(b, 2000, 50_000, false) }},
		{"builtin-v6", func() *wispFixture { return newWISPFixtureFamily(b, 2000, 50_000, true) }},
	} {
		fx := tc.build()
		b.Run(tc.name, func(b *testing.B) {
			const batch = 1000
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				i := (n * batch) % len(fx.flows)
				work := fx.flows[i : i+batch]
				for j := range work {
					work[j].RouterID, work[j].SrcAS, work[j].DstAS = 0, 0, 0
				}
				fx.e.Enrich(work)
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/flow")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkGeoLookup measures one address's ASN and country lookup with
// the built-in tables and with MaxMind files of 100,000 networks, on
// addresses spread over the files' networks and beyond (cache misses as on
// real traffic).
func BenchmarkGeoLookup(b *testing.B) {
	db, err := geodata.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	nets := largeASNNets(100_000)
	ccNets := make([]mmdbNet, len(nets))
	for i, n := range nets {
		ccNets[i] = mmdbNet{n.prefix, countryRecord(string([]byte{'A' + byte(i%26), 'A' + byte(i/26%26)}), uint32(i%676))}
	}
	asnFile, err := newASNFile(buildMMDB(b, "GeoLite2-ASN", time.Now(), nets))
	if err != nil {
		b.Fatal(err)
	}
	ccFile, err := newCountryFile(buildMMDB(b, "GeoLite2-Country", time.Now(), ccNets))
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]netip.Addr, 4096)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range addrs {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		switch i % 4 {
		case 0: // anywhere
			addrs[i] = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		case 1: // IPv6 global unicast
			var a [16]byte
			a[0], a[1] = 0x20, 0x01+byte(x>>56)%3
			for j := 2; j < 16; j++ {
				a[j] = byte(x >> (j * 4))
			}
			addrs[i] = netip.AddrFrom16(a)
		default: // in the files' networks
			addrs[i] = netip.AddrFrom4([4]byte{1 + byte(x>>40)%2, byte(x >> 16), byte(x >> 8), byte(x)})
		}
	}
	for _, tc := range []struct {
		name string
		st   *geoState
	}{
		{"builtin", &geoState{builtin: db}},
		{"mmdb", &geoState{builtin: db, asn: asnFile, country: ccFile}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tc.st.lookup(addrs[i&4095])
				i++
			}
		})
	}
}

// BenchmarkMMDBLoad measures loading (verifying and decoding) an ASN file
// of 100,000 networks and 12,500 records, as at start and at each reload.
func BenchmarkMMDBLoad(b *testing.B) {
	file := buildMMDB(b, "GeoLite2-ASN", time.Now(), largeASNNets(100_000))
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newASNFile(file); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestWithEnrichment measures ingest through a real store
// (SQLite in a temporary directory, its writer running) of the same WISP
// model flows in batches of 1,000, three ways:
//
//   - direct: the decoder's flows straight into the store (no enrichment);
//   - enriched: through the Enricher, as flowbox serve wires it;
//   - pre-enriched: flows enriched beforehand, straight into the store:
//     the store's cost with the labels, without the enrichment's CPU.
//
// Each reports flows/s and ns/flow measured until the store's writer has
// drained its queue and flushed its rollups, so queued batches are not
// counted as written, and cpu-ns/flow, the CPU time the whole process
// (caller, Enricher, store writer, SQLite) spent per flow, which a busy
// machine disturbs less than the wall time. Compare enriched with direct
// for the 20% budget.
func BenchmarkIngestWithEnrichment(b *testing.B) {
	for _, mode := range []string{"direct", "enriched", "pre-enriched"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			st, err := storetest.Open(ctx, b.TempDir(), store.DefaultConfig(), testLogger(), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			fx := newWISPFixtureAt(b, 2000, 100_000, st, time.Now())
			var sink Sink = st
			switch mode {
			case "enriched":
				sink = fx.e
			case "pre-enriched":
				fx.e.Enrich(fx.flows)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- st.Run(runCtx) }()
			const batch = 1000
			n := 0
			b.ReportAllocs()
			start := time.Now()
			cpu0, cpuOK := processCPU()
			for b.Loop() {
				i := (n * batch) % len(fx.flows)
				work := fx.flows[i : i+batch]
				if mode != "pre-enriched" {
					for j := range work {
						work[j].RouterID, work[j].SrcAS, work[j].DstAS = 0, 0, 0
					}
				}
				if err := sink.InsertFlows(ctx, work); err != nil {
					b.Fatal(err)
				}
				n++
			}
			stop()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(n*batch)/elapsed.Seconds(), "flows/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n*batch), "ns/flow")
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(n*batch), "cpu-ns/flow")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestEnrichWISPModel enriches the WISP model's traffic (with MaxMind
// files holding the model's remote networks) and checks every flow
// against the model: the subscriber of each customer flow, its direction,
// the remote AS, and that most flows get an application.
func TestEnrichWISPModel(t *testing.T) {
	fx := newWISPFixtureMMDB(t, 300, 20_000)
	names := map[netip.Addr]string{}
	for _, s := range fx.model.Subscribers() {
		name := s.Name
		if s.Kind == netflowtest.KindPPPoE {
			name = s.Login
		}
		names[s.Addr] = name
		if s.Addr6.IsValid() {
			names[s.Addr6] = name
		}
	}
	nets := netflowtest.Networks()
	asnOf := func(a netip.Addr) uint32 {
		for _, n := range nets {
			for _, p := range n.Prefixes {
				if p.Contains(a) {
					return n.ASN
				}
			}
		}
		return 0
	}
	flows := slices.Clone(fx.flows)
	fx.e.Enrich(flows)
	customer, labelled := 0, 0
	for _, f := range flows {
		local, remote := f.LocalRemote()
		if f.Application != "" {
			labelled++
		}
		want, ok := names[local]
		if !ok {
			continue // router traffic (MNDP, its own DNS and NTP)
		}
		customer++
		if f.Subscriber != want {
			t.Fatalf("flow %v -> %v: subscriber %q, want %q", f.SrcAddr, f.DstAddr, f.Subscriber, want)
		}
		remoteAS, remoteCC := f.DstAS, f.DstCountry
		if f.Direction == store.DirDownload {
			remoteAS, remoteCC = f.SrcAS, f.SrcCountry
		}
		switch {
		case f.Direction == store.DirInternal: // a customer asking the router's resolver
		case f.Direction != store.DirUpload && f.Direction != store.DirDownload:
			t.Fatalf("flow %v -> %v: direction %v", f.SrcAddr, f.DstAddr, f.Direction)
		case remoteAS != asnOf(remote) || remoteAS == 0 || remoteCC == "":
			t.Fatalf("flow %v -> %v: remote AS%d %q, want AS%d", f.SrcAddr, f.DstAddr, remoteAS, remoteCC, asnOf(remote))
		}
	}
	if customer < len(flows)*3/4 || labelled < len(flows)*9/10 {
		t.Errorf("%d customer flows and %d with an application, of %d", customer, labelled, len(flows))
	}
}

// BenchmarkSubscriberLookup measures the subscriber index alone on the
// local side of the WISP model's IPv4 and IPv6 customer flows (IPv4
// hosts; IPv6 addresses inside delegated /64 prefixes).
func BenchmarkSubscriberLookup(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		fx := newWISPFixtureFamily(b, 2000, 20_000, v6)
		fx.e.Enrich(fx.flows)
		var addrs []netip.Addr
		for _, f := range fx.flows {
			if f.Subscriber != "" {
				l, _ := f.LocalRemote()
				addrs = append(addrs, l)
			}
		}
		idx := fx.e.subs.idx.Load()
		at := fx.now.UnixMilli()
		name := "v4"
		if v6 {
			name = "v6"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if idx.lookup(addrs[i%len(addrs)], at) == "" {
					b.Fatal("no subscriber")
				}
				i++
			}
		})
	}
}
