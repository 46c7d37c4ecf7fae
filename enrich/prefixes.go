package enrich

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/flowbox/flowbox/enrich/geodata"
)

// Labels used instead of a country for addresses that are not looked up.
const (
	LabelPrivate   = "private"    // RFC 1918, IPv6 ULA fc00::/7
	LabelCGNAT     = "cgnat"      // 100.64.0.0/10 (RFC 6598)
	LabelLoopback  = "loopback"   // 127.0.0.0/8, ::1
	LabelLinkLocal = "link-local" // 169.254.0.0/16, fe80::/10
	LabelMulticast = "multicast"  // 224.0.0.0/4, ff00::/8
	LabelBroadcast = "broadcast"  // 255.255.255.255
	LabelBogon     = "bogon"      // reserved, documentation and unallocated special ranges
)

// specialRange is one range labelled instead of looked up.
type specialRange struct {
	prefix netip.Prefix
	label  string
}

// specialRanges are checked in order (the first match wins), so more
// specific ranges come first.
var specialRanges = func() []specialRange {
	list := []struct{ p, l string }{
		{"255.255.255.255/32", LabelBroadcast},
		{"10.0.0.0/8", LabelPrivate},
		{"172.16.0.0/12", LabelPrivate},
		{"192.168.0.0/16", LabelPrivate},
		{"100.64.0.0/10", LabelCGNAT},
		{"127.0.0.0/8", LabelLoopback},
		{"169.254.0.0/16", LabelLinkLocal},
		{"224.0.0.0/4", LabelMulticast},
		{"0.0.0.0/8", LabelBogon},       // "this network"
		{"192.0.0.0/24", LabelBogon},    // IETF protocol assignments
		{"192.0.2.0/24", LabelBogon},    // TEST-NET-1
		{"198.18.0.0/15", LabelBogon},   // benchmarking
		{"198.51.100.0/24", LabelBogon}, // TEST-NET-2
		{"203.0.113.0/24", LabelBogon},  // TEST-NET-3
		{"240.0.0.0/4", LabelBogon},     // reserved
		{"::1/128", LabelLoopback},
		{"::/128", LabelBogon},
		{"fc00::/7", LabelPrivate},
		{"fe80::/10", LabelLinkLocal},
		{"ff00::/8", LabelMulticast},
		{"2001:db8::/32", LabelBogon}, // documentation
		{"100::/64", LabelBogon},      // discard-only
		{"::ffff:0:0/96", LabelBogon}, // IPv4-mapped (never on the wire)
		{"2001:10::/28", LabelBogon},  // ORCHID
		{"3fff::/20", LabelBogon},     // documentation (RFC 9637)
		{"5f00::/16", LabelBogon},     // SRv6 SIDs
		{"fec0::/10", LabelBogon},     // deprecated site-local
		{"0000::/8", LabelBogon},      // reserved by IETF (after ::1, :: above)
	}
	out := make([]specialRange, len(list))
	for i, e := range list {
		out[i] = specialRange{netip.MustParsePrefix(e.p), e.l}
	}
	return out
}()

// specialIndex finds the special range of an address by its first byte:
// most public addresses are rejected by one array access, and the others
// check the few ranges that share their first byte.
type specialIndex struct {
	// whole[b] is the label of every address whose first byte is b, when
	// the first range matching such addresses covers them all.
	whole [256]string
	// partial[b] lists, in specialRanges order, the ranges that cover part
	// of the addresses whose first byte is b (only when whole[b] is "").
	partial [256][]specialRange
}

// newSpecialIndex builds the index of one address family's ranges.
func newSpecialIndex(ranges []specialRange, is4 bool) *specialIndex {
	idx := &specialIndex{}
	for b := range 256 {
		for _, r := range ranges {
			if r.prefix.Addr().Is4() != is4 {
				continue
			}
			first := int(r.prefix.Addr().AsSlice()[0])
			if r.prefix.Bits() >= 8 {
				if first == b {
					idx.partial[b] = append(idx.partial[b], r)
				}
				continue
			}
			// The range covers whole first bytes: all of b's addresses, or
			// none of them.
			span := 1 << (8 - r.prefix.Bits())
			if b < first || b >= first+span {
				continue
			}
			if len(idx.partial[b]) == 0 {
				idx.whole[b] = r.label
			} else {
				idx.partial[b] = append(idx.partial[b], r)
			}
			break // nothing after a range that covers all of b matters
		}
	}
	return idx
}

// label returns the label of a (of the index's family), "" when none.
func (idx *specialIndex) label(a netip.Addr, first byte) string {
	if l := idx.whole[first]; l != "" {
		return l
	}
	for _, r := range idx.partial[first] {
		if r.prefix.Contains(a) {
			return r.label
		}
	}
	return ""
}

var (
	special4 = newSpecialIndex(specialRanges, true)
	special6 = newSpecialIndex(specialRanges, false)
)

// SpecialLabel returns the label of an address that must not be looked up
// (private, CGNAT, loopback, link-local, multicast, broadcast or bogon
// space), or "" for an address that may be.
func SpecialLabel(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	if a.Is4() {
		return special4.label(a, a.As4()[0])
	}
	return special6.label(a, a.As16()[0])
}

// linkScope reports addresses that never leave the router's links:
// link-local, multicast and the limited broadcast. They count as the local
// side when deciding a flow's direction.
func linkScope(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLinkLocalUnicast() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

type range4 struct{ lo, hi uint32 }
type range6 struct{ lo, hi geodata.U128 }

// prefixSet is an immutable set of address ranges searched by binary
// search; the customer (local) side of flows.
type prefixSet struct {
	v4 []range4
	v6 []range6
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:])
		if p.Bits() < 32 {
			v |= 1<<(32-p.Bits()) - 1
		}
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b)
}

// addrRange is an inclusive range of one family.
type addrRange struct{ from, to netip.Addr }

// prefixRange returns the range of p.
func prefixRange(p netip.Prefix) addrRange {
	p = netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked()
	return addrRange{p.Addr(), lastAddr(p)}
}

// parseRanges parses a RouterOS range list ("10.0.0.10-10.0.0.250",
// "10.1.0.0/24", "10.2.0.1", comma-separated).
func parseRanges(s string) ([]addrRange, error) {
	var out []addrRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		r, err := parseRange(part)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRange(s string) (addrRange, error) {
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(from))
		b, err2 := netip.ParseAddr(strings.TrimSpace(to))
		if err1 != nil || err2 != nil || a.Unmap().Is4() != b.Unmap().Is4() || b.Unmap().Less(a.Unmap()) {
			return addrRange{}, fmt.Errorf("invalid address range %q", s)
		}
		return addrRange{a.Unmap(), b.Unmap()}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return addrRange{}, fmt.Errorf("invalid prefix %q: %w", s, err)
		}
		return prefixRange(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return addrRange{}, fmt.Errorf("invalid address %q: %w", s, err)
	}
	return addrRange{a.Unmap(), a.Unmap()}, nil
}

// newPrefixSet builds a set from ranges, merging overlaps.
func newPrefixSet(ranges []addrRange) *prefixSet {
	s := &prefixSet{}
	for _, r := range ranges {
		if !r.from.IsValid() || !r.to.IsValid() {
			continue
		}
		if r.from.Is4() {
			s.v4 = append(s.v4, range4{addrU32(r.from), addrU32(r.to)})
		} else {
			s.v6 = append(s.v6, range6{geodata.U128From(r.from), geodata.U128From(r.to)})
		}
	}
	slices.SortFunc(s.v4, func(a, b range4) int { return cmpU32(a.lo, b.lo) })
	merged4 := s.v4[:0]
	for _, r := range s.v4 {
		if n := len(merged4); n > 0 && (r.lo <= merged4[n-1].hi || r.lo == merged4[n-1].hi+1) {
			merged4[n-1].hi = max(merged4[n-1].hi, r.hi)
			continue
		}
		merged4 = append(merged4, r)
	}
	s.v4 = merged4
	slices.SortFunc(s.v6, func(a, b range6) int {
		if a.lo.Less(b.lo) {
			return -1
		}
		if b.lo.Less(a.lo) {
			return 1
		}
		return 0
	})
	merged6 := s.v6[:0]
	for _, r := range s.v6 {
		if n := len(merged6); n > 0 && !merged6[n-1].hi.Less(r.lo) {
			if merged6[n-1].hi.Less(r.hi) {
				merged6[n-1].hi = r.hi
			}
			continue
		}
		merged6 = append(merged6, r)
	}
	s.v6 = merged6
	return s
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// empty reports whether the set holds no range.
func (s *prefixSet) empty() bool { return len(s.v4) == 0 && len(s.v6) == 0 }

// contains reports whether a is in the set.
func (s *prefixSet) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.Is4() {
		v := addrU32(a)
		lo, hi := 0, len(s.v4)
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if s.v4[m].lo <= v {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo > 0 && v <= s.v4[lo-1].hi
	}
	v := geodata.U128From(a)
	lo, hi := 0, len(s.v6)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !v.Less(s.v6[m].lo) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo > 0 && !s.v6[lo-1].hi.Less(v)
}

// count returns the number of merged ranges.
func (s *prefixSet) count() int { return len(s.v4) + len(s.v6) }

// atomicPrefixSet holds the current local prefix set.
type atomicPrefixSet struct{ p atomic.Pointer[prefixSet] }

// Load returns the current set.
func (a *atomicPrefixSet) Load() *prefixSet { return a.p.Load() }

// Store replaces the set.
func (a *atomicPrefixSet) Store(s *prefixSet) { a.p.Store(s) }
