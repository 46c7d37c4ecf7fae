package netflow

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Hand-built export datagrams for tests and benchmarks.

var be = binary.BigEndian

// fld is a template field: IE id, length and enterprise number (0: IANA).
type fld struct {
	id, length uint16
	pen        uint32
}

// v9Header returns a NetFlow v9 header; count is written as given (never
// trusted by the decoder).
func v9Header(count uint16, uptime, secs, seq, source uint32) []byte {
	b := be.AppendUint16(nil, 9)
	b = be.AppendUint16(b, count)
	b = be.AppendUint32(b, uptime)
	b = be.AppendUint32(b, secs)
	b = be.AppendUint32(b, seq)
	return be.AppendUint32(b, source)
}

// ipfixMessage returns an IPFIX message with the given sets.
func ipfixMessage(export, seq, domain uint32, sets ...[]byte) []byte {
	b := be.AppendUint16(nil, 10)
	b = be.AppendUint16(b, 0)
	b = be.AppendUint32(b, export)
	b = be.AppendUint32(b, seq)
	b = be.AppendUint32(b, domain)
	for _, s := range sets {
		b = append(b, s...)
	}
	be.PutUint16(b[2:], uint16(len(b)))
	return b
}

// v9Packet returns a v9 datagram with the given flowsets.
func v9Packet(uptime, secs, seq, source uint32, sets ...[]byte) []byte {
	b := v9Header(uint16(len(sets)), uptime, secs, seq, source)
	for _, s := range sets {
		b = append(b, s...)
	}
	return b
}

// set wraps body in a set header, padded with pad zero bytes.
func set(id uint16, pad int, bodies ...[]byte) []byte {
	var body []byte
	for _, x := range bodies {
		body = append(body, x...)
	}
	body = append(body, make([]byte, pad)...)
	b := be.AppendUint16(nil, id)
	b = be.AppendUint16(b, uint16(4+len(body)))
	return append(b, body...)
}

// tmpl returns a template record (v9 or IPFIX).
func tmpl(id uint16, fields ...fld) []byte {
	b := be.AppendUint16(nil, id)
	b = be.AppendUint16(b, uint16(len(fields)))
	return appendFields(b, fields)
}

func appendFields(b []byte, fields []fld) []byte {
	for _, f := range fields {
		if f.pen != 0 {
			b = be.AppendUint16(b, f.id|0x8000)
			b = be.AppendUint16(b, f.length)
			b = be.AppendUint32(b, f.pen)
			continue
		}
		b = be.AppendUint16(b, f.id)
		b = be.AppendUint16(b, f.length)
	}
	return b
}

// v9OptTmpl returns a v9 options template record.
func v9OptTmpl(id uint16, scope, options []fld) []byte {
	b := be.AppendUint16(nil, id)
	b = be.AppendUint16(b, uint16(4*len(scope)))
	b = be.AppendUint16(b, uint16(4*len(options)))
	b = appendFields(b, scope)
	return appendFields(b, options)
}

// ipfixOptTmpl returns an IPFIX options template record.
func ipfixOptTmpl(id uint16, scope, options []fld) []byte {
	b := be.AppendUint16(nil, id)
	b = be.AppendUint16(b, uint16(len(scope)+len(options)))
	b = be.AppendUint16(b, uint16(len(scope)))
	b = appendFields(b, scope)
	return appendFields(b, options)
}

// u returns v as an n-byte big-endian value.
func u(n int, v uint64) []byte {
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

func ip4(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }
func ip6(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// routerOSv9Fields is a RouterOS-shaped v9 template (routeros.md 4.4):
// 20 fields, 51-byte records (2-byte interfaces, unpadded).
var routerOSv9Fields = []fld{
	{22, 4, 0}, {21, 4, 0}, {2, 4, 0}, {1, 4, 0}, {7, 2, 0}, {11, 2, 0},
	{10, 2, 0}, {14, 2, 0}, {4, 1, 0}, {6, 1, 0}, {8, 4, 0}, {12, 4, 0},
	{15, 4, 0}, {5, 1, 0}, {13, 1, 0}, {9, 1, 0}, {225, 4, 0}, {226, 4, 0},
	{227, 2, 0}, {228, 2, 0},
}

// routerOSv9Record returns one record of routerOSv9Fields for flow i.
func routerOSv9Record(i int, uptime uint32) []byte {
	return cat(
		u(4, uint64(uptime-10000)), u(4, uint64(uptime-1000)), u(4, 3), u(4, uint64(1000+i)),
		u(2, uint64(40000+i)), u(2, 443), u(2, 1), u(2, 2), u(1, 6), u(1, 0x18),
		ip4("192.168.88.10"), ip4("203.0.113.7"), ip4("198.51.100.1"),
		u(1, 0), u(1, 24), u(1, 24), ip4("198.51.100.2"), ip4("203.0.113.7"),
		u(2, uint64(50000+i)), u(2, 443),
	)
}

// mikrotikIPFIXFields is the RouterOS 6.39.2 IPFIX template 258
// (routeros.md 4.2): 16 fields, 51-byte records.
var mikrotikIPFIXFields = []fld{
	{60, 1, 0}, {22, 4, 0}, {21, 4, 0}, {2, 4, 0}, {1, 4, 0}, {7, 2, 0}, {11, 2, 0},
	{10, 4, 0}, {14, 4, 0}, {4, 1, 0}, {6, 1, 0}, {8, 4, 0}, {12, 4, 0}, {15, 4, 0},
	{225, 4, 0}, {226, 4, 0},
}

func mikrotikIPFIXRecord(i int) []byte {
	return cat(
		u(1, 4), u(4, 2666794170), u(4, 2666799170), u(4, 2), u(4, uint64(152+i)),
		u(2, 123), u(2, 123), u(4, 0), u(4, 9), u(1, 17), u(1, 0),
		ip4("10.10.8.197"), ip4("192.168.128.17"), ip4("10.10.8.1"),
		ip4("10.10.8.197"), ip4("192.168.128.17"),
	)
}

var (
	exporterA = netip.MustParseAddrPort("192.0.2.1:40000")
	exporterB = netip.MustParseAddrPort("192.0.2.2:40000")
	tNow      = time.Unix(1_700_000_000, 0)
)
