package routerostest

import (
	"net/netip"
	"regexp"
	"strconv"
	"time"
)

// Personality describes one fake router: what it answers and which RouterOS
// behaviours it has. The simulator fills one per router; tests usually start
// from V6 or V7 and change a few fields.
type Personality struct {
	Identity     string
	Version      string // as /system/resource prints it, e.g. "7.16.2 (stable)"
	BoardName    string
	Model        string
	Serial       string
	Architecture string
	// CHR routers (x86, cloud) have no /system/routerboard menu.
	CHR    bool
	Uptime time.Duration // uptime at start; it grows with the wall clock

	// Users and Groups; when Users is empty there is one user "admin" with
	// an empty password in group "full". The groups full, read and write
	// always exist, with RouterOS's default policies.
	Users  []User
	Groups []Group

	Interfaces []Interface
	Addresses  []Address
	Leases     []Lease
	PPP        []PPPSession
	Queues     []Queue
	ARP        []ARPEntry
	Pools      []Pool

	// IPv6 state (the ipv6 package). Every interface with a MAC address
	// also gets a dynamic link-local address (fe80::/64, EUI-64), as on
	// RouterOS. With NoIPv6 the package is disabled, as on many RouterOS 6
	// routers: the /ipv6 menus do not exist and printing them traps.
	IPv6Addresses  []Address
	IPv6Pools      []IPv6Pool
	DHCPv6Bindings []DHCPv6Binding
	NoIPv6         bool

	// AddressLists and Routes are the operator's own static firewall
	// address-list entries and routes (IPv4 or IPv6 by their address).
	AddressLists []AddressListEntry
	Routes       []Route

	// FilterRules are /ip/firewall/filter rules (coverage reads the
	// fasttrack-connection ones and their counters), and L3HWOffload the
	// switch chip's l3-hw-offloading (RouterOS 7).
	FilterRules []FilterRule
	L3HWOffload bool

	// TrafficFlow is the initial /ip/traffic-flow state; nil means the
	// RouterOS defaults (disabled, interfaces=all, 30m/15s, no target).
	TrafficFlow *TrafficFlowState

	// TLS serves API-SSL with a fresh self-signed certificate.
	TLS bool
	// Features overrides what is derived from Version (FeaturesFor).
	Features *Features
}

// Features are the version-dependent behaviours of the fake router.
type Features struct {
	// ChallengeLogin is the pre-6.43 two-step MD5 login.
	ChallengeLogin bool
	// LegacyTargets is the old target syntax `address=IP:port`; such a
	// router does not know dst-address, port and src-address.
	LegacyTargets bool
	// IPFIX is the /ip/traffic-flow/ipfix menu and packet sampling.
	IPFIX bool
	// EmptyReply sends `!empty` before `!done` on prints without rows
	// (RouterOS >= 7.18).
	EmptyReply bool
	// OIDs answers `<prop>.oid` in .proplist (e.g. name.oid on /interface).
	OIDs bool
	// MaxSessions bounds concurrent API sessions (v7 default 20).
	MaxSessions int
}

var versionRe = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`)

// ParseVersion returns the major, minor and patch numbers of a RouterOS
// version string such as "6.42.12 (long-term)" or "7.1beta4".
func ParseVersion(v string) (major, minor, patch int, ok bool) {
	m := versionRe.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		patch, _ = strconv.Atoi(m[3])
	}
	return major, minor, patch, true
}

// FeaturesFor derives the behaviours of a version. The fake follows the
// docs where they are firm (challenge login before 6.43, !empty from 7.18)
// and makes a choice where they are not: legacy target syntax and no
// name.oid before 6.43, the ipfix menu and sampling from 6.49.
func FeaturesFor(version string) Features {
	major, minor, _, ok := ParseVersion(version)
	if !ok {
		major, minor = 7, 16
	}
	old := major < 6 || (major == 6 && minor < 43)
	f := Features{
		ChallengeLogin: old,
		LegacyTargets:  old,
		IPFIX:          major > 6 || (major == 6 && minor >= 49),
		EmptyReply:     major > 7 || (major == 7 && minor >= 18),
		OIDs:           !old,
		MaxSessions:    20,
	}
	return f
}

// User is a RouterOS user.
type User struct {
	Name, Group, Password string
}

// Group is a RouterOS user group; Policy is a comma-separated list such as
// "api,read,write".
type Group struct {
	Name, Policy string
}

// Interface is one /interface entry. Index is its SNMP ifIndex; the fake
// uses it as the numeric part of .id too (*7 for ifIndex 7).
type Interface struct {
	Index    uint32
	Name     string
	Type     string // ether, bridge, vlan, pppoe-in, wlan...
	MAC      string
	Comment  string
	MTU      int
	Disabled bool
}

// Address is one /ip/address entry.
type Address struct {
	Address   netip.Prefix // router address with the network's length, e.g. 10.0.0.1/24
	Interface string
	Dynamic   bool
	Disabled  bool
}

// Lease is one /ip/dhcp-server/lease entry.
type Lease struct {
	Address  netip.Addr
	MAC      string
	HostName string
	Server   string
	Status   string // bound, waiting...
	Comment  string
	Dynamic  bool
}

// PPPSession is one /ppp/active entry.
type PPPSession struct {
	Name     string
	Service  string // pppoe, l2tp...
	CallerID string
	Address  netip.Addr
	Uptime   time.Duration
}

// Queue is one /queue/simple entry.
type Queue struct {
	Name     string
	Target   string // e.g. 10.0.0.20/32
	MaxLimit string // upload/download, e.g. 10M/20M
	Comment  string
}

// ARPEntry is one /ip/arp entry.
type ARPEntry struct {
	Address   netip.Addr
	MAC       string
	Interface string
	Dynamic   bool
}

// Pool is one /ip/pool entry.
type Pool struct {
	Name   string
	Ranges string // e.g. 10.0.0.10-10.0.0.250
}

// IPv6Pool is one /ipv6/pool entry: Prefix is handed out in pieces of
// PrefixLength bits (prefix delegation).
type IPv6Pool struct {
	Name         string
	Prefix       netip.Prefix // e.g. 2001:db8:100::/48
	PrefixLength int          // e.g. 64
}

// DHCPv6Binding is one /ipv6/dhcp-server/binding entry.
type DHCPv6Binding struct {
	// Address is printed as is: a delegated prefix ("2001:db8:1:100::/56")
	// or an address; tests may put anything there.
	Address string
	DUID    string // e.g. 0x00030001aabbcc000020 (DUID-LL)
	IAID    uint32
	// Server is the DHCPv6 server's name, or the dynamic "<pppoe-LOGIN>"
	// interface for a binding made over a PPPoE session.
	Server   string
	Status   string // bound, waiting...
	Comment  string
	Dynamic  bool
	Disabled bool
}

// TrafficFlowState is /ip/traffic-flow and its targets, parsed.
type TrafficFlowState struct {
	Enabled             bool
	Interfaces          string // "all" or a comma-separated list
	CacheEntries        string
	ActiveFlowTimeout   time.Duration
	InactiveFlowTimeout time.Duration
	PacketSampling      bool
	SamplingInterval    int
	SamplingSpace       int
	Targets             []Target
}

// Target is one /ip/traffic-flow/target entry. Legacy `address=IP:port`
// targets are parsed into DstAddress and Port.
type Target struct {
	ID              string
	DstAddress      netip.Addr
	Port            uint16
	SrcAddress      netip.Addr // 0.0.0.0: the router picks
	Version         string     // "1", "5", "9" or "ipfix"
	TemplateRefresh int
	TemplateTimeout time.Duration
	Disabled        bool
}

// DefaultTrafficFlow is what a fresh RouterOS has.
func DefaultTrafficFlow() TrafficFlowState {
	return TrafficFlowState{
		Interfaces:          "all",
		CacheEntries:        "4k",
		ActiveFlowTimeout:   30 * time.Minute,
		InactiveFlowTimeout: 15 * time.Second,
	}
}

// V7 returns a RouterOS 7 personality: a RB5009 with four interfaces and a
// few subscribers.
func V7(identity string) Personality {
	return Personality{
		Identity:     identity,
		Version:      "7.16.2 (stable)",
		BoardName:    "RB5009UG+S+",
		Model:        "RB5009UG+S+IN",
		Serial:       "HF1234567",
		Architecture: "arm64",
		Uptime:       3*24*time.Hour + 4*time.Hour,
		Interfaces: []Interface{
			{Index: 1, Name: "ether1", Type: "ether", MAC: "48:A9:8A:00:00:01", Comment: "uplink", MTU: 1500},
			{Index: 2, Name: "ether2", Type: "ether", MAC: "48:A9:8A:00:00:02", MTU: 1500},
			{Index: 7, Name: "bridge-lan", Type: "bridge", MAC: "48:A9:8A:00:00:03", MTU: 1500},
			{Index: 8388611, Name: "<pppoe-alice>", Type: "pppoe-in", MTU: 1480},
		},
		Addresses: []Address{
			{Address: netip.MustParsePrefix("127.0.0.1/8"), Interface: "ether1"},
			{Address: netip.MustParsePrefix("10.0.0.1/24"), Interface: "bridge-lan"},
		},
		Leases: []Lease{{Address: netip.MustParseAddr("10.0.0.20"), MAC: "AA:BB:CC:00:00:20", HostName: "bob-laptop", Server: "dhcp-lan", Status: "bound", Dynamic: true}},
		PPP:    []PPPSession{{Name: "alice", Service: "pppoe", CallerID: "AA:BB:CC:00:00:21", Address: netip.MustParseAddr("10.0.1.5"), Uptime: 5 * time.Hour}},
		Queues: []Queue{{Name: "alice", Target: "10.0.1.5/32", MaxLimit: "10M/20M", Comment: "plan 20M"}},
		ARP:    []ARPEntry{{Address: netip.MustParseAddr("10.0.0.20"), MAC: "AA:BB:CC:00:00:20", Interface: "bridge-lan", Dynamic: true}},
		Pools:  []Pool{{Name: "dhcp-lan", Ranges: "10.0.0.10-10.0.0.250"}},
	}
}

// V6 returns an old RouterOS 6 personality (6.42.12): challenge login,
// legacy `address=IP:port` targets, no ipfix menu, no name.oid.
func V6(identity string) Personality {
	p := V7(identity)
	p.Version = "6.42.12 (long-term)"
	p.BoardName = "RB951Ui-2HnD"
	p.Model = "951Ui-2HnD"
	p.Serial = "5E1234567"
	p.Architecture = "mipsbe"
	return p
}
