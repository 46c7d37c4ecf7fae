package store

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// A raw row is (id, t, a, b, x): t is the flow's end time in milliseconds
// from the partition start, a and b are the local and remote addresses of
// Flow.LocalRemote (4 or 16 bytes; they carry the address indexes) and x is
// the rest of the flow in the compact encoding below. Counters are raw, not
// scaled.
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
	addrA        = 0
	addrB        = 1
	addrExplicit = 2

	flagNATSrc   = 1 << 4
	flagNATDst   = 1 << 5
	flagNATPorts = 1 << 6
)

// rawNames are the interned name ids of a flow.
type rawNames struct {
	sub, app, scc, dcc uint64
}

// addrBytes returns the 4 or 16 bytes of a (nil for the zero Addr).
func addrBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap()
	return a.AsSlice()
}

func appendAddr(dst []byte, a netip.Addr) []byte {
	b := addrBytes(a)
	dst = append(dst, byte(len(b)))
	return append(dst, b...)
}

func addrMode(x, a, b netip.Addr) int {
	switch {
	case x == a:
		return addrA
	case x == b:
		return addrB
	}
	return addrExplicit
}

// encodeRaw appends the x column of f to dst. local and remote are the a
// and b columns.
func encodeRaw(dst []byte, f *Flow, local, remote netip.Addr, expID int64, n rawNames) []byte {
	src, dstA := f.SrcAddr.Unmap(), f.DstAddr.Unmap()
	sm, dm := addrMode(src, local, remote), addrMode(dstA, local, remote)
	flags := byte(sm) | byte(dm)<<2
	if f.PostNATSrcAddr.IsValid() {
		flags |= flagNATSrc
	}
	if f.PostNATDstAddr.IsValid() {
		flags |= flagNATDst
	}
	if f.PostNATSrcPort != 0 || f.PostNATDstPort != 0 {
		flags |= flagNATPorts
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
	if sm == addrExplicit {
		dst = appendAddr(dst, src)
	}
	if dm == addrExplicit {
		dst = appendAddr(dst, dstA)
	}
	dst = binary.AppendUvarint(dst, uint64(f.SrcPort))
	dst = binary.AppendUvarint(dst, uint64(f.DstPort))
	dst = append(dst, f.Proto, f.TCPFlags)
	dst = binary.AppendUvarint(dst, uint64(f.InIf))
	dst = binary.AppendUvarint(dst, uint64(f.OutIf))
	dst = binary.AppendUvarint(dst, uint64(f.SrcAS))
	dst = binary.AppendUvarint(dst, uint64(f.DstAS))
	dst = binary.AppendUvarint(dst, f.Bytes)
	dst = binary.AppendUvarint(dst, f.Packets)
	dst = binary.AppendUvarint(dst, uint64(f.SamplingRate))
	dst = append(dst, byte(f.Direction))
	dst = binary.AppendUvarint(dst, n.sub)
	dst = binary.AppendUvarint(dst, n.app)
	dst = binary.AppendUvarint(dst, n.scc)
	dst = binary.AppendUvarint(dst, n.dcc)
	if flags&flagNATSrc != 0 {
		dst = appendAddr(dst, f.PostNATSrcAddr)
	}
	if flags&flagNATDst != 0 {
		dst = appendAddr(dst, f.PostNATDstAddr)
	}
	if flags&flagNATPorts != 0 {
		dst = binary.AppendUvarint(dst, uint64(f.PostNATSrcPort))
		dst = binary.AppendUvarint(dst, uint64(f.PostNATDstPort))
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

// decodedRow is a raw row with its name ids not yet resolved.
type decodedRow struct {
	Flow
	expID int64
	names rawNames
}

// decodeRaw fills r from the columns of a raw row. end is the absolute end
// time in ms.
func decodeRaw(r *decodedRow, end int64, a, b, x []byte) error {
	*r = decodedRow{}
	f := &r.Flow
	local, _ := netip.AddrFromSlice(a)
	remote, _ := netip.AddrFromSlice(b)
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
		case addrA:
			return local
		case addrB:
			return remote
		case addrExplicit:
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
	f.Direction = Direction(d.byte())
	r.names.sub = d.uvarint()
	r.names.app = d.uvarint()
	r.names.scc = d.uvarint()
	r.names.dcc = d.uvarint()
	if flags&flagNATSrc != 0 {
		f.PostNATSrcAddr = d.addr()
	}
	if flags&flagNATDst != 0 {
		f.PostNATDstAddr = d.addr()
	}
	if flags&flagNATPorts != 0 {
		f.PostNATSrcPort = uint16(d.uvarint())
		f.PostNATDstPort = uint16(d.uvarint())
	}
	return d.err
}
