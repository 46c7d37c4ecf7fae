package netflowtest

import (
	"fmt"
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

// drive calls AppendFlows every step from start to end (excluded), n
// ordinary flows a call, exported at the model's time (no Clock), and
// returns what each call appended after its n ordinary flows: the
// scenario's flows, by call.
func drive(t *testing.T, m *Model, start, end time.Time, step time.Duration, n int) [][]store.Flow {
	t.Helper()
	var out [][]store.Flow
	for now := start; now.Before(end); now = now.Add(step) {
		fs := m.AppendFlows(nil, n, now)
		if len(fs) < n {
			out = append(out, nil)
			continue
		}
		out = append(out, fs[n:])
	}
	return out
}

func flatten(calls [][]store.Flow) []store.Flow {
	var out []store.Flow
	for _, c := range calls {
		out = append(out, c...)
	}
	return out
}

// TestModelScenarios: each scenario adds, on top of unchanged ordinary
// flows, what it claims at its default rate, aimed at (or coming from)
// the subscriber ScenarioTarget names.
func TestModelScenarios(t *testing.T) {
	pub := netip.MustParseAddr("203.0.113.2")
	isReflector := func(p uint16) bool {
		for _, r := range reflectorPorts {
			if r.port == p {
				return true
			}
		}
		return false
	}
	isScanPort := func(p uint16) bool {
		for _, s := range scanPorts {
			if s == p {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		scenario string
		rate     float64 // events per second
		perEvent int     // flows per event
		check    func(target netip.Addr, fs []store.Flow) string
	}{
		{ScenarioDDoS, 100, 1, func(target netip.Addr, fs []store.Flow) string {
			srcs := map[netip.Addr]bool{}
			var bytes, packets uint64
			for _, f := range fs {
				if f.Proto != 17 || !isReflector(f.SrcPort) || f.InIf != 1 || f.DstAddr != pub ||
					f.PostNATDstAddr != target || f.Bytes < 1e6-1500 || f.Bytes > 3e6 ||
					f.End-f.Start < 10000 || f.End-f.Start > 60000 {
					return fmt.Sprintf("flow %+v is not a 1-3 MB UDP reflection to %s over 10-60 s", f, target)
				}
				srcs[f.SrcAddr] = true
				bytes += f.Bytes
				packets += f.Packets
			}
			if len(srcs) < len(fs)*99/100 || bytes/packets < 468 {
				return fmt.Sprintf("%d sources for %d flows, %d bytes a packet: want as many sources, large packets", len(srcs), len(fs), bytes/packets)
			}
			return ""
		}},
		{ScenarioSynflood, 1500, 1, func(target netip.Addr, fs []store.Flow) string {
			srcs := map[netip.Addr]bool{}
			for _, f := range fs {
				if f.Proto != 6 || f.TCPFlags != 0x02 || f.Packets != 1 || f.Bytes < 40 || f.Bytes > 60 ||
					f.InIf != 1 || f.DstAddr != pub || f.PostNATDstAddr != target || f.OutIf == 1 {
					return fmt.Sprintf("flow %+v is not one SYN of 40-60 bytes to %s", f, target)
				}
				srcs[f.SrcAddr] = true
			}
			if len(srcs) < len(fs)*99/100 {
				return fmt.Sprintf("%d sources for %d SYNs: want spoofed random sources", len(srcs), len(fs))
			}
			return ""
		}},
		{ScenarioPortscan, 300, 1, func(target netip.Addr, fs []store.Flow) string {
			type hp struct {
				a netip.Addr
				p uint16
			}
			seen := map[hp]bool{}
			ports := map[uint16]bool{}
			for _, f := range fs {
				if f.SrcAddr != target || f.Proto != 6 || f.TCPFlags != 0x02 || f.Packets != 1 || f.Bytes > 60 ||
					!isScanPort(f.DstPort) || f.OutIf != 1 || f.PostNATSrcAddr != pub || f.PostNATDstAddr != f.DstAddr ||
					f.DstAddr.IsPrivate() || f.SrcMAC == 0 {
					return fmt.Sprintf("flow %+v is not one SYN from %s, NATed to %s, to a scanned port of a public host", f, target, pub)
				}
				seen[hp{f.DstAddr, f.DstPort}] = true
				ports[f.DstPort] = true
			}
			if len(seen) < len(fs)*99/100 || len(ports) < 5 {
				return fmt.Sprintf("%d distinct hosts and ports (%d ports) for %d SYNs", len(seen), len(ports), len(fs))
			}
			return ""
		}},
		{ScenarioSpam, 20, 2, func(target netip.Addr, fs []store.Flow) string {
			mx := map[netip.Addr]bool{}
			for i := 0; i+1 < len(fs); i += 2 {
				up, down := fs[i], fs[i+1]
				if up.SrcAddr != target || up.DstPort != 25 || up.Proto != 6 || up.PostNATSrcAddr != pub ||
					down.SrcAddr != up.DstAddr || down.SrcPort != 25 || down.PostNATDstAddr != target {
					return fmt.Sprintf("session %+v / %+v is not SMTP from %s", up, down, target)
				}
				mx[up.DstAddr] = true
			}
			if len(mx) < len(fs)/2*95/100 {
				return fmt.Sprintf("%d mail servers for %d sessions: want distinct ones", len(mx), len(fs)/2)
			}
			return ""
		}},
	} {
		t.Run(c.scenario, func(t *testing.T) {
			m := newModel(t, ModelConfig{Seed: 5, Scenario: c.scenario, Index: 0})
			if got := m.Config().ScenarioRate; got != c.rate || DefaultScenarioRate(c.scenario) != c.rate {
				t.Fatalf("default rate %g, want %g", got, c.rate)
			}
			target, name := m.ScenarioTarget()
			var sub Subscriber
			for _, s := range m.Subscribers() {
				if s.Addr == target {
					sub = s
				}
			}
			if sub.Kind != KindDHCP || sub.Name != name || name == "" {
				t.Fatalf("target %s %q: want a DHCP subscriber's address and lease name (%+v)", target, name, sub)
			}
			if again, _ := newModel(t, ModelConfig{Seed: 5, Scenario: c.scenario}).ScenarioTarget(); again != target {
				t.Fatalf("same seed, targets %s and %s", target, again)
			}
			// 10 s of exports every 100 ms, 20 ordinary flows each (200
			// flows/s): the first call only starts the scenario.
			calls := drive(t, m, t0, t0.Add(10*time.Second), 100*time.Millisecond, 20)
			fs := flatten(calls)
			want := int(c.rate*9.9) * c.perEvent
			if len(fs) < want-c.perEvent || len(fs) > want+c.perEvent {
				t.Fatalf("%d scenario flows in 9.9 s, want %d (%g events/s)", len(fs), want, c.rate)
			}
			for _, f := range fs {
				if f.End > t0.Add(10*time.Second).UnixMilli() || f.Start > f.End || f.Bytes == 0 || f.Packets == 0 {
					t.Fatalf("bad times or counters: %+v", f)
				}
			}
			if msg := c.check(target, fs); msg != "" {
				t.Fatal(msg)
			}
			// The ordinary flows are those of a model without a scenario.
			plain := newModel(t, ModelConfig{Seed: 5, Index: 0})
			scen := newModel(t, ModelConfig{Seed: 5, Index: 0, Scenario: c.scenario})
			for i := range 20 {
				now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
				p, s := plain.AppendFlows(nil, 20, now), scen.AppendFlows(nil, 20, now)
				if !reflect.DeepEqual(p, s[:20]) {
					t.Fatalf("call %d: the scenario changed the ordinary flows", i)
				}
			}
		})
	}
}

// TestModelScenarioWindow: a scenario starts and stops on the model's time
// (here a Clock hours away from the export instants), adds its rate each
// second in between and nothing outside, and none of its flows lies
// outside its window.
func TestModelScenarioWindow(t *testing.T) {
	sim := time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC)
	exported := sim.Add(-5 * time.Hour) // the Clock, not the export instant, reads the window
	var elapsed time.Duration
	clock := func() time.Time { return sim.Add(elapsed) }
	start, dur := sim.Add(60*time.Second), 90*time.Second
	m := newModel(t, ModelConfig{Seed: 8, Scenario: ScenarioPortscan, ScenarioRate: 50,
		ScenarioStart: start, ScenarioDuration: dur, Clock: clock})
	if s, e := m.ScenarioWindow(); !s.Equal(start) || !e.Equal(start.Add(dur)) {
		t.Fatalf("window %v..%v, want %v..%v", s, e, start, start.Add(dur))
	}
	perSecond := map[int]int{}
	for ; elapsed < 200*time.Second; elapsed += 250 * time.Millisecond {
		now := exported.Add(elapsed)
		on := elapsed >= 60*time.Second && elapsed < 150*time.Second
		if m.ScenarioActive(now) != on {
			t.Fatalf("at +%s: active %v, want %v", elapsed, !on, on)
		}
		fs := m.AppendFlows(nil, 10, now)
		for _, f := range fs[10:] {
			// Exported at now: the window in export time is shifted by
			// the same amount.
			lo, hi := exported.Add(60*time.Second).UnixMilli(), exported.Add(150*time.Second).UnixMilli()
			if f.Start < lo || f.End > hi || f.End > now.UnixMilli() {
				t.Fatalf("at +%s: scenario flow %d..%d outside the window %d..%d", elapsed, f.Start, f.End, lo, hi)
			}
		}
		perSecond[int(elapsed/time.Second)] += len(fs) - 10
	}
	for sec := range 200 {
		got := perSecond[sec]
		switch {
		case sec < 60 || sec > 150:
			if got != 0 {
				t.Fatalf("second %d: %d scenario flows outside the window", sec, got)
			}
		case sec > 60 && sec < 150:
			if got < 49 || got > 51 {
				t.Fatalf("second %d: %d scenario flows, want 50", sec, got)
			}
		}
	}
	// A pause between exports (an exporter without a target) is not
	// caught up: at most one second's worth.
	elapsed = 100 * time.Second
	m2 := newModel(t, ModelConfig{Seed: 8, Scenario: ScenarioSynflood, ScenarioRate: 50, Clock: clock})
	m2.AppendFlows(nil, 1, exported)
	elapsed += 30 * time.Second
	if n := len(m2.AppendFlows(nil, 1, exported)) - 1; n != 50 {
		t.Fatalf("%d scenario flows after a 30 s pause, want one second's 50", n)
	}
	if s, e := m2.ScenarioWindow(); !s.Equal(sim.Add(100*time.Second)) || !e.IsZero() {
		t.Fatalf("a scenario without start or duration: window %v..%v, want from the first flows to the end", s, e)
	}
}

// TestModelSetScenarioStart: a fleet moves the start when it starts; the
// scenario then starts at that instant.
func TestModelSetScenarioStart(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 2, Scenario: ScenarioSpam, ScenarioDuration: 10 * time.Second})
	start := t0.Add(time.Minute)
	m.SetScenarioStart(start)
	if s, e := m.ScenarioWindow(); !s.Equal(start) || !e.Equal(start.Add(10*time.Second)) {
		t.Fatalf("window %v..%v", s, e)
	}
	calls := drive(t, m, t0, t0.Add(2*time.Minute), time.Second, 5)
	for i, c := range calls {
		on := i > 60 && i <= 70 // the call at +61 s has the first second's sessions
		if (len(c) > 0) != on {
			t.Fatalf("call at +%ds: %d scenario flows", i, len(c))
		}
	}
	if got := len(flatten(calls)); got != 10*20*2 {
		t.Fatalf("%d flows in the 10 s window, want 20 sessions/s of 2 flows", got)
	}
}

// TestModelExportStop: while export-stop is on, the model gives nothing;
// before and after, ordinary flows.
func TestModelExportStop(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 4, Scenario: ScenarioExportStop, ScenarioStart: t0.Add(10 * time.Second),
		ScenarioDuration: 20 * time.Second})
	if a, name := m.ScenarioTarget(); a.IsValid() || name != "" {
		t.Fatalf("export-stop target %s %q, want none (the router)", a, name)
	}
	for sec := range 40 {
		now := t0.Add(time.Duration(sec) * time.Second)
		fs := m.AppendFlows(nil, 100, now)
		stopped := sec >= 10 && sec < 30
		if stopped != (len(fs) == 0) || (!stopped && len(fs) != 100) {
			t.Fatalf("at +%ds: %d flows (stopped %v)", sec, len(fs), stopped)
		}
		if m.ScenarioActive(now) != stopped {
			t.Fatalf("at +%ds: ScenarioActive %v", sec, !stopped)
		}
	}
}

// TestModelScenarioShare: with a share, one call (a load generator's
// pool) holds scenario flows in that proportion of sessions.
func TestModelScenarioShare(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 6, Scenario: ScenarioSynflood, ScenarioShare: 0.3})
	target, _ := m.ScenarioTarget()
	syn := 0
	fs := m.AppendFlows(nil, 10000, time.UnixMilli(0))
	for _, f := range fs {
		if f.TCPFlags == 0x02 && f.PostNATDstAddr == target {
			syn++
		}
	}
	// A session is two flows, a SYN one: 30 % of sessions is about 18 %
	// of flows.
	if syn < len(fs)*15/100 || syn > len(fs)*21/100 {
		t.Fatalf("%d SYNs of %d flows with a 0.3 share", syn, len(fs))
	}
	if plain := newModel(t, ModelConfig{Seed: 6, Scenario: ScenarioSynflood}).AppendFlows(nil, 10000, time.UnixMilli(0)); reflect.DeepEqual(plain, fs) {
		t.Fatal("the share changed nothing")
	}
}

func TestModelConfigErrors(t *testing.T) {
	_, err := NewModel(ModelConfig{Index: 64, Subscribers: 30000, Scenario: "flood", Sectors: 20,
		ScenarioRate: 1e6, ScenarioDuration: -time.Second})
	want := "invalid model config: index: 64 is outside 0..63\nsubscribers: 30000 is outside 1..20000\n" +
		"sectors: 20 is outside 1..16\nscenario: \"flood\" is not one of ddos, synflood, portscan, spam, export-stop, fasttrack, unexported-interface\n" +
		"scenario-rate: 1e+06 is above 100000\nscenario-duration: -1s is negative"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	for _, s := range Scenarios() {
		if !ValidScenario(s) {
			t.Errorf("scenario %q is not valid", s)
		}
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
