package store

import (
	"strconv"
	"strings"
)

// protocols are the IP protocol keywords flowbox knows (IANA "Assigned
// Internet Protocol Numbers"), the one table behind ProtoName and
// ParseProto: flow labels, API filters, the console and the application
// table all use it.
var protocols = [...]struct {
	num  uint8
	name string
}{
	{1, "icmp"}, {2, "igmp"}, {4, "ipip"}, {6, "tcp"}, {17, "udp"}, {41, "ipv6"}, {47, "gre"},
	{50, "esp"}, {51, "ah"}, {58, "icmpv6"}, {89, "ospf"}, {112, "vrrp"}, {115, "l2tp"}, {132, "sctp"},
}

// protoAliases are other spellings ParseProto accepts.
var protoAliases = map[string]uint8{"ipv6-icmp": 58, "icmp6": 58, "ipencap": 4}

// ProtoName names an IP protocol number: its keyword for the protocols in
// the table ("tcp", "igmp"), else the number ("99"), which ParseProto reads
// back.
func ProtoName(p uint8) string {
	for _, e := range protocols {
		if e.num == p {
			return e.name
		}
	}
	return strconv.Itoa(int(p))
}

// ParseProto parses a protocol keyword (any case, with a few aliases such
// as "ipv6-icmp") or a number from 0 to 255.
func ParseProto(s string) (uint8, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, e := range protocols {
		if e.name == s {
			return e.num, true
		}
	}
	if n, ok := protoAliases[s]; ok {
		return n, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, false
	}
	return uint8(n), true
}
