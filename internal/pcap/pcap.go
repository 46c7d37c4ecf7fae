// Package pcap reads pcap and pcapng capture files and yields the UDP
// datagrams they contain, with their addresses and capture time. It is what
// `flowbox decode` and the decoder tests use to replay NetFlow/IPFIX
// captures.
//
// Supported: classic pcap in both byte orders with microsecond and
// nanosecond timestamps; pcapng (section header, interface description,
// enhanced and simple packet blocks, the obsolete packet block) in both byte
// orders, with several interfaces and sections. Link types: Ethernet
// (802.1Q/802.1ad/QinQ tags), Linux cooked capture v1 and v2, raw IP
// (LINKTYPE_RAW 101, DLT_RAW 12 and 14, IPv4 228, IPv6 229) and loopback
// (DLT_NULL 0, DLT_LOOP 108). IPv4 non-first fragments are skipped; IPv6
// extension headers are walked. Frames that are not UDP over IP, or that
// cannot be decoded, are skipped and counted.
//
// A corrupt or truncated file gives an *Error naming the byte offset of the
// faulty record; every allocation is bounded (MaxRecord).
package pcap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"time"
)

// MaxRecord bounds the captured length of one packet record (and so the
// buffer a Reader holds). Larger records are reported as corrupt.
const MaxRecord = 256 << 10

// maxBlock bounds a pcapng block that is read into memory (packet and
// interface blocks: a record of MaxRecord plus options).
const maxBlock = MaxRecord + 64<<10

// maxSkipBlock bounds a pcapng block that is skipped without being read
// into memory; a larger length means the file is corrupt.
const maxSkipBlock = 64 << 20

// Packet is one UDP datagram read from a capture.
type Packet struct {
	// Time is the capture time of the frame.
	Time time.Time
	// Src and Dst are the IP addresses and UDP ports of the datagram.
	Src, Dst netip.AddrPort
	// Payload is the UDP payload. It is valid until the next call to Next.
	Payload []byte
	// Truncated is true when Payload is shorter than the UDP length says
	// (capture snaplen, or the first fragment of a fragmented datagram).
	Truncated bool
	// Offset is the file offset of the packet's record.
	Offset int64
}

// Error is a corrupt or truncated capture file.
type Error struct {
	// Offset is the file offset of the record or block at fault.
	Offset int64
	// What describes the fault ("truncated record", "bad block length"...).
	What string
	// Err is the underlying error, if any (io.ErrUnexpectedEOF when the
	// file ends inside a record).
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("pcap: %s at offset %d: %v", e.What, e.Offset, e.Err)
	}
	return fmt.Sprintf("pcap: %s at offset %d", e.What, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// Link types understood by the reader.
const (
	linkNull     = 0
	linkEthernet = 1
	linkRaw12    = 12
	linkRaw14    = 14
	linkRaw      = 101
	linkLoop     = 108
	linkSLL      = 113
	linkIPv4     = 228
	linkIPv6     = 229
	linkSLL2     = 276
)

func supportedLink(lt uint32) bool {
	switch lt {
	case linkNull, linkEthernet, linkRaw12, linkRaw14, linkRaw, linkLoop, linkSLL, linkIPv4, linkIPv6, linkSLL2:
		return true
	}
	return false
}

// iface is one capture interface: its link type and timestamp resolution.
type iface struct {
	link uint32
	// Timestamps are in units of 1/10^dec seconds, or 1/2^bin seconds when
	// binary is true.
	binary bool
	exp    uint8
	offset int64 // seconds added to every timestamp (if_tsoffset)
}

// Reader reads UDP datagrams from a pcap or pcapng stream. It is not safe for
// concurrent use.
type Reader struct {
	r       *bufio.Reader
	off     int64 // file offset of the next unread byte
	ng      bool
	order   binary.ByteOrder
	ifaces  []iface // pcap: exactly one
	buf     []byte
	hdr     [28]byte
	skipped int
}

// NewReader reads the file header of r, detecting pcap or pcapng and the byte
// order, and returns a Reader positioned on the first record.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	var magic [4]byte
	if err := rd.readFull(magic[:]); err != nil {
		return nil, &Error{Offset: 0, What: "cannot read file header", Err: err}
	}
	switch {
	case magic == [4]byte{0x0a, 0x0d, 0x0d, 0x0a}:
		rd.ng = true
		if err := rd.readSHB(0); err != nil {
			return nil, err
		}
		return rd, nil
	case magic == [4]byte{0xd4, 0xc3, 0xb2, 0xa1}:
		return rd, rd.readPcapHeader(binary.LittleEndian, false)
	case magic == [4]byte{0xa1, 0xb2, 0xc3, 0xd4}:
		return rd, rd.readPcapHeader(binary.BigEndian, false)
	case magic == [4]byte{0x4d, 0x3c, 0xb2, 0xa1}:
		return rd, rd.readPcapHeader(binary.LittleEndian, true)
	case magic == [4]byte{0xa1, 0xb2, 0x3c, 0x4d}:
		return rd, rd.readPcapHeader(binary.BigEndian, true)
	}
	return nil, &Error{Offset: 0, What: fmt.Sprintf("not a pcap or pcapng file (magic %x)", magic[:])}
}

// Skipped returns the number of frames skipped so far because they were not
// UDP over IPv4/IPv6, were non-first fragments, or could not be decoded.
func (r *Reader) Skipped() int { return r.skipped }

func (r *Reader) readFull(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.off += int64(n)
	return err
}

func (r *Reader) discard(n int64) error {
	for n > 0 {
		chunk := n
		if chunk > 1<<30 {
			chunk = 1 << 30
		}
		d, err := r.r.Discard(int(chunk))
		r.off += int64(d)
		n -= int64(d)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// grow returns r.buf resized to n bytes (n <= maxBlock).
func (r *Reader) grow(n int) []byte {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	return r.buf
}

func (r *Reader) readPcapHeader(order binary.ByteOrder, nano bool) error {
	r.order = order
	var h [20]byte
	if err := r.readFull(h[:]); err != nil {
		return &Error{Offset: 0, What: "truncated file header", Err: noEOF(err)}
	}
	// h: version major, minor, thiszone, sigfigs, snaplen, network
	link := order.Uint32(h[16:20])
	// The top bits of the link type word may carry an FCS length (pcap
	// "LINKTYPE_ with FCS" extension); only the low 16 bits are the type.
	lt := link & 0xffff
	if !supportedLink(lt) {
		return &Error{Offset: 20, What: fmt.Sprintf("unsupported link type %d", lt)}
	}
	exp := uint8(6)
	if nano {
		exp = 9
	}
	r.ifaces = []iface{{link: lt, exp: exp}}
	return nil
}

// noEOF turns io.EOF inside a structure into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Next returns the next UDP datagram of the capture, io.EOF at the end of the
// file, or an *Error when the file is corrupt or truncated. Skipped frames
// are counted (Skipped) and not returned.
func (r *Reader) Next() (Packet, error) {
	for {
		var (
			p     Packet
			frame []byte
			link  uint32
			ok    bool
			err   error
		)
		if r.ng {
			p, frame, link, ok, err = r.nextBlock()
		} else {
			p, frame, link, ok, err = r.nextRecord()
		}
		if err != nil {
			return Packet{}, err
		}
		if !ok {
			continue // not a packet block
		}
		if decodeFrame(&p, frame, link) {
			return p, nil
		}
		r.skipped++
	}
}

func (r *Reader) nextRecord() (Packet, []byte, uint32, bool, error) {
	start := r.off
	h := r.hdr[:16]
	n, err := io.ReadFull(r.r, h)
	r.off += int64(n)
	if err == io.EOF {
		return Packet{}, nil, 0, false, io.EOF
	}
	if err != nil {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: "truncated record header", Err: noEOF(err)}
	}
	sec := r.order.Uint32(h[0:4])
	frac := r.order.Uint32(h[4:8])
	incl := r.order.Uint32(h[8:12])
	if incl > MaxRecord {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: fmt.Sprintf("record length %d exceeds %d", incl, MaxRecord)}
	}
	data := r.grow(int(incl))
	if err := r.readFull(data); err != nil {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: "truncated record", Err: noEOF(err)}
	}
	ifc := &r.ifaces[0]
	var t time.Time
	if ifc.exp == 9 {
		t = time.Unix(int64(sec), int64(frac)).UTC()
	} else {
		t = time.Unix(int64(sec), int64(frac)*1000).UTC()
	}
	return Packet{Time: t, Offset: start}, data, ifc.link, true, nil
}

// pcapng block types.
const (
	blockSHB = 0x0a0d0d0a
	blockIDB = 1
	blockOPB = 2 // obsolete packet block
	blockSPB = 3
	blockEPB = 6
)

// readSHB reads a section header block whose type word was already consumed
// at offset start.
func (r *Reader) readSHB(start int64) error {
	var l [4]byte
	if err := r.readFull(l[:]); err != nil {
		return &Error{Offset: start, What: "truncated section header", Err: noEOF(err)}
	}
	return r.readSHBAfterLen(start, l[:])
}

func (r *Reader) nextBlock() (Packet, []byte, uint32, bool, error) {
	start := r.off
	h := r.hdr[:8]
	n, err := io.ReadFull(r.r, h)
	r.off += int64(n)
	if err == io.EOF {
		return Packet{}, nil, 0, false, io.EOF
	}
	if err != nil {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: "truncated block header", Err: noEOF(err)}
	}
	if binary.LittleEndian.Uint32(h[0:4]) == blockSHB {
		// A new section (its type word reads the same in both orders).
		return Packet{}, nil, 0, false, r.readSHBAfterLen(start, h[4:8])
	}
	btype := r.order.Uint32(h[0:4])
	total := r.order.Uint32(h[4:8])
	if total < 12 || total%4 != 0 {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: fmt.Sprintf("bad block length %d", total)}
	}
	switch btype {
	case blockIDB, blockEPB, blockSPB, blockOPB:
	default:
		if total > maxSkipBlock {
			return Packet{}, nil, 0, false, &Error{Offset: start, What: fmt.Sprintf("block length %d too large", total)}
		}
		if err := r.discard(int64(total) - 8); err != nil {
			return Packet{}, nil, 0, false, &Error{Offset: start, What: "truncated block", Err: err}
		}
		return Packet{}, nil, 0, false, nil
	}
	if total > maxBlock {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: fmt.Sprintf("block length %d exceeds %d", total, maxBlock)}
	}
	body := r.grow(int(total) - 8)
	if err := r.readFull(body); err != nil {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: "truncated block", Err: noEOF(err)}
	}
	if r.order.Uint32(body[len(body)-4:]) != total {
		return Packet{}, nil, 0, false, &Error{Offset: start, What: "block trailing length does not match"}
	}
	body = body[:len(body)-4]
	switch btype {
	case blockIDB:
		return Packet{}, nil, 0, false, r.parseIDB(start, body)
	case blockSPB:
		if len(body) < 4 {
			return Packet{}, nil, 0, false, &Error{Offset: start, What: "short simple packet block"}
		}
		if len(r.ifaces) == 0 {
			return Packet{}, nil, 0, false, &Error{Offset: start, What: "simple packet block before any interface"}
		}
		orig := r.order.Uint32(body[0:4])
		data := body[4:]
		if uint32(len(data)) > orig {
			data = data[:orig]
		}
		// A simple packet block has no timestamp.
		return Packet{Offset: start}, data, r.ifaces[0].link, true, nil
	default: // EPB, OPB
		var ifID, hi, lo, capLen uint32
		var data []byte
		if btype == blockEPB {
			if len(body) < 20 {
				return Packet{}, nil, 0, false, &Error{Offset: start, What: "short enhanced packet block"}
			}
			ifID = r.order.Uint32(body[0:4])
			hi, lo = r.order.Uint32(body[4:8]), r.order.Uint32(body[8:12])
			capLen = r.order.Uint32(body[12:16])
			data = body[20:]
		} else {
			if len(body) < 20 {
				return Packet{}, nil, 0, false, &Error{Offset: start, What: "short packet block"}
			}
			ifID = uint32(r.order.Uint16(body[0:2]))
			hi, lo = r.order.Uint32(body[4:8]), r.order.Uint32(body[8:12])
			capLen = r.order.Uint32(body[12:16])
			data = body[20:]
		}
		if uint64(capLen) > uint64(len(data)) {
			return Packet{}, nil, 0, false, &Error{Offset: start, What: fmt.Sprintf("captured length %d exceeds block", capLen)}
		}
		if int(ifID) >= len(r.ifaces) {
			return Packet{}, nil, 0, false, &Error{Offset: start, What: fmt.Sprintf("packet on undeclared interface %d", ifID)}
		}
		ifc := &r.ifaces[ifID]
		t := ifc.time(uint64(hi)<<32 | uint64(lo))
		return Packet{Time: t, Offset: start}, data[:capLen], ifc.link, true, nil
	}
}

// readSHBAfterLen reads the rest of a section header block whose type and
// length words (len4, in the unknown byte order) were consumed.
func (r *Reader) readSHBAfterLen(start int64, len4 []byte) error {
	var m [4]byte
	if err := r.readFull(m[:]); err != nil {
		return &Error{Offset: start, What: "truncated section header", Err: noEOF(err)}
	}
	switch binary.LittleEndian.Uint32(m[:]) {
	case 0x1a2b3c4d:
		r.order = binary.LittleEndian
	case 0x4d3c2b1a:
		r.order = binary.BigEndian
	default:
		return &Error{Offset: start, What: "bad section byte-order magic"}
	}
	total := r.order.Uint32(len4)
	if total < 28 || total%4 != 0 || total > maxSkipBlock {
		return &Error{Offset: start, What: fmt.Sprintf("bad section header length %d", total)}
	}
	r.ifaces = r.ifaces[:0]
	if err := r.discard(int64(total) - 12); err != nil {
		return &Error{Offset: start, What: "truncated section header", Err: err}
	}
	return nil
}

// maxInterfaces bounds the interfaces of one pcapng section.
const maxInterfaces = 1024

func (r *Reader) parseIDB(start int64, body []byte) error {
	if len(body) < 8 {
		return &Error{Offset: start, What: "short interface description block"}
	}
	if len(r.ifaces) >= maxInterfaces {
		return &Error{Offset: start, What: fmt.Sprintf("more than %d interfaces", maxInterfaces)}
	}
	ifc := iface{link: uint32(r.order.Uint16(body[0:2])), exp: 6}
	opts := body[8:]
	for len(opts) >= 4 {
		code := r.order.Uint16(opts[0:2])
		olen := int(r.order.Uint16(opts[2:4]))
		opts = opts[4:]
		if code == 0 { // opt_endofopt
			break
		}
		if olen > len(opts) {
			return &Error{Offset: start, What: "interface option overflows block"}
		}
		val := opts[:olen]
		switch code {
		case 9: // if_tsresol
			if olen >= 1 {
				v := val[0]
				ifc.binary = v&0x80 != 0
				ifc.exp = v & 0x7f
				if (!ifc.binary && ifc.exp > 19) || (ifc.binary && ifc.exp > 63) {
					return &Error{Offset: start, What: fmt.Sprintf("unsupported timestamp resolution %#x", v)}
				}
			}
		case 14: // if_tsoffset
			if olen >= 8 {
				ifc.offset = int64(r.order.Uint64(val[0:8]))
			}
		}
		pad := (olen + 3) &^ 3
		if pad > len(opts) {
			pad = len(opts)
		}
		opts = opts[pad:]
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

var pow10 = [20]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// time converts a pcapng timestamp in the interface's units.
func (ifc *iface) time(ts uint64) time.Time {
	var sec, nsec uint64
	if ifc.binary {
		sec = ts >> ifc.exp
		frac := ts & (1<<ifc.exp - 1)
		hi, lo := bits.Mul64(frac, 1e9)
		nsec = lo>>ifc.exp | hi<<(64-uint(ifc.exp))
		if ifc.exp == 0 {
			nsec = 0
		}
	} else {
		units := pow10[ifc.exp]
		sec = ts / units
		frac := ts % units
		if ifc.exp <= 9 {
			nsec = frac * pow10[9-ifc.exp]
		} else {
			nsec = frac / pow10[ifc.exp-9]
		}
	}
	return time.Unix(int64(sec)+ifc.offset, int64(nsec)).UTC()
}

// Ethernet types.
const (
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	etherVLAN  = 0x8100
	etherQinQ  = 0x88a8
	etherQinQ2 = 0x9100
)

// maxVLANTags bounds the VLAN tags walked in one frame.
const maxVLANTags = 8

// decodeFrame fills p's addresses and payload from a link-layer frame and
// reports whether the frame is a UDP datagram.
func decodeFrame(p *Packet, b []byte, link uint32) bool {
	var etype uint16
	switch link {
	case linkEthernet:
		if len(b) < 14 {
			return false
		}
		etype = binary.BigEndian.Uint16(b[12:14])
		b = b[14:]
		for i := 0; etype == etherVLAN || etype == etherQinQ || etype == etherQinQ2; i++ {
			if i == maxVLANTags || len(b) < 4 {
				return false
			}
			etype = binary.BigEndian.Uint16(b[2:4])
			b = b[4:]
		}
	case linkSLL:
		if len(b) < 16 {
			return false
		}
		etype = binary.BigEndian.Uint16(b[14:16])
		b = b[16:]
	case linkSLL2:
		if len(b) < 20 {
			return false
		}
		etype = binary.BigEndian.Uint16(b[0:2])
		b = b[20:]
	case linkNull, linkLoop:
		if len(b) < 4 {
			return false
		}
		// DLT_NULL holds the address family in the capturing host's byte
		// order, DLT_LOOP in network order: accept either. AF_INET is 2
		// everywhere; AF_INET6 is 10 (Linux), 24, 28 or 30 (BSDs, macOS).
		fam := binary.BigEndian.Uint32(b[0:4])
		if fam > 0xffff {
			fam = binary.LittleEndian.Uint32(b[0:4])
		}
		b = b[4:]
		switch fam {
		case 2:
			etype = etherIPv4
		case 10, 24, 28, 30:
			etype = etherIPv6
		default:
			return false
		}
	case linkRaw, linkRaw12, linkRaw14, linkIPv4, linkIPv6:
		if len(b) < 1 {
			return false
		}
		switch b[0] >> 4 {
		case 4:
			etype = etherIPv4
		case 6:
			etype = etherIPv6
		default:
			return false
		}
	default:
		return false
	}
	switch etype {
	case etherIPv4:
		return decodeIPv4(p, b)
	case etherIPv6:
		return decodeIPv6(p, b)
	}
	return false
}

const protoUDP = 17

func decodeIPv4(p *Packet, b []byte) bool {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || len(b) < ihl {
		return false
	}
	if b[9] != protoUDP {
		return false
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	if frag&0x1fff != 0 {
		return false // not the first fragment: no UDP header
	}
	moreFragments := frag&0x2000 != 0
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	short := false
	if total < len(b) {
		b = b[:total] // drop link-layer padding
	} else if total > len(b) {
		short = true
	}
	return decodeUDP(p, b[ihl:], src, dst, short || moreFragments)
}

// maxExtHeaders bounds the IPv6 extension headers walked.
const maxExtHeaders = 16

func decodeIPv6(p *Packet, b []byte) bool {
	if len(b) < 40 || b[0]>>4 != 6 {
		return false
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	next := b[6]
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	b = b[40:]
	short := false
	if plen != 0 { // 0 is a jumbogram: use what was captured
		if plen < len(b) {
			b = b[:plen]
		} else if plen > len(b) {
			short = true
		}
	}
	for i := 0; ; i++ {
		if i == maxExtHeaders {
			return false
		}
		switch next {
		case protoUDP:
			return decodeUDP(p, b, src, dst, short)
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination, mobility, HIP, shim6
			if len(b) < 8 {
				return false
			}
			n := (int(b[1]) + 1) * 8
			if n > len(b) {
				return false
			}
			next = b[0]
			b = b[n:]
		case 44: // fragment
			if len(b) < 8 {
				return false
			}
			if binary.BigEndian.Uint16(b[2:4])&0xfff8 != 0 {
				return false // not the first fragment
			}
			if b[3]&1 != 0 {
				short = true // more fragments: the datagram continues elsewhere
			}
			next = b[0]
			b = b[8:]
		case 51: // authentication header: length in 4-byte units, minus 2
			if len(b) < 8 {
				return false
			}
			n := (int(b[1]) + 2) * 4
			if n > len(b) {
				return false
			}
			next = b[0]
			b = b[n:]
		default: // ESP, no next header, TCP, ICMPv6...
			return false
		}
	}
}

func decodeUDP(p *Packet, b []byte, src, dst netip.Addr, short bool) bool {
	if len(b) < 8 {
		return false
	}
	ulen := int(binary.BigEndian.Uint16(b[4:6]))
	if ulen != 0 && ulen < 8 {
		return false
	}
	p.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:2]))
	p.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:4]))
	payload := b[8:]
	if ulen >= 8 {
		if ulen-8 < len(payload) {
			payload = payload[:ulen-8]
		} else if ulen-8 > len(payload) {
			short = true
		}
	}
	p.Payload = payload
	p.Truncated = short
	return true
}
