package netflow

import (
	"encoding/binary"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// NetFlow v1 and v5 layouts.
const (
	v1HeaderLen  = 16
	v5HeaderLen  = 24
	legacyRecLen = 48
)

// decodeLegacy decodes a NetFlow v1 or v5 datagram. The header count is
// checked against the datagram length: records that are present are
// decoded, and a count that claims more is reported (bad_length).
func (d *Decoder) decodeLegacy(dst []store.Flow, e *exporter, from netip.AddrPort, b []byte, version uint16, nowNs int64) ([]store.Flow, *Error) {
	hlen := v5HeaderLen
	if version == 1 {
		hlen = v1HeaderLen
	}
	if len(b) < hlen {
		return dst, errorf(ReasonShortPacket, 0, "NetFlow v%d header needs %d bytes, have %d", version, hlen, len(b))
	}
	count := int(binary.BigEndian.Uint16(b[2:4]))
	c := pktCtx{
		from:      from,
		e:         e,
		version:   version,
		uptime:    binary.BigEndian.Uint32(b[4:8]),
		hasUptime: true,
		exportMs:  int64(binary.BigEndian.Uint32(b[8:12]))*1000 + int64(binary.BigEndian.Uint32(b[12:16])/1e6),
		nowMs:     nowNs / 1e6,
		override:  e.override,
	}
	var seq uint32
	var rate uint32
	if version == 5 {
		seq = binary.BigEndian.Uint32(b[16:20])
		c.domainID = uint32(b[20])<<8 | uint32(b[21])
		// Sampling: top 2 bits mode, low 14 bits interval.
		rate = uint32(binary.BigEndian.Uint16(b[22:24]) & 0x3fff)
	}
	c.dom = d.domain(e, version, c.domainID, nowNs)
	if c.dom.clock.wentBack(c.uptime, binary.BigEndian.Uint32(b[8:12])) {
		d.restartDomain(c.dom)
	}
	c.dom.rate = rate
	if c.override != 0 {
		rate = c.override
	}
	avail := (len(b) - hlen) / legacyRecLen
	n := min(count, avail)
	for i := range n {
		r := b[hlen+i*legacyRecLen : hlen+(i+1)*legacyRecLen]
		dst = append(dst, store.Flow{})
		f := &dst[len(dst)-1]
		f.Exporter = from
		f.Version = version
		f.Domain = c.domainID
		f.SrcAddr = netip.AddrFrom4([4]byte(r[0:4]))
		f.DstAddr = netip.AddrFrom4([4]byte(r[4:8]))
		f.NextHop = netip.AddrFrom4([4]byte(r[8:12]))
		f.InIf = uint32(binary.BigEndian.Uint16(r[12:14]))
		f.OutIf = uint32(binary.BigEndian.Uint16(r[14:16]))
		f.Packets = uint64(binary.BigEndian.Uint32(r[16:20]))
		f.Bytes = uint64(binary.BigEndian.Uint32(r[20:24]))
		first := binary.BigEndian.Uint32(r[24:28])
		last := binary.BigEndian.Uint32(r[28:32])
		f.SrcPort = binary.BigEndian.Uint16(r[32:34])
		f.DstPort = binary.BigEndian.Uint16(r[34:36])
		if version == 1 {
			f.Proto = r[38]
			f.ToS = r[39]
			f.TCPFlags = r[40]
		} else {
			f.TCPFlags = r[37]
			f.Proto = r[38]
			f.ToS = r[39]
			f.SrcAS = uint32(binary.BigEndian.Uint16(r[40:42]))
			f.DstAS = uint32(binary.BigEndian.Uint16(r[42:44]))
			f.SrcMask = r[44]
			f.DstMask = r[45]
		}
		f.Start = c.exportMs - int64(int32(c.uptime-first))
		f.End = c.exportMs - int64(int32(c.uptime-last))
		f.Start, f.End = clampTimes(f.Start, f.End, c.exportMs, c.nowMs)
		f.SamplingRate = rate
	}
	if version == 5 {
		lost, restarted := c.dom.seq.observe(seq, uint32(n), binary.BigEndian.Uint32(b[8:12]), true, maxGapRecords, maxRateRecords)
		if restarted {
			d.countRestart(c.dom.e)
		}
		d.addLost(e, lost)
	}
	if count > avail {
		return dst, errorf(ReasonBadLength, hlen+n*legacyRecLen, "header count %d, but %d bytes hold %d records", count, len(b), avail)
	}
	return dst, nil
}
