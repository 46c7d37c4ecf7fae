package netflow

import (
	"encoding/binary"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// maxFutureSkewMs is how far (ms) a flow time may lie after the export time
// (or the receive time) before it is clamped.
const maxFutureSkewMs = 10_000

// ntpEpochOffset is the number of seconds from 1900-01-01 (NTP) to
// 1970-01-01 (unix).
const ntpEpochOffset = 2208988800

// pktCtx is what the records of one datagram share.
type pktCtx struct {
	from     netip.AddrPort
	e        *exporter
	dom      *domain
	version  uint16
	domainID uint32
	// exportMs is the datagram's export time in unix ms.
	exportMs int64
	// uptime is the exporter's sysUptime (ms) at export (v1/v5/v9 header).
	uptime    uint32
	hasUptime bool
	nowMs     int64
	// override is the configured sampling rate of the exporter, 0 if none.
	override uint32

	// IPFIX records with uptime-relative times and no IE 160 (RouterOS):
	// their flows keep the raw uptimes until fixBootTimes makes them
	// absolute, once every record of the message refined the boot time
	// estimate. deferred says the current record's times are raw, fix
	// lists the ranges of dst to fix, and bootCand is the message's
	// smallest boot time candidate (routeros.go).
	deferred bool
	nfix     int
	fix      [4]struct{ from, to int }
	bootCand int64
	hasCand  bool
}

// rec collects the values of one record that are combined once every field
// is read (counter fallbacks, times, sampling).
type rec struct {
	have uint64 // bit 1<<kind for every kind seen

	bytes, packets             uint64
	postBytes, postPackets     uint64
	totalBytes, totalPackets   uint64
	initBytes, respBytes       uint64
	initPackets, respPackets   uint64
	revBytes, revPackets       uint64
	revTotBytes, revTotPackets uint64
	first, last                uint32
	startMs, endMs             int64
	sysInitMs                  int64
	durMs                      int64
	samplingInterval           uint64
	randomInterval             uint64
	pktInterval, pktSpace      uint64
	sampleSize, population     uint64
	samplerID                  uint64
	bgpNextHop                 netip.Addr
	postSrcMAC, postDstMAC     uint64
	dot1qVLAN, postVLAN        uint16
}

func (r *rec) has(k kind) bool { return r.have&(1<<k) != 0 }

// get returns v if a field of kind k was seen, else 0 (rec is reused
// between records and only have is reset).
func (r *rec) get(k kind, v uint64) uint64 {
	if r.has(k) {
		return v
	}
	return 0
}

// uintN reads a big-endian unsigned integer of 1 to 8 bytes.
func uintN(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// ntpToMs converts a 64-bit NTP timestamp to unix milliseconds.
func ntpToMs(v uint64) int64 {
	sec := int64(v>>32) - ntpEpochOffset
	frac := (v & 0xffffffff) * 1000 >> 32
	return sec*1000 + int64(frac)
}

func addr(b []byte) netip.Addr {
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.AddrFrom16([16]byte(b))
}

// decodeFields reads one record of template t from the start of b into f and
// r. It returns the record length, or ok=false when the record runs past b.
func decodeFields(f *store.Flow, r *rec, t *template, b []byte) (n int, ok bool) {
	if t.fixedLen != 0 {
		if len(b) < t.fixedLen {
			return 0, false
		}
		b = b[:t.fixedLen]
		for i := range t.used {
			fl := &t.used[i]
			setField(f, r, fl.kind, b[fl.off:int(fl.off)+int(fl.length)])
		}
		return t.fixedLen, true
	}
	p := 0
	for i := range t.fields {
		fl := t.fields[i]
		l := int(fl.length)
		if fl.length == varLen {
			if p >= len(b) {
				return 0, false
			}
			l = int(b[p])
			p++
			if l == 255 {
				if p+2 > len(b) {
					return 0, false
				}
				l = int(binary.BigEndian.Uint16(b[p:]))
				p += 2
			}
		}
		if l > len(b)-p {
			return 0, false
		}
		if fl.kind != kSkip {
			setField(f, r, fl.kind, b[p:p+l])
		}
		p += l
	}
	return p, true
}

// setField stores the value v of a field of kind k into f or r.
func setField(f *store.Flow, r *rec, k kind, v []byte) {
	r.have |= 1 << k
	switch k {
	case kBytes:
		r.bytes = uintN(v)
	case kPackets:
		r.packets = uintN(v)
	case kProto:
		f.Proto = uint8(uintN(v))
	case kToS:
		f.ToS = uint8(uintN(v))
	case kTCPFlags:
		// Some exporters send 2 bytes (with the header flags in the
		// high byte): keep the classic 8 flag bits.
		f.TCPFlags = uint8(uintN(v))
	case kSrcPort:
		f.SrcPort = uint16(uintN(v))
	case kDstPort:
		f.DstPort = uint16(uintN(v))
	case kSrcAddr:
		f.SrcAddr = addr(v)
	case kDstAddr:
		f.DstAddr = addr(v)
	case kSrcMask:
		f.SrcMask = uint8(uintN(v))
	case kDstMask:
		f.DstMask = uint8(uintN(v))
	case kInIf:
		f.InIf = uint32(uintN(v))
	case kOutIf:
		f.OutIf = uint32(uintN(v))
	case kNextHop:
		f.NextHop = addr(v)
	case kBGPNextHop:
		r.bgpNextHop = addr(v)
	case kSrcAS:
		f.SrcAS = uint32(uintN(v))
	case kDstAS:
		f.DstAS = uint32(uintN(v))
	case kLast:
		r.last = uint32(uintN(v))
	case kFirst:
		r.first = uint32(uintN(v))
	case kPostBytes:
		r.postBytes = uintN(v)
	case kPostPackets:
		r.postPackets = uintN(v)
	case kTotalBytes:
		r.totalBytes = uintN(v)
	case kTotalPackets:
		r.totalPackets = uintN(v)
	case kInitBytes:
		r.initBytes = uintN(v)
	case kRespBytes:
		r.respBytes = uintN(v)
	case kInitPackets:
		r.initPackets = uintN(v)
	case kRespPackets:
		r.respPackets = uintN(v)
	case kSamplingInterval:
		r.samplingInterval = samplingIntervalField(v)
	case kSamplerRandomInterval:
		r.randomInterval = uintN(v)
	case kSamplerID:
		r.samplerID = uintN(v)
	case kSamplingPacketInterval:
		r.pktInterval = uintN(v)
	case kSamplingPacketSpace:
		r.pktSpace = uintN(v)
	case kSamplingSize:
		r.sampleSize = uintN(v)
	case kSamplingPopulation:
		r.population = uintN(v)
	case kSrcMAC:
		f.SrcMAC = uintN(v) & 0xffffffffffff
	case kDstMAC:
		f.DstMAC = uintN(v) & 0xffffffffffff
	case kPostSrcMAC:
		r.postSrcMAC = uintN(v) & 0xffffffffffff
	case kPostDstMAC:
		r.postDstMAC = uintN(v) & 0xffffffffffff
	case kVLAN:
		f.VLAN = uint16(uintN(v))
	case kPostVLAN:
		r.postVLAN = uint16(uintN(v))
	case kDot1qVLAN:
		r.dot1qVLAN = uint16(uintN(v))
	case kStartSec:
		r.startMs = int64(uintN(v)) * 1000
		r.have |= 1 << kStartMs
	case kEndSec:
		r.endMs = int64(uintN(v)) * 1000
		r.have |= 1 << kEndMs
	case kStartMs:
		r.startMs = int64(uintN(v))
	case kEndMs:
		r.endMs = int64(uintN(v))
	case kStartNTPus, kStartNTPns:
		r.startMs = ntpToMs(binary.BigEndian.Uint64(v))
		r.have |= 1 << kStartMs
	case kEndNTPus, kEndNTPns:
		r.endMs = ntpToMs(binary.BigEndian.Uint64(v))
		r.have |= 1 << kEndMs
	case kSysInit:
		r.sysInitMs = int64(uintN(v))
	case kDurMs:
		r.durMs = int64(uintN(v))
	case kDurUs:
		r.durMs = int64(uintN(v) / 1000)
		r.have |= 1 << kDurMs
	case kPostNATSrc:
		f.PostNATSrcAddr = addr(v)
	case kPostNATDst:
		f.PostNATDstAddr = addr(v)
	case kPostNATSrcPort:
		f.PostNATSrcPort = uint16(uintN(v))
	case kPostNATDstPort:
		f.PostNATDstPort = uint16(uintN(v))
	case kRevBytes:
		r.revBytes = uintN(v)
	case kRevPackets:
		r.revPackets = uintN(v)
	case kRevTotalBytes:
		r.revTotBytes = uintN(v)
	case kRevTotalPackets:
		r.revTotPackets = uintN(v)
	}
}

// samplingRate returns the sampling rate carried by the record's own fields,
// 0 when none.
func (r *rec) samplingRate() uint32 {
	var v uint64
	switch {
	case r.has(kSamplingInterval):
		v = r.samplingInterval
	case r.has(kSamplerRandomInterval):
		v = r.randomInterval
	case r.has(kSamplingPacketInterval) && r.has(kSamplingPacketSpace) && r.pktInterval > 0:
		v = (r.pktInterval + r.pktSpace) / r.pktInterval
	case r.has(kSamplingSize) && r.has(kSamplingPopulation) && r.sampleSize > 0:
		v = r.population / r.sampleSize
	}
	if v > 0xffffffff {
		v = 0xffffffff
	}
	return uint32(v)
}

// finishFlow applies what needs every field of the record: counter
// fallbacks, next hop, MAC and VLAN alternatives, times and sampling.
func (c *pktCtx) finishFlow(f *store.Flow, r *rec) {
	switch {
	case r.has(kBytes):
		f.Bytes = r.bytes
		if r.has(kRevBytes) {
			f.Bytes += r.revBytes
		}
	case r.has(kInitBytes) || r.has(kRespBytes):
		f.Bytes = r.get(kInitBytes, r.initBytes) + r.get(kRespBytes, r.respBytes)
	case r.has(kTotalBytes):
		f.Bytes = r.totalBytes
		if r.has(kRevTotalBytes) {
			f.Bytes += r.revTotBytes
		}
	case r.has(kPostBytes):
		f.Bytes = r.postBytes
	case r.has(kRevBytes):
		f.Bytes = r.revBytes
	case r.has(kRevTotalBytes):
		f.Bytes = r.revTotBytes
	}
	switch {
	case r.has(kPackets):
		f.Packets = r.packets
		if r.has(kRevPackets) {
			f.Packets += r.revPackets
		}
	case r.has(kInitPackets) || r.has(kRespPackets):
		f.Packets = r.get(kInitPackets, r.initPackets) + r.get(kRespPackets, r.respPackets)
	case r.has(kTotalPackets):
		f.Packets = r.totalPackets
		if r.has(kRevTotalPackets) {
			f.Packets += r.revTotPackets
		}
	case r.has(kPostPackets):
		f.Packets = r.postPackets
	case r.has(kRevPackets):
		f.Packets = r.revPackets
	case r.has(kRevTotalPackets):
		f.Packets = r.revTotPackets
	}
	if !r.has(kNextHop) && r.has(kBGPNextHop) {
		f.NextHop = r.bgpNextHop
	}
	if !r.has(kSrcMAC) && r.has(kPostSrcMAC) {
		f.SrcMAC = r.postSrcMAC
	}
	if !r.has(kDstMAC) && r.has(kPostDstMAC) {
		f.DstMAC = r.postDstMAC
	}
	if !r.has(kVLAN) {
		if r.has(kDot1qVLAN) {
			f.VLAN = r.dot1qVLAN
		} else if r.has(kPostVLAN) {
			f.VLAN = r.postVLAN
		}
	}
	f.Start, f.End = c.times(r)
	f.SamplingRate = c.samplingRate(r)
}

// samplingRate picks the record's sampling rate: the configured override,
// else the record's own sampling fields, else its sampler id's entry in the
// options table, else the domain's single rate.
func (c *pktCtx) samplingRate(r *rec) uint32 {
	if c.override != 0 {
		return c.override
	}
	if rate := r.samplingRate(); rate != 0 {
		return rate
	}
	if r.has(kSamplerID) {
		if rate, ok := c.dom.samplers[r.samplerID]; ok {
			return rate
		}
	}
	return c.dom.rate
}

// times returns the flow's start and end in unix ms: absolute fields first;
// else uptime-relative fields (21/22) anchored on the header sysUptime (v9),
// on systemInitTimeMilliseconds (IPFIX, from the record or an options
// record) or, lacking both, on the exporter's estimated boot time (see
// routeros.go; the times are then raw uptimes, made absolute by
// fixBootTimes); durations (161/162) fill a missing end; no time at all
// gives the export time. End before start is clamped to start, and times in
// the future beyond a small skew are clamped to the export (or receive)
// time.
func (c *pktCtx) times(r *rec) (start, end int64) {
	hasStart, hasEnd := r.has(kStartMs), r.has(kEndMs)
	start, end = r.startMs, r.endMs
	hasFirst, hasLast := r.has(kFirst), r.has(kLast)
	if (!hasStart || !hasEnd) && (hasFirst || hasLast) {
		first, last := r.first, r.last
		if !hasFirst {
			first = last
		}
		if !hasLast {
			last = first
		}
		var s, e int64
		switch {
		case c.hasUptime:
			// v5/v9: modular 32-bit age against the header sysUptime, so
			// that uptime wrapping (every 49.7 days) between the flow and
			// the export is harmless.
			s = c.exportMs - int64(int32(c.uptime-first))
			e = c.exportMs - int64(int32(c.uptime-last))
		case r.has(kSysInit) || c.dom.sysInitMs != 0:
			// IPFIX with systemInitTimeMilliseconds: the uptime at export
			// is the export time minus IE 160, and a flow's age is taken
			// modulo 2^32 from it, in the past (an unsigned32 uptime
			// wraps every 49.7 days; softflowd reading a file writes the
			// uptime of packets older than its start modulo 2^32).
			base := c.dom.sysInitMs
			if r.has(kSysInit) {
				base = r.sysInitMs
			}
			up := uint32(c.exportMs - base)
			s = c.exportMs - pastAge(up-first)
			e = c.exportMs - pastAge(up-last)
		case !hasStart && !hasEnd:
			c.noteBootCandidate(last)
			c.deferred = true
			return int64(first), int64(last)
		default:
			s, e = routerOSUptimeTimes(c.exportMs, r.first, r.last, hasFirst, hasLast)
		}
		if !hasStart {
			start, hasStart = s, true
		}
		if !hasEnd {
			end, hasEnd = e, true
		}
	}
	if r.has(kDurMs) {
		switch {
		case hasStart && !hasEnd:
			end, hasEnd = start+r.durMs, true
		case hasEnd && !hasStart:
			start, hasStart = end-r.durMs, true
		}
	}
	switch {
	case !hasStart && !hasEnd:
		start, end = c.exportMs, c.exportMs
	case !hasStart:
		start = end
	case !hasEnd:
		end = start
	}
	return clampTimes(start, end, c.exportMs, c.nowMs)
}

// pastAge returns the age (ms) of a time whose uptime lies x before the
// uptime at export, modulo 2^32: in [-maxFutureSkewMs, 2^32-maxFutureSkewMs).
func pastAge(x uint32) int64 {
	return int64(x+maxFutureSkewMs) - maxFutureSkewMs
}

// clampTimes clamps end < start to start, and any time after the reference
// (the export time, or the receive time when earlier) by more than the
// allowed skew to the reference.
func clampTimes(start, end, exportMs, nowMs int64) (int64, int64) {
	ref := exportMs
	if nowMs > 0 && nowMs < ref {
		ref = nowMs
	}
	if end > ref+maxFutureSkewMs {
		end = ref
	}
	if start > ref+maxFutureSkewMs {
		start = ref
	}
	if end < start {
		end = start
	}
	return start, end
}

// applyOptions records what an options data record says about its domain:
// sampling rates (per sampler id, or domain-wide) and the system init time.
func (d *Decoder) applyOptions(c *pktCtx, r *rec) {
	if rate := r.samplingRate(); rate != 0 {
		if r.has(kSamplerID) {
			d.setSampler(c.e, c.dom, r.samplerID, rate)
		} else {
			c.dom.rate = rate
			c.dom.rateExplicit = true
		}
	}
	if r.has(kSysInit) && r.sysInitMs != 0 {
		c.dom.sysInitMs = r.sysInitMs
	}
}

// allZero reports whether b holds only zero bytes (set padding).
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeDataSet decodes the records of data set body data (at datagram
// offset setOff) with template t, appending flows to dst. It returns the
// number of records (flow and options) decoded.
func (d *Decoder) decodeDataSet(dst []store.Flow, c *pktCtx, t *template, data []byte, setOff int) ([]store.Flow, int, *Error) {
	records := 0
	if t.options {
		var scratch store.Flow
		var r rec
		for off := 0; len(data)-off >= t.minLen; {
			if t.fixedLen == 0 && allZero(data[off:]) {
				break
			}
			r.have = 0
			n, ok := decodeFields(&scratch, &r, t, data[off:])
			if !ok {
				return dst, records, errorf(ReasonTruncatedRecord, setOff+off, "options record of template %d runs past its set", t.key.id)
			}
			off += n
			records++
			d.applyOptions(c, &r)
		}
		c.e.stats.OptionsRecords += uint64(records)
		d.sum.OptionsRecords += uint64(records)
		return dst, records, nil
	}
	var r rec
	first := len(dst)
	c.deferred = false
	for off := 0; len(data)-off >= t.minLen; {
		if t.fixedLen == 0 && allZero(data[off:]) {
			break // trailing padding (graylog trailingpadding)
		}
		dst = append(dst, store.Flow{})
		f := &dst[len(dst)-1]
		r.have = 0
		n, ok := decodeFields(f, &r, t, data[off:])
		if !ok {
			dst = dst[:len(dst)-1]
			d.deferFix(dst, c, first)
			return dst, records, errorf(ReasonTruncatedRecord, setOff+off, "record of template %d runs past its set", t.key.id)
		}
		off += n
		records++
		f.Exporter = c.from
		f.Version = c.version
		f.TemplateID = t.key.id
		f.Domain = c.domainID
		c.finishFlow(f, &r)
	}
	d.deferFix(dst, c, first)
	return dst, records, nil
}
