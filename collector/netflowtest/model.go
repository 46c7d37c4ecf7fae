package netflowtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Scenarios of unusual traffic the model can add to the ordinary traffic,
// each shaped for one of flowbox's alert detectors.
const (
	ScenarioNone = ""
	// ScenarioDDoS is a UDP amplification attack on one subscriber: many
	// random public reflectors (source ports 19, 53, 123, 389, 1900,
	// 11211) send large packets to the router's public address, NATed to
	// the victim (its game port mapping).
	ScenarioDDoS = "ddos"
	// ScenarioSynflood is a SYN flood on one subscriber's port forward:
	// spoofed random sources, one 40-60 byte SYN-only packet per flow.
	ScenarioSynflood = "synflood"
	// ScenarioPortscan is outbound abuse: one infected subscriber, behind
	// NAT, sends single SYN-only packets to random public hosts on ports
	// such as 22, 23, 445, 3389 and 8080.
	ScenarioPortscan = "portscan"
	// ScenarioSpam is outbound abuse: one subscriber opens SMTP sessions to
	// many distinct mail servers on port 25.
	ScenarioSpam = "spam"
	// ScenarioExportStop is a router that stops exporting: the model
	// returns no flows at all while the scenario is on.
	ScenarioExportStop = "export-stop"
	// ScenarioFastTrack is a RouterOS 6 router before 6.33 whose
	// FastTrack rule passes a share of its traffic (30 %) without
	// exporting it: the interfaces count it, the flows miss it (the
	// simulator does it; the model's flows are unchanged).
	ScenarioFastTrack = "fasttrack"
	// ScenarioUnexportedInterface is a router whose /ip traffic-flow
	// interfaces leaves one sector out: the traffic entering it is counted
	// by the interface, not exported (the simulator does it).
	ScenarioUnexportedInterface = "unexported-interface"
)

// Scenarios returns the names of the scenarios, in the order help texts
// list them.
func Scenarios() []string {
	return []string{ScenarioDDoS, ScenarioSynflood, ScenarioPortscan, ScenarioSpam, ScenarioExportStop,
		ScenarioFastTrack, ScenarioUnexportedInterface}
}

// ValidScenario reports whether s names a scenario ("" is none, and
// valid).
func ValidScenario(s string) bool {
	switch s {
	case ScenarioNone, ScenarioDDoS, ScenarioSynflood, ScenarioPortscan, ScenarioSpam, ScenarioExportStop,
		ScenarioFastTrack, ScenarioUnexportedInterface:
		return true
	}
	return false
}

// scenarioList is the list of scenarios for error messages.
const scenarioList = "ddos, synflood, portscan, spam, export-stop, fasttrack, unexported-interface"

// DefaultScenarioRate returns what a scenario adds per second by default:
// sized so that, on top of a simulated router's ordinary 200-300 flows/s,
// flowbox's detectors see it above their default floors.
//
//   - ddos: 100 flows/s, each 1-3 MB of 468-1468 byte packets over 10-60 s
//     (about 1.6 Gbit/s and 200k packets/s towards the victim);
//   - synflood: 1500 single-SYN flows/s;
//   - portscan: 300 single-SYN flows/s, to distinct hosts and ports;
//   - spam: 20 SMTP sessions/s (an upload and a reply flow each), to
//     distinct mail servers;
//   - export-stop: 0 (it removes flows, it adds none).
func DefaultScenarioRate(scenario string) float64 {
	switch scenario {
	case ScenarioDDoS:
		return 100
	case ScenarioSynflood:
		return 1500
	case ScenarioPortscan:
		return 300
	case ScenarioSpam:
		return 20
	}
	return 0
}

// MaxScenarioRate bounds ModelConfig.ScenarioRate.
const MaxScenarioRate = 100000

// MaxSubscribers bounds the model's size (it fits one router's address plan).
const MaxSubscribers = 20000

// ModelConfig configures a WISP traffic model for one router.
type ModelConfig struct {
	// Seed makes the model deterministic: the same seed gives the same
	// subscribers and, for the same calls, the same flows.
	Seed uint64
	// Index is the router's position in a fleet (0..63). It picks the
	// router's address blocks: CGNAT 100.(64+Index).0.0/16, public
	// 203.0.113.(2+Index).
	Index int
	// Identity is the router's name; default "wisp-<index+1>".
	Identity string
	// Subscribers is the number of customers (1..20000); default 300.
	Subscribers int
	// PPPoEShare is the fraction of customers on PPPoE (others use DHCP);
	// default 0.4. Negative means none.
	PPPoEShare float64
	// Sectors is the number of AP sector interfaces (1..16); default 4. It
	// grows when needed so that each sector holds at most 2000 customers.
	Sectors int
	// IPv6Share is the fraction of subscriber sessions over IPv6; default
	// 0.1. Negative means none.
	IPv6Share float64
	// Scenario adds unusual traffic (one of Scenarios, "" for none) while
	// it is on: from ScenarioStart for ScenarioDuration, on the model's
	// time (the Clock's, else the export instant given to AppendFlows).
	// Its victim or culprit is one subscriber chosen from the seed (see
	// ScenarioTarget). The ordinary flows are the same with or without a
	// scenario: scenario flows come from a random stream of their own.
	Scenario string
	// ScenarioRate is what the scenario adds to the ordinary flows per
	// second of the model's time while it is on: flows for ddos, synflood
	// and portscan, SMTP sessions (two flows each) for spam. The flows due
	// since the previous AppendFlows call (at most one second's worth) are
	// appended after the n ordinary ones. 0 means DefaultScenarioRate;
	// negative means none (ScenarioShare only).
	ScenarioRate float64
	// ScenarioShare, when positive, also replaces that fraction of the
	// ordinary sessions with scenario flows while the scenario is on. It
	// serves flows generated in one call, where no time passes (an
	// exporter's pool for load generation). Default 0: none.
	ScenarioShare float64
	// ScenarioStart is when the scenario starts, on the model's time. Zero
	// means with the first flows (and the attack was already going on: its
	// first flows may have started earlier). SetScenarioStart changes it.
	ScenarioStart time.Time
	// ScenarioDuration is how long the scenario lasts; 0 means until the
	// end.
	ScenarioDuration time.Duration
	// Location is the time zone of the daily curve; default UTC.
	Location *time.Location
	// Clock is the clock of the daily curve: the instant whose time of day
	// (in Location) shapes the application mix of the flows generated, and
	// an exporter's rate with ExporterConfig.DailyCurve. It lets a
	// simulation run at a chosen time of day (a test at 03:00, a demo at
	// the evening peak) while the flows keep their real timestamps. Nil
	// means the export instant: the now given to AppendFlows (real time in
	// an Exporter).
	Clock func() time.Time
	// ActiveTimeout and InactiveTimeout are the router's
	// active-flow-timeout and inactive-flow-timeout; defaults 30m and 15s.
	ActiveTimeout, InactiveTimeout time.Duration
	// RouterDNS is the share (0..1) of the customers' DNS queries sent to
	// the router (its sector gateway address: the router is their
	// resolver) instead of to public resolvers. Default 0: public
	// resolvers, and the same flows as before this setting existed.
	RouterDNS float64
}

// Validate returns every problem of the configuration.
func (c ModelConfig) Validate() error {
	var errs []error
	if c.Index < 0 || c.Index > 63 {
		errs = append(errs, fmt.Errorf("index: %d is outside 0..63", c.Index))
	}
	if c.Subscribers < 0 || c.Subscribers > MaxSubscribers {
		errs = append(errs, fmt.Errorf("subscribers: %d is outside 1..%d", c.Subscribers, MaxSubscribers))
	}
	if c.RouterDNS < 0 || c.RouterDNS > 1 {
		errs = append(errs, fmt.Errorf("router-dns: %g is outside 0..1", c.RouterDNS))
	}
	if c.PPPoEShare > 1 {
		errs = append(errs, fmt.Errorf("pppoe-share: %g is above 1", c.PPPoEShare))
	}
	if c.Sectors < 0 || c.Sectors > 16 {
		errs = append(errs, fmt.Errorf("sectors: %d is outside 1..16", c.Sectors))
	}
	if c.IPv6Share > 1 {
		errs = append(errs, fmt.Errorf("ipv6-share: %g is above 1", c.IPv6Share))
	}
	if !ValidScenario(c.Scenario) {
		errs = append(errs, fmt.Errorf("scenario: %q is not one of %s", c.Scenario, scenarioList))
	}
	if c.ScenarioRate > MaxScenarioRate || math.IsNaN(c.ScenarioRate) {
		errs = append(errs, fmt.Errorf("scenario-rate: %g is above %d", c.ScenarioRate, MaxScenarioRate))
	}
	if c.ScenarioShare < 0 || c.ScenarioShare > 1 {
		errs = append(errs, fmt.Errorf("scenario-share: %g is outside 0..1", c.ScenarioShare))
	}
	if c.ScenarioDuration < 0 {
		errs = append(errs, fmt.Errorf("scenario-duration: %s is negative", c.ScenarioDuration))
	}
	if c.ActiveTimeout < 0 || c.InactiveTimeout < 0 {
		errs = append(errs, errors.New("flow timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

// SubscriberKind says how a customer connects.
type SubscriberKind uint8

// Kinds of subscribers.
const (
	KindDHCP SubscriberKind = iota
	KindPPPoE
)

// String returns "dhcp" or "pppoe".
func (k SubscriberKind) String() string {
	if k == KindPPPoE {
		return "pppoe"
	}
	return "dhcp"
}

// Subscriber is one customer of the WISP.
type Subscriber struct {
	// Name is the customer's name ("Maria Garcia"), used as the DHCP lease
	// comment and the simple queue name.
	Name string
	// Login is the PPPoE user name ("mgarcia"); for DHCP customers it is
	// the account id used in comments.
	Login string
	Kind  SubscriberKind
	// HostName is what the customer's device sends in DHCP.
	HostName string
	// MAC is the CPE's MAC address (48 bits in the low bits).
	MAC uint64
	// Addr is the customer's CGNAT address (100.64.0.0/10).
	Addr netip.Addr
	// Addr6 is the customer's IPv6 address (documentation prefix); zero
	// when the customer has no IPv6.
	Addr6 netip.Addr
	// Interface is where the customer's traffic enters the router: the
	// sector for DHCP, the dynamic <pppoe-LOGIN> interface for PPPoE.
	Interface string
	IfIndex   uint32
	// Sector is the AP interface the customer's radio hangs off.
	Sector string
	// Plan is the simple-queue max-limit, upload/download ("10M/50M").
	Plan string
	// Rank is the customer's popularity rank (0 is the heaviest hitter).
	Rank int
	// SessionID is the PPPoE session id (0 for DHCP).
	SessionID uint16

	planUp, planDown uint64 // bits/s
}

// Interface is one interface of the router.
type Interface struct {
	Index       uint32
	Name        string
	DefaultName string
	Type        string // "ether" or "pppoe-in"
	Comment     string
	MAC         uint64
	Dynamic     bool
}

// Address is one /ip/address (or /ipv6/address) entry.
type Address struct {
	// Prefix is the address with its mask (100.64.0.1/21).
	Prefix    netip.Prefix
	Interface string
	Dynamic   bool
}

// Model is a deterministic traffic model of one WISP router. All its
// methods are safe for concurrent use.
type Model struct {
	cfg        ModelConfig
	subs       []Subscriber
	ifaces     []Interface
	addrs      []Address
	wan        netip.Addr
	gatewayMAC uint64
	sectorGW   []netip.Addr // gateway address of each sector
	sectorIf   []uint32
	nets       []Network
	byRank     []int // subscriber index by Zipf rank

	// target is the scenario's victim or culprit (index into subs).
	target int

	// Flow generation state, guarded by mu.
	mu      sync.Mutex
	rng     *rand.Rand
	zipf    *rand.Zipf
	pending []store.Flow // generated flows, times relative to the export instant
	pendPos int          // next flow of pending to hand out

	// Scenario state, guarded by mu.
	srng       *rand.Rand   // scenario flows' own stream
	scenStart  time.Time    // start on the model's time; zero until known
	scenFixed  bool         // scenStart was given: no flow starts before it
	scenLast   time.Time    // model's time of the previous AppendFlows call
	scenCredit float64      // scenario events due, not yet generated
	scenBuf    []store.Flow // scenario flows, times relative to the export instant

	// The customers' resolutions, for the router's DNS cache (dns.go),
	// guarded by mu; genNow is the export instant being generated (ms).
	dns    dnsCache
	genNow int64
}

// NewModel builds the model's subscribers and router state from cfg.
func NewModel(cfg ModelConfig) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid model config: %w", err)
	}
	if cfg.Subscribers == 0 {
		cfg.Subscribers = 300
	}
	if cfg.PPPoEShare == 0 {
		cfg.PPPoEShare = 0.4
	}
	if cfg.PPPoEShare < 0 {
		cfg.PPPoEShare = 0
	}
	if cfg.Sectors == 0 {
		cfg.Sectors = 4
	}
	if cfg.IPv6Share == 0 {
		cfg.IPv6Share = 0.1
	}
	if cfg.IPv6Share < 0 {
		cfg.IPv6Share = 0
	}
	if cfg.ScenarioRate == 0 {
		cfg.ScenarioRate = DefaultScenarioRate(cfg.Scenario)
	}
	if cfg.ScenarioRate < 0 {
		cfg.ScenarioRate = 0
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.ActiveTimeout == 0 {
		cfg.ActiveTimeout = 30 * time.Minute
	}
	if cfg.InactiveTimeout == 0 {
		cfg.InactiveTimeout = 15 * time.Second
	}
	if cfg.Identity == "" {
		cfg.Identity = fmt.Sprintf("wisp-%d", cfg.Index+1)
	}
	nPPPoE := int(math.Round(float64(cfg.Subscribers) * cfg.PPPoEShare))
	nDHCP := cfg.Subscribers - nPPPoE
	if need := (nDHCP + 1999) / 2000; need > cfg.Sectors {
		cfg.Sectors = need
	}
	m := &Model{cfg: cfg, nets: Networks()}
	m.build(nDHCP, nPPPoE)
	m.rng = rand.New(rand.NewPCG(cfg.Seed, 0x666c6f7773)) // "flows"
	m.zipf = rand.NewZipf(m.rng, 1.2, 1, uint64(len(m.subs)-1))
	m.srng = rand.New(rand.NewPCG(cfg.Seed, 0x61747461636b)) // "attack"
	m.target = m.scenarioSubscriber(cfg.Scenario)
	m.scenStart, m.scenFixed = cfg.ScenarioStart, !cfg.ScenarioStart.IsZero()
	return m, nil
}

// Config returns the configuration with defaults applied.
func (m *Model) Config() ModelConfig {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// SetFlowTimeouts applies the router's active-flow-timeout and
// inactive-flow-timeout to the flows generated from now on (durations are
// cut at the active timeout; finished flows are exported after the inactive
// one). Non-positive values keep the current ones.
func (m *Model) SetFlowTimeouts(active, inactive time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if active > 0 {
		m.cfg.ActiveTimeout = active
	}
	if inactive > 0 {
		m.cfg.InactiveTimeout = inactive
	}
}

// Identity returns the router's /system/identity name.
func (m *Model) Identity() string { return m.cfg.Identity }

// PublicAddr returns the router's WAN address, the one subscribers are
// NATed behind.
func (m *Model) PublicAddr() netip.Addr { return m.wan }

// Subscribers returns the customers (a copy).
func (m *Model) Subscribers() []Subscriber { return append([]Subscriber(nil), m.subs...) }

// Interfaces returns the router's interfaces, static ones first (a copy).
func (m *Model) Interfaces() []Interface { return append([]Interface(nil), m.ifaces...) }

// Addresses returns the router's IPv4 and IPv6 addresses (a copy).
func (m *Model) Addresses() []Address { return append([]Address(nil), m.addrs...) }

// IPv6Pool returns the prefix the customers' IPv6 prefixes are delegated
// from, 2001:db8:<0x100+index>::/48: the router's /ipv6/pool. Every
// Subscriber.Prefix6 is inside it.
func (m *Model) IPv6Pool() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8,
		byte((0x100 + m.cfg.Index) >> 8), byte(0x100 + m.cfg.Index)}), 48)
}

// Prefix6Bits is the length of the IPv6 prefix delegated to each customer.
const Prefix6Bits = 64

// Prefix6 returns the IPv6 prefix delegated to the customer (DHCPv6
// prefix delegation): the /64 of IPv6Pool that holds Addr6, where the
// customer's devices pick their addresses. It is the zero Prefix when the
// customer has no IPv6.
func (s Subscriber) Prefix6() netip.Prefix {
	if !s.Addr6.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(s.Addr6, Prefix6Bits).Masked()
}

func addr4(a, b, c, d int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})
}

// build creates interfaces, addresses and subscribers from a stream of its
// own, so that the flows' stream does not depend on the state's size.
func (m *Model) build(nDHCP, nPPPoE int) {
	r := rand.New(rand.NewPCG(m.cfg.Seed, 0x7374617465)) // "state"
	idx := m.cfg.Index
	oct := 64 + idx
	routerMAC := func(ifIndex uint32) uint64 {
		return 0x4c5e0c<<24 | uint64(idx)<<16 | uint64(r.IntN(256))<<8 | uint64(ifIndex&0xff)
	}
	m.wan = addr4(203, 0, 113, 2+idx)
	m.gatewayMAC = 0x001b21<<24 | r.Uint64N(1<<24)
	m.ifaces = append(m.ifaces, Interface{Index: 1, Name: "ether1", DefaultName: "ether1", Type: "ether",
		Comment: "WAN uplink", MAC: routerMAC(1)})
	m.addrs = append(m.addrs,
		Address{Prefix: netip.PrefixFrom(m.wan, 24), Interface: "ether1"},
		Address{Prefix: netip.MustParsePrefix(fmt.Sprintf("2001:db8:ffff::%x/64", 2+idx)), Interface: "ether1"})
	for s := range m.cfg.Sectors {
		name := fmt.Sprintf("sector-%d", s+1)
		if s < len(sectorNames) {
			name = "sector-" + sectorNames[s]
		}
		ifIndex := uint32(2 + s)
		m.ifaces = append(m.ifaces, Interface{Index: ifIndex, Name: name, DefaultName: fmt.Sprintf("ether%d", 2+s),
			Type: "ether", Comment: fmt.Sprintf("AP sector %d (5 GHz, 90 deg)", s+1), MAC: routerMAC(ifIndex)})
		gw := addr4(100, oct, s*8, 1)
		m.sectorGW = append(m.sectorGW, gw)
		m.sectorIf = append(m.sectorIf, ifIndex)
		m.addrs = append(m.addrs, Address{Prefix: netip.PrefixFrom(gw, 21), Interface: name},
			Address{Prefix: netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::1/64", 0x100+idx, s)), Interface: name})
	}
	if nPPPoE > 0 {
		m.addrs = append(m.addrs, Address{Prefix: netip.PrefixFrom(addr4(100, oct, 128, 1), 32), Interface: "sector-north"})
	}
	used := map[string]int{}
	macs := map[uint64]bool{}
	n := nDHCP + nPPPoE
	for i := range n {
		first := firstNames[r.IntN(len(firstNames))]
		last := lastNames[r.IntN(len(lastNames))]
		login := strings.ToLower(first[:1] + last)
		used[login]++
		if c := used[login]; c > 1 {
			login = fmt.Sprintf("%s%d", login, c)
		}
		mac := cpeOUIs[r.IntN(len(cpeOUIs))]<<24 | r.Uint64N(1<<24)
		for macs[mac] {
			mac = cpeOUIs[r.IntN(len(cpeOUIs))]<<24 | r.Uint64N(1<<24)
		}
		macs[mac] = true
		host := hostPrefixes[r.IntN(len(hostPrefixes))]
		if strings.HasSuffix(host, "-") {
			host += fmt.Sprintf("%07X", r.Uint32N(1<<28))
		}
		sector := i % m.cfg.Sectors
		s := Subscriber{
			Name:     first + " " + last,
			Login:    login,
			HostName: host,
			MAC:      mac,
			Sector:   m.ifaces[1+sector].Name,
		}
		pl := plans[r.IntN(len(plans))]
		s.Plan, s.planUp, s.planDown = pl.name, pl.up, pl.down
		if i < nDHCP {
			k := i / m.cfg.Sectors // position inside the sector's /21
			s.Kind = KindDHCP
			s.Addr = addr4(100, oct, sector*8+(k+10)/256, (k+10)%256)
			s.Interface = s.Sector
			s.IfIndex = m.sectorIf[sector]
		} else {
			k := i - nDHCP
			s.Kind = KindPPPoE
			s.Addr = addr4(100, oct, 129+k/254, 1+k%254)
			s.Interface = "<pppoe-" + login + ">"
			s.IfIndex = 0x800001 + uint32(k)
			s.SessionID = uint16(0x8100 + k)
			m.ifaces = append(m.ifaces, Interface{Index: s.IfIndex, Name: s.Interface, Type: "pppoe-in", Dynamic: true})
		}
		if r.Float64() < 0.6 {
			s.Addr6 = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte((0x100 + idx) >> 8), byte(0x100 + idx),
				byte(i >> 8), byte(i), byte(mac>>40) ^ 2, byte(mac >> 32), byte(mac >> 24), 0xff, 0xfe,
				byte(mac >> 16), byte(mac >> 8), byte(mac)})
		}
		m.subs = append(m.subs, s)
	}
	m.byRank = r.Perm(n)
	for rank, i := range m.byRank {
		m.subs[i].Rank = rank
	}
}

// Activity returns the daily curve at t: the share of the evening peak
// (about 21:00 in Location, 1.0) that the network carries; about 0.1 at
// 4:00.
func (m *Model) Activity(t time.Time) float64 {
	t = t.In(m.cfg.Location)
	h := float64(t.Hour()) + float64(t.Minute())/60
	i := int(h)
	f := h - float64(i)
	return dailyCurve[i]*(1-f) + dailyCurve[(i+1)%24]*f
}

// CurveTime returns the instant the daily curve reads for an export at
// now: the Clock's time, or now without a Clock.
func (m *Model) CurveTime(now time.Time) time.Time {
	if m.cfg.Clock != nil {
		return m.cfg.Clock()
	}
	return now
}

// ActivityAt returns the daily curve for an export at now:
// Activity(CurveTime(now)).
func (m *Model) ActivityAt(now time.Time) float64 { return m.Activity(m.CurveTime(now)) }

var dailyCurve = [24]float64{
	0.35, 0.22, 0.15, 0.12, 0.10, 0.12, 0.25, 0.40, 0.50, 0.55, 0.58, 0.60,
	0.65, 0.63, 0.60, 0.62, 0.68, 0.75, 0.82, 0.90, 0.97, 1.00, 0.85, 0.60,
}

// AppendFlows appends the model's next n flows to dst, stamped as exported
// at now, and returns the extended slice. The sequence of flows depends only
// on the seed and on the daily curve's instants (the now values passed, or
// the Clock's), not on how the calls split it.
//
// While a scenario is on, its flows due since the previous call are
// appended after the n ordinary ones (see ModelConfig.ScenarioRate); while
// export-stop is on, nothing is appended and no flow is generated.
func (m *Model) AppendFlows(dst []store.Flow, n int, now time.Time) []store.Flow {
	m.mu.Lock()
	defer m.mu.Unlock()
	nowMs := now.UnixMilli()
	m.genNow = nowMs
	var sc scenarioNow
	if m.cfg.Scenario != ScenarioNone {
		sc = m.scenarioAt(m.CurveTime(now))
		if sc.on && m.cfg.Scenario == ScenarioExportStop {
			return dst
		}
	}
	act := -1.0 // read from the daily curve once, when a session needs it
	for n > 0 {
		if m.pendPos == len(m.pending) {
			m.pending, m.pendPos = m.pending[:0], 0
			if act < 0 {
				act = m.ActivityAt(now)
			}
			m.session(act, sc)
			continue
		}
		k := min(n, len(m.pending)-m.pendPos)
		for _, f := range m.pending[m.pendPos : m.pendPos+k] {
			f.Start += nowMs
			f.End += nowMs
			dst = append(dst, f)
		}
		m.pendPos += k
		n -= k
	}
	if sc.events > 0 {
		m.scenBuf = m.scenBuf[:0]
		for range sc.events {
			m.scenBuf = m.scenarioEvent(m.scenBuf, sc)
		}
		for _, f := range m.scenBuf {
			f.Start += nowMs
			f.End += nowMs
			dst = append(dst, f)
		}
	}
	return dst
}

// app describes one application of the mix.
type app struct {
	name       string
	weight     float64
	nets       []int     // indexes into Networks
	netW       []float64 // weights of nets
	ports      []uint16  // remote ports (TCP unless udp)
	udp        float64   // share over UDP (QUIC, game, VoIP)
	downMedian float64   // bytes of the download flow
	downSigma  float64
	upRatio    float64 // upload bytes / download bytes
	downPkt    float64 // mean packet sizes
	upPkt      float64
	durMedian  float64 // seconds
	tos        uint8
	v6         bool
}

var apps = [...]app{
	{name: "video", weight: 0.12, nets: []int{netNetflix, netGoogle, netAkamai, netMeta, netAmazon},
		netW: []float64{0.35, 0.35, 0.15, 0.1, 0.05}, ports: []uint16{443}, udp: 0.25,
		downMedian: 8e6, downSigma: 1.0, upRatio: 0.02, downPkt: 1400, upPkt: 66, durMedian: 600, v6: true},
	{name: "web", weight: 0.38, nets: []int{netGoogle, netCloudflare, netMeta, netAkamai, netAmazon, netMicrosoft, netApple},
		netW: []float64{0.25, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1}, ports: []uint16{443, 443, 443, 443, 80}, udp: 0.2,
		downMedian: 60e3, downSigma: 1.5, upRatio: 0.15, downPkt: 1100, upPkt: 90, durMedian: 20, v6: true},
	{name: "dns", weight: 0.2, nets: []int{netGoogleDNS, netCloudflareDNS, netQuad9},
		netW: []float64{0.5, 0.35, 0.15}, ports: []uint16{53}, udp: 1,
		downMedian: 160, downSigma: 0.4, upRatio: 0.45, downPkt: 160, upPkt: 72, durMedian: 0.05, v6: true},
	{name: "ntp", weight: 0.03, nets: []int{netGoogleNTP, netCloudflareNTP, netAppleNTP},
		netW: []float64{0.4, 0.3, 0.3}, ports: []uint16{123}, udp: 1,
		downMedian: 76, downSigma: 0, upRatio: 1, downPkt: 76, upPkt: 76, durMedian: 0.03},
	{name: "gaming", weight: 0.06, nets: []int{netValve, netMicrosoft, netAmazon},
		netW: []float64{0.6, 0.2, 0.2}, ports: []uint16{27015, 27017, 27020, 27031, 27036, 3074, 9000, 9017}, udp: 1,
		downMedian: 3e6, downSigma: 0.8, upRatio: 0.6, downPkt: 220, upPkt: 120, durMedian: 1500},
	{name: "voip", weight: 0.04, nets: []int{netMeta, netZoom, netMicrosoftTeams},
		netW: []float64{0.4, 0.3, 0.3}, ports: []uint16{3478, 8801, 3479, 3480}, udp: 1,
		downMedian: 1.5e6, downSigma: 0.9, upRatio: 0.9, downPkt: 180, upPkt: 180, durMedian: 480, tos: 0xb8},
	{name: "update", weight: 0.04, nets: []int{netMicrosoftUpdate, netAkamai, netApple, netValve},
		netW: []float64{0.35, 0.2, 0.25, 0.2}, ports: []uint16{443, 80}, udp: 0,
		downMedian: 25e6, downSigma: 1.2, upRatio: 0.015, downPkt: 1448, upPkt: 60, durMedian: 300},
	{name: "p2p", weight: 0.08, nets: []int{netComcast, netDTAG, netOrange},
		netW: []float64{0.4, 0.3, 0.3}, ports: nil, udp: 0.5,
		downMedian: 1e6, downSigma: 1.8, upRatio: 0.4, downPkt: 1200, upPkt: 1000, durMedian: 180},
}

// pick returns an index drawn from weights.
func (m *Model) pick(w []float64) int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	u := m.rng.Float64() * sum
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// hostIn returns an address inside p. Popular services concentrate on few
// hosts: the host part is drawn from a small range.
func hostIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	bits := p.Addr().BitLen() - p.Bits()
	if bits == 0 {
		return p.Addr()
	}
	a := p.Addr().As16()
	span := uint64(1) << min(bits, 16)
	off := 1 + r.Uint64N(span-1)
	if bits > 16 {
		off += r.Uint64N(1<<min(bits-16, 16)) << 16
	}
	for i := 15; i >= 0 && off > 0; i-- {
		s := uint64(a[i]) + off&0xff
		a[i] = byte(s)
		off = off>>8 + s>>8
	}
	out := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		out = out.Unmap()
	}
	if !p.Contains(out) {
		return p.Addr().Next()
	}
	return out
}

// remote returns an address of network netIdx of the family v6 asks for,
// drawn from r.
func (m *Model) remote(r *rand.Rand, netIdx int, v6 bool) (netip.Addr, bool) {
	var cands [8]netip.Prefix
	c := cands[:0]
	for _, p := range m.nets[netIdx].Prefixes {
		if p.Addr().Is6() == v6 {
			c = append(c, p)
		}
	}
	if len(c) == 0 {
		return netip.Addr{}, false
	}
	return hostIn(r, c[r.IntN(len(c))]), true
}

func (m *Model) lognormal(median, sigma float64) float64 {
	if sigma == 0 {
		return median
	}
	return median * math.Exp(sigma*m.rng.NormFloat64())
}

// ephemeral returns a local port of the Linux ephemeral range, drawn from r.
func ephemeral(r *rand.Rand) uint16 { return uint16(32768 + r.IntN(28232)) }

// session generates one conversation (usually a download and an upload
// flow) into m.pending, with times relative to the export instant; act is
// the daily curve's activity at that instant, and sc the scenario's state
// (whether it is on, and its window).
func (m *Model) session(act float64, sc scenarioNow) {
	u := m.rng.Float64()
	switch {
	case sc.on && u < m.cfg.ScenarioShare:
		m.pending = m.scenarioEvent(m.pending, sc)
	case u > 0.97:
		m.routerLocal()
	default:
		m.subscriberSession(act)
	}
}

// times returns relative start and end (ms) for a flow lasting dur seconds,
// exported after the inactive timeout or cut by the active timeout.
func (m *Model) times(dur float64) (start, end int64) {
	durMs := int64(dur * 1000)
	active := m.cfg.ActiveTimeout.Milliseconds()
	end = -m.cfg.InactiveTimeout.Milliseconds() - int64(m.rng.IntN(1000))
	if durMs >= active {
		durMs = active
		end = -int64(m.rng.IntN(1000))
	}
	return end - durMs, end
}

func pkts(bytes, size float64) uint64 {
	p := uint64(math.Ceil(bytes / size))
	return max(p, 1)
}

func (m *Model) subscriberSession(act float64) {
	sub := &m.subs[m.byRank[m.zipf.Uint64()]]
	var w [len(apps)]float64
	for i := range apps {
		w[i] = apps[i].weight
		switch apps[i].name {
		case "video":
			w[i] *= 0.5 + act
		case "gaming":
			w[i] *= 0.3 + act
		case "update":
			w[i] *= 1.5 - act
		case "p2p":
			w[i] *= 1.2 - 0.5*act
		}
	}
	a := &apps[m.pick(w[:])]
	if a.name == "dns" && m.cfg.RouterDNS > 0 && m.rng.Float64() < m.cfg.RouterDNS {
		start, end := m.times(0.05)
		m.routerDNS(sub, start, end)
		return
	}
	v6 := a.v6 && sub.Addr6.IsValid() && m.rng.Float64() < m.cfg.IPv6Share
	netIdx := a.nets[m.pick(a.netW)]
	remote, ok := m.remote(m.rng, netIdx, v6)
	if !ok {
		v6 = false
		remote, _ = m.remote(m.rng, netIdx, false)
	}
	proto := uint8(6)
	if m.rng.Float64() < a.udp {
		proto = 17
	}
	var rport uint16
	if len(a.ports) > 0 {
		rport = a.ports[m.rng.IntN(len(a.ports))]
	} else {
		rport = uint16(6881 + m.rng.IntN(60000))
	}
	lport := ephemeral(m.rng)
	if a.name == "ntp" && m.rng.IntN(2) == 0 {
		lport = 123
	}
	dur := m.lognormal(a.durMedian, 0.8)
	// A flow cannot carry more than the customer's plan allows.
	down := m.lognormal(a.downMedian, a.downSigma)
	down = min(max(down, 60), float64(sub.planDown)/8*max(dur, 1), 1.5e9)
	up := min(max(down*a.upRatio*(0.7+0.6*m.rng.Float64()), 40), float64(sub.planUp)/8*max(dur, 1))
	start, end := m.times(dur)
	m.noteRemote(remote, a.name, netIdx, start)
	var flags uint8
	if proto == 6 {
		flags = 0x1b // SYN PSH ACK FIN
		if end > -1000 {
			flags = 0x18 // still open: cut by the active timeout
		}
	}
	local := sub.Addr
	if v6 {
		local = sub.Addr6
	}
	wanIf := m.ifaces[0]
	sector := &m.ifaces[1+m.sectorIndex(sub.Sector)]
	natPort := lport
	if m.rng.IntN(4) == 0 {
		natPort = uint16(1024 + m.rng.IntN(64511))
	}
	upF := store.Flow{
		Start: start, End: end,
		SrcAddr: local, DstAddr: remote, SrcPort: lport, DstPort: rport,
		Proto: proto, TCPFlags: flags, ToS: a.tos,
		InIf: sub.IfIndex, OutIf: wanIf.Index,
		SrcMAC: sub.MAC, DstMAC: sector.MAC,
		Bytes: uint64(up), Packets: pkts(up, a.upPkt),
	}
	downF := store.Flow{
		Start: min(start+int64(m.rng.IntN(40)), end), End: end,
		SrcAddr: remote, DstAddr: local, SrcPort: rport, DstPort: lport,
		Proto: proto, TCPFlags: flags,
		InIf: wanIf.Index, OutIf: sub.IfIndex,
		SrcMAC: m.gatewayMAC, DstMAC: wanIf.MAC,
		Bytes: uint64(down), Packets: pkts(down, a.downPkt),
	}
	if v6 {
		upF.SrcMask, upF.DstMask = 64, 0
		downF.SrcMask, downF.DstMask = 0, 64
		upF.NextHop = netip.MustParseAddr("2001:db8:ffff::1")
	} else {
		upF.SrcMask, upF.DstMask = m.localMask(sub), 0
		downF.SrcMask, downF.DstMask = 0, m.localMask(sub)
		upF.NextHop = addr4(203, 0, 113, 1)
		// NAT: the upload leaves from the public address; the reply arrives
		// for the public address and is translated back to the customer.
		upF.PostNATSrcAddr, upF.PostNATSrcPort = m.wan, natPort
		upF.PostNATDstAddr, upF.PostNATDstPort = remote, rport
		downF.DstAddr, downF.DstPort = m.wan, natPort
		downF.PostNATSrcAddr, downF.PostNATSrcPort = remote, rport
		downF.PostNATDstAddr, downF.PostNATDstPort = local, lport
	}
	if a.name == "dns" || a.name == "ntp" {
		upF.Packets, downF.Packets = 1, 1
	}
	m.pending = append(m.pending, downF, upF)
}

func (m *Model) localMask(s *Subscriber) uint8 {
	if s.Kind == KindPPPoE {
		return 32
	}
	return 21
}

func (m *Model) sectorIndex(name string) int {
	for i := 1; i < len(m.ifaces); i++ {
		if m.ifaces[i].Name == name {
			return i - 1
		}
	}
	return 0
}

// routerLocal generates traffic of the router itself: its own DNS and NTP
// queries (in-interface 0 on the way out, out-interface 0 for the answer),
// MNDP discovery broadcasts, and subscribers asking the router's resolver.
func (m *Model) routerLocal() {
	wan := m.ifaces[0].Index
	start, end := m.times(0.05)
	switch m.rng.IntN(4) {
	case 0, 1: // router's own DNS or NTP
		netIdx, port, sz := netCloudflareDNS, uint16(53), 90.0
		if m.rng.IntN(2) == 0 {
			netIdx, port, sz = netGoogleNTP, 123, 76
		}
		remote, _ := m.remote(m.rng, netIdx, false)
		lport := ephemeral(m.rng)
		m.pending = append(m.pending,
			store.Flow{Start: start, End: end, SrcAddr: m.wan, DstAddr: remote, SrcPort: lport, DstPort: port,
				Proto: 17, InIf: 0, OutIf: wan, Bytes: uint64(sz), Packets: 1, SrcMask: 24,
				NextHop: addr4(203, 0, 113, 1), PostNATSrcAddr: m.wan, PostNATDstAddr: remote,
				PostNATSrcPort: lport, PostNATDstPort: port},
			store.Flow{Start: min(start+20, end), End: end, SrcAddr: remote, DstAddr: m.wan, SrcPort: port, DstPort: lport,
				Proto: 17, InIf: wan, OutIf: 0, Bytes: uint64(sz * 1.6), Packets: 1, DstMask: 24,
				PostNATSrcAddr: remote, PostNATDstAddr: m.wan, PostNATSrcPort: port, PostNATDstPort: lport})
	case 2: // MNDP broadcast on a sector
		s := m.rng.IntN(len(m.sectorIf))
		bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
		bs, be := m.times(60) // MNDP repeats every 30 s: a long-lived flow
		m.pending = append(m.pending, store.Flow{Start: bs, End: be, SrcAddr: m.sectorGW[s], DstAddr: bcast,
			SrcPort: 5678, DstPort: 5678, Proto: 17, InIf: 0, OutIf: m.sectorIf[s], Bytes: 2 * 148, Packets: 2,
			PostNATSrcAddr: m.sectorGW[s], PostNATDstAddr: bcast, PostNATSrcPort: 5678, PostNATDstPort: 5678})
	default: // a subscriber asks the router's DNS
		m.routerDNS(&m.subs[m.byRank[m.zipf.Uint64()]], start, end)
	}
}

// routerDNS appends a customer's DNS query to the router (its sector
// gateway) and the answer.
func (m *Model) routerDNS(sub *Subscriber, start, end int64) {
	gw := m.sectorGW[m.sectorIndex(sub.Sector)]
	lport := ephemeral(m.rng)
	m.pending = append(m.pending,
		store.Flow{Start: start, End: end, SrcAddr: sub.Addr, DstAddr: gw, SrcPort: lport, DstPort: 53,
			Proto: 17, InIf: sub.IfIndex, OutIf: 0, Bytes: 74, Packets: 1, SrcMAC: sub.MAC, SrcMask: m.localMask(sub),
			PostNATSrcAddr: sub.Addr, PostNATDstAddr: gw, PostNATSrcPort: lport, PostNATDstPort: 53},
		store.Flow{Start: min(start+2, end), End: end, SrcAddr: gw, DstAddr: sub.Addr, SrcPort: 53, DstPort: lport,
			Proto: 17, InIf: 0, OutIf: sub.IfIndex, Bytes: 190, Packets: 1, DstMask: m.localMask(sub),
			PostNATSrcAddr: gw, PostNATDstAddr: sub.Addr, PostNATSrcPort: 53, PostNATDstPort: lport})
}

// randomPublic returns a random unicast address outside reserved ranges,
// drawn from r, for attack sources and scanned hosts.
func randomPublic(r *rand.Rand) netip.Addr {
	for {
		v := r.Uint32()
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		o := byte(v >> 24)
		if o == 0 || o == 10 || o == 127 || o >= 224 || a.IsPrivate() || a.IsLinkLocalUnicast() ||
			(o == 100 && byte(v>>16)&0xc0 == 64) || (o == 192 && byte(v>>16) == 0) ||
			(o == 198 && byte(v>>16)&0xfe == 18) || (o == 203 && byte(v>>16) == 0 && byte(v>>8) == 113) ||
			(o == 198 && byte(v>>16) == 51 && byte(v>>8) == 100) {
			continue
		}
		return a
	}
}

// scenarioSubscriber picks the scenario's victim or culprit from the seed:
// the first DHCP customer (whose lease and queue carry its Name) from a
// rank that differs by scenario, so that no heavy hitter is picked.
func (m *Model) scenarioSubscriber(scenario string) int {
	n := len(m.byRank)
	from := n / 3 // ddos and synflood: a victim
	switch scenario {
	case ScenarioSpam:
		from = n / 2
	case ScenarioPortscan:
		from = 2 * n / 3
	}
	for k := range n {
		if i := m.byRank[(from+k)%n]; m.subs[i].Kind == KindDHCP {
			return i
		}
	}
	return m.byRank[from]
}

// inventoryName is the name the router's inventory gives a customer, the
// one flowbox's enrichment learns: the simple queue's name, which is Name
// for DHCP customers and <pppoe-LOGIN> for PPPoE ones.
func (s *Subscriber) inventoryName() string {
	if s.Kind == KindPPPoE {
		return s.Login
	}
	return s.Name
}

// ScenarioTarget returns the scenario's victim (ddos, synflood) or culprit
// (portscan, spam): its CGNAT address and the subscriber's name as the
// router's DHCP lease, queue and PPPoE session name it, which is what
// flowbox learns (Name for DHCP customers, the login for PPPoE ones; the
// model picks a DHCP customer when it has one). Without a scenario, or
// for export-stop, whose target is the router, it returns the zero Addr
// and "".
func (m *Model) ScenarioTarget() (addr netip.Addr, subscriber string) {
	switch m.cfg.Scenario {
	case ScenarioNone, ScenarioExportStop, ScenarioFastTrack, ScenarioUnexportedInterface:
		return netip.Addr{}, ""
	}
	s := &m.subs[m.target]
	return s.Addr, s.inventoryName()
}

// SetScenarioStart sets when the scenario starts, on the model's time (the
// Clock's, else the export instant): no scenario flow starts before it. A
// fleet calls it when it starts, to start the scenario after a delay.
func (m *Model) SetScenarioStart(start time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scenStart, m.scenFixed = start, !start.IsZero()
	m.scenCredit = 0
}

// ScenarioWindow returns when the scenario starts and ends on the model's
// time. start is zero while the scenario waits for the first flows to
// start; end is zero when it lasts until the end (or start is unknown).
func (m *Model) ScenarioWindow() (start, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.scenStart, m.scenarioEnd()
}

// ScenarioActive reports whether the scenario is on for an export at now
// (read on the model's time, see CurveTime). It is false without a
// scenario.
func (m *Model) ScenarioActive(now time.Time) bool {
	if m.cfg.Scenario == ScenarioNone {
		return false
	}
	t := m.CurveTime(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.scenarioOn(t)
}

// scenarioEnd returns the end of the scenario's window, zero for none
// (m.mu held).
func (m *Model) scenarioEnd() time.Time {
	if m.scenStart.IsZero() || m.cfg.ScenarioDuration == 0 {
		return time.Time{}
	}
	return m.scenStart.Add(m.cfg.ScenarioDuration)
}

// scenarioOn reports whether the scenario is on at t, the model's time
// (m.mu held). An unknown start is the first flows': on.
func (m *Model) scenarioOn(t time.Time) bool {
	if m.scenStart.IsZero() {
		return true
	}
	end := m.scenarioEnd()
	return !t.Before(m.scenStart) && (end.IsZero() || t.Before(end))
}

// scenarioNow is the scenario's state for one AppendFlows call.
type scenarioNow struct {
	on bool
	// events is the number of scenario events due (ScenarioRate).
	events int
	// floor and ceil bound a scenario flow's times, in ms relative to the
	// export instant: the scenario's start when it was given, and its end.
	floor, ceil int64
}

// scenarioAt advances the scenario to t, the model's time of an export,
// and returns its state (m.mu held). The events due are those of the part
// of the window between the previous call and t, at most one second of it
// (a longer pause, such as an exporter without a target, is not caught
// up).
func (m *Model) scenarioAt(t time.Time) scenarioNow {
	if m.scenStart.IsZero() {
		m.scenStart = t // the scenario starts with the first flows
	}
	sc := scenarioNow{on: m.scenarioOn(t), floor: math.MinInt64}
	if m.scenFixed {
		sc.floor = -t.Sub(m.scenStart).Milliseconds()
	}
	if end := m.scenarioEnd(); !end.IsZero() && end.Before(t) {
		sc.ceil = -t.Sub(end).Milliseconds()
	}
	last := m.scenLast
	m.scenLast = t
	if last.IsZero() || !t.After(last) || m.cfg.ScenarioRate == 0 {
		return sc
	}
	from, to := last, t
	if to.Sub(from) > time.Second {
		from = to.Add(-time.Second)
	}
	if from.Before(m.scenStart) {
		from = m.scenStart
	}
	if end := m.scenarioEnd(); !end.IsZero() && end.Before(to) {
		to = end
	}
	if !to.After(from) {
		return sc
	}
	m.scenCredit += m.cfg.ScenarioRate * to.Sub(from).Seconds()
	sc.events = int(m.scenCredit)
	m.scenCredit -= float64(sc.events)
	return sc
}

// scenarioTimes returns the relative start and end (ms) of a scenario flow
// lasting dur seconds, exported as it goes (within a second of its end,
// as when the active timeout cuts a flow), inside the scenario's window.
func (m *Model) scenarioTimes(dur float64, sc scenarioNow) (start, end int64) {
	end = -int64(m.srng.IntN(1000))
	start = end - min(int64(dur*1000), m.cfg.ActiveTimeout.Milliseconds())
	end = min(max(end, sc.floor), sc.ceil)
	start = min(max(start, sc.floor), end)
	return start, end
}

// Ports of the scenarios.
var (
	// reflectorPorts are the source ports of UDP amplification, with the
	// size range (bytes) of the answers each service sends.
	reflectorPorts = [...]struct {
		port     uint16
		min, max int
	}{
		{19, 1000, 1468},    // chargen
		{53, 1100, 1468},    // DNS ANY with EDNS0
		{123, 468, 468},     // NTP monlist
		{389, 1200, 1468},   // CLDAP
		{1900, 468, 900},    // SSDP
		{11211, 1300, 1468}, // memcached
	}
	// scanPorts are what an infected device scans for.
	scanPorts = [...]uint16{22, 23, 80, 445, 1433, 2323, 3389, 5555, 8080}
)

// Destination ports of the attacks on the victim: its game port mapping
// (ddos) and a port forward to a server it runs (synflood).
const (
	ddosPort     = 27015
	synfloodPort = 443
)

// scenarioEvent appends one event of the scenario to dst, with times
// relative to the export instant inside the scenario's window (sc): one
// flow, or two for an SMTP session. Its random draws come from the
// scenario's stream.
func (m *Model) scenarioEvent(dst []store.Flow, sc scenarioNow) []store.Flow {
	r := m.srng
	wan := m.ifaces[0]
	s := &m.subs[m.target]
	switch m.cfg.Scenario {
	case ScenarioDDoS:
		src := randomPublic(r)
		rp := reflectorPorts[r.IntN(len(reflectorPorts))]
		size := uint64(rp.min + r.IntN(rp.max-rp.min+1))
		b := uint64(1e6 + 2e6*r.Float64())
		p := max(b/size, 1)
		start, end := m.scenarioTimes(10+50*r.Float64(), sc)
		return append(dst, store.Flow{Start: start, End: end, SrcAddr: src, DstAddr: m.wan,
			SrcPort: rp.port, DstPort: ddosPort, Proto: 17, InIf: wan.Index, OutIf: s.IfIndex,
			SrcMAC: m.gatewayMAC, DstMAC: wan.MAC, DstMask: m.localMask(s),
			Bytes: p * size, Packets: p,
			PostNATSrcAddr: src, PostNATSrcPort: rp.port, PostNATDstAddr: s.Addr, PostNATDstPort: ddosPort})
	case ScenarioSynflood:
		src := randomPublic(r)
		sport := uint16(1024 + r.IntN(64512))
		start, end := m.scenarioTimes(0, sc)
		return append(dst, store.Flow{Start: start, End: end, SrcAddr: src, DstAddr: m.wan,
			SrcPort: sport, DstPort: synfloodPort, Proto: 6, TCPFlags: 0x02, InIf: wan.Index, OutIf: s.IfIndex,
			SrcMAC: m.gatewayMAC, DstMAC: wan.MAC, DstMask: m.localMask(s),
			Bytes: uint64(40 + r.IntN(21)), Packets: 1,
			PostNATSrcAddr: src, PostNATSrcPort: sport, PostNATDstAddr: s.Addr, PostNATDstPort: synfloodPort})
	case ScenarioPortscan:
		dstAddr := randomPublic(r)
		port := scanPorts[r.IntN(len(scanPorts))]
		lport, natPort := ephemeral(r), uint16(1024+r.IntN(64511))
		sector := &m.ifaces[1+m.sectorIndex(s.Sector)]
		start, end := m.scenarioTimes(0, sc)
		return append(dst, store.Flow{Start: start, End: end, SrcAddr: s.Addr, DstAddr: dstAddr,
			SrcPort: lport, DstPort: port, Proto: 6, TCPFlags: 0x02, InIf: s.IfIndex, OutIf: wan.Index,
			SrcMAC: s.MAC, DstMAC: sector.MAC, SrcMask: m.localMask(s), NextHop: addr4(203, 0, 113, 1),
			Bytes: uint64(40 + r.IntN(21)), Packets: 1,
			PostNATSrcAddr: m.wan, PostNATSrcPort: natPort, PostNATDstAddr: dstAddr, PostNATDstPort: port})
	case ScenarioSpam:
		netIdx := netGoogleMail
		switch r.IntN(4) {
		case 0:
			netIdx = netMicrosoftMail
		case 1:
			netIdx = []int{netComcast, netDTAG, netOrange}[r.IntN(3)]
		}
		mx, _ := m.remote(r, netIdx, false)
		lport, natPort := ephemeral(r), ephemeral(r)
		b := uint64(2000 + r.IntN(30000))
		sector := &m.ifaces[1+m.sectorIndex(s.Sector)]
		start, end := m.scenarioTimes(1+4*r.Float64(), sc)
		return append(dst, store.Flow{Start: start, End: end, SrcAddr: s.Addr, DstAddr: mx,
			SrcPort: lport, DstPort: 25, Proto: 6, TCPFlags: 0x1b, InIf: s.IfIndex, OutIf: wan.Index,
			SrcMAC: s.MAC, DstMAC: sector.MAC, SrcMask: m.localMask(s), NextHop: addr4(203, 0, 113, 1),
			Bytes: b, Packets: pkts(float64(b), 600),
			PostNATSrcAddr: m.wan, PostNATSrcPort: natPort, PostNATDstAddr: mx, PostNATDstPort: 25},
			store.Flow{Start: min(start+30, end), End: end, SrcAddr: mx, DstAddr: m.wan,
				SrcPort: 25, DstPort: natPort, Proto: 6, TCPFlags: 0x1b, InIf: wan.Index, OutIf: s.IfIndex,
				SrcMAC: m.gatewayMAC, DstMAC: wan.MAC, DstMask: m.localMask(s),
				Bytes: 900 + uint64(r.IntN(800)), Packets: 8,
				PostNATSrcAddr: mx, PostNATSrcPort: 25, PostNATDstAddr: s.Addr, PostNATDstPort: lport})
	}
	return dst
}
