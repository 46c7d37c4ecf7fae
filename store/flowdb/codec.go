package flowdb

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// Raw rows, format 2 (tables raw_YYYYMMDDHHMM): (id INTEGER PRIMARY KEY,
// x BLOB). id is assigned by the writer in arrival order, from 1 without
// gaps; x is the whole flow. Counters are raw, not scaled.
//
//	x[0:3]  t: end time in ms from the partition start, 24-bit big endian
//	        (first, so that SQL can filter and sort on substr(x, 1, 3))
//	x[3]    bits 0-1: kind of a, the local address of Flow.LocalRemote
//	        (0 none, 1 IPv4, 2 IPv6); bits 2-3: kind of b, the remote
//	        address; bits 4-6: direction; bit 7: a sampling rate follows
//	x[4:6]  little-endian modes: bits 0-2 source address, 3-5 destination,
//	        6-8 post-NAT source, 9-11 post-NAT destination (addrNone...
//	        addrV6 below); bits 12-13 post-NAT source port, 14-15 post-NAT
//	        destination port (portNone... portExplicit)
//	a, b    0, 4 or 16 bytes each
//	then, for each address in mode addrDict a uvarint id (table addrs), in
//	addrV4/addrV6 its 4 or 16 bytes, in the order source, destination,
//	post-NAT source, post-NAT destination; then uvarints duration (zigzag,
//	end - start), exporter id, router id; source and destination ports (2
//	bytes each); protocol and TCP flags (1 byte each); uvarints in and out
//	interface, source and destination AS, bytes, packets, [sampling rate],
//	subscriber, application, source and destination country name ids; then
//	the explicit post-NAT ports (2 bytes each).
//
// Most addresses of a flow are a or b, or repeat another field (RouterOS
// puts the remote address in both the destination and the post-NAT
// destination of an upload): they cost 3 bits. The router's own public
// address, which NAT makes explicit in every flow, is interned in addrs.
//
// Format 1 (tables flows_YYYYMMDDHHMM, flowbox before the host index) is
// only read: (id, t, a, b, x) with x as decodeRawV1 reads it.

// Address modes of the format 2 encoding.
const (
	addrNone  = iota // zero Addr
	addrIsA          // the a column (local)
	addrIsB          // the b column (remote)
	addrIsSrc        // same as the source address
	addrIsDst        // same as the destination address
	addrDict         // interned: uvarint id in table addrs
	addrV4           // 4 literal bytes
	addrV6           // 16 literal bytes
)

// Port modes of the post-NAT ports.
const (
	portNone     = iota // 0
	portIsSrc           // same as the source port
	portIsDst           // same as the destination port
	portExplicit        // 2 literal bytes
)

const (
	kindNone = 0
	kindV4   = 1
	kindV6   = 2

	flagSampled = 1 << 7
	// rawTagDomain tags the trailing field of the remote domain's name id.
	rawTagDomain = 1

	// rawHeadLen is the fixed part of x before the a and b addresses.
	rawHeadLen = 6
	// maxRowT is the largest t of the 24-bit field.
	maxRowT = 1<<24 - 1
)

// rawNames are the interned name ids of a flow.
type rawNames struct {
	sub, app, scc, dcc, dom uint64
}

// addrBytes returns the 4 or 16 bytes of a (nil for the zero Addr).
func addrBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap()
	return a.AsSlice()
}

func addrKind(a netip.Addr) byte {
	switch {
	case !a.IsValid():
		return kindNone
	case a.Is4():
		return kindV4
	}
	return kindV6
}

func appendAddrRaw(dst []byte, a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append(dst, b[:]...)
	}
	if a.IsValid() {
		b := a.As16()
		return append(dst, b[:]...)
	}
	return dst
}

// addrDicter interns explicit addresses; ok is false when the dictionary
// is full (the address is then written literally).
type addrDicter interface {
	addrID(a netip.Addr) (uint64, bool)
}

// flowAddrs returns the four addresses of f that the row encodes, unmapped.
func flowAddrs(f *store.Flow) [4]netip.Addr {
	return [4]netip.Addr{f.SrcAddr.Unmap(), f.DstAddr.Unmap(), f.PostNATSrcAddr.Unmap(), f.PostNATDstAddr.Unmap()}
}

// addrModeOf picks the cheapest mode for field i of addrs.
func addrModeOf(addrs *[4]netip.Addr, i int, local, remote netip.Addr, dict addrDicter) (mode int, id uint64) {
	x := addrs[i]
	switch {
	case !x.IsValid():
		return addrNone, 0
	case x == local:
		return addrIsA, 0
	case x == remote:
		return addrIsB, 0
	case i > 0 && x == addrs[0]:
		return addrIsSrc, 0
	case i > 1 && x == addrs[1]:
		return addrIsDst, 0
	}
	if dict != nil {
		if id, ok := dict.addrID(x); ok {
			return addrDict, id
		}
	}
	if x.Is4() {
		return addrV4, 0
	}
	return addrV6, 0
}

func portMode(p, src, dst uint16) int {
	switch {
	case p == 0:
		return portNone
	case p == src:
		return portIsSrc
	case p == dst:
		return portIsDst
	}
	return portExplicit
}

// encodeRaw appends the format 2 x column of f to dst. t is the end time in
// ms from the partition start (0 <= t <= maxRowT); local and remote are the
// unmapped addresses of f.LocalRemote.
func encodeRaw(dst []byte, f *store.Flow, t int64, local, remote netip.Addr, expID int64, n rawNames, dict addrDicter) []byte {
	addrs := flowAddrs(f)
	var modes uint16
	var ids [4]uint64
	for i := range addrs {
		m, id := addrModeOf(&addrs, i, local, remote, dict)
		modes |= uint16(m) << (3 * i)
		ids[i] = id
	}
	nsp := portMode(f.PostNATSrcPort, f.SrcPort, f.DstPort)
	ndp := portMode(f.PostNATDstPort, f.SrcPort, f.DstPort)
	modes |= uint16(nsp)<<12 | uint16(ndp)<<14
	kinds := addrKind(local) | addrKind(remote)<<2 | byte(f.Direction&7)<<4
	if f.SamplingRate != 0 {
		kinds |= flagSampled
	}
	dst = append(dst, byte(t>>16), byte(t>>8), byte(t), kinds, byte(modes), byte(modes>>8))
	dst = appendAddrRaw(dst, local)
	dst = appendAddrRaw(dst, remote)
	for i := range addrs {
		switch (modes >> (3 * i)) & 7 {
		case addrDict:
			dst = binary.AppendUvarint(dst, ids[i])
		case addrV4, addrV6:
			dst = appendAddrRaw(dst, addrs[i])
		}
	}
	start := f.Start
	if start == 0 {
		start = f.End
	}
	d := f.End - start
	dst = binary.AppendUvarint(dst, uint64(d<<1)^uint64(d>>63))
	dst = binary.AppendUvarint(dst, uint64(expID))
	dst = binary.AppendUvarint(dst, uint64(f.RouterID))
	dst = append(dst, byte(f.SrcPort>>8), byte(f.SrcPort), byte(f.DstPort>>8), byte(f.DstPort), f.Proto, f.TCPFlags)
	dst = binary.AppendUvarint(dst, uint64(f.InIf))
	dst = binary.AppendUvarint(dst, uint64(f.OutIf))
	dst = binary.AppendUvarint(dst, uint64(f.SrcAS))
	dst = binary.AppendUvarint(dst, uint64(f.DstAS))
	dst = binary.AppendUvarint(dst, f.Bytes)
	dst = binary.AppendUvarint(dst, f.Packets)
	if f.SamplingRate != 0 {
		dst = binary.AppendUvarint(dst, uint64(f.SamplingRate))
	}
	dst = binary.AppendUvarint(dst, n.sub)
	dst = binary.AppendUvarint(dst, n.app)
	dst = binary.AppendUvarint(dst, n.scc)
	dst = binary.AppendUvarint(dst, n.dcc)
	if nsp == portExplicit {
		dst = append(dst, byte(f.PostNATSrcPort>>8), byte(f.PostNATSrcPort))
	}
	if ndp == portExplicit {
		dst = append(dst, byte(f.PostNATDstPort>>8), byte(f.PostNATDstPort))
	}
	// Optional trailing fields, each a tag and its value (absent from
	// older rows): the remote domain's name id.
	if n.dom != 0 {
		dst = append(dst, rawTagDomain)
		dst = binary.AppendUvarint(dst, n.dom)
	}
	return dst
}

var errBadRow = errors.New("damaged raw flow row")

// rawDecoder reads the x column.
type rawDecoder struct {
	b   []byte
	err error
}

func (d *rawDecoder) uvarint() uint64 {
	if len(d.b) > 0 && d.b[0] < 0x80 { // most are one byte
		v := d.b[0]
		d.b = d.b[1:]
		return uint64(v)
	}
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadRow
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rawDecoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errBadRow
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *rawDecoder) uint16() uint16 {
	if d.err != nil || len(d.b) < 2 {
		d.err = errBadRow
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

// raw reads n literal address bytes (4 or 16).
func (d *rawDecoder) raw(n int) netip.Addr {
	if d.err != nil || len(d.b) < n {
		d.err = errBadRow
		return netip.Addr{}
	}
	var a netip.Addr
	if n == 4 {
		a = netip.AddrFrom4([4]byte(d.b[:4]))
	} else {
		a = netip.AddrFrom16([16]byte(d.b[:16]))
	}
	d.b = d.b[n:]
	return a
}

func (d *rawDecoder) kindAddr(kind byte) netip.Addr {
	switch kind {
	case kindNone:
		return netip.Addr{}
	case kindV4:
		return d.raw(4)
	case kindV6:
		return d.raw(16)
	}
	d.err = errBadRow
	return netip.Addr{}
}

// addr reads a length-prefixed address (format 1).
func (d *rawDecoder) addr() netip.Addr {
	n := int(d.byte())
	if d.err != nil || len(d.b) < n {
		d.err = errBadRow
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(d.b[:n])
	d.b = d.b[n:]
	return a
}

// decodedRow is a raw row with its name ids and interned addresses not yet
// resolved.
type decodedRow struct {
	store.Flow
	id     int64
	t      int64 // ms from the partition start
	expID  int64
	names  rawNames
	local  netip.Addr
	remote netip.Addr
	// modes are the address and port modes of x[4:6] (format 2); lits
	// the literal addresses and dictIDs the addrs ids of the address fields
	// (source, destination, post-NAT source, post-NAT destination) in modes
	// addrV4/addrV6 and addrDict; dictMask bit i is set for a field i in
	// mode addrDict, whose address fillAddrs resolves.
	modes    uint16
	lits     [4]netip.Addr
	dictIDs  [4]uint64
	dictMask uint8
}

// rawHead returns t, a and b of a format 2 x without decoding the rest.
func rawHead(x []byte) (t int64, local, remote netip.Addr, err error) {
	if len(x) < rawHeadLen {
		return 0, local, remote, errBadRow
	}
	t = int64(x[0])<<16 | int64(x[1])<<8 | int64(x[2])
	d := rawDecoder{b: x[rawHeadLen:]}
	local = d.kindAddr(x[3] & 3)
	remote = d.kindAddr(x[3] >> 2 & 3)
	return t, local, remote, d.err
}

// decodeRaw fills r from a format 2 x column. partStart is the partition
// start in unix ms.
func decodeRaw(r *decodedRow, id, partStart int64, x []byte) error {
	*r = decodedRow{id: id}
	if len(x) < rawHeadLen {
		return errBadRow
	}
	f := &r.Flow
	r.t = int64(x[0])<<16 | int64(x[1])<<8 | int64(x[2])
	kinds := x[3]
	modes := uint16(x[4]) | uint16(x[5])<<8
	d := rawDecoder{b: x[rawHeadLen:]}
	r.local = d.kindAddr(kinds & 3)
	r.remote = d.kindAddr(kinds >> 2 & 3)
	f.Direction = store.Direction(kinds >> 4 & 7)
	r.modes = modes
	for i := range r.lits {
		switch (modes >> (3 * i)) & 7 {
		case addrIsSrc:
			if i == 0 {
				return errBadRow
			}
		case addrIsDst:
			if i < 2 {
				return errBadRow
			}
		case addrDict:
			r.dictIDs[i] = d.uvarint()
			r.dictMask |= 1 << i
		case addrV4:
			r.lits[i] = d.raw(4)
		case addrV6:
			r.lits[i] = d.raw(16)
		}
	}
	if r.dictMask == 0 {
		r.fillAddrs(nil)
	}
	z := d.uvarint()
	dur := int64(z>>1) ^ -int64(z&1)
	f.End = partStart + r.t
	f.Start = f.End - dur
	r.expID = int64(d.uvarint())
	f.RouterID = int64(d.uvarint())
	f.SrcPort = d.uint16()
	f.DstPort = d.uint16()
	f.Proto = d.byte()
	f.TCPFlags = d.byte()
	f.InIf = uint32(d.uvarint())
	f.OutIf = uint32(d.uvarint())
	f.SrcAS = uint32(d.uvarint())
	f.DstAS = uint32(d.uvarint())
	f.Bytes = d.uvarint()
	f.Packets = d.uvarint()
	if kinds&flagSampled != 0 {
		f.SamplingRate = uint32(d.uvarint())
	}
	r.names.sub = d.uvarint()
	r.names.app = d.uvarint()
	r.names.scc = d.uvarint()
	r.names.dcc = d.uvarint()
	port := func(mode uint16) uint16 {
		switch mode {
		case portIsSrc:
			return f.SrcPort
		case portIsDst:
			return f.DstPort
		case portExplicit:
			return d.uint16()
		}
		return 0
	}
	f.PostNATSrcPort = port(modes >> 12 & 3)
	f.PostNATDstPort = port(modes >> 14 & 3)
	for d.err == nil && len(d.b) != 0 {
		switch d.byte() {
		case rawTagDomain:
			if r.names.dom != 0 {
				return errBadRow
			}
			if r.names.dom = d.uvarint(); r.names.dom == 0 {
				return errBadRow
			}
		default:
			return errBadRow
		}
	}
	return d.err
}

// fillAddrs sets the four address fields of the flow from their modes;
// lookup resolves interned addresses (mode addrDict).
func (r *decodedRow) fillAddrs(lookup func(id uint64) netip.Addr) {
	var addrs [4]netip.Addr
	for i := range addrs {
		switch (r.modes >> (3 * i)) & 7 {
		case addrIsA:
			addrs[i] = r.local
		case addrIsB:
			addrs[i] = r.remote
		case addrIsSrc:
			addrs[i] = addrs[0]
		case addrIsDst:
			addrs[i] = addrs[1]
		case addrDict:
			if lookup != nil {
				addrs[i] = lookup(r.dictIDs[i])
			}
		case addrV4, addrV6:
			addrs[i] = r.lits[i]
		}
	}
	f := &r.Flow
	f.SrcAddr, f.DstAddr, f.PostNATSrcAddr, f.PostNATDstAddr = addrs[0], addrs[1], addrs[2], addrs[3]
}

// Format 1 (read only).
//
// x layout: a flags byte, then uvarints:
//
//	flags bits 0-1: source address: 0 = a, 1 = b, 2 = explicit (len byte + bytes)
//	      bits 2-3: destination address, same coding
//	      bit 4: post-NAT source address follows; bit 5: post-NAT destination
//	      bit 6: post-NAT ports follow
//	duration (zigzag ms: end - start), exporter id, router id, [src], [dst],
//	src port, dst port, proto byte, tcp flags byte, in if, out if, src AS,
//	dst AS, bytes, packets, sampling rate, direction byte, subscriber name id,
//	application name id, src country name id, dst country name id,
//	[post-NAT src], [post-NAT dst], [post-NAT src port, post-NAT dst port]
const (
	v1AddrA        = 0
	v1AddrB        = 1
	v1AddrExplicit = 2

	v1NATSrc   = 1 << 4
	v1NATDst   = 1 << 5
	v1NATPorts = 1 << 6
)

// encodeRawV1 appends the format 1 x column of f; flowbox no longer writes
// it (tests use it to build format 1 partitions).
func encodeRawV1(dst []byte, f *store.Flow, local, remote netip.Addr, expID int64, n rawNames) []byte {
	mode := func(x netip.Addr) int {
		switch {
		case x == local:
			return v1AddrA
		case x == remote:
			return v1AddrB
		}
		return v1AddrExplicit
	}
	appendLen := func(dst []byte, a netip.Addr) []byte {
		b := addrBytes(a)
		return append(append(dst, byte(len(b))), b...)
	}
	src, dstA := f.SrcAddr.Unmap(), f.DstAddr.Unmap()
	sm, dm := mode(src), mode(dstA)
	flags := byte(sm) | byte(dm)<<2
	if f.PostNATSrcAddr.IsValid() {
		flags |= v1NATSrc
	}
	if f.PostNATDstAddr.IsValid() {
		flags |= v1NATDst
	}
	if f.PostNATSrcPort != 0 || f.PostNATDstPort != 0 {
		flags |= v1NATPorts
	}
	dst = append(dst, flags)
	start := f.Start
	if start == 0 {
		start = f.End
	}
	d := f.End - start
	dst = binary.AppendUvarint(dst, uint64(d<<1)^uint64(d>>63))
	dst = binary.AppendUvarint(dst, uint64(expID))
	dst = binary.AppendUvarint(dst, uint64(f.RouterID))
	if sm == v1AddrExplicit {
		dst = appendLen(dst, src)
	}
	if dm == v1AddrExplicit {
		dst = appendLen(dst, dstA)
	}
	dst = binary.AppendUvarint(dst, uint64(f.SrcPort))
	dst = binary.AppendUvarint(dst, uint64(f.DstPort))
	dst = append(dst, f.Proto, f.TCPFlags)
	for _, v := range []uint64{uint64(f.InIf), uint64(f.OutIf), uint64(f.SrcAS), uint64(f.DstAS), f.Bytes, f.Packets, uint64(f.SamplingRate)} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = append(dst, byte(f.Direction))
	for _, v := range []uint64{n.sub, n.app, n.scc, n.dcc} {
		dst = binary.AppendUvarint(dst, v)
	}
	if flags&v1NATSrc != 0 {
		dst = appendLen(dst, f.PostNATSrcAddr)
	}
	if flags&v1NATDst != 0 {
		dst = appendLen(dst, f.PostNATDstAddr)
	}
	if flags&v1NATPorts != 0 {
		dst = binary.AppendUvarint(dst, uint64(f.PostNATSrcPort))
		dst = binary.AppendUvarint(dst, uint64(f.PostNATDstPort))
	}
	return dst
}

// decodeRawV1 fills r from the columns of a format 1 row. end is the
// absolute end time in ms.
func decodeRawV1(r *decodedRow, id, end int64, a, b, x []byte) error {
	*r = decodedRow{id: id}
	f := &r.Flow
	r.local, _ = netip.AddrFromSlice(a)
	r.remote, _ = netip.AddrFromSlice(b)
	d := rawDecoder{b: x}
	flags := d.byte()
	z := d.uvarint()
	dur := int64(z>>1) ^ -int64(z&1)
	f.End = end
	f.Start = end - dur
	r.expID = int64(d.uvarint())
	f.RouterID = int64(d.uvarint())
	pick := func(mode byte) netip.Addr {
		switch mode {
		case v1AddrA:
			return r.local
		case v1AddrB:
			return r.remote
		case v1AddrExplicit:
			return d.addr()
		}
		d.err = errBadRow
		return netip.Addr{}
	}
	f.SrcAddr = pick(flags & 3)
	f.DstAddr = pick(flags >> 2 & 3)
	f.SrcPort = uint16(d.uvarint())
	f.DstPort = uint16(d.uvarint())
	f.Proto = d.byte()
	f.TCPFlags = d.byte()
	f.InIf = uint32(d.uvarint())
	f.OutIf = uint32(d.uvarint())
	f.SrcAS = uint32(d.uvarint())
	f.DstAS = uint32(d.uvarint())
	f.Bytes = d.uvarint()
	f.Packets = d.uvarint()
	f.SamplingRate = uint32(d.uvarint())
	f.Direction = store.Direction(d.byte())
	r.names.sub = d.uvarint()
	r.names.app = d.uvarint()
	r.names.scc = d.uvarint()
	r.names.dcc = d.uvarint()
	if flags&v1NATSrc != 0 {
		f.PostNATSrcAddr = d.addr()
	}
	if flags&v1NATDst != 0 {
		f.PostNATDstAddr = d.addr()
	}
	if flags&v1NATPorts != 0 {
		f.PostNATSrcPort = uint16(d.uvarint())
		f.PostNATDstPort = uint16(d.uvarint())
	}
	return d.err
}
