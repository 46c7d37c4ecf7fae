package netflowtest

import (
	"math"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

func newModel(t testing.TB, cfg ModelConfig) *Model {
	t.Helper()
	m, err := NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestModelDeterministic(t *testing.T) {
	a := newModel(t, ModelConfig{Seed: 42, Subscribers: 500})
	b := newModel(t, ModelConfig{Seed: 42, Subscribers: 500})
	c := newModel(t, ModelConfig{Seed: 43, Subscribers: 500})
	if !reflect.DeepEqual(a.Subscribers(), b.Subscribers()) || !reflect.DeepEqual(a.Interfaces(), b.Interfaces()) {
		t.Fatal("same seed gave different router state")
	}
	if reflect.DeepEqual(a.Subscribers(), c.Subscribers()) {
		t.Fatal("different seeds gave the same subscribers")
	}
	// The flow stream does not depend on how calls split it.
	fa := a.AppendFlows(nil, 1000, t0)
	var fb []store.Flow
	for _, n := range []int{1, 7, 300, 2, 690} {
		fb = b.AppendFlows(fb, n, t0)
	}
	if !reflect.DeepEqual(fa, fb) {
		t.Fatal("same seed and times gave different flows")
	}
	if fc := c.AppendFlows(nil, 1000, t0); reflect.DeepEqual(fa, fc) {
		t.Fatal("different seeds gave the same flows")
	}
}

func TestModelState(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 1, Subscribers: 1000, Index: 3})
	subs := m.Subscribers()
	if len(subs) != 1000 {
		t.Fatalf("%d subscribers, want 1000", len(subs))
	}
	cgnat := netip.MustParsePrefix("100.67.0.0/16")
	ifByIndex := map[uint32]Interface{}
	for _, i := range m.Interfaces() {
		if _, dup := ifByIndex[i.Index]; dup {
			t.Fatalf("duplicate ifIndex %d", i.Index)
		}
		ifByIndex[i.Index] = i
	}
	if ifByIndex[1].Name != "ether1" {
		t.Fatalf("ifIndex 1 is %q, want the WAN ether1", ifByIndex[1].Name)
	}
	seenIP, seenMAC, seenLogin := map[netip.Addr]bool{}, map[uint64]bool{}, map[string]bool{}
	kinds := map[SubscriberKind]int{}
	for _, s := range subs {
		kinds[s.Kind]++
		if !cgnat.Contains(s.Addr) || seenIP[s.Addr] || seenMAC[s.MAC] || seenLogin[s.Login] {
			t.Fatalf("subscriber %+v: address outside %s or duplicated address, MAC or login", s, cgnat)
		}
		seenIP[s.Addr], seenMAC[s.MAC], seenLogin[s.Login] = true, true, true
		if len(strings.Fields(s.Name)) != 2 || s.HostName == "" || s.Plan == "" {
			t.Fatalf("subscriber %+v lacks a name, host name or plan", s)
		}
		iface, ok := ifByIndex[s.IfIndex]
		if !ok || iface.Name != s.Interface {
			t.Fatalf("subscriber %s: interface %q/%d not among the router's", s.Name, s.Interface, s.IfIndex)
		}
		if s.Kind == KindPPPoE && (s.Interface != "<pppoe-"+s.Login+">" || iface.Type != "pppoe-in" || !iface.Dynamic) {
			t.Fatalf("PPPoE subscriber %+v on %+v", s, iface)
		}
		if s.Kind == KindDHCP {
			covered := false
			for _, a := range m.Addresses() {
				if a.Interface == s.Interface && a.Prefix.Masked().Contains(s.Addr) {
					covered = true
				}
			}
			if !covered {
				t.Fatalf("DHCP subscriber %s at %s is outside its sector's network", s.Name, s.Addr)
			}
		}
	}
	if kinds[KindPPPoE] != 400 || kinds[KindDHCP] != 600 {
		t.Fatalf("kinds %v, want 400 PPPoE and 600 DHCP", kinds)
	}
	if m.PublicAddr() != netip.MustParseAddr("203.0.113.5") {
		t.Fatalf("public address %s", m.PublicAddr())
	}
}

// classify sorts flows of a plain model run into what a collector sees.
func TestModelFlowsAreConsistent(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 9, Subscribers: 400})
	flows := m.AppendFlows(nil, 20000, t0)
	subByAddr := map[netip.Addr]Subscriber{}
	for _, s := range m.Subscribers() {
		subByAddr[s.Addr] = s
		if s.Addr6.IsValid() {
			subByAddr[s.Addr6] = s
		}
	}
	var remotes []netip.Prefix
	for _, n := range Networks() {
		remotes = append(remotes, n.Prefixes...)
	}
	inNetworks := func(a netip.Addr) bool {
		for _, p := range remotes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	var down, up uint64
	local, v6 := 0, 0
	for _, f := range flows {
		if f.Start > f.End || f.End > t0.UnixMilli() || f.Bytes == 0 || f.Packets == 0 {
			t.Fatalf("bad counters or times: %+v", f)
		}
		if f.SrcAddr.Is6() {
			v6++
		}
		switch {
		case f.InIf == 0 || f.OutIf == 0:
			local++
		case f.InIf == 1: // download: the customer is in the post-NAT destination
			inside := f.PostNATDstAddr // IPv6 has no NAT and no post-NAT fields
			if !inside.IsValid() {
				inside = f.DstAddr
			}
			s, ok := subByAddr[inside]
			if !ok || s.IfIndex != f.OutIf || !inNetworks(f.SrcAddr) {
				t.Fatalf("download %+v: no subscriber behind %s on ifIndex %d, or remote outside the networks", f, inside, f.OutIf)
			}
			if f.SrcAddr.Is4() && f.DstAddr != m.PublicAddr() {
				t.Fatalf("IPv4 download to %s, want the public address %s before NAT", f.DstAddr, m.PublicAddr())
			}
			down += f.Bytes
		default: // upload
			s, ok := subByAddr[f.SrcAddr]
			if !ok || s.IfIndex != f.InIf || f.OutIf != 1 || s.MAC != f.SrcMAC || !inNetworks(f.DstAddr) {
				t.Fatalf("upload %+v does not match a subscriber or a known network", f)
			}
			if f.SrcAddr.Is4() && f.PostNATSrcAddr != m.PublicAddr() {
				t.Fatalf("IPv4 upload NATed to %s, want %s", f.PostNATSrcAddr, m.PublicAddr())
			}
			up += f.Bytes
		}
	}
	if down < 5*up {
		t.Fatalf("downloads %d bytes, uploads %d: downloads must be much bigger", down, up)
	}
	if local == 0 || local > len(flows)/10 {
		t.Fatalf("%d router-local flows out of %d", local, len(flows))
	}
	if v6 == 0 || v6 > len(flows)/5 {
		t.Fatalf("%d IPv6 flows out of %d", v6, len(flows))
	}
}

func TestModelHeavyHitters(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 3, Subscribers: 1000})
	count := map[netip.Addr]int{}
	for _, f := range m.AppendFlows(nil, 50000, t0) {
		if f.InIf != 0 && f.InIf != 1 {
			count[f.SrcAddr]++
		}
	}
	var n []int
	total := 0
	for _, c := range count {
		n = append(n, c)
		total += c
	}
	sort.Sort(sort.Reverse(sort.IntSlice(n)))
	top := 0
	for _, c := range n[:100] {
		top += c
	}
	if float64(top) < 0.5*float64(total) {
		t.Fatalf("top 10%% of subscribers make %d of %d upload flows; a Zipf law gives well over half", top, total)
	}
}

func TestModelDailyCurve(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 1})
	day := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	peak, low := m.Activity(day.Add(21*time.Hour)), m.Activity(day.Add(4*time.Hour))
	if peak != 1 || low > 0.15 {
		t.Fatalf("activity at 21:00 %g, at 04:00 %g", peak, low)
	}
	for h := range 24 {
		if a := m.Activity(day.Add(time.Duration(h) * time.Hour)); a > peak {
			t.Fatalf("activity at %d:00 is %g, above the 21:00 peak", h, a)
		}
	}
	ny, _ := time.LoadLocation("America/New_York")
	if ny != nil {
		mny := newModel(t, ModelConfig{Seed: 1, Location: ny})
		if a := mny.Activity(time.Date(2026, 3, 14, 21, 0, 0, 0, ny)); a != 1 {
			t.Fatalf("activity at 21:00 New York time is %g", a)
		}
	}
}

// TestModelClock: with a Clock, the daily curve (activity and application
// mix) follows the simulated time of day, in Location, whatever the export
// instants; the flows keep the export instants' timestamps.
func TestModelClock(t *testing.T) {
	loc := time.FixedZone("UTC-3", -3*3600)
	sim := time.Date(2026, 3, 14, 3, 0, 0, 0, loc)
	clock := func() time.Time { return sim }
	exported := time.Date(2026, 3, 14, 23, 0, 0, 0, time.UTC) // 20:00 in loc, the real time of the export
	m := newModel(t, ModelConfig{Seed: 5, Location: loc, Clock: clock})
	if got, want := m.ActivityAt(exported), m.Activity(sim); got != want || want > 0.15 {
		t.Fatalf("activity with the clock at 03:00: %g, want the curve at 03:00 (%g)", got, want)
	}
	if got := m.CurveTime(exported); !got.Equal(sim) {
		t.Fatalf("curve time %v, want the clock's %v", got, sim)
	}
	plain := newModel(t, ModelConfig{Seed: 5, Location: loc})
	if got, want := plain.ActivityAt(exported), plain.Activity(exported); got != want || want < 0.8 {
		t.Fatalf("activity without a clock: %g, want the curve at the export instant, 20:00 (%g)", got, want)
	}

	// The same seed, clocked at 03:00 and exported at 20:00, gives the
	// flows a model without a clock generates when exported at 03:00,
	// shifted to the real export instant.
	sim = time.Date(2026, 3, 14, 3, 0, 0, 0, loc)
	night := newModel(t, ModelConfig{Seed: 5, Location: loc, Clock: clock}).AppendFlows(nil, 3000, exported)
	ref := newModel(t, ModelConfig{Seed: 5, Location: loc}).AppendFlows(nil, 3000, sim)
	shift := exported.Sub(sim).Milliseconds()
	for i := range ref {
		ref[i].Start += shift
		ref[i].End += shift
	}
	if !reflect.DeepEqual(night, ref) {
		t.Fatal("a clocked model's flows are not the reference flows of its time of day at the export's timestamps")
	}
	// At the evening peak the mix differs (more video and gaming).
	sim = time.Date(2026, 3, 14, 20, 0, 0, 0, loc)
	peak := newModel(t, ModelConfig{Seed: 5, Location: loc, Clock: clock}).AppendFlows(nil, 3000, exported)
	if reflect.DeepEqual(night, peak) {
		t.Fatal("the same flows at 03:00 and 20:00 on the simulated clock")
	}
	for _, f := range peak {
		if f.End > exported.UnixMilli() || f.End < exported.Add(-time.Hour).UnixMilli() {
			t.Fatalf("flow ending at %v, want real timestamps just before the export at %v", time.UnixMilli(f.End).UTC(), exported)
		}
	}

	// Across midnight the curve follows the clock smoothly.
	sim = time.Date(2026, 3, 14, 23, 59, 30, 0, loc)
	before := m.ActivityAt(exported)
	sim = sim.Add(time.Minute)
	if after := m.ActivityAt(exported); math.Abs(after-before) > 0.01 || after < 0.3 || after > 0.4 {
		t.Fatalf("activity %g at 23:59:30, %g at 00:00:30, want about 0.35 on both sides of midnight", before, after)
	}
}

func TestModelScenarios(t *testing.T) {
	for _, c := range []struct {
		scenario string
		check    func(m *Model, fs []store.Flow) string
	}{
		{ScenarioDDoS, func(m *Model, fs []store.Flow) string {
			srcs := map[netip.Addr]bool{}
			victims := map[netip.Addr]bool{}
			for _, f := range fs {
				if f.Proto == 17 && f.DstPort == 27015 && f.InIf == 1 {
					srcs[f.SrcAddr] = true
					victims[f.PostNATDstAddr] = true
				}
			}
			if len(srcs) < 1000 || len(victims) != 1 {
				return "want >1000 UDP sources towards one subscriber"
			}
			return ""
		}},
		{ScenarioPortscan, func(m *Model, fs []store.Flow) string {
			ports := map[uint16]bool{}
			for _, f := range fs {
				if f.SrcAddr == netip.MustParseAddr("167.99.41.203") && f.TCPFlags == 0x02 && f.DstAddr == m.PublicAddr() {
					ports[f.DstPort] = true
				}
			}
			if len(ports) < 1000 {
				return "want >1000 ports scanned by one remote"
			}
			return ""
		}},
		{ScenarioSpam, func(m *Model, fs []store.Flow) string {
			dsts := map[netip.Addr]bool{}
			srcs := map[netip.Addr]bool{}
			for _, f := range fs {
				if f.DstPort == 25 {
					dsts[f.DstAddr] = true
					srcs[f.SrcAddr] = true
				}
			}
			if len(dsts) < 500 || len(srcs) != 1 {
				return "want one subscriber talking to >500 mail servers"
			}
			return ""
		}},
	} {
		m := newModel(t, ModelConfig{Seed: 5, Scenario: c.scenario})
		if msg := c.check(m, m.AppendFlows(nil, 10000, t0)); msg != "" {
			t.Errorf("scenario %s: %s", c.scenario, msg)
		}
	}
}

func TestModelConfigErrors(t *testing.T) {
	_, err := NewModel(ModelConfig{Index: 64, Subscribers: 30000, Scenario: "flood", Sectors: 20})
	want := "invalid model config: index: 64 is outside 0..63\nsubscribers: 30000 is outside 1..20000\n" +
		"sectors: 20 is outside 1..16\nscenario: \"flood\" is not one of ddos, portscan, spam"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestModelTinyAndLarge(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 1, Subscribers: 1})
	if fs := m.AppendFlows(nil, 100, t0); len(fs) != 100 {
		t.Fatalf("%d flows", len(fs))
	}
	m = newModel(t, ModelConfig{Seed: 1, Subscribers: MaxSubscribers, PPPoEShare: -1})
	if len(m.Subscribers()) != MaxSubscribers || m.Config().Sectors != 10 {
		t.Fatalf("%d subscribers on %d sectors", len(m.Subscribers()), m.Config().Sectors)
	}
}

// The router's flow timeouts shape the flows: nothing lasts longer than the
// active timeout, and finished flows are exported after the inactive one.
func TestModelFlowTimeouts(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 12})
	m.SetFlowTimeouts(time.Minute, 5*time.Second)
	long := 0
	for _, f := range m.AppendFlows(nil, 5000, t0) {
		if f.End-f.Start > time.Minute.Milliseconds() {
			t.Fatalf("flow of %d ms with a 1m active timeout", f.End-f.Start)
		}
		age := t0.UnixMilli() - f.End
		if age < 0 || age > 6000 {
			t.Fatalf("flow ended %d ms before export; want within the 5s inactive timeout (+1s)", age)
		}
		if f.End-f.Start == time.Minute.Milliseconds() {
			long++
		}
	}
	if long == 0 {
		t.Fatal("no flow was cut by the active timeout")
	}
}

// TestModelIPv6Prefixes checks the IPv6 accessors: each customer with IPv6
// has its own /64 inside the router's pool, holding its address, and the
// accessors change nothing in the flows a seed gives.
func TestModelIPv6Prefixes(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 9, Index: 3, Subscribers: 400})
	pool := m.IPv6Pool()
	if pool != netip.MustParsePrefix("2001:db8:103::/48") {
		t.Fatalf("pool %s", pool)
	}
	seen := map[netip.Prefix]bool{}
	with := 0
	for _, s := range m.Subscribers() {
		p := s.Prefix6()
		if !s.Addr6.IsValid() {
			if p.IsValid() {
				t.Fatalf("%s has no IPv6 but prefix %s", s.Name, p)
			}
			continue
		}
		with++
		if p.Bits() != Prefix6Bits || !p.Contains(s.Addr6) || !pool.Contains(p.Addr()) || seen[p] {
			t.Fatalf("%s: prefix %s for %s (pool %s, duplicate %v)", s.Name, p, s.Addr6, pool, seen[p])
		}
		seen[p] = true
	}
	if with < 400/3 {
		t.Fatalf("%d customers with IPv6 of 400", with)
	}
	a := newModel(t, ModelConfig{Seed: 9, Index: 3, Subscribers: 400}).AppendFlows(nil, 2000, t0)
	b := m.AppendFlows(nil, 2000, t0)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the accessors changed the flows")
	}
}
