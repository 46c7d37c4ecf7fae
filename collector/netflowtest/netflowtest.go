// Package netflowtest emits flow exports the way a MikroTik RouterOS router
// does, quirks included, so that flowbox can be tested and demonstrated
// without a real router.
//
// It has four parts:
//
//   - Encoder turns store.Flow values into NetFlow v5, NetFlow v9 or IPFIX
//     export packets laid out as RouterOS sends them: uptime-relative
//     timestamps, post-NAT fields, ifIndex 0 for the router's own traffic,
//     template ids 256/257 (v9) and 258/259 (IPFIX, unpadded 51/79-byte
//     records as in the RouterOS 6.39.2 capture), per-exporter sequence
//     numbers, observation domain 0 and packets of at most 1472 bytes. It has
//     an append-style API and makes no allocation per packet.
//   - Model is a deterministic traffic model of a wireless ISP (subscribers
//     behind CGNAT, Zipf heavy hitters, a daily curve, an application mix
//     towards the real networks of the big content providers, optional attack
//     scenarios). It also exposes the router state (interfaces, addresses,
//     DHCP leases, PPPoE sessions) that the flows are consistent with.
//   - Exporter sends a model's flows over UDP from a chosen local address to
//     one or more targets at a given rate, and can be reconfigured while it
//     runs.
//   - PcapWriter writes export packets into a pcap file (Ethernet, IPv4, UDP
//     framing) so that external tools such as tshark can read them.
//
// The package is for tests and for `flowbox simulate`; production code does
// not import it.
package netflowtest

// Export versions, as the Version field of store.Flow and the NetFlow header
// carry them.
const (
	V5    = 5
	V9    = 9
	IPFIX = 10
)

// Template ids. RouterOS 6.39.2 uses 258 and 259 for IPFIX (captured); the
// v9 ids are the first ones a v9 exporter may use, as collectors report for
// MikroTik.
const (
	TemplateV9IPv4    uint16 = 256
	TemplateV9IPv6    uint16 = 257
	TemplateIPFIXIPv4 uint16 = 258
	TemplateIPFIXIPv6 uint16 = 259
)

// MaxPacketSize is the largest UDP payload RouterOS sends: a 1500-byte
// Ethernet MTU less the IPv4 and UDP headers.
const MaxPacketSize = 1472
