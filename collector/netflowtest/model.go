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

// Scenarios of unusual traffic the model can mix in.
const (
	ScenarioNone     = ""
	ScenarioDDoS     = "ddos"     // many sources -> one subscriber, UDP reflection
	ScenarioPortscan = "portscan" // one remote -> many ports of the public address
	ScenarioSpam     = "spam"     // one subscriber -> many remote :25
)

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
	// Scenario mixes in unusual traffic: "", "ddos", "portscan" or "spam".
	Scenario string
	// ScenarioShare is the fraction of flows that belong to the scenario;
	// default 0.3.
	ScenarioShare float64
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
	if c.PPPoEShare > 1 {
		errs = append(errs, fmt.Errorf("pppoe-share: %g is above 1", c.PPPoEShare))
	}
	if c.Sectors < 0 || c.Sectors > 16 {
		errs = append(errs, fmt.Errorf("sectors: %d is outside 1..16", c.Sectors))
	}
	if c.IPv6Share > 1 {
		errs = append(errs, fmt.Errorf("ipv6-share: %g is above 1", c.IPv6Share))
	}
	switch c.Scenario {
	case ScenarioNone, ScenarioDDoS, ScenarioPortscan, ScenarioSpam:
	default:
		errs = append(errs, fmt.Errorf("scenario: %q is not one of ddos, portscan, spam", c.Scenario))
	}
	if c.ScenarioShare < 0 || c.ScenarioShare > 1 {
		errs = append(errs, fmt.Errorf("scenario-share: %g is outside 0..1", c.ScenarioShare))
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

	// Flow generation state, guarded by mu.
	mu       sync.Mutex
	rng      *rand.Rand
	zipf     *rand.Zipf
	pending  []store.Flow // generated flows, times relative to the export instant
	pendPos  int          // next flow of pending to hand out
	scanPort uint16
	victim   int
	spammer  int
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
	if cfg.ScenarioShare == 0 {
		cfg.ScenarioShare = 0.3
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
	m.victim = m.byRank[len(m.byRank)/3]
	m.spammer = m.byRank[len(m.byRank)/2]
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
func (m *Model) AppendFlows(dst []store.Flow, n int, now time.Time) []store.Flow {
	m.mu.Lock()
	defer m.mu.Unlock()
	nowMs := now.UnixMilli()
	act := -1.0 // read from the daily curve once, when a session needs it
	for n > 0 {
		if m.pendPos == len(m.pending) {
			m.pending, m.pendPos = m.pending[:0], 0
			if act < 0 {
				act = m.ActivityAt(now)
			}
			m.session(act)
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
func (m *Model) hostIn(p netip.Prefix) netip.Addr {
	bits := p.Addr().BitLen() - p.Bits()
	if bits == 0 {
		return p.Addr()
	}
	a := p.Addr().As16()
	span := uint64(1) << min(bits, 16)
	off := 1 + m.rng.Uint64N(span-1)
	if bits > 16 {
		off += m.rng.Uint64N(1<<min(bits-16, 16)) << 16
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

func (m *Model) remote(netIdx int, v6 bool) (netip.Addr, bool) {
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
	return m.hostIn(c[m.rng.IntN(len(c))]), true
}

func (m *Model) lognormal(median, sigma float64) float64 {
	if sigma == 0 {
		return median
	}
	return median * math.Exp(sigma*m.rng.NormFloat64())
}

func (m *Model) ephemeral() uint16 { return uint16(32768 + m.rng.IntN(28232)) }

// session generates one conversation (usually a download and an upload
// flow) into m.pending, with times relative to the export instant; act is
// the daily curve's activity at that instant.
func (m *Model) session(act float64) {
	u := m.rng.Float64()
	switch {
	case m.cfg.Scenario != ScenarioNone && u < m.cfg.ScenarioShare:
		m.scenario()
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
	v6 := a.v6 && sub.Addr6.IsValid() && m.rng.Float64() < m.cfg.IPv6Share
	netIdx := a.nets[m.pick(a.netW)]
	remote, ok := m.remote(netIdx, v6)
	if !ok {
		v6 = false
		remote, _ = m.remote(netIdx, false)
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
	lport := m.ephemeral()
	if a.name == "ntp" && m.rng.IntN(2) == 0 {
		lport = 123
	}
	dur := m.lognormal(a.durMedian, 0.8)
	// A flow cannot carry more than the customer's plan allows.
	down := m.lognormal(a.downMedian, a.downSigma)
	down = min(max(down, 60), float64(sub.planDown)/8*max(dur, 1), 1.5e9)
	up := min(max(down*a.upRatio*(0.7+0.6*m.rng.Float64()), 40), float64(sub.planUp)/8*max(dur, 1))
	start, end := m.times(dur)
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
		remote, _ := m.remote(netIdx, false)
		lport := m.ephemeral()
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
		sub := &m.subs[m.byRank[m.zipf.Uint64()]]
		gw := m.sectorGW[m.sectorIndex(sub.Sector)]
		lport := m.ephemeral()
		m.pending = append(m.pending,
			store.Flow{Start: start, End: end, SrcAddr: sub.Addr, DstAddr: gw, SrcPort: lport, DstPort: 53,
				Proto: 17, InIf: sub.IfIndex, OutIf: 0, Bytes: 74, Packets: 1, SrcMAC: sub.MAC, SrcMask: m.localMask(sub),
				PostNATSrcAddr: sub.Addr, PostNATDstAddr: gw, PostNATSrcPort: lport, PostNATDstPort: 53},
			store.Flow{Start: min(start+2, end), End: end, SrcAddr: gw, DstAddr: sub.Addr, SrcPort: 53, DstPort: lport,
				Proto: 17, InIf: 0, OutIf: sub.IfIndex, Bytes: 190, Packets: 1, DstMask: m.localMask(sub),
				PostNATSrcAddr: gw, PostNATDstAddr: sub.Addr, PostNATSrcPort: 53, PostNATDstPort: lport})
	}
}

// randomPublic returns a random unicast address outside reserved ranges,
// for attack sources.
func (m *Model) randomPublic() netip.Addr {
	for {
		v := m.rng.Uint32()
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

// scenario generates one flow of the configured attack.
func (m *Model) scenario() {
	wan := m.ifaces[0]
	switch m.cfg.Scenario {
	case ScenarioDDoS:
		v := &m.subs[m.victim]
		src := m.randomPublic()
		reflect := [...]uint16{123, 53, 1900, 11211, 389, 19}
		sport := reflect[m.rng.IntN(len(reflect))]
		p := uint64(20 + m.rng.IntN(3000))
		start, end := m.times(30 + 60*m.rng.Float64())
		m.pending = append(m.pending, store.Flow{Start: start, End: end, SrcAddr: src, DstAddr: m.wan,
			SrcPort: sport, DstPort: 27015, Proto: 17, InIf: wan.Index, OutIf: v.IfIndex,
			SrcMAC: m.gatewayMAC, DstMAC: wan.MAC, DstMask: m.localMask(v),
			Bytes: p * uint64(468+m.rng.IntN(1000)), Packets: p,
			PostNATSrcAddr: src, PostNATSrcPort: sport, PostNATDstAddr: v.Addr, PostNATDstPort: 27015})
	case ScenarioPortscan:
		scanner := netip.AddrFrom4([4]byte{167, 99, 41, 203})
		m.scanPort++
		if m.scanPort == 0 {
			m.scanPort = 1
		}
		start, end := m.times(0)
		m.pending = append(m.pending, store.Flow{Start: start, End: end, SrcAddr: scanner, DstAddr: m.wan,
			SrcPort: 54321, DstPort: m.scanPort, Proto: 6, TCPFlags: 0x02, InIf: wan.Index, OutIf: 0,
			SrcMAC: m.gatewayMAC, DstMAC: wan.MAC, DstMask: 24, Bytes: 44, Packets: 1,
			PostNATSrcAddr: scanner, PostNATSrcPort: 54321, PostNATDstAddr: m.wan, PostNATDstPort: m.scanPort})
	case ScenarioSpam:
		s := &m.subs[m.spammer]
		netIdx := netGoogleMail
		switch m.rng.IntN(4) {
		case 0:
			netIdx = netMicrosoftMail
		case 1:
			netIdx = []int{netComcast, netDTAG, netOrange}[m.rng.IntN(3)]
		}
		mx, _ := m.remote(netIdx, false)
		lport, natPort := m.ephemeral(), m.ephemeral()
		b := uint64(2000 + m.rng.IntN(30000))
		start, end := m.times(1 + 4*m.rng.Float64())
		m.pending = append(m.pending, store.Flow{Start: start, End: end, SrcAddr: s.Addr, DstAddr: mx,
			SrcPort: lport, DstPort: 25, Proto: 6, TCPFlags: 0x1b, InIf: s.IfIndex, OutIf: wan.Index,
			SrcMAC: s.MAC, SrcMask: m.localMask(s), NextHop: addr4(203, 0, 113, 1),
			Bytes: b, Packets: pkts(float64(b), 600),
			PostNATSrcAddr: m.wan, PostNATSrcPort: natPort, PostNATDstAddr: mx, PostNATDstPort: 25},
			store.Flow{Start: min(start+30, end), End: end, SrcAddr: mx, DstAddr: m.wan,
				SrcPort: 25, DstPort: natPort, Proto: 6, TCPFlags: 0x1b, InIf: wan.Index, OutIf: s.IfIndex,
				DstMask: m.localMask(s), Bytes: 900 + uint64(m.rng.IntN(800)), Packets: 8,
				PostNATSrcAddr: mx, PostNATSrcPort: 25, PostNATDstAddr: s.Addr, PostNATDstPort: lport})
	}
}
