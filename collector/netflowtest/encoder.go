package netflowtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/store"
)

// V1 is NetFlow version 1, which RouterOS still offers as a target version.
const V1 = 1

// EncoderConfig describes one traffic-flow target of a router: what it asks
// for and what the router knows of itself.
type EncoderConfig struct {
	// Version is 1, 5, 9 or 10 (IPFIX).
	Version int
	// TemplateRefresh is the target's v9-template-refresh: templates are sent
	// again after this many data packets (v9 and IPFIX). 0 means 20, the
	// RouterOS default.
	TemplateRefresh int
	// TemplateTimeout is the target's v9-template-timeout: templates are sent
	// again when this much time passed since the last time. 0 means 30m, the
	// RouterOS default.
	TemplateTimeout time.Duration
	// BootTime is when the router booted. Flow timestamps and the header's
	// sysUptime are milliseconds since then, in 32 bits (they wrap after
	// about 49.7 days, as on the router).
	BootTime time.Time
	// SysInitTime adds IE 160 (systemInitTimeMilliseconds) to the IPFIX data
	// records, as RouterOS v7 does with the sys-init-time option.
	SysInitTime bool
	// MaxPacketSize bounds the UDP payload; 0 means MaxPacketSize (1472).
	MaxPacketSize int
}

// Validate returns every problem of the configuration.
func (c EncoderConfig) Validate() error {
	var errs []error
	switch c.Version {
	case V1, V5, V9, IPFIX:
	default:
		errs = append(errs, fmt.Errorf("version: %d is not one of 1, 5, 9, 10", c.Version))
	}
	if c.TemplateRefresh < 0 || c.TemplateRefresh > 1<<16 {
		errs = append(errs, fmt.Errorf("template-refresh: %d is outside 0..65536", c.TemplateRefresh))
	}
	if c.TemplateTimeout < 0 {
		errs = append(errs, errors.New("template-timeout: must not be negative"))
	}
	if c.MaxPacketSize != 0 && (c.MaxPacketSize < 256 || c.MaxPacketSize > 65507) {
		errs = append(errs, fmt.Errorf("max-packet-size: %d is outside 256..65507", c.MaxPacketSize))
	}
	return errors.Join(errs...)
}

// EncoderStats counts what an Encoder produced.
type EncoderStats struct {
	// Packets is the number of export packets, template-only ones included.
	Packets uint64
	// TemplatePackets is the number of packets that carried templates.
	TemplatePackets uint64
	// Flows is the number of flow records encoded.
	Flows uint64
	// Octets and FlowPackets are the sums of the encoded records' byte and
	// packet counters (after saturation to 32 bits).
	Octets, FlowPackets uint64
	// Skipped counts flows the version cannot carry (IPv6 in v1/v5).
	Skipped uint64
}

// Encoder builds export packets for one target. It is not safe for
// concurrent use. It keeps the target's sequence number and template
// schedule, so a router with two targets has two encoders.
type Encoder struct {
	cfg      EncoderConfig
	maxSize  int
	bootMs   int64
	v4, v6   template
	tplBytes []byte // the template set(s), encoded once
	// Template schedule.
	tplSent      bool
	sinceTpl     int
	lastTpl      time.Time
	seqPackets   uint32 // v9: packets sent
	seqFlows     uint32 // v1/v5/IPFIX: records sent
	stats        EncoderStats
	forceTplNext bool
}

// template is one data template: its id, fields and record length.
type template struct {
	id     uint16
	fields []field
	size   int
}

// field is one (type, length) pair of a template.
type field struct {
	id, length uint16
}

// Information elements used by the RouterOS templates.
const (
	ieOctets        = 1
	iePackets       = 2
	ieProtocol      = 4
	ieToS           = 5
	ieTCPFlags      = 6
	ieSrcPort       = 7
	ieSrcAddr4      = 8
	ieSrcMask4      = 9
	ieInIf          = 10
	ieDstPort       = 11
	ieDstAddr4      = 12
	ieDstMask4      = 13
	ieOutIf         = 14
	ieNextHop4      = 15
	ieLast          = 21
	ieFirst         = 22
	ieSrcAddr6      = 27
	ieDstAddr6      = 28
	ieSrcMask6      = 29
	ieDstMask6      = 30
	ieIPVersion     = 60
	ieNextHop6      = 62
	ieInDstMAC      = 80
	ieOutSrcMAC     = 81
	ieSysInitTime   = 160
	iePostNATSrc4   = 225
	iePostNATDst4   = 226
	iePostNAPTSrcPt = 227
	iePostNAPTDstPt = 228
)

func newTemplate(id uint16, fields ...field) template {
	t := template{id: id, fields: fields}
	for _, f := range fields {
		t.size += int(f.length)
	}
	return t
}

// NewEncoder builds an encoder for cfg.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid encoder config: %w", err)
	}
	e := &Encoder{cfg: cfg, maxSize: cfg.MaxPacketSize}
	if e.maxSize == 0 {
		e.maxSize = MaxPacketSize
	}
	if e.cfg.TemplateRefresh == 0 {
		e.cfg.TemplateRefresh = 20
	}
	if e.cfg.TemplateTimeout == 0 {
		e.cfg.TemplateTimeout = 30 * time.Minute
	}
	e.bootMs = cfg.BootTime.UnixMilli()
	switch cfg.Version {
	case V9:
		e.v4 = newTemplate(TemplateV9IPv4,
			field{ieFirst, 4}, field{ieLast, 4}, field{iePackets, 4}, field{ieOctets, 4},
			field{ieInIf, 4}, field{ieOutIf, 4}, field{ieSrcAddr4, 4}, field{ieDstAddr4, 4},
			field{ieProtocol, 1}, field{ieToS, 1}, field{ieSrcPort, 2}, field{ieDstPort, 2},
			field{ieNextHop4, 4}, field{ieDstMask4, 1}, field{ieSrcMask4, 1}, field{ieTCPFlags, 1},
			field{ieInDstMAC, 6}, field{ieOutSrcMAC, 6},
			field{iePostNATSrc4, 4}, field{iePostNATDst4, 4}, field{iePostNAPTSrcPt, 2}, field{iePostNAPTDstPt, 2})
		e.v6 = newTemplate(TemplateV9IPv6,
			field{ieFirst, 4}, field{ieLast, 4}, field{iePackets, 4}, field{ieOctets, 4},
			field{ieInIf, 4}, field{ieOutIf, 4}, field{ieSrcAddr6, 16}, field{ieDstAddr6, 16},
			field{ieProtocol, 1}, field{ieToS, 1}, field{ieSrcPort, 2}, field{ieDstPort, 2},
			field{ieNextHop6, 16}, field{ieDstMask6, 1}, field{ieSrcMask6, 1}, field{ieTCPFlags, 1},
			field{ieInDstMAC, 6}, field{ieOutSrcMAC, 6})
		e.tplBytes = appendTemplateSet(nil, 0, e.v4, e.v6)
	case IPFIX:
		head := []field{{ieIPVersion, 1}, {ieFirst, 4}, {ieLast, 4}}
		if cfg.SysInitTime {
			head = append(head, field{ieSysInitTime, 8})
		}
		common := []field{{iePackets, 4}, {ieOctets, 4}, {ieSrcPort, 2}, {ieDstPort, 2},
			{ieInIf, 4}, {ieOutIf, 4}, {ieProtocol, 1}, {ieTCPFlags, 1}}
		f4 := append(append(append([]field(nil), head...), common...),
			field{ieSrcAddr4, 4}, field{ieDstAddr4, 4}, field{ieNextHop4, 4},
			field{iePostNATSrc4, 4}, field{iePostNATDst4, 4})
		f6 := append(append(append([]field(nil), head...), common...),
			field{ieSrcAddr6, 16}, field{ieDstAddr6, 16}, field{ieNextHop6, 16})
		e.v4 = newTemplate(TemplateIPFIXIPv4, f4...)
		e.v6 = newTemplate(TemplateIPFIXIPv6, f6...)
		e.tplBytes = appendTemplateSet(nil, 2, e.v4, e.v6)
	}
	return e, nil
}

// appendTemplateSet appends a v9 (setID 0) or IPFIX (setID 2) template set.
func appendTemplateSet(b []byte, setID uint16, ts ...template) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, setID)
	b = binary.BigEndian.AppendUint16(b, 0)
	for _, t := range ts {
		b = binary.BigEndian.AppendUint16(b, t.id)
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.fields)))
		for _, f := range t.fields {
			b = binary.BigEndian.AppendUint16(b, f.id)
			b = binary.BigEndian.AppendUint16(b, f.length)
		}
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// Config returns the encoder's configuration with defaults applied.
func (e *Encoder) Config() EncoderConfig { return e.cfg }

// SetTemplateSchedule changes the template refresh (packets) and timeout,
// as a `set` of v9-template-refresh/v9-template-timeout on the target does.
// Zero values keep the RouterOS defaults.
func (e *Encoder) SetTemplateSchedule(refresh int, timeout time.Duration) {
	if refresh <= 0 {
		refresh = 20
	}
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	e.cfg.TemplateRefresh, e.cfg.TemplateTimeout = refresh, timeout
}

// Stats returns the counters of what was encoded so far.
func (e *Encoder) Stats() EncoderStats { return e.stats }

// RecordsPerPacket returns how many IPv4 records fit in one packet without
// templates (v1: 24, v5: 30, v9: 20, IPFIX: 28).
func (e *Encoder) RecordsPerPacket() int {
	switch e.cfg.Version {
	case V1:
		return min(24, (e.maxSize-16)/48)
	case V5:
		return min(30, (e.maxSize-24)/48)
	case V9:
		return (e.maxSize - 20 - 4) / e.v4.size
	default:
		return (e.maxSize - 16 - 4) / e.v4.size
	}
}

// uptime returns the router's uptime at unix millisecond ms, in the 32-bit
// wrapping form of the sysUptime and FIRST/LAST_SWITCHED fields.
func (e *Encoder) uptime(ms int64) uint32 {
	d := ms - e.bootMs
	if d < 0 {
		d = 0
	}
	return uint32(d)
}

// templateDue reports whether the next packet must carry templates.
func (e *Encoder) templateDue(now time.Time) bool {
	return !e.tplSent || e.forceTplNext || e.sinceTpl >= e.cfg.TemplateRefresh ||
		now.Sub(e.lastTpl) >= e.cfg.TemplateTimeout
}

// ResendTemplates makes the next packet carry the templates, as a router
// does after a reconfiguration.
func (e *Encoder) ResendTemplates() { e.forceTplNext = true }

// AppendPacket appends one export packet to dst, built from the head of
// flows, and returns the extended buffer and the number of flows consumed.
// The packet carries a run of flows of one address family. Flows that the
// version cannot carry (IPv6 in v1/v5) are consumed and counted as skipped.
// For IPFIX, when templates are due the packet is a template-only message
// and n is 0: call again for the data. When flows is empty nothing is
// appended. It allocates nothing when dst has room for MaxPacketSize bytes.
func (e *Encoder) AppendPacket(dst []byte, flows []store.Flow, now time.Time) (pkt []byte, n int) {
	switch e.cfg.Version {
	case V1, V5:
		return e.appendLegacy(dst, flows, now)
	case V9:
		return e.appendV9(dst, flows, now)
	default:
		return e.appendIPFIX(dst, flows, now)
	}
}

// is6 reports whether the flow needs the IPv6 template.
func is6(f *store.Flow) bool { return f.SrcAddr.Is6() && !f.SrcAddr.Is4In6() }

// run returns the length of the run of same-family flows at the head of
// flows, at most max.
func run(flows []store.Flow, max int) (n int, v6 bool) {
	if len(flows) == 0 {
		return 0, false
	}
	v6 = is6(&flows[0])
	for n < len(flows) && n < max && is6(&flows[n]) == v6 {
		n++
	}
	return n, v6
}

func sat32(v uint64) uint32 {
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

func (e *Encoder) count(f *store.Flow) {
	e.stats.Flows++
	e.stats.Octets += uint64(sat32(f.Bytes))
	e.stats.FlowPackets += uint64(sat32(f.Packets))
}

func appendAddr4(b []byte, a netip.Addr) []byte {
	if a.Is4() || a.Is4In6() {
		v := a.As4()
		return append(b, v[:]...)
	}
	return append(b, 0, 0, 0, 0)
}

func appendAddr16(b []byte, a netip.Addr) []byte {
	if a.IsValid() {
		v := a.As16()
		return append(b, v[:]...)
	}
	var z [16]byte
	return append(b, z[:]...)
}

func appendMAC(b []byte, m uint64) []byte {
	return append(b, byte(m>>40), byte(m>>32), byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// orAddr returns a, or def when a is absent: RouterOS always fills the
// post-NAT fields, with the original address when no NAT applied.
func orAddr(a, def netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return def
}

func orPort(p, def uint16) uint16 {
	if p != 0 {
		return p
	}
	return def
}

// appendLegacy encodes v1 and v5. RouterOS puts no AS numbers and no masks
// in v5, engine type/id 0 and no sampling; ifIndex values are 16 bits there.
func (e *Encoder) appendLegacy(dst []byte, flows []store.Flow, now time.Time) ([]byte, int) {
	skipped := 0
	for skipped < len(flows) && is6(&flows[skipped]) {
		skipped++
	}
	e.stats.Skipped += uint64(skipped)
	flows = flows[skipped:]
	max := e.RecordsPerPacket()
	n := 0
	for n < len(flows) && n < max && !is6(&flows[n]) {
		n++
	}
	if n == 0 {
		return dst, skipped
	}
	nowMs := now.UnixMilli()
	b := dst
	b = binary.BigEndian.AppendUint16(b, uint16(e.cfg.Version))
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = binary.BigEndian.AppendUint32(b, e.uptime(nowMs))
	b = binary.BigEndian.AppendUint32(b, uint32(now.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(now.Nanosecond()))
	if e.cfg.Version == V5 {
		b = binary.BigEndian.AppendUint32(b, e.seqFlows)
		b = append(b, 0, 0, 0, 0) // engine type, engine id, sampling interval
	}
	for i := range n {
		f := &flows[i]
		b = appendAddr4(b, f.SrcAddr)
		b = appendAddr4(b, f.DstAddr)
		b = appendAddr4(b, f.NextHop)
		b = binary.BigEndian.AppendUint16(b, uint16(f.InIf))
		b = binary.BigEndian.AppendUint16(b, uint16(f.OutIf))
		b = binary.BigEndian.AppendUint32(b, sat32(f.Packets))
		b = binary.BigEndian.AppendUint32(b, sat32(f.Bytes))
		b = binary.BigEndian.AppendUint32(b, e.uptime(f.Start))
		b = binary.BigEndian.AppendUint32(b, e.uptime(f.End))
		b = binary.BigEndian.AppendUint16(b, f.SrcPort)
		b = binary.BigEndian.AppendUint16(b, f.DstPort)
		if e.cfg.Version == V5 {
			// pad1, tcp_flags, prot, tos, src_as, dst_as, src_mask, dst_mask, pad2
			b = append(b, 0, f.TCPFlags, f.Proto, f.ToS, 0, 0, 0, 0, 0, 0, 0, 0)
		} else {
			// pad1(2), prot, tos, flags, pad2, pad3(2), reserved(4)
			b = append(b, 0, 0, f.Proto, f.ToS, f.TCPFlags, 0, 0, 0, 0, 0, 0, 0)
		}
		e.count(f)
	}
	e.seqFlows += uint32(n)
	e.seqPackets++
	e.stats.Packets++
	return b, skipped + n
}

// appendV9 encodes NetFlow v9: header, the template flowset when due, then
// one data flowset padded to 32 bits.
func (e *Encoder) appendV9(dst []byte, flows []store.Flow, now time.Time) ([]byte, int) {
	if len(flows) == 0 {
		return dst, 0
	}
	withTpl := e.templateDue(now)
	room := e.maxSize - 20 - 4
	if withTpl {
		room -= len(e.tplBytes)
	}
	v6 := is6(&flows[0])
	t := &e.v4
	if v6 {
		t = &e.v6
	}
	n, _ := run(flows, room/t.size)
	nowMs := now.UnixMilli()
	b := dst
	records := n
	if withTpl {
		records += 2
	}
	b = binary.BigEndian.AppendUint16(b, V9)
	b = binary.BigEndian.AppendUint16(b, uint16(records))
	b = binary.BigEndian.AppendUint32(b, e.uptime(nowMs))
	b = binary.BigEndian.AppendUint32(b, uint32(now.Unix()))
	b = binary.BigEndian.AppendUint32(b, e.seqPackets)
	b = binary.BigEndian.AppendUint32(b, 0) // source id
	if withTpl {
		b = append(b, e.tplBytes...)
	}
	set := len(b)
	b = binary.BigEndian.AppendUint16(b, t.id)
	b = binary.BigEndian.AppendUint16(b, 0)
	for i := range n {
		f := &flows[i]
		b = binary.BigEndian.AppendUint32(b, e.uptime(f.Start))
		b = binary.BigEndian.AppendUint32(b, e.uptime(f.End))
		b = binary.BigEndian.AppendUint32(b, sat32(f.Packets))
		b = binary.BigEndian.AppendUint32(b, sat32(f.Bytes))
		b = binary.BigEndian.AppendUint32(b, f.InIf)
		b = binary.BigEndian.AppendUint32(b, f.OutIf)
		if v6 {
			b = appendAddr16(b, f.SrcAddr)
			b = appendAddr16(b, f.DstAddr)
		} else {
			b = appendAddr4(b, f.SrcAddr)
			b = appendAddr4(b, f.DstAddr)
		}
		b = append(b, f.Proto, f.ToS)
		b = binary.BigEndian.AppendUint16(b, f.SrcPort)
		b = binary.BigEndian.AppendUint16(b, f.DstPort)
		if v6 {
			b = appendAddr16(b, f.NextHop)
		} else {
			b = appendAddr4(b, f.NextHop)
		}
		b = append(b, f.DstMask, f.SrcMask, f.TCPFlags)
		b = appendMAC(b, f.DstMAC)
		b = appendMAC(b, f.SrcMAC)
		if !v6 {
			b = appendAddr4(b, orAddr(f.PostNATSrcAddr, f.SrcAddr))
			b = appendAddr4(b, orAddr(f.PostNATDstAddr, f.DstAddr))
			b = binary.BigEndian.AppendUint16(b, orPort(f.PostNATSrcPort, f.SrcPort))
			b = binary.BigEndian.AppendUint16(b, orPort(f.PostNATDstPort, f.DstPort))
		}
		e.count(f)
	}
	for (len(b)-set)%4 != 0 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint16(b[set+2:], uint16(len(b)-set))
	e.seqPackets++
	e.stats.Packets++
	if withTpl {
		e.markTemplates(now)
	} else {
		e.sinceTpl++
	}
	return b, n
}

func (e *Encoder) markTemplates(now time.Time) {
	e.tplSent, e.forceTplNext = true, false
	e.sinceTpl = 0
	e.lastTpl = now
	e.stats.TemplatePackets++
}

// appendIPFIX encodes IPFIX as RouterOS 6.39.2 does: templates in a message
// of their own (which does not advance the sequence number), data records
// unpadded, uptime-relative times (IE 22/21), optionally IE 160.
func (e *Encoder) appendIPFIX(dst []byte, flows []store.Flow, now time.Time) ([]byte, int) {
	if len(flows) == 0 {
		return dst, 0
	}
	b := dst
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, IPFIX)
	b = binary.BigEndian.AppendUint16(b, 0) // length, set below
	b = binary.BigEndian.AppendUint32(b, uint32(now.Unix()))
	b = binary.BigEndian.AppendUint32(b, e.seqFlows)
	b = binary.BigEndian.AppendUint32(b, 0) // observation domain
	if e.templateDue(now) {
		b = append(b, e.tplBytes...)
		binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
		e.stats.Packets++
		e.markTemplates(now)
		return b, 0
	}
	v6 := is6(&flows[0])
	t := &e.v4
	if v6 {
		t = &e.v6
	}
	n, _ := run(flows, (e.maxSize-16-4)/t.size)
	set := len(b)
	b = binary.BigEndian.AppendUint16(b, t.id)
	b = binary.BigEndian.AppendUint16(b, 0)
	var ver byte = 4
	if v6 {
		ver = 6
	}
	for i := range n {
		f := &flows[i]
		b = append(b, ver)
		b = binary.BigEndian.AppendUint32(b, e.uptime(f.Start))
		b = binary.BigEndian.AppendUint32(b, e.uptime(f.End))
		if e.cfg.SysInitTime {
			b = binary.BigEndian.AppendUint64(b, uint64(e.bootMs))
		}
		b = binary.BigEndian.AppendUint32(b, sat32(f.Packets))
		b = binary.BigEndian.AppendUint32(b, sat32(f.Bytes))
		b = binary.BigEndian.AppendUint16(b, f.SrcPort)
		b = binary.BigEndian.AppendUint16(b, f.DstPort)
		b = binary.BigEndian.AppendUint32(b, f.InIf)
		b = binary.BigEndian.AppendUint32(b, f.OutIf)
		b = append(b, f.Proto, f.TCPFlags)
		if v6 {
			b = appendAddr16(b, f.SrcAddr)
			b = appendAddr16(b, f.DstAddr)
			b = appendAddr16(b, f.NextHop)
		} else {
			b = appendAddr4(b, f.SrcAddr)
			b = appendAddr4(b, f.DstAddr)
			b = appendAddr4(b, f.NextHop)
			b = appendAddr4(b, orAddr(f.PostNATSrcAddr, f.SrcAddr))
			b = appendAddr4(b, orAddr(f.PostNATDstAddr, f.DstAddr))
		}
		e.count(f)
	}
	binary.BigEndian.PutUint16(b[set+2:], uint16(len(b)-set))
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	e.seqFlows += uint32(n)
	e.stats.Packets++
	e.sinceTpl++
	return b, n
}
