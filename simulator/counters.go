package simulator

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// Interface counters (coverage, issue 17). Every flow the model generates
// is traffic through the router: its input interface counts it as rx, its
// output interface as tx, whether or not the router exports it. A
// simulated router exports a flow only when traffic-flow sees it: when its
// input interface is in /ip/traffic-flow interfaces ("all" by default),
// and, in the fasttrack scenario, only the share FastTrack leaves to the
// slow path.

// FastTrackShare is the share of the traffic the fasttrack scenario's
// router fast-tracks: its interfaces count it, its exports miss it.
const FastTrackShare = 0.3

// FastTrackVersion is the RouterOS version of the fasttrack scenario's
// router: before 6.33, traffic-flow did not see fast-tracked packets.
const FastTrackVersion = "6.32.4 (long-term)"

// accounting is a router's counter bookkeeping, used from its exporter's
// goroutine (Account) and from apply (the exported interfaces).
type accounting struct {
	byName   map[string]uint32
	exported atomic.Pointer[map[uint32]bool] // nil: all

	mu  sync.Mutex
	sum map[uint32]*routerostest.IfCounters
}

// fleetPersonality adds what the scenario needs to router i's personality:
// every router has the usual fasttrack rule (harmless from 6.33); the
// fasttrack router runs 6.32.4; the unexported-interface router leaves its
// last sector out of /ip traffic-flow interfaces.
func (f *Fleet) fleetPersonality(i int, p *routerostest.Personality, m *netflowtest.Model) {
	p.FilterRules = []routerostest.FilterRule{
		{Chain: "forward", Action: "fasttrack-connection", ConnectionState: "established,related", Comment: "defconf: fasttrack"},
		{Chain: "forward", Action: "accept", ConnectionState: "established,related,untracked", Comment: "defconf: accept established,related,untracked"},
	}
	if i != f.cfg.ScenarioRouter {
		return
	}
	switch f.cfg.Scenario {
	case netflowtest.ScenarioFastTrack:
		p.Version = FastTrackVersion
	case netflowtest.ScenarioUnexportedInterface:
		left := unexportedInterface(m)
		var names []string
		for _, ifc := range m.Interfaces() {
			if ifc.Type != "pppoe-in" && ifc.Name != left {
				names = append(names, ifc.Name)
			}
		}
		tf := routerostest.DefaultTrafficFlow()
		tf.Interfaces = strings.Join(names, ",")
		p.TrafficFlow = &tf
	}
}

// unexportedInterface is the interface the unexported-interface scenario
// leaves out: the model's last sector.
func unexportedInterface(m *netflowtest.Model) string {
	last := ""
	for _, ifc := range m.Interfaces() {
		if strings.HasPrefix(ifc.Name, "sector-") {
			last = ifc.Name
		}
	}
	return last
}

// UnexportedInterface names the interface the fleet's
// unexported-interface scenario leaves out of the export, "" without that
// scenario.
func (f *Fleet) UnexportedInterface() string {
	r := f.scenarioRouter()
	if r == nil || f.cfg.Scenario != netflowtest.ScenarioUnexportedInterface {
		return ""
	}
	return unexportedInterface(r.Model)
}

func newAccounting(m *netflowtest.Model) *accounting {
	a := &accounting{byName: map[string]uint32{}, sum: map[uint32]*routerostest.IfCounters{}}
	for _, ifc := range m.Interfaces() {
		a.byName[ifc.Name] = ifc.Index
	}
	return a
}

// setExported reads /ip/traffic-flow interfaces: "all", or a list of names.
func (a *accounting) setExported(list string) {
	if list == "" || list == "all" {
		a.exported.Store(nil)
		return
	}
	m := map[uint32]bool{}
	for _, n := range strings.Split(list, ",") {
		if idx, ok := a.byName[strings.TrimSpace(n)]; ok {
			m[idx] = true
		}
	}
	a.exported.Store(&m)
}

// Account counts flows on the router's interface counters (and the
// fast-tracked share on its fasttrack rule) and returns the flows the
// router exports, in flows' storage. The exporter calls it for every
// flow it generates; tests call it to run the router on a clock of their
// own.
func (r *Router) Account(now time.Time, flows []store.Flow) []store.Flow {
	a := r.acct
	scale := 1.0
	fastTrack := r.scenario == netflowtest.ScenarioFastTrack && r.Model.ScenarioActive(now)
	if fastTrack {
		scale = 1 / (1 - FastTrackShare)
	}
	var exported map[uint32]bool
	if p := a.exported.Load(); p != nil {
		exported = *p
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.sum)
	add := func(idx uint32, rx bool, b, p uint64) {
		if idx == 0 {
			return // the router itself
		}
		c := a.sum[idx]
		if c == nil {
			c = &routerostest.IfCounters{}
			a.sum[idx] = c
		}
		if rx {
			c.RxBytes, c.RxPackets = c.RxBytes+b, c.RxPackets+p
		} else {
			c.TxBytes, c.TxPackets = c.TxBytes+b, c.TxPackets+p
		}
	}
	var ftBytes, ftPackets uint64
	out := flows[:0]
	for _, f := range flows {
		b, p := f.Bytes, f.Packets
		if fastTrack {
			b = uint64(math.Round(float64(f.Bytes) * scale))
			p = uint64(math.Round(float64(f.Packets) * scale))
			ftBytes += b - f.Bytes
			ftPackets += p - f.Packets
		}
		add(f.InIf, true, b, p)
		add(f.OutIf, false, b, p)
		if exported == nil || f.InIf == 0 || exported[f.InIf] {
			out = append(out, f)
		}
	}
	for idx, c := range a.sum {
		r.Server.AddInterfaceTraffic(idx, *c)
	}
	if ftBytes > 0 {
		r.Server.AddFilterHits("fasttrack-connection", 0, ftBytes, ftPackets)
	}
	return out
}
