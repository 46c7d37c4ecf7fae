package flowdb

// A NAT block is the entries of one router and public address whose last
// seen falls in one minute, in public port order (then protocol, inside
// address and port, first seen). After a version byte, each entry is:
//
//	flags   1 byte: bits 0-1 protocol (0 tcp, 1 udp, 2 icmp, 3 other: a
//	        byte follows), bit 2 inside port = public port, bit 3 inside
//	        address = the previous entry's, bit 4 one flow with one far
//	        end (no counts follow), bit 5 no far end known
//	[proto] 1 byte
//	port    uvarint: public port - the previous entry's
//	[in]    uvarint: 0 an IPv4 address follows (4 bytes; it joins the
//	        block's dictionary), 1 an IPv6 one (16 bytes), k+2 the
//	        dictionary's k-th
//	[iport] 2 bytes
//	last    1 byte: last seen, seconds into the minute (0..60, rounded up)
//	dur     uvarint: last seen - first seen, seconds (first rounded down)
//	[far]   uvarint: 0 an IPv4 address and port follow (6 bytes; they join
//	        the far ends' dictionary), 1 an IPv6 one (18 bytes), k+2 the
//	        dictionary's k-th
//	[flows, far ends] uvarints
//
// An entry costs about 7 bytes when its far end is already in the block
// (a CDN, a DNS resolver), 12 when it is new.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

const (
	natFlagProto    = 0x03
	natFlagSamePort = 0x04
	natFlagSameIn   = 0x08
	natFlagSingle   = 0x10
	natFlagNoRemote = 0x20
)

// natEncoder encodes the entries of a block (the writer's, reused).
type natEncoder struct {
	buf      []byte
	prevPort uint16
	prevIn   [16]byte
	hasIn    bool
	ins      natDict
	rems     natDict
	order    []int32 // scratch of blocks
}

// reset starts a block.
func (e *natEncoder) reset() {
	e.buf = append(e.buf[:0], natBlockVersion)
	e.prevPort, e.hasIn = 0, false
	e.ins.reset()
	e.rems.reset()
}

// add appends an entry whose last seen is in the minute starting at m
// (unix ms); it returns the entry's span and last seen as stored (ms).
func (e *natEncoder) add(s *natStored, m int64) (span, last int64) {
	lastS := ceilDiv(s.last, 1000)
	firstS := min(store.FloorDiv(s.first, 1000), lastS)
	off := lastS - m/1000 // 0..60
	var flags byte
	switch s.key.proto {
	case 6:
	case 17:
		flags = 1
	case 1:
		flags = 2
	default:
		flags = 3
	}
	if s.key.iport == s.key.pport {
		flags |= natFlagSamePort
	}
	if e.hasIn && e.prevIn == s.key.in {
		flags |= natFlagSameIn
	}
	if s.flows <= 1 && s.remotes <= 1 {
		flags |= natFlagSingle
	}
	if s.remote == ([16]byte{}) {
		flags |= natFlagNoRemote
	}
	b := append(e.buf, flags)
	if flags&natFlagProto == 3 {
		b = append(b, s.key.proto)
	}
	b = binary.AppendUvarint(b, uint64(s.key.pport-e.prevPort))
	e.prevPort = s.key.pport
	if flags&natFlagSameIn == 0 {
		if a := netip.AddrFrom16(s.key.in); a.Is4In6() {
			k := uint64(binary.BigEndian.Uint32(s.key.in[12:]))
			if i, ok := e.ins.get(k); ok {
				b = binary.AppendUvarint(b, uint64(i)+2)
			} else {
				b = append(append(b, 0), s.key.in[12:]...)
			}
		} else {
			b = append(append(b, 1), s.key.in[:]...)
		}
		e.prevIn, e.hasIn = s.key.in, true
	}
	if flags&natFlagSamePort == 0 {
		b = binary.BigEndian.AppendUint16(b, s.key.iport)
	}
	b = append(b, byte(off))
	b = binary.AppendUvarint(b, uint64(lastS-firstS))
	if flags&natFlagNoRemote == 0 {
		if a := netip.AddrFrom16(s.remote); a.Is4In6() {
			k := uint64(binary.BigEndian.Uint32(s.remote[12:]))<<16 | uint64(s.rport)
			if i, ok := e.rems.get(k); ok {
				b = binary.AppendUvarint(b, uint64(i)+2)
			} else {
				b = append(append(b, 0), s.remote[12:]...)
				b = binary.BigEndian.AppendUint16(b, s.rport)
			}
		} else {
			b = append(append(b, 1), s.remote[:]...)
			b = binary.BigEndian.AppendUint16(b, s.rport)
		}
	}
	if flags&natFlagSingle == 0 {
		b = binary.AppendUvarint(b, s.flows)
		b = binary.AppendUvarint(b, uint64(s.remotes))
	}
	e.buf = b
	return (lastS - firstS) * 1000, lastS * 1000
}

// natDict maps keys to their order of arrival in a block: open addressing
// on a power-of-two table (keys stored with bit 63 set: 0 is empty).
type natDict struct {
	keys []uint64
	vals []uint32
	n    int
}

func (d *natDict) reset() {
	if len(d.keys) > 1<<16 && d.n < len(d.keys)/8 {
		d.keys, d.vals = nil, nil
	} else if d.n > 0 {
		clear(d.keys)
	}
	d.n = 0
}

// get returns the index of k, or adds k with the next index and returns
// false.
func (d *natDict) get(k uint64) (uint32, bool) {
	if 2*(d.n+1) > len(d.keys) {
		d.grow()
	}
	k |= 1 << 63
	mask := uint64(len(d.keys) - 1)
	for i := (k * 0x9e3779b97f4a7c15) >> 32 & mask; ; i = (i + 1) & mask {
		switch d.keys[i] {
		case k:
			return d.vals[i], true
		case 0:
			d.keys[i], d.vals[i] = k, uint32(d.n)
			d.n++
			return 0, false
		}
	}
}

func (d *natDict) grow() {
	keys, vals := d.keys, d.vals
	size := max(64, 2*len(keys))
	d.keys, d.vals = make([]uint64, size), make([]uint32, size)
	mask := uint64(size - 1)
	for j, k := range keys {
		if k == 0 {
			continue
		}
		i := (k * 0x9e3779b97f4a7c15) >> 32 & mask
		for d.keys[i] != 0 {
			i = (i + 1) & mask
		}
		d.keys[i], d.vals[i] = k, vals[j]
	}
}

// natDecoder decodes blocks (its dictionaries are reused).
type natDecoder struct {
	ins  []uint32
	rems []uint64
}

var errNATBlock = errors.New("truncated NAT block")

// decode calls fn for the entries of a block of router and public address
// key (key.router, key.pub) in the minute starting at m (unix ms); with a
// port, for that public port's entries only (it stops past them). The
// entry passed to fn is valid until fn returns.
func (d *natDecoder) decode(data []byte, key natKey, m int64, port uint16, fn func(*natStored)) error {
	if len(data) == 0 || data[0] != natBlockVersion {
		return fmt.Errorf("unknown NAT block version")
	}
	data = data[1:]
	d.ins, d.rems = d.ins[:0], d.rems[:0]
	e := natStored{key: key}
	var pport uint16
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return 0, errNATBlock
		}
		data = data[n:]
		return v, nil
	}
	for len(data) > 0 {
		flags := data[0]
		data = data[1:]
		switch flags & natFlagProto {
		case 0:
			e.key.proto = 6
		case 1:
			e.key.proto = 17
		case 2:
			e.key.proto = 1
		default:
			if len(data) < 1 {
				return errNATBlock
			}
			e.key.proto, data = data[0], data[1:]
		}
		delta, err := uv()
		if err != nil {
			return err
		}
		pport += uint16(delta)
		e.key.pport = pport
		if port != 0 && pport > port {
			return nil
		}
		if flags&natFlagSameIn == 0 {
			ref, err := uv()
			if err != nil {
				return err
			}
			switch {
			case ref == 0:
				if len(data) < 4 {
					return errNATBlock
				}
				v := binary.BigEndian.Uint32(data)
				d.ins = append(d.ins, v)
				e.key.in = netip.AddrFrom4(be4(v)).As16()
				data = data[4:]
			case ref == 1:
				if len(data) < 16 {
					return errNATBlock
				}
				e.key.in = [16]byte(data[:16])
				data = data[16:]
			default:
				if ref-2 >= uint64(len(d.ins)) {
					return errNATBlock
				}
				e.key.in = netip.AddrFrom4(be4(d.ins[ref-2])).As16()
			}
		}
		if flags&natFlagSamePort != 0 {
			e.key.iport = pport
		} else {
			if len(data) < 2 {
				return errNATBlock
			}
			e.key.iport, data = binary.BigEndian.Uint16(data), data[2:]
		}
		if len(data) < 1 {
			return errNATBlock
		}
		lastS := m/1000 + int64(data[0])
		data = data[1:]
		dur, err := uv()
		if err != nil {
			return err
		}
		e.last, e.first = lastS*1000, (lastS-int64(dur))*1000
		e.remote, e.rport = [16]byte{}, 0
		if flags&natFlagNoRemote == 0 {
			ref, err := uv()
			if err != nil {
				return err
			}
			switch {
			case ref == 0:
				if len(data) < 6 {
					return errNATBlock
				}
				k := uint64(binary.BigEndian.Uint32(data))<<16 | uint64(binary.BigEndian.Uint16(data[4:]))
				d.rems = append(d.rems, k)
				data = data[6:]
				e.remote, e.rport = netip.AddrFrom4(be4(uint32(k>>16))).As16(), uint16(k)
			case ref == 1:
				if len(data) < 18 {
					return errNATBlock
				}
				e.remote, e.rport = [16]byte(data[:16]), binary.BigEndian.Uint16(data[16:])
				data = data[18:]
			default:
				if ref-2 >= uint64(len(d.rems)) {
					return errNATBlock
				}
				k := d.rems[ref-2]
				e.remote, e.rport = netip.AddrFrom4(be4(uint32(k>>16))).As16(), uint16(k)
			}
		}
		e.flows, e.remotes = 1, 1
		if flags&natFlagSingle == 0 {
			flows, err := uv()
			if err != nil {
				return err
			}
			remotes, err := uv()
			if err != nil {
				return err
			}
			e.flows, e.remotes = flows, uint32(min(remotes, 1<<32-1))
		}
		if port == 0 || pport == port {
			fn(&e)
		}
	}
	return nil
}
