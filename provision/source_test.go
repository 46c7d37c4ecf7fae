package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

var ip = netip.MustParseAddr

// TestDecideSource: the decision on a router's src-address from what
// provisioning reads, for the cases the fake routers cannot show (a NAT
// needs an API host that is not loopback).
func TestDecideSource(t *testing.T) {
	towerA := store.Router{ID: 1, Name: "tower-a", Address: "203.0.113.5:8728", Addresses: prefixes("203.0.113.5/24", "10.0.0.1/24")}
	pinned := store.Router{ID: 2, Name: "pinned", Address: "198.51.100.20:8728", Addresses: prefixes("198.51.100.20/24", "100.64.0.1/24"),
		ExporterAddr: ip("198.51.100.20")}
	others := []store.Router{towerA, pinned}
	base := sourceInput{Router: "new", Collector: ip("192.0.2.10"), Version: "7.16.2 (stable)"}
	for _, tc := range []struct {
		name   string
		in     func(in *sourceInput)
		others []store.Router
		want   sourceDecision
		err    string
	}{
		{"alone", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("203.0.113.5"), prefixes("203.0.113.5/24")
		}, nil, sourceDecision{}, ""},
		{"own address nobody else uses", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("203.0.113.9"), prefixes("203.0.113.9/24", "10.0.0.1/24")
		}, others, sourceDecision{}, ""},
		{"behind tower-a's NAT", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("203.0.113.5"), prefixes("172.16.0.2/30")
		}, others, sourceDecision{}, "router tower-a already exports from 203.0.113.5, the address flowbox reaches this router at: routers behind one NAT address cannot be told apart"},
		{"shared address, own public address reached at", func(in *sourceInput) {
			// Reached at its own 198.51.100.9, but the collector's network
			// is tower-a's 203.0.113.0/24 too (say, both on one IX LAN).
			in.Remote, in.Addresses = ip("198.51.100.9"), prefixes("203.0.113.5/24", "198.51.100.9/24")
			in.Collector = ip("203.0.113.200")
		}, others, sourceDecision{Pin: ip("198.51.100.9"), Exporter: ip("198.51.100.9"), Other: "tower-a", Shared: ip("203.0.113.5")}, ""},
		{"shared address, pinned before", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("198.51.100.9"), prefixes("203.0.113.5/24", "198.51.100.9/24", "198.51.100.10/24")
			in.Collector, in.Pinned = ip("203.0.113.200"), ip("198.51.100.10")
		}, others, sourceDecision{Pin: ip("198.51.100.10"), Exporter: ip("198.51.100.10"), Other: "tower-a", Shared: ip("203.0.113.5")}, ""},
		{"shared address, exporting from it now", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("198.51.100.9"), prefixes("203.0.113.5/24", "198.51.100.9/24")
			in.Collector, in.Exporting = ip("203.0.113.200"), true
		}, others, sourceDecision{Pin: ip("198.51.100.9"), Other: "tower-a", Shared: ip("203.0.113.5")}, ""},
		{"pin in place", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("198.51.100.9"), prefixes("203.0.113.5/24", "198.51.100.9/24")
			in.Collector, in.Exporting, in.Current, in.Pinned = ip("203.0.113.200"), true, ip("198.51.100.9"), ip("198.51.100.9")
		}, others, sourceDecision{Exporter: ip("198.51.100.9")}, ""},
		{"operator's src-address is another router's exporter address", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("203.0.113.77"), prefixes("203.0.113.77/24")
			in.Current, in.Exporting = ip("198.51.100.20"), true
		}, others, sourceDecision{Pin: ip("203.0.113.77"), Other: "pinned", Shared: ip("198.51.100.20")}, ""},
		{"a pinned router's other addresses are free", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("100.64.0.1"), prefixes("100.64.0.1/24")
		}, others, sourceDecision{}, ""},
		{"only private addresses for a public collector", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("203.0.113.5"), prefixes("192.168.88.1/24", "203.0.113.5/24")
			in.Collector = ip("203.0.113.200")
		}, others, sourceDecision{}, "router tower-a already exports from 203.0.113.5, where this router's flows would come from too, and this router has no address of its own that no other router uses; routers behind one NAT address cannot be told apart: give this router its own address towards flowbox, or set src-address on its traffic-flow target"},
		{"old target syntax", func(in *sourceInput) {
			in.Remote, in.Addresses, in.Legacy = ip("198.51.100.9"), prefixes("203.0.113.5/24", "198.51.100.9/24"), true
			in.Collector, in.Version = ip("203.0.113.200"), "6.42.12 (long-term)"
		}, others, sourceDecision{}, "router tower-a already exports from 203.0.113.5, where this router's flows would come from too, and this router (RouterOS 6.42.12 (long-term)) has no src-address on its traffic-flow targets"},
		{"two others may export from it", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("10.0.0.1"), prefixes("10.0.0.1/24")
		}, []store.Router{towerA, {ID: 3, Name: "tower-b", Address: "198.51.100.30:8728", Addresses: prefixes("10.0.0.1/24")}},
			sourceDecision{}, "routers tower-a and tower-b already export from 10.0.0.1"},
		{"reached through a loopback tunnel: unknown until verify", func(in *sourceInput) {
			in.Remote, in.Addresses = ip("127.0.0.1"), prefixes("10.0.0.1/24")
		}, others, sourceDecision{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.in(&in)
			got, err := decideSource(in, tc.others)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) || !errors.Is(err, store.ErrExporterConflict) {
					t.Fatalf("err = %v\nwant %q (wrapping store.ErrExporterConflict)", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("decision = %+v\nwant       %+v", got, tc.want)
			}
		})
	}
}

// sourceFixture is a provisioner on a real store, whose attribution
// decides which router flows belong to, and a UDP sink as the collector.
type sourceFixture struct {
	t    *testing.T
	st   *storetest.Store
	prov *Provisioner
	sink *testutil.UDPSink
	logs *testutil.SyncBuffer
}

func newSourceFixture(t *testing.T) *sourceFixture {
	t.Helper()
	f := &sourceFixture{t: t, sink: testutil.NewUDPSink(t), logs: &testutil.SyncBuffer{}}
	logger := slog.New(slog.NewTextHandler(f.logs, nil))
	st, err := storetest.Open(context.Background(), t.TempDir(), store.DefaultConfig(), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := testConfig()
	cfg.CollectorPort = int(f.sink.Addr().Port())
	p, err := New(cfg, Deps{Store: st, Logger: logger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	f.st, f.prov = st, p
	return f
}

func (f *sourceFixture) add(name string, s *routerostest.Server, dryRun bool) (*store.Router, *Plan, error) {
	return f.prov.Add(context.Background(), AddRequest{Name: name, Address: s.Addr(), Username: "admin", Password: adminPassword, DryRun: dryRun})
}

// export sends one datagram the way the fake router would: to its enabled
// target for flowbox, from the target's src-address, or, when that is
// 0.0.0.0, from 127.0.0.1, the address of its interface towards the
// collector (127.0.0.1/8 on ether1). It returns the source address.
func (f *sourceFixture) export(s *routerostest.Server) netip.Addr {
	f.t.Helper()
	st := s.TrafficFlow()
	for _, tg := range st.Targets {
		if !st.Enabled || tg.Disabled || tg.Port != f.sink.Addr().Port() {
			continue
		}
		src := ip("127.0.0.1")
		if tg.SrcAddress.IsValid() && !tg.SrcAddress.IsUnspecified() {
			src = tg.SrcAddress
		}
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(f.sink.Addr()))
		if err != nil {
			f.t.Fatalf("cannot export from %s: %v", src, err)
		}
		defer c.Close()
		n := f.sink.Len()
		if _, err := c.Write([]byte("flows of " + s.Personality().Identity)); err != nil {
			f.t.Fatal(err)
		}
		d := f.sink.Wait(f.t, n+1)[n]
		return d.From.Addr()
	}
	f.t.Fatalf("%s exports nothing to flowbox: %+v", s.Personality().Identity, st)
	return netip.Addr{}
}

// attributedTo returns the name of the router flows from addr are
// attributed to, "(none)" for an address several routers may export from,
// "(unknown)" for an address no router claims.
func (f *sourceFixture) attributedTo(addr netip.Addr) string {
	id, ok := f.st.RouterFor(addr)
	switch {
	case !ok:
		return "(unknown)"
	case id == 0:
		return "(none)"
	}
	r, err := f.st.GetRouterByID(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Name
}

// sharedAddresses is the fake routers' /ip/address list: 127.0.0.1/8 on
// ether1 (towards the collector on 127.0.0.1) and 10.0.0.1/24 on the LAN,
// the same on every router, as on routers cloned from one configuration.
func sharedAddresses(extra ...routerostest.Address) []routerostest.Address {
	return append([]routerostest.Address{
		{Address: netip.MustParsePrefix("127.0.0.1/8"), Interface: "ether1"},
		{Address: netip.MustParsePrefix("10.0.0.1/24"), Interface: "bridge-lan"},
	}, extra...)
}

// TestTwoRoutersBehindOneAddress: routers whose flows would come from one
// address are never merged. The second router gets its own src-address
// (and its flows, sent from it, are its own); a router with no address of
// its own to send from is refused, naming the router it would be merged
// with; a router whose pin is removed on the router is reported as
// drifted and its address as ambiguous until the pin is applied again.
func TestTwoRoutersBehindOneAddress(t *testing.T) {
	ctx := context.Background()
	f := newSourceFixture(t)
	pa := withUsers(routerostest.V7("tower-a"))
	pa.Addresses = sharedAddresses()
	a := testutil.StartRouter(t, pa)
	pb := withUsers(routerostest.V7("tower-b"))
	pb.Addresses = sharedAddresses(routerostest.Address{Address: netip.MustParsePrefix("127.0.0.9/32"), Interface: "loopback"})
	b := testutil.StartRouter(t, pb)
	pc := withUsers(routerostest.V7("tower-c"))
	pc.Addresses = sharedAddresses()
	c := testutil.StartRouter(t, pc)
	port := strconv.Itoa(int(f.sink.Addr().Port()))

	// tower-a first: nothing to tell apart yet.
	if _, plan, err := f.add("tower-a", a, false); err != nil {
		t.Fatal(err)
	} else if strings.Contains(strings.Join(plan.Lines(), "\n"), "src-address") {
		t.Errorf("tower-a's plan sets src-address:\n%s", strings.Join(plan.Lines(), "\n"))
	}
	if _, err := f.prov.Apply(ctx, "tower-a"); err != nil {
		t.Fatal(err)
	}
	if got := f.attributedTo(f.export(a)); got != "tower-a" {
		t.Fatalf("tower-a's flows attributed to %s", got)
	}

	// tower-b would export from 127.0.0.1 too: its plan pins its own
	// 127.0.0.9, and nothing is stored or changed by the dry run.
	before := b.TrafficFlow()
	_, plan, err := f.add("tower-b", b, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"target: (none) -> dst-address=127.0.0.1 port=" + port + " src-address=127.0.0.9 version=9 v9-template-refresh=20 v9-template-timeout=1m",
		"traffic-flow/active-flow-timeout: 30m -> 1m",
		"traffic-flow/enabled: false -> true",
	}
	if diff := cmp.Diff(plan.Lines(), want); diff != "" {
		t.Errorf("tower-b's plan (-got +want):\n%s", diff)
	}
	if got, want := plan.SourceReason(), "flows will come from 127.0.0.9 (src-address): router tower-a may export from 127.0.0.1, where they would come from otherwise"; got != want {
		t.Errorf("plan.SourceReason() = %q\nwant %q", got, want)
	}
	if rs, _ := f.st.ListRouters(ctx); len(rs) != 1 {
		t.Errorf("the dry run stored tower-b")
	}
	if _, _, err := f.add("tower-b", b, false); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.st.GetRouter(ctx, "tower-b"); r.ExporterAddr != ip("127.0.0.9") {
		t.Errorf("tower-b's exporter address = %v, want 127.0.0.9", r.ExporterAddr)
	}
	// Stored before it is applied, tower-b already leaves 127.0.0.1 to
	// tower-a: it will never export from it.
	if got := f.attributedTo(ip("127.0.0.1")); got != "tower-a" {
		t.Errorf("127.0.0.1 attributed to %s once tower-b is stored", got)
	}
	if _, err := f.prov.Apply(ctx, "tower-b"); err != nil {
		t.Fatal(err)
	}
	if tg := b.TrafficFlow().Targets; len(tg) != 1 || tg[0].SrcAddress != ip("127.0.0.9") {
		t.Fatalf("tower-b's targets: %+v", tg)
	}
	for _, tc := range []struct {
		s    *routerostest.Server
		from string
		name string
	}{{a, "127.0.0.1", "tower-a"}, {b, "127.0.0.9", "tower-b"}} {
		src := f.export(tc.s)
		if src != ip(tc.from) || f.attributedTo(src) != tc.name {
			t.Errorf("%s exports from %s, attributed to %s; want %s, %s", tc.name, src, f.attributedTo(src), tc.from, tc.name)
		}
	}
	// The LAN address both routers have is an address neither exports
	// from as long as tower-b is pinned: tower-a's, no conflict.
	if conflicts, err := f.st.AttributionConflicts(ctx); err != nil || len(conflicts) != 0 {
		t.Errorf("conflicts = %v, %v", conflicts, err)
	}
	res, err := f.prov.Apply(ctx, "tower-b")
	if err != nil || len(res.Changes) != 0 {
		t.Errorf("second apply of tower-b = %+v, %v, want nothing to change", res, err)
	}

	// tower-c has no address of its own: refused, naming tower-a, and
	// neither stored nor changed.
	beforeC := c.TrafficFlow()
	_, _, err = f.add("tower-c", c, false)
	wantErr := "cannot add router tower-c: router tower-a already exports from 127.0.0.1, where this router's flows would come from too, and this router has no address of its own that no other router uses; routers behind one NAT address cannot be told apart: give this router its own address towards flowbox, or set src-address on its traffic-flow target"
	if err == nil || err.Error() != wantErr || !errors.Is(err, store.ErrExporterConflict) {
		t.Errorf("adding tower-c: %v\nwant %s", err, wantErr)
	}
	if _, err := f.st.GetRouter(ctx, "tower-c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused tower-c was stored: %v", err)
	}
	if diff := cmp.Diff(c.TrafficFlow(), beforeC, addrCmp); diff != "" {
		t.Errorf("the refused tower-c was changed (-got +want):\n%s", diff)
	}

	// Someone resets tower-b's src-address: tower-b exports from 127.0.0.1
	// again. The drift check says so, and 127.0.0.1 is ambiguous (kept,
	// attributed to neither) until the pin is back: never merged.
	conn, err := routeros.Dial(ctx, routeros.Options{Address: b.Addr(), Username: "admin", Password: adminPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Run(ctx, "/ip/traffic-flow/target/set", "=.id="+b.TrafficFlow().Targets[0].ID, "=src-address=0.0.0.0"); err != nil {
		t.Fatal(err)
	}
	if n := f.prov.CheckDrift(ctx); n != 1 {
		t.Fatalf("drifted = %d, want 1", n)
	}
	rb, _ := f.st.GetRouter(ctx, "tower-b")
	if rb.State != store.StateDrift || rb.StateDetail != "drift: target/src-address: 0.0.0.0 -> 127.0.0.9" || rb.ExporterAddr.IsValid() {
		t.Errorf("tower-b after its src-address was reset: %s %q, exporter %v", rb.State, rb.StateDetail, rb.ExporterAddr)
	}
	if src := f.export(b); src != ip("127.0.0.1") || f.attributedTo(src) != "(none)" {
		t.Errorf("tower-b exports from %s, attributed to %s; want 127.0.0.1, (none)", src, f.attributedTo(src))
	}
	if conflicts, _ := f.st.AttributionConflicts(ctx); len(conflicts) != 2 || conflicts[0].String() != "10.0.0.1 (tower-a, tower-b)" ||
		conflicts[1].String() != "127.0.0.1 (tower-a, tower-b)" {
		t.Errorf("conflicts = %v", conflicts)
	}
	if !strings.Contains(f.logs.String(), "routers may export from the same address") {
		t.Errorf("the conflict was not logged:\n%s", f.logs.String())
	}
	if _, err := f.prov.Apply(ctx, "tower-b"); err != nil {
		t.Fatal(err)
	}
	if src := f.export(b); src != ip("127.0.0.9") || f.attributedTo(src) != "tower-b" || f.attributedTo(ip("127.0.0.1")) != "tower-a" {
		t.Errorf("after re-applying, tower-b exports from %s (%s), 127.0.0.1 is %s's", src, f.attributedTo(src), f.attributedTo(ip("127.0.0.1")))
	}

	// Undo restores tower-b exactly; it exports nothing to flowbox any
	// more and keeps its exporter address for a later apply.
	if _, err := f.prov.Undo(ctx, "tower-b"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.TrafficFlow(), before, addrCmp); diff != "" {
		t.Errorf("tower-b after undo (-got +want):\n%s", diff)
	}
	if got := f.attributedTo(ip("127.0.0.1")); got != "tower-a" {
		t.Errorf("after tower-b's undo, 127.0.0.1 attributed to %s", got)
	}
}

// TestLegacyRouterBehindOneAddress: a RouterOS 6 router with the old
// target syntax has no src-address: when its flows would come from
// another router's address, it is refused, at add when its target list
// shows the syntax, at apply when the list was empty.
func TestLegacyRouterBehindOneAddress(t *testing.T) {
	ctx := context.Background()
	f := newSourceFixture(t)
	pa := withUsers(routerostest.V7("tower-a"))
	pa.Addresses = sharedAddresses()
	if _, _, err := f.add("tower-a", testutil.StartRouter(t, pa), false); err != nil {
		t.Fatal(err)
	}
	own := routerostest.Address{Address: netip.MustParsePrefix("127.0.0.9/32"), Interface: "loopback"}

	// A foreign target shows the syntax: refused at add.
	p6 := withUsers(routerostest.V6("old-1"))
	p6.Addresses = sharedAddresses(own)
	tf := routerostest.DefaultTrafficFlow()
	tf.Targets = []routerostest.Target{{DstAddress: ip("192.0.2.50"), Port: 2055, Version: "5"}}
	p6.TrafficFlow = &tf
	_, _, err := f.add("old-1", testutil.StartRouter(t, p6), false)
	if err == nil || !errors.Is(err, store.ErrExporterConflict) ||
		!strings.Contains(err.Error(), "router tower-a already exports from 127.0.0.1, where this router's flows would come from too, and this router (RouterOS 6.42.12 (long-term)) has no src-address on its traffic-flow targets") {
		t.Errorf("adding old-1: %v", err)
	}

	// An empty target list does not: refused when the add of the target
	// shows it, with the router left as it was.
	p6 = withUsers(routerostest.V6("old-2"))
	p6.Addresses = sharedAddresses(own)
	s := testutil.StartRouter(t, p6)
	before := s.TrafficFlow()
	if _, _, err := f.add("old-2", s, false); err != nil {
		t.Fatal(err)
	}
	_, err = f.prov.Apply(ctx, "old-2")
	if err == nil || !errors.Is(err, store.ErrExporterConflict) || !strings.Contains(err.Error(), "has no src-address on its traffic-flow targets") {
		t.Errorf("applying old-2: %v", err)
	}
	if diff := cmp.Diff(s.TrafficFlow(), before, addrCmp); diff != "" {
		t.Errorf("old-2 was changed (-got +want):\n%s", diff)
	}
	r, _ := f.st.GetRouter(ctx, "old-2")
	if r.State != store.StateError || !strings.Contains(r.StateDetail, "router tower-a already exports from 127.0.0.1") {
		t.Errorf("old-2: %s %q", r.State, r.StateDetail)
	}
	// old-2 exports nothing to flowbox: tower-a's flows stay tower-a's.
	if got := f.attributedTo(ip("127.0.0.1")); got != "tower-a" {
		t.Errorf("127.0.0.1 attributed to %s", got)
	}
}

// TestVerifySaysWhoseFlowsTheyAre: flows from the router's address that
// are another router's, or nobody's because two routers may export from
// it, get one plain message (not "no template yet").
func TestVerifySaysWhoseFlowsTheyAre(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(inv *memInventory, coll *fakeCollector, now time.Time)
		expect string
	}{
		{"ambiguous", func(inv *memInventory, coll *fakeCollector, now time.Time) {
			inv.routers["other"] = &store.Router{ID: 7, Name: "other", Address: "192.0.2.7:8728", Addresses: prefixes("10.9.0.1/24")}
			coll.stats = []store.ExporterStats{{Exporter: ip("10.9.0.1"), Packets: 10, LastSeen: now, Trusted: true}}
		}, "flows arrive from 10.9.0.1, but routers other, r may all export from that address, so flowbox cannot tell them apart and attributes its flows to none of them"},
		{"another router's", func(inv *memInventory, coll *fakeCollector, now time.Time) {
			inv.routers["r"].ExporterAddr = ip("10.9.1.1")
			inv.routers["other"] = &store.Router{ID: 7, Name: "other", Address: "192.0.2.7:8728", Addresses: prefixes("10.9.0.1/24")}
			coll.stats = []store.ExporterStats{{Exporter: ip("10.9.0.1"), RouterID: 7, Packets: 10, Templates: 2, LastTemplate: now, LastSeen: now, Trusted: true}}
		}, "flows arrive from 10.9.0.1, which is router other's: r must export from 10.9.1.1 (the src-address of its traffic-flow target) to be told apart from it; provision r again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				coll := &fakeCollector{}
				p, inv, _ := verifyFixture(t, coll)
				inv.mu.Lock()
				tc.setup(inv, coll, time.Now())
				inv.mu.Unlock()
				res, err := p.Verify(context.Background(), "r", 0)
				if err != nil {
					t.Fatal(err)
				}
				if res.OK || !strings.HasPrefix(res.Diagnosis, tc.expect) {
					t.Fatalf("diagnosis = %q\nwant %q", res.Diagnosis, tc.expect)
				}
			})
		})
	}
}

// TestConcurrentAddsNeverMerge: two routers that cannot be told apart,
// added at the same time, are never both stored: the check is made again
// under a lock when the router is stored.
func TestConcurrentAddsNeverMerge(t *testing.T) {
	for i := range 5 {
		f := newSourceFixture(t)
		servers := make([]*routerostest.Server, 2)
		for j := range servers {
			p := withUsers(routerostest.V7(fmt.Sprintf("tower-%d-%d", i, j)))
			p.Addresses = sharedAddresses()
			servers[j] = testutil.StartRouter(t, p)
		}
		errs := make([]error, len(servers))
		var wg sync.WaitGroup
		for j, s := range servers {
			wg.Go(func() { _, _, errs[j] = f.add(s.Personality().Identity, s, false) })
		}
		wg.Wait()
		rs, err := f.st.ListRouters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, err := range errs {
			if errors.Is(err, store.ErrExporterConflict) {
				refused++
			} else if err != nil {
				t.Errorf("round %d: %v", i, err)
			}
		}
		if len(rs) != 1 || refused != 1 {
			t.Fatalf("round %d: %d routers stored, %d refused (%v), want 1 and 1", i, len(rs), refused, errs)
		}
	}
}
