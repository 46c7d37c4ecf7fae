package alerts

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// fakeRouters is the inventory's router list.
type fakeRouters []store.Router

func (f fakeRouters) ListRouters(context.Context) ([]store.Router, error) { return f, nil }

// recorder is a listener that keeps the events.
type recorder struct {
	mu  sync.Mutex
	evs []store.AlertEvent
}

func (r *recorder) AlertChanged(ev store.AlertEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) events() []store.AlertEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.AlertEvent(nil), r.evs...)
}

// rig is a detector on a real store with a fake clock and fake exporter
// counters.
type rig struct {
	t     *testing.T
	d     *Detector
	st    *storetest.Store
	rec   *recorder
	now   time.Time
	mu    sync.Mutex
	stats []store.ExporterStats
}

var t0 = time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC)

func newRig(t *testing.T, cfg Config, routers ...store.Router) *rig {
	t.Helper()
	st, err := storetest.Open(context.Background(), t.TempDir(), store.DefaultConfig(), testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if len(routers) == 0 {
		routers = []store.Router{{ID: 1, Name: "wisp-1", State: store.StateConfigured}, {ID: 2, Name: "wisp-2", State: store.StateConfigured}}
	}
	r := &rig{t: t, st: st, rec: &recorder{}, now: t0}
	d, err := New(cfg, Deps{Logger: testutil.Logger(t), Store: st, Routers: fakeRouters(routers),
		Exporters: func() []store.ExporterStats {
			r.mu.Lock()
			defer r.mu.Unlock()
			return append([]store.ExporterStats(nil), r.stats...)
		},
		Listeners: []Listener{r.rec}, Now: func() time.Time { return r.now }})
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	return r
}

// step advances the clock by one interval, observing the flows gen makes
// for it, and evaluates.
func (r *rig) step(gen func(now time.Time) []store.Flow) {
	r.now = r.now.Add(r.d.cfg.Interval)
	if gen != nil {
		fl := gen(r.now)
		for len(fl) > 0 { // readers hand batches of up to 512 flows
			n := min(len(fl), 512)
			r.d.Observe(fl[:n])
			fl = fl[n:]
		}
	}
	r.d.Evaluate(context.Background(), r.now)
}

// noteEvents sets opened and resolved to the rig's time when the first
// opened and resolved events have arrived, unless set already.
func (r *rig) noteEvents(opened, resolved *time.Time) {
	for _, ev := range r.rec.events() {
		switch {
		case ev.Type == store.AlertOpened && opened.IsZero():
			*opened = r.now
		case ev.Type == store.AlertResolved && resolved.IsZero():
			*resolved = r.now
		}
	}
}

func (r *rig) alerts(f store.AlertFilter) []store.Alert {
	r.t.Helper()
	as, err := r.st.ListAlerts(context.Background(), f)
	if err != nil {
		r.t.Fatal(err)
	}
	return as
}

// labeler enriches a model's flows as flowbox's enrichment would: the
// subscribers' addresses are local, the router's own addresses are the
// router's.
type labeler struct {
	router int64
	subs   map[netip.Addr]string
	own    map[netip.Addr]bool
}

func newLabeler(router int64, m *netflowtest.Model) *labeler {
	l := &labeler{router: router, subs: map[netip.Addr]string{}, own: map[netip.Addr]bool{m.PublicAddr(): true}}
	for _, s := range m.Subscribers() {
		l.subs[s.Addr] = s.Name
		if s.Addr6.IsValid() {
			l.subs[s.Addr6] = s.Name
		}
	}
	for _, a := range m.Addresses() {
		l.own[a.Prefix.Addr()] = true
	}
	return l
}

func (l *labeler) label(fl []store.Flow) {
	for i := range fl {
		f := &fl[i]
		f.RouterID = l.router
		f.Exporter = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + l.router)}), 4000)
		dst := f.DstAddr
		if f.PostNATDstAddr.IsValid() {
			dst = f.PostNATDstAddr
		}
		srcSub, srcLocal := l.subs[f.SrcAddr]
		dstSub, dstLocal := l.subs[dst]
		switch {
		case srcLocal && (dstLocal || l.own[dst]):
			f.Direction, f.Subscriber = store.DirInternal, srcSub
		case dstLocal && l.own[f.SrcAddr]:
			f.Direction, f.Subscriber = store.DirInternal, dstSub
		case srcLocal:
			f.Direction, f.Subscriber = store.DirUpload, srcSub
		case dstLocal:
			f.Direction, f.Subscriber = store.DirDownload, dstSub
		case l.own[f.DstAddr]:
			f.Direction, f.Subscriber = store.DirRouterIn, "wisp"
		case l.own[f.SrcAddr]:
			f.Direction, f.Subscriber = store.DirRouterOut, "wisp"
		default:
			f.Direction = store.DirTransit
		}
	}
}

// ordinary returns a generator of a model's ordinary traffic at rate
// flows/s, with timestamps made absolute at now.
func ordinary(t testing.TB, seed uint64, index int, router int64, rate float64, interval time.Duration) func(time.Time) []store.Flow {
	t.Helper()
	return ordinaryN(t, seed, index, router, rate, interval, 0)
}

// ordinaryN is ordinary with subs subscribers (0: the model's default).
func ordinaryN(t testing.TB, seed uint64, index int, router int64, rate float64, interval time.Duration, subs int) func(time.Time) []store.Flow {
	t.Helper()
	m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: seed, Index: index, Subscribers: subs,
		ActiveTimeout: time.Minute, InactiveTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := newLabeler(router, m)
	var buf []store.Flow
	return func(now time.Time) []store.Flow {
		buf = m.AppendFlows(buf[:0], int(rate*interval.Seconds()), now)
		l.label(buf)
		return buf
	}
}

// TestOrdinaryTrafficRaisesNothing runs two hours of seeded ordinary
// traffic of three routers, at one and a half times the simulator's
// default rate (200 flows/s) and at the evening peak, on a fake clock: the
// defaults raise nothing.
func TestOrdinaryTrafficRaisesNothing(t *testing.T) {
	cfg := DefaultConfig()
	r := newRig(t, cfg, store.Router{ID: 1, Name: "wisp-1", State: store.StateConfigured},
		store.Router{ID: 2, Name: "wisp-2", State: store.StateConfigured}, store.Router{ID: 3, Name: "wisp-3", State: store.StateConfigured})
	gens := []func(time.Time) []store.Flow{
		ordinary(t, 11, 0, 1, 300, cfg.Interval), ordinary(t, 12, 1, 2, 300, cfg.Interval), ordinary(t, 13, 2, 3, 300, cfg.Interval),
	}
	var flows uint64
	for i := 0; i < int(2*time.Hour/cfg.Interval); i++ {
		r.step(func(now time.Time) []store.Flow {
			var all []store.Flow
			for _, g := range gens {
				all = append(all, g(now)...)
			}
			flows += uint64(len(all))
			return all
		})
		r.mu.Lock()
		r.stats = []store.ExporterStats{
			{RouterID: 1, Trusted: true, LastSeen: r.now, FlowsReceived: flows / 3},
			{RouterID: 2, Trusted: true, LastSeen: r.now, FlowsReceived: flows / 3},
			{RouterID: 3, Trusted: true, LastSeen: r.now, FlowsReceived: flows / 3},
		}
		r.mu.Unlock()
	}
	if as := r.alerts(store.AlertFilter{}); len(as) != 0 {
		for _, a := range as {
			t.Errorf("alert on ordinary traffic: %s", a.Summary)
		}
	}
	st := r.d.Status()
	if st.Evaluations != uint64(2*time.Hour/cfg.Interval) || st.Hosts == 0 || st.HostsDropped != 0 {
		t.Fatalf("status = %+v", st)
	}
	t.Logf("%d flows, %d hosts tracked, last evaluation %.1f ms", flows, st.Hosts, st.EvaluationSeconds*1000)
}

// attack generates flows of one kind for the interval ending at now.
type attack func(now time.Time, n int) []store.Flow

var (
	victim   = netip.MustParseAddr("100.64.3.17")
	culprit  = netip.MustParseAddr("100.64.9.40")
	wanAddr  = netip.MustParseAddr("203.0.113.2")
	exporter = netip.MustParseAddrPort("127.0.0.2:4000")
)

// pub returns the i-th public address of a spread-out range.
func pub(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(20 + i%150), byte(i >> 8), byte(i), byte(1 + i%250)})
}

func flowAt(now time.Time, durMs int64) store.Flow {
	end := now.UnixMilli() - 15000
	return store.Flow{Exporter: exporter, Version: 9, RouterID: 1, Start: end - durMs, End: end}
}

func ddos(now time.Time, n int) []store.Flow {
	out := make([]store.Flow, 0, n)
	ports := []uint16{123, 53, 1900, 11211}
	for i := range n {
		f := flowAt(now, 30000)
		f.SrcAddr, f.DstAddr, f.PostNATDstAddr = pub(int(now.Unix())*7+i), wanAddr, victim
		f.SrcPort, f.DstPort, f.Proto = ports[i%len(ports)], 27015, 17
		f.Bytes, f.Packets = 2e6, 1500
		f.Direction, f.Subscriber = store.DirDownload, "Maria Garcia"
		out = append(out, f)
	}
	return out
}

func synflood(now time.Time, n int) []store.Flow {
	out := make([]store.Flow, 0, n)
	for i := range n {
		f := flowAt(now, 0)
		f.SrcAddr, f.DstAddr, f.PostNATDstAddr = pub(int(now.Unix())*13+i), wanAddr, victim
		f.SrcPort, f.DstPort, f.Proto, f.TCPFlags = uint16(1024+i), 443, 6, 0x02
		f.Bytes, f.Packets = 60, 1
		f.Direction, f.Subscriber = store.DirDownload, "Maria Garcia"
		out = append(out, f)
	}
	return out
}

func portscan(now time.Time, n int) []store.Flow {
	out := make([]store.Flow, 0, n)
	for i := range n {
		f := flowAt(now, 0)
		f.SrcAddr, f.DstAddr, f.PostNATSrcAddr = culprit, pub(int(now.Unix())*3+i), wanAddr
		f.SrcPort, f.DstPort, f.Proto, f.TCPFlags = 40000, []uint16{22, 23, 445, 3389}[i%4], 6, 0x02
		f.Bytes, f.Packets = 44, 1
		f.Direction, f.Subscriber = store.DirUpload, "Jose Silva"
		out = append(out, f)
	}
	return out
}

func spam(now time.Time, n int) []store.Flow {
	out := make([]store.Flow, 0, n)
	for i := range n {
		f := flowAt(now, 3000)
		f.SrcAddr, f.DstAddr, f.PostNATSrcAddr = culprit, pub(int(now.Unix())*5+i), wanAddr
		f.SrcPort, f.DstPort, f.Proto, f.TCPFlags = uint16(40000+i), 25, 6, 0x1b
		f.Bytes, f.Packets = 12000, 20
		f.Direction, f.Subscriber = store.DirUpload, "Jose Silva"
		out = append(out, f)
	}
	return out
}

func flowflood(now time.Time, n int) []store.Flow {
	out := make([]store.Flow, 0, n)
	for i := range n {
		f := flowAt(now, 500)
		f.SrcAddr, f.DstAddr, f.PostNATSrcAddr = culprit, pub(i%50), wanAddr
		f.SrcPort, f.DstPort, f.Proto, f.TCPFlags = uint16(1024+i), 443, 6, 0x1b
		f.Bytes, f.Packets = 400, 5
		f.Direction, f.Subscriber = store.DirUpload, "Jose Silva"
		out = append(out, f)
	}
	return out
}

// TestScenarios runs each attack for three minutes on top of ordinary
// traffic: the right kind opens within 60 s of its start, naming the
// target and the subscriber, with evidence; it resolves after the quiet
// period once the attack ends; nothing else is raised.
func TestScenarios(t *testing.T) {
	cases := []struct {
		name      string
		gen       attack
		perSecond int
		kind      string
		target    netip.Addr
		sub       string
		direction string
		port      string
	}{
		{"ddos", ddos, 100, store.AlertUDPAmplification, victim, "Maria Garcia", "in", "udp/"},
		{"synflood", synflood, 1500, store.AlertSYNFlood, victim, "Maria Garcia", "in", "tcp/"},
		{"portscan", portscan, 300, store.AlertPortScan, culprit, "Jose Silva", "out", "tcp/"},
		{"spam", spam, 20, store.AlertSMTPSpam, culprit, "Jose Silva", "out", "tcp/25"},
		{"flowflood", flowflood, 3000, store.AlertFlowFlood, culprit, "Jose Silva", "out", "tcp/443"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			r := newRig(t, cfg)
			bg := ordinary(t, 21, 0, 1, 200, cfg.Interval)
			start := t0.Add(5 * time.Minute)
			end := start.Add(3 * time.Minute)
			var opened, resolved time.Time
			for r.now.Before(end.Add(cfg.ResolveAfter + time.Minute)) {
				r.step(func(now time.Time) []store.Flow {
					fl := bg(now)
					if !now.Before(start.Add(cfg.Interval)) && !now.After(end) {
						fl = append(fl, tc.gen(now, tc.perSecond*int(cfg.Interval.Seconds()))...)
					}
					return fl
				})
				r.noteEvents(&opened, &resolved)
			}
			if opened.IsZero() || opened.Sub(start) > time.Minute {
				t.Fatalf("opened at %v, want within 60 s of %v", opened, start)
			}
			t.Logf("opened %s after the start, resolved %s after the end", opened.Sub(start), resolved.Sub(end))
			if resolved.IsZero() || resolved.Sub(end) < cfg.ResolveAfter || resolved.Sub(end) > cfg.ResolveAfter+time.Minute {
				t.Fatalf("resolved at %v, want %s after %v (+1m)", resolved, cfg.ResolveAfter, end)
			}
			as := r.alerts(store.AlertFilter{})
			if len(as) != 1 {
				for _, a := range as {
					t.Logf("alert: %s", a.Summary)
				}
				t.Fatalf("%d alerts, want 1", len(as))
			}
			a := as[0]
			if a.Kind != tc.kind || a.Target != tc.target.String() || a.Subscriber != tc.sub || a.Direction != tc.direction ||
				a.Router != "wisp-1" || a.Ended == nil || a.Severity == "" || a.Summary == "" {
				t.Fatalf("alert = %+v", a)
			}
			if len(a.Evidence.TopSources) == 0 || len(a.Evidence.TopPorts) == 0 ||
				!strings.HasPrefix(a.Evidence.TopPorts[0].Key, tc.port) {
				t.Fatalf("evidence = %+v, want top port %s...", a.Evidence, tc.port)
			}
			if a.PeakFlowsPerS < float64(tc.perSecond)/3 {
				t.Fatalf("peak flows/s = %g for %d flows/s", a.PeakFlowsPerS, tc.perSecond)
			}
			evs := r.rec.events()
			if evs[0].Type != store.AlertOpened || evs[len(evs)-1].Type != store.AlertResolved || evs[0].Alert.ID != a.ID {
				t.Fatalf("events = %+v", evs)
			}
			t.Logf("%s", a.Summary)
		})
	}
}

// TestExportHealth drives the export-health detectors with the collector's
// counters and the flows' times: a router that stops exporting, one that
// loses flows in sequence gaps, one whose data waits for templates, one
// whose clock is ahead; each raises its kind, naming the router, and
// resolves once healthy again.
func TestExportHealth(t *testing.T) {
	type state struct {
		lastSeen           time.Time
		lost, recv, noTmpl uint64
		skew               time.Duration
	}
	cases := []struct {
		name string
		kind string
		// sick changes the router's counters for one interval while the
		// trouble lasts.
		sick func(s *state, now time.Time)
	}{
		{"export-stopped", store.AlertExportStopped, func(s *state, now time.Time) {}},
		{"flow-loss", store.AlertFlowLoss, func(s *state, now time.Time) { s.lastSeen = now; s.recv += 1000; s.lost += 200 }},
		{"template-missing", store.AlertTemplateMissing, func(s *state, now time.Time) { s.lastSeen = now; s.recv += 1000; s.noTmpl += 3 }},
		{"clock-skew", store.AlertClockSkew, func(s *state, now time.Time) { s.lastSeen = now; s.recv += 1000; s.skew = 10 * time.Minute }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			r := newRig(t, cfg)
			var s state
			start, end := t0.Add(10*time.Minute), t0.Add(20*time.Minute)
			var opened, resolved time.Time
			for r.now.Before(end.Add(cfg.ResolveAfter + time.Minute)) {
				sick := !r.now.Before(start) && r.now.Before(end)
				s.skew = 0
				if sick {
					tc.sick(&s, r.now)
				} else {
					s.lastSeen, s.recv = r.now, s.recv+1000
				}
				r.mu.Lock()
				r.stats = []store.ExporterStats{{RouterID: 1, Trusted: true, LastSeen: s.lastSeen, LostFlows: s.lost,
					FlowsReceived: s.recv, SetsNoTemplate: s.noTmpl}}
				r.mu.Unlock()
				skew := s.skew
				r.step(func(now time.Time) []store.Flow {
					if sick && tc.kind == store.AlertExportStopped {
						return nil
					}
					fl := ddos(now, 20) // any flows of router 1
					for i := range fl {
						fl[i].Start, fl[i].End = fl[i].Start+skew.Milliseconds(), fl[i].End+skew.Milliseconds()
						fl[i].Bytes = 1000
					}
					return fl
				})
				r.noteEvents(&opened, &resolved)
			}
			as := r.alerts(store.AlertFilter{})
			if len(as) != 1 || as[0].Kind != tc.kind || as[0].Router != "wisp-1" || as[0].Target != "wisp-1" || as[0].Ended == nil {
				for _, a := range as {
					t.Logf("alert: %s: %s", a.Kind, a.Summary)
				}
				t.Fatalf("want one resolved %s alert on wisp-1", tc.kind)
			}
			if opened.Sub(start) > 5*time.Minute || resolved.Before(end) {
				t.Fatalf("opened %v and resolved %v for trouble from %v to %v", opened, resolved, start, end)
			}
			t.Logf("opened %s after the start, resolved %s after the end: %s", opened.Sub(start), resolved.Sub(end), as[0].Summary)
		})
	}
}

// TestTrafficCollapse: a router whose uplink goes down (its traffic falls
// to a few percent while its export goes on) raises traffic-collapse on
// the router and on the uplink after the configured time, once its
// baseline has learned; it resolves when the traffic comes back.
func TestTrafficCollapse(t *testing.T) {
	cfg := DefaultConfig()
	r := newRig(t, cfg)
	bg := ordinary(t, 31, 0, 1, 200, cfg.Interval)
	down, up := t0.Add(45*time.Minute), t0.Add(55*time.Minute)
	for r.now.Before(up.Add(cfg.ResolveAfter + time.Minute)) {
		r.mu.Lock()
		r.stats = []store.ExporterStats{{RouterID: 1, Trusted: true, LastSeen: r.now}}
		r.mu.Unlock()
		r.step(func(now time.Time) []store.Flow {
			fl := bg(now)
			if !now.Before(down) && now.Before(up) {
				// Only the router's own chatter and internal traffic.
				kept := fl[:0]
				for _, f := range fl {
					if f.Direction == store.DirInternal || f.Direction == store.DirRouterOut || f.Direction == store.DirRouterIn {
						kept = append(kept, f)
					}
				}
				fl = kept
			}
			return fl
		})
	}
	as := r.alerts(store.AlertFilter{Kind: store.AlertTrafficCollapse})
	targets := map[string]bool{}
	for _, a := range as {
		targets[a.Target] = true
		if a.Ended == nil || a.Started.Before(down) || a.Started.Sub(down) > cfg.Collapse.After+2*time.Minute {
			t.Errorf("alert %s: started %v, ended %v; want after %v and resolved", a.Summary, a.Started, a.Ended, down)
		}
	}
	if !targets["wisp-1"] || len(as) < 2 {
		t.Fatalf("collapse alerts on %v, want the router and its uplink", targets)
	}
	if others := r.alerts(store.AlertFilter{}); len(others) != len(as) {
		t.Fatalf("%d alerts, %d of them collapses", len(others), len(as))
	}
}

// TestBoundedState: the hosts beyond max-hosts are counted, not tracked.
func TestBoundedState(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxHosts = 100
	r := newRig(t, cfg)
	r.step(func(now time.Time) []store.Flow { return synflood(now, 0) })
	r.step(func(now time.Time) []store.Flow {
		fl := portscan(now, 300)
		for i := range fl {
			fl[i].SrcAddr = pub(i) // 300 distinct "inside" hosts
		}
		return fl
	})
	st := r.d.Status()
	if st.Hosts > 100 || st.HostsDropped == 0 {
		t.Fatalf("status = %+v, want at most 100 hosts and drops counted", st)
	}
}

// TestRestartEndsActiveAlerts: alerts a previous run left active are ended
// at start (the detector's state does not survive).
func TestRestartEndsActiveAlerts(t *testing.T) {
	cfg := DefaultConfig()
	r := newRig(t, cfg)
	for i := 0; i < 6; i++ {
		r.step(func(now time.Time) []store.Flow { return synflood(now, 15000) })
	}
	if as := r.alerts(store.AlertFilter{Active: true}); len(as) != 1 {
		t.Fatalf("%d active alerts, want 1", len(as))
	}
	d2, err := New(cfg, Deps{Logger: testutil.Logger(t), Store: r.st, Routers: fakeRouters{}, Now: func() time.Time { return r.now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if as := r.alerts(store.AlertFilter{Active: true}); len(as) != 0 {
		t.Fatalf("%d active alerts after a restart, want 0", len(as))
	}
}
