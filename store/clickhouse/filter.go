package clickhouse

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/flowbox/flowbox/store"
)

// mappedV4 is where IPv6 columns keep IPv4 addresses.
var mappedV4 = netip.MustParsePrefix("::ffff:0:0/96")

// filterSQL returns the conditions of f on the flows table, each after
// " AND ", matching exactly the flows store.Filter.Match passes (with
// src, local and remote as the columns hold them). Values are literals:
// numbers formatted, strings quoted.
func filterSQL(f *store.Filter) string {
	var b strings.Builder
	in := func(col string, vals []string) {
		if len(vals) > 0 {
			b.WriteString(" AND " + col + " IN (" + strings.Join(vals, ", ") + ")")
		}
	}
	either := func(a, c string, vals []string) {
		if len(vals) > 0 {
			list := strings.Join(vals, ", ")
			b.WriteString(" AND (" + a + " IN (" + list + ") OR " + c + " IN (" + list + "))")
		}
	}
	in("src", numbers(f.Sources))
	in("dir", numbers(f.Directions))
	either("in_if", "out_if", numbers(f.Interfaces))
	either("src_as", "dst_as", numbers(f.AS))
	either("src_port", "dst_port", numbers(f.Ports))
	in("proto", numbers(f.Protocols))
	if len(f.Hosts) > 0 {
		b.WriteString(" AND (" + prefixesSQL("local", f.Hosts) + " OR " + prefixesSQL("remote", f.Hosts) + ")")
	}
	if len(f.LocalHosts) > 0 {
		b.WriteString(" AND " + prefixesSQL("local", f.LocalHosts))
	}
	if len(f.RemoteHosts) > 0 {
		b.WriteString(" AND " + prefixesSQL("remote", f.RemoteHosts))
	}
	in("application", quoteAll(f.Applications))
	in("remote_country", quoteAll(f.Countries))
	in("subscriber", quoteAll(f.Subscribers))
	in("domain", quoteAll(f.Domains))
	return b.String()
}

// prefixesSQL returns a condition true when col is in one of the
// prefixes, as netip.Prefix.Contains: an IPv4 prefix holds IPv4 addresses
// only (kept as ::ffff:a.b.c.d), an IPv6 one IPv6 addresses only, and
// none holds an absent address (::).
func prefixesSQL(col string, ps []netip.Prefix) string {
	var or []string
	for _, p := range ps {
		p = p.Masked()
		lo, hi := prefixRange(p)
		c := col + " BETWEEN toIPv6('" + lo.String() + "') AND toIPv6('" + hi.String() + "')"
		if p.Addr().Is6() {
			if p.Overlaps(mappedV4) {
				c += " AND NOT (" + col + " BETWEEN toIPv6('::ffff:0.0.0.0') AND toIPv6('::ffff:255.255.255.255'))"
			}
			if p.Contains(netip.IPv6Unspecified()) {
				c += " AND " + col + " != toIPv6('::')"
			}
		}
		or = append(or, "("+c+")")
	}
	return "(" + strings.Join(or, " OR ") + ")"
}

// prefixRange returns the first and last address of p as IPv6 (IPv4
// mapped).
func prefixRange(p netip.Prefix) (lo, hi netip.Addr) {
	a := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	l, h := a, a
	for i := bits; i < 128; i++ {
		l[i/8] &^= 1 << (7 - i%8)
		h[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(l), netip.AddrFrom16(h)
}

type integer interface {
	~int64 | ~uint8 | ~uint16 | ~uint32
}

func numbers[T integer](vals []T) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strconv.FormatInt(int64(v), 10)
	}
	return out
}

func quoteAll(vals []string) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = quote(v)
	}
	return out
}

// quote returns s as a ClickHouse string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
