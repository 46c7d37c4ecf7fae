package enrich

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/internal/pcap"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// captureSink keeps copies of the batches it receives.
type captureSink struct {
	mu    sync.Mutex
	flows []store.Flow
}

func (c *captureSink) InsertFlows(_ context.Context, flows []store.Flow) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flows = append(c.flows, flows...)
	return nil
}

// mapResolver attributes exporters by a fixed table.
type mapResolver map[netip.Addr]int64

func (m mapResolver) RouterFor(a netip.Addr) (int64, bool) {
	id, ok := m[a.Unmap()]
	return id, ok
}

// routerList is a fixed inventory.
type routerList []store.Router

func (l routerList) ListRouters(context.Context) ([]store.Router, error) { return l, nil }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestEnricher(t testing.TB, cfg Config, deps Deps) (*Enricher, *captureSink, *prometheus.Registry) {
	t.Helper()
	sink := &captureSink{}
	reg := prometheus.NewRegistry()
	if deps.Next == nil {
		deps.Next = sink
	}
	deps.Logger = testLogger()
	deps.Registerer = reg
	e, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return e, sink, reg
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestDirectionNATAndLabels(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Prefixes = []string{"10.0.0.0/16", "203.0.113.7"} // the NAT public address is the router's own
	e, sink, reg := newTestEnricher(t, cfg, Deps{Resolver: mapResolver{addr("192.0.2.1"): 42}})
	exp := netip.AddrPortFrom(addr("192.0.2.1"), 2055)
	flows := []store.Flow{
		// Download through NAT: dst is the public address, post-NAT dst the inside host.
		{Exporter: exp, SrcAddr: addr("45.57.12.1"), DstAddr: addr("198.51.100.7"), PostNATDstAddr: addr("10.0.5.9"),
			Proto: 6, SrcPort: 443, DstPort: 51000},
		// Upload from the inside host: post-NAT src is public.
		{Exporter: exp, SrcAddr: addr("10.0.5.9"), DstAddr: addr("8.8.8.8"), PostNATSrcAddr: addr("198.51.100.7"),
			Proto: 17, SrcPort: 40000, DstPort: 53},
		// Internal.
		{Exporter: exp, SrcAddr: addr("10.0.5.9"), DstAddr: addr("10.0.7.1"), Proto: 6, SrcPort: 50000, DstPort: 22},
		// Transit.
		{Exporter: exp, SrcAddr: addr("1.1.1.1"), DstAddr: addr("157.240.1.35"), Proto: 6, SrcPort: 443, DstPort: 50000},
		// Router's own public address to a remote: upload.
		{Exporter: exp, SrcAddr: addr("203.0.113.7"), DstAddr: addr("100.64.3.3"), Proto: 17, SrcPort: 123, DstPort: 123, RouterID: 7},
	}
	if err := e.InsertFlows(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	got := sink.flows
	want := []struct {
		dir      store.Direction
		local    string
		app      string
		src, dst string
		srcAS    uint32
		dstAS    uint32
	}{
		{store.DirDownload, "10.0.5.9", "netflix", "US", "bogon", 2906, 0}, // pre-NAT dst is TEST-NET-2
		{store.DirUpload, "10.0.5.9", "domain", "private", "US", 0, 15169},
		{store.DirInternal, "10.0.5.9", "ssh", "private", "private", 0, 0},
		{store.DirTransit, "1.1.1.1", "meta", "AU", "US", 13335, 32934}, // transit: the destination is remote
		{store.DirUpload, "203.0.113.7", "ntp", "bogon", "cgnat", 0, 0},
	}
	for i, w := range want {
		f := got[i]
		local, _ := f.LocalRemote()
		if f.Direction != w.dir || local.String() != w.local || f.Application != w.app ||
			f.SrcCountry != w.src || f.DstCountry != w.dst || f.SrcAS != w.srcAS || f.DstAS != w.dstAS {
			t.Errorf("flow %d: got dir=%v local=%v app=%q src=%q/%d dst=%q/%d, want %+v", i, f.Direction, local,
				f.Application, f.SrcCountry, f.SrcAS, f.DstCountry, f.DstAS, w)
		}
	}
	if got[0].RouterID != 42 || got[4].RouterID != 7 {
		t.Errorf("router ids %d, %d: want 42 from the resolver and 7 kept", got[0].RouterID, got[4].RouterID)
	}
	if v := promtestutil.ToFloat64(e.metrics.flows.WithLabelValues("download")); v != 1 {
		t.Errorf("download counter %v", v)
	}
	// Every direction is exported from the start, at 0 until seen.
	if n, err := promtestutil.GatherAndCount(reg, "flowbox_enrich_flows_total"); err != nil || n != store.NumDirections {
		t.Errorf("flows_total series: %d, %v", n, err)
	}

	// Without any local prefix the direction stays unknown.
	e2, sink2, _ := newTestEnricher(t, DefaultConfig(), Deps{})
	e2.InsertFlows(context.Background(), []store.Flow{{SrcAddr: addr("10.0.0.1"), DstAddr: addr("8.8.8.8")}})
	if d := sink2.flows[0].Direction; d != store.DirUnknown {
		t.Errorf("no prefixes: direction %v", d)
	}
}

func TestSpecialLabels(t *testing.T) {
	for a, want := range map[string]string{
		"10.1.1.1": LabelPrivate, "172.31.0.1": LabelPrivate, "192.168.1.1": LabelPrivate, "100.64.0.1": LabelCGNAT,
		"100.127.255.255": LabelCGNAT, "100.128.0.1": "", "127.0.0.1": LabelLoopback, "169.254.1.1": LabelLinkLocal,
		"224.0.0.251": LabelMulticast, "239.1.1.1": LabelMulticast, "255.255.255.255": LabelBroadcast,
		"0.1.2.3": LabelBogon, "192.0.2.5": LabelBogon, "198.18.0.1": LabelBogon, "240.0.0.1": LabelBogon,
		"8.8.8.8": "", "::1": LabelLoopback, "fd12::1": LabelPrivate, "fe80::1": LabelLinkLocal, "ff02::1": LabelMulticast,
		"2001:db8::1": LabelBogon, "2001:4860::1": "", "::ffff:10.0.0.1": LabelPrivate,
	} {
		if got := SpecialLabel(addr(a)); got != want {
			t.Errorf("%s: %q, want %q", a, got, want)
		}
	}
	e, _, _ := newTestEnricher(t, DefaultConfig(), Deps{})
	if info := e.LookupAddr(addr("100.64.1.1")); info != (AddrInfo{Label: LabelCGNAT}) {
		t.Errorf("CGNAT looked up: %+v", info)
	}
	for a, want := range map[string]uint32{"8.8.8.8": 15169, "1.1.1.1": 13335, "157.240.22.35": 32934, "45.57.40.1": 40027, "45.57.0.10": 2906} {
		info := e.LookupAddr(addr(a))
		if info.ASN != want || info.ASName == "" || info.Country == "" {
			t.Errorf("%s: %+v, want AS%d with a name and a country", a, info, want)
		}
	}
	if n := e.ASName(2906); n != "Netflix Streaming Services Inc." {
		t.Errorf("AS2906 name %q", n)
	}
}

func TestApplications(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Applications = []AppEntry{
		{Name: "speedtest", Category: "tools", Prefixes: []string{"203.0.113.0/24"}},
		{Name: "my-game", Category: "gaming", Protocols: []string{"udp"}, Ports: []string{"40000-40010"}},
		{Name: "web-hosting", Protocols: []string{"tcp"}, Ports: []string{"80"}}, // overrides http, not generic
	}
	e, _, _ := newTestEnricher(t, cfg, Deps{})
	a := e.apps
	for _, tc := range []struct {
		proto        uint8
		sport, dport uint16
		remote       string
		as           uint32
		want         string
	}{
		{6, 51000, 443, "8.8.8.8", 15169, "google"},    // generic https: network wins
		{17, 53, 51000, "8.8.8.8", 15169, "domain"},    // specific port wins, either direction
		{6, 443, 51000, "1.2.3.4", 0, "https"},         // unknown network
		{17, 443, 50000, "45.57.1.1", 2906, "netflix"}, // quic to Netflix
		{6, 50000, 80, "1.2.3.4", 0, "web-hosting"},    // config overrides the built-in port
		{17, 40005, 61000, "1.2.3.4", 0, "my-game"},
		{6, 40005, 61000, "1.2.3.4", 0, ""},            // udp-only entry
		{6, 51000, 443, "203.0.113.9", 0, "speedtest"}, // config prefix
		{17, 123, 123, "1.2.3.4", 0, "ntp"},            // both ports known
		{6, 22, 8080, "1.2.3.4", 0, "ssh"},             // both known: lower port
		{1, 0, 0, "1.2.3.4", 32590, "steam"},           // no port entry: network
		{1, 0, 0, "1.2.3.4", 0, "icmp"},                // protocol entry
		{47, 0, 0, "1.2.3.4", 0, "gre"},
		{6, 50001, 50002, "1.2.3.4", 0, ""},
	} {
		if got := a.Classify(tc.proto, tc.sport, tc.dport, addr(tc.remote), tc.as); got != tc.want {
			t.Errorf("%d %d->%d %s AS%d: %q, want %q", tc.proto, tc.sport, tc.dport, tc.remote, tc.as, got, tc.want)
		}
	}
	if c := e.ApplicationCategory("netflix"); c != "video" {
		t.Errorf("netflix category %q", c)
	}
}

// TestApplicationASNames checks that the ASNs of the application table
// belong to the organisations the entries name, per the embedded tables.
func TestApplicationASNames(t *testing.T) {
	e, _, _ := newTestEnricher(t, DefaultConfig(), Deps{})
	expect := map[string]string{"netflix": "Netflix", "google": "Google", "youtube": "Google", "meta": "Facebook",
		"steam": "Valve", "microsoft": "Microsoft", "apple": "Apple", "akamai": "Akamai", "cloudflare": "Cloudflare",
		"fastly": "Fastly", "amazon": "Amazon"}
	entries, err := loadAppEntries(bytesReader(builtinApplications))
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		for _, asn := range en.ASNs {
			name := e.ASName(asn)
			if name == "" {
				t.Errorf("%s: AS%d unknown to the embedded tables", en.Name, asn)
			}
			if want, ok := expect[en.Name]; ok && !containsFold(name, want) {
				t.Errorf("%s: AS%d is %q, want an organisation matching %q", en.Name, asn, name, want)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	cfg.Prefixes = []string{"10.0.0.0/33"}
	cfg.PollInterval = time.Second
	cfg.MaxSubscribers = 0
	cfg.Applications = []AppEntry{{Name: "x", Ports: []string{"0"}}, {Name: "", Ports: []string{"1"}}, {Name: "y", Protocols: []string{"gre"}, Ports: []string{"1"}}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"prefixes[0]:", "poll-interval:", "max-subscribers:", "applications[0]: x: ports:",
		"applications[1]: name:", "applications[2]: y: protocols:"} {
		if !containsFold(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := New(cfg, Deps{Next: &captureSink{}, Logger: testLogger(), Registerer: prometheus.NewRegistry()}); err == nil {
		t.Error("New accepted an invalid config")
	}
	cfg = DefaultConfig()
	cfg.GeoIP.ASNFile = filepath.Join(t.TempDir(), "missing.mmdb")
	if _, err := New(cfg, Deps{Next: &captureSink{}, Logger: testLogger(), Registerer: prometheus.NewRegistry()}); err == nil {
		t.Error("New accepted a missing mmdb file")
	}
}

// v7Router is the fake router of the poller tests: routerostest's V7
// personality (bob-laptop on a DHCP lease at 10.0.0.20, PPPoE alice at
// 10.0.1.5 with a queue), with the lease's owner replaceable.
func v7Router(leaseHost string) routerostest.Personality {
	p := routerostest.V7("tower-1")
	p.Leases[0].HostName = leaseHost
	return p
}

func TestPollerRouterOS(t *testing.T) {
	srv := testutil.StartRouter(t, v7Router("bob-laptop"))
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	router := store.Router{ID: 3, Name: "tower-1", Address: srv.Addr(), Username: "admin",
		Interfaces: []store.Interface{{Index: 1, Name: "ether1"}}}
	cfg := DefaultConfig()
	cfg.UpstreamInterfaces = []string{"ether1"}
	e, sink, reg := newTestEnricher(t, cfg, Deps{Routers: routerList{router}, Dial: DialRouterOS, Now: clk.Now})
	ctx := context.Background()
	e.pollAll(ctx)
	if n := promtestutil.ToFloat64(e.metrics.polls.WithLabelValues("ok")); n != 1 {
		t.Fatalf("polls ok = %v (menu errors: %v)", n, promtestutil.CollectAndCount(e.metrics.pollMenuErrors))
	}
	clk.Set(clk.Now().Add(time.Minute))
	start := ms(clk.Now())
	flows := []store.Flow{
		{RouterID: 3, Start: start, SrcAddr: addr("10.0.0.20"), DstAddr: addr("8.8.8.8"), Proto: 6, SrcPort: 50000, DstPort: 443, InIf: 7, OutIf: 1},
		{RouterID: 3, Start: start, SrcAddr: addr("45.57.12.1"), DstAddr: addr("10.0.0.20"), Proto: 6, SrcPort: 443, DstPort: 50000, InIf: 1, OutIf: 7},
		{RouterID: 3, Start: start, SrcAddr: addr("10.0.1.5"), DstAddr: addr("157.240.1.35"), Proto: 17, SrcPort: 50000, DstPort: 443},
		// From a PPPoE interface with an address nobody named: the interface names the user.
		{RouterID: 3, Start: start, SrcAddr: addr("10.0.0.99"), DstAddr: addr("1.1.1.1"), Proto: 6, SrcPort: 50000, DstPort: 443, InIf: 8388611},
		// The router's uplink address (127.0.0.1/8 on ether1, upstream): only the host is local,
		// and the router itself terminates it (out-interface 0): the router's own traffic.
		{RouterID: 3, Start: start, SrcAddr: addr("127.0.0.5"), DstAddr: addr("127.0.0.1"), Proto: 6, SrcPort: 50000, DstPort: 8728},
	}
	if err := e.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		dir store.Direction
		sub string
		app string
	}{
		{store.DirUpload, "bob-laptop", "google"},
		{store.DirDownload, "bob-laptop", "netflix"},
		{store.DirUpload, "alice", "meta"},
		{store.DirUpload, "alice", "cloudflare"},
		{store.DirRouterIn, "tower-1", "mikrotik-api"},
	}
	for i, w := range want {
		f := sink.flows[i]
		if f.Direction != w.dir || f.Subscriber != w.sub || f.Application != w.app {
			t.Errorf("flow %d: dir=%v sub=%q app=%q, want %+v", i, f.Direction, f.Subscriber, f.Application, w)
		}
	}
	if n := e.InterfaceName(3, 7, clk.Now()); n != "bridge-lan" {
		t.Errorf("ifIndex 7 = %q, want bridge-lan (polled)", n)
	}
	if n := e.InterfaceName(3, 0, clk.Now()); n != RouterItself {
		t.Errorf("ifIndex 0 = %q", n)
	}
	if v := promtestutil.ToFloat64(e.metrics.subscriberHits); v != 4 {
		t.Errorf("subscriber hits %v, want 4", v)
	}
	if n, _ := promtestutil.GatherAndCount(reg, "flowbox_enrich_subscriber_records"); n != 1 {
		t.Error("no subscriber_records gauge")
	}
	// The queue, PPP and DHCP records are all there (alice twice: queue and PPP).
	if got := e.subs.size(); got != 3 {
		t.Errorf("%d subscriber records, want 3", got)
	}
}

// TestLeaseMovesWithStore runs two polls against a router whose lease
// for 10.0.0.20 changes hands in between, with a real SQLite store: old
// and new flows go to the right customers, and a restarted Enricher
// reloads the history from the store.
func TestLeaseMovesWithStore(t *testing.T) {
	ctx := context.Background()
	st, err := storetest.Open(ctx, t.TempDir(), store.DefaultConfig(), testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	before := testutil.StartRouter(t, v7Router("bob-laptop"))
	after := testutil.StartRouter(t, v7Router("carol-phone"))

	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	router := store.Router{ID: 5, Name: "tower-1", Address: before.Addr(), Username: "admin"}
	e, sink, _ := newTestEnricher(t, DefaultConfig(), Deps{Dial: DialRouterOS, Subscribers: st, Now: clk.Now})
	e.PollRouter(ctx, router)
	clk.Set(t0.Add(5 * time.Minute))
	e.PollRouter(ctx, router) // unchanged: nothing written
	clk.Set(t0.Add(10 * time.Minute))
	router.Address = after.Addr() // the same router, the lease now belongs to carol
	e.PollRouter(ctx, router)

	flowAt := func(at time.Time) store.Flow {
		return store.Flow{RouterID: 5, Start: ms(at), SrcAddr: addr("45.57.12.1"), DstAddr: addr("10.0.0.20"), Proto: 6, SrcPort: 443, DstPort: 50000}
	}
	batch := []store.Flow{flowAt(t0.Add(2 * time.Minute)), flowAt(t0.Add(9 * time.Minute)), flowAt(t0.Add(11 * time.Minute)), flowAt(t0.Add(-FirstPollBackdate - time.Minute)), flowAt(t0.Add(-FirstPollBackdate / 2))}
	e.InsertFlows(ctx, batch)
	// Before the first poll: nobody beyond FirstPollBackdate, the first
	// poll's owner within it.
	for i, want := range []string{"bob-laptop", "bob-laptop", "carol-phone", "", "bob-laptop"} {
		if got := sink.flows[i].Subscriber; got != want {
			t.Errorf("flow %d: subscriber %q, want %q", i, got, want)
		}
	}
	// The store holds the same history.
	for at, want := range map[time.Duration]string{2 * time.Minute: "bob-laptop", 11 * time.Minute: "carol-phone"} {
		s, err := st.SubscriberAt(ctx, addr("10.0.0.20"), t0.Add(at))
		if err != nil || s.Name != want || s.Source != store.SourceDHCP || s.RouterID != 5 || s.MAC != 0xAABBCC000020 {
			t.Errorf("store at +%v: %+v, %v; want %s", at, s, err, want)
		}
	}
	hist, err := st.SubscriberHistory(ctx, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 4 { // bob (ended), carol, alice queue, alice ppp
		t.Errorf("%d history rows, want 4: %+v", len(hist), hist)
	}
	// A new Enricher (a restart) gets the history from the store.
	cfg := DefaultConfig()
	cfg.Prefixes = []string{"10.0.0.0/8"} // no poll after the restart: configured prefixes decide the direction
	e2, sink2, _ := newTestEnricher(t, cfg, Deps{Subscribers: st, Now: clk.Now})
	if err := e2.subs.load(ctx, clk.Now()); err != nil {
		t.Fatal(err)
	}
	e2.InsertFlows(ctx, []store.Flow{flowAt(t0.Add(2 * time.Minute)), flowAt(t0.Add(11 * time.Minute))})
	if sink2.flows[0].Subscriber != "bob-laptop" || sink2.flows[1].Subscriber != "carol-phone" {
		t.Errorf("after reload: %q, %q", sink2.flows[0].Subscriber, sink2.flows[1].Subscriber)
	}

	// A CSV import overrides the learned name, and a running Enricher sees
	// it at its next poll cycle.
	rows, err := ParseSubscriberCSV(stringsReader("prefix,name,id\n10.0.0.16/29,Carol's Bakery,C-17\n"))
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(20 * time.Minute))
	res, err := ImportSubscribers(ctx, st, rows, false, clk.Now(), 1000)
	if err != nil || res.Opened != 1 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	e.pollAll(ctx) // no inventory: reloads the history only
	if got := e.SubscriberAt(addr("10.0.0.20"), t0.Add(21*time.Minute)); got != "Carol's Bakery" {
		t.Errorf("after import: %q", got)
	}
	if got := e.SubscriberAt(addr("10.0.0.20"), t0.Add(11*time.Minute)); got != "carol-phone" {
		t.Errorf("before import: %q", got)
	}
	// Re-importing the same rows changes nothing; replace with an empty file ends the row.
	if res, err := ImportSubscribers(ctx, st, rows, false, clk.Now(), 1000); err != nil || res.Opened != 0 || res.Ended != 0 {
		t.Errorf("re-import: %+v, %v", res, err)
	}
	if res, err := ImportSubscribers(ctx, st, nil, true, clk.Now().Add(time.Minute), 1000); err != nil || res.Ended != 1 {
		t.Errorf("replace: %+v, %v", res, err)
	}
}

func TestParseSubscriberCSVErrors(t *testing.T) {
	_, err := ParseSubscriberCSV(stringsReader("10.0.0.1,alice,1\nnot-an-ip,bob\n10.0.0.3,\n10.0.0.4\n"))
	if err == nil {
		t.Fatal("bad CSV accepted")
	}
	for _, want := range []string{"line 2, column 1 (address): invalid address or prefix", "line 3, column 2 (name): customer name", "line 4: want 2 or 3 fields"} {
		if !containsFold(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	rows, err := ParseSubscriberCSV(stringsReader("# static customers\n2001:db8:1::/48, Acme Corp, A-1\n192.0.2.9,Solo\n"))
	if err != nil || len(rows) != 2 || rows[0].Prefix.String() != "2001:db8:1::/48" || rows[0].CustomerID != "A-1" ||
		rows[1].Prefix.String() != "192.0.2.9/32" {
		t.Errorf("rows %+v, %v", rows, err)
	}
}

func TestHistoryBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSubscribers = 2
	e, _, _ := newTestEnricher(t, cfg, Deps{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	obs := []observation{
		{prefix: netip.MustParsePrefix("10.0.0.1/32"), source: store.SourceDHCP, name: "a"},
		{prefix: netip.MustParsePrefix("10.0.0.2/32"), source: store.SourceDHCP, name: "b"},
		{prefix: netip.MustParsePrefix("10.0.0.3/32"), source: store.SourceDHCP, name: "c"},
	}
	ch, err := e.subs.apply(context.Background(), 1, []string{store.SourceDHCP}, obs, now, now, false)
	if err != nil || ch.opened != 2 || ch.dropped != 1 {
		t.Fatalf("apply: %+v, %v", ch, err)
	}
	if v := promtestutil.ToFloat64(e.metrics.subscriberDrops); v != 1 {
		t.Errorf("drops %v", v)
	}
	// Ended records are pruned once out of the history window.
	later := now.Add(cfg.HistoryWindow + time.Hour)
	if _, err := e.subs.apply(context.Background(), 1, []string{store.SourceDHCP}, nil, now.Add(time.Minute), now, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.subs.apply(context.Background(), 1, []string{store.SourceDHCP}, obs[2:], later, later, false); err != nil {
		t.Fatal(err)
	}
	if n := e.subs.size(); n != 1 {
		t.Errorf("%d records after pruning, want 1", n)
	}
}

// decodeCapture decodes a pcap with the collector's decoder.
func decodeCapture(t testing.TB, path string) []store.Flow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dec := netflow.New(netflow.Config{})
	var flows []store.Flow
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		flows, err = dec.Decode(flows, p.Src, p.Payload, p.Time)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
	}
	return flows
}

// mikrotikCapturePersonality is the router of the MikroTik IPFIX capture
// (RouterOS 6.39.2), rebuilt from the capture: each router address sends
// its MNDP broadcast out of one ifIndex, which gives the address of each
// interface; ifIndex 7 carries the NATed traffic to 192.168.0.0/16 with
// post-NAT source 192.168.230.216 and next hop 192.168.224.1, so it is the
// uplink with address 192.168.230.216/20. The prefix lengths of the LAN
// addresses are assumptions (/24, and /23 for 172.20.4.1 because
// 172.20.5.191 is reached on the same interface); so are the names.
// Hosts 10.10.8.197 and 10.10.6.11 get DHCP leases to check attribution
// through NAT.
func mikrotikCapturePersonality() routerostest.Personality {
	p := routerostest.V6("capture-router")
	p.Version = "6.39.2 (stable)"
	p.Interfaces = []routerostest.Interface{
		{Index: 7, Name: "ether1-wan", Type: "ether"},
		{Index: 9, Name: "wlan1-tower-a", Type: "wlan"},
		{Index: 10, Name: "vlan10-mgmt", Type: "vlan"},
		{Index: 11, Name: "vlan11-servers", Type: "vlan"},
		{Index: 12, Name: "vlan12-sector-b", Type: "vlan"},
		{Index: 13, Name: "vlan13-sector-c", Type: "vlan"},
		{Index: 14, Name: "vlan14-backhaul", Type: "vlan"},
		{Index: 15, Name: "vlan15-sector-d", Type: "vlan"},
		{Index: 16, Name: "wlan2", Type: "wlan"},
		{Index: 17, Name: "wlan3", Type: "wlan"},
	}
	pfx := netip.MustParsePrefix
	p.Addresses = []routerostest.Address{
		{Address: pfx("192.168.230.216/20"), Interface: "ether1-wan"},
		{Address: pfx("172.20.4.1/23"), Interface: "wlan1-tower-a"},
		{Address: pfx("172.30.0.1/24"), Interface: "vlan10-mgmt"},
		{Address: pfx("10.10.6.1/24"), Interface: "vlan11-servers"},
		{Address: pfx("10.10.7.1/24"), Interface: "vlan12-sector-b"},
		{Address: pfx("10.10.8.1/24"), Interface: "vlan13-sector-c"},
		{Address: pfx("10.20.0.1/24"), Interface: "vlan14-backhaul"},
		{Address: pfx("10.10.10.1/24"), Interface: "vlan15-sector-d"},
	}
	p.Leases = []routerostest.Lease{
		{Address: addr("10.10.8.197"), MAC: "AA:BB:CC:00:08:C5", HostName: "carol-pc", Status: "bound", Dynamic: true},
		{Address: addr("10.10.6.11"), MAC: "AA:BB:CC:00:06:0B", Comment: "web server", Status: "bound"},
	}
	p.PPP, p.Queues, p.ARP, p.Pools = nil, nil, nil, nil
	return p
}

func TestMikroTikCapture(t *testing.T) {
	flows := decodeCapture(t, filepath.Join(testutil.CapturesDir(t), "logstash-codec-netflow", "ipfix-mikrotik-routeros-6-39-2.pcap"))
	if len(flows) != 46 {
		t.Fatalf("decoded %d flows, want 46", len(flows))
	}
	srv := testutil.StartRouter(t, mikrotikCapturePersonality())
	first := flows[0].Start
	for _, f := range flows {
		first = min(first, f.Start)
	}
	clk := &clock{t: time.UnixMilli(first).Add(-time.Minute)}
	router := store.Router{ID: 1, Name: "capture-router", Address: srv.Addr(), Username: "admin"}
	cfg := DefaultConfig()
	cfg.UpstreamInterfaces = []string{"ether1-wan"} // RouterOS 6.39 fake has no /ip/route
	e, sink, _ := newTestEnricher(t, cfg, Deps{Resolver: mapResolver{flows[0].Exporter.Addr(): 1},
		Routers: routerList{router}, Dial: DialRouterOS, Now: clk.Now})
	ctx := context.Background()
	e.pollAll(ctx)
	if err := e.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	type key struct{ src, dst string }
	want := map[key]struct {
		dir store.Direction
		sub string
		in  string
		out string
	}{
		{"10.10.8.197", "192.168.128.17"}:      {store.DirUpload, "carol-pc", "vlan13-sector-c", "ether1-wan"},
		{"192.168.35.143", "192.168.230.216"}:  {store.DirDownload, "web server", "ether1-wan", "vlan11-servers"}, // port forward, post-NAT dst 10.10.6.11
		{"10.10.6.11", "192.168.35.143"}:       {store.DirUpload, "web server", "vlan11-servers", "ether1-wan"},
		{"192.168.128.17", "192.168.230.216"}:  {store.DirDownload, "carol-pc", "ether1-wan", "vlan13-sector-c"}, // NAT reply to 10.10.8.197
		{"10.10.8.220", "172.20.5.191"}:        {store.DirInternal, "", "vlan13-sector-c", "wlan1-tower-a"},
		{"172.20.4.199", "172.20.4.1"}:         {store.DirInternal, "", "wlan1-tower-a", RouterItself},
		{"10.10.7.11", "192.168.183.199"}:      {store.DirUpload, "", "vlan12-sector-b", "ether1-wan"},
		{"192.168.183.199", "192.168.230.216"}: {store.DirDownload, "", "ether1-wan", "vlan12-sector-b"}, // NAT reply to 10.10.7.11
	}
	seen := 0
	for _, f := range sink.flows {
		if f.RouterID != 1 {
			t.Errorf("flow %v -> %v: router %d", f.SrcAddr, f.DstAddr, f.RouterID)
		}
		in, out := e.InterfaceName(f.RouterID, f.InIf, time.UnixMilli(f.Start)), e.InterfaceName(f.RouterID, f.OutIf, time.UnixMilli(f.Start))
		if in == "" || out == "" {
			t.Errorf("flow %v -> %v: interface names %q/%q for %d/%d", f.SrcAddr, f.DstAddr, in, out, f.InIf, f.OutIf)
		}
		if w, ok := want[key{f.SrcAddr.String(), f.DstAddr.String()}]; ok {
			seen++
			if f.Direction != w.dir || f.Subscriber != w.sub || in != w.in || out != w.out {
				t.Errorf("flow %v -> %v: dir=%v sub=%q in=%q out=%q, want %+v", f.SrcAddr, f.DstAddr, f.Direction, f.Subscriber, in, out, w)
			}
			continue
		}
		// Everything else stays on the router's links: MNDP broadcasts,
		// IPv6 link-local multicast, ICMP and SSH between LAN hosts.
		if f.Direction != store.DirInternal {
			t.Errorf("flow %v -> %v (%d/%d): direction %v, want internal", f.SrcAddr, f.DstAddr, f.InIf, f.OutIf, f.Direction)
		}
		if f.DstPort == 5678 && f.Application != "mndp" {
			t.Errorf("MNDP flow labelled %q", f.Application)
		}
	}
	if seen != len(want) {
		t.Errorf("matched %d of the %d expected flows", seen, len(want))
	}
	if got := sink.flows[0]; got.SrcCountry != LabelPrivate || got.Application != "ntp" {
		t.Errorf("first flow: country %q app %q", got.SrcCountry, got.Application)
	}
}

// BenchmarkEnrichSynthetic is the first Enrich benchmark: 5,000 DHCP
// subscribers and eight remote hosts, so the geo tables stay in cache.
// BenchmarkEnrich (bench_test.go) runs realistic traffic.
func BenchmarkEnrichSynthetic(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Prefixes = []string{"100.64.0.0/16", "203.0.113.1"}
	e, _, _ := newTestEnricher(b, cfg, Deps{Next: discardSink{}, Resolver: mapResolver{addr("192.0.2.1"): 1}})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// 5000 subscribers on DHCP.
	var obs []observation
	for i := range 5000 {
		a := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		obs = append(obs, observation{prefix: netip.PrefixFrom(a, 32), source: store.SourceDHCP, name: "customer-" + a.String()})
	}
	if _, err := e.subs.apply(context.Background(), 1, []string{store.SourceDHCP}, obs, now, now, false); err != nil {
		b.Fatal(err)
	}
	remotes := []netip.Addr{addr("8.8.8.8"), addr("157.240.1.35"), addr("45.57.12.1"), addr("1.1.1.1"),
		addr("2001:4860:4860::8888"), addr("23.45.67.89"), addr("185.60.216.35"), addr("13.32.1.1")}
	batch := make([]store.Flow, 1000)
	for i := range batch {
		j := i * 7 % 5000
		loc := netip.AddrFrom4([4]byte{100, 64, byte(j >> 8), byte(j)})
		f := store.Flow{Exporter: netip.AddrPortFrom(addr("192.0.2.1"), 2055), Start: ms(now.Add(time.Minute)), Proto: 6,
			Bytes: 1500, Packets: 1, InIf: 2, OutIf: 1}
		if i%2 == 0 {
			f.SrcAddr, f.DstAddr, f.SrcPort, f.DstPort = loc, remotes[i%8], uint16(40000+i), 443
		} else {
			f.SrcAddr, f.DstAddr, f.PostNATDstAddr, f.SrcPort, f.DstPort = remotes[i%8], addr("203.0.113.1"), loc, 443, uint16(40000+i)
		}
		batch[i] = f
	}
	work := make([]store.Flow, len(batch))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, batch)
		if err := e.InsertFlows(context.Background(), work); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/flow")
	if slices.ContainsFunc(work, func(f store.Flow) bool { return f.Subscriber == "" }) {
		b.Fatal("a flow was not attributed")
	}
}

type discardSink struct{}

func (discardSink) InsertFlows(context.Context, []store.Flow) error { return nil }

// TestSpecialLabelIndex checks the first-byte index of SpecialLabel
// against a scan of specialRanges, at the edges of every range and at
// random addresses.
func TestSpecialLabelIndex(t *testing.T) {
	scan := func(a netip.Addr) string {
		a = a.Unmap()
		for _, r := range specialRanges {
			if r.prefix.Contains(a) {
				return r.label
			}
		}
		return ""
	}
	probe := func(a netip.Addr) {
		if !a.IsValid() {
			return
		}
		if got, want := SpecialLabel(a), scan(a); got != want {
			t.Errorf("%s: %q, want %q", a, got, want)
		}
	}
	for _, r := range specialRanges {
		first, last := r.prefix.Masked().Addr(), lastAddr(r.prefix)
		probe(first)
		probe(last)
		probe(first.Prev())
		probe(last.Next())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], rng.Uint64())
		binary.BigEndian.PutUint64(b[8:], rng.Uint64())
		probe(netip.AddrFrom4([4]byte(b[:4])))
		probe(netip.AddrFrom16(b))
		b[0] = byte(rng.IntN(4)) // the crowded low end of IPv6
		probe(netip.AddrFrom16(b))
	}
}
