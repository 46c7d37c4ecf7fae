package netflow

import (
	"encoding/binary"

	"github.com/flowbox/flowbox/store"
)

// RouterOS (MikroTik) specifics. Every MikroTik uses the same template ids
// (IPFIX 258 for IPv4 and 259 for IPv6 on 6.39.2, 256+ on v9) and
// observation domain 0, which is why templates are keyed by exporter
// address (templateKey). Records are not padded: RouterOS 6.39.2 IPFIX
// records are 51 (IPv4) and 79 (IPv6) bytes long, and fixed-length records
// are walked back to back with no alignment (decodeDataSet).

// RouterIfIndex is the ifIndex RouterOS puts in ingress/egress interface
// fields for traffic the router itself originates (input) or terminates
// (output). Decode keeps it as is: Flow.InIf/OutIf 0 means the router.
const RouterIfIndex = 0

// samplingIntervalField decodes a samplingInterval (IE 34) field.
//
// RouterOS (seen on 6.49.6, and in v7 reports) sends field 34 inside the
// data records, in little-endian byte order. A 4-byte big-endian reading is
// then absurd: the low 16 bits are zero and the value is at least 65536
// (1-in-2222 arrives as ae 08 00 00, 2919759872 big-endian). When the
// big-endian value has that shape and the byte-swapped value is a
// plausible rate (1..65535), the swapped value is used. A genuine
// big-endian multiple of 65536 would be misread; no router samples that
// sparsely. Other widths are read big-endian.
func samplingIntervalField(v []byte) uint64 {
	be := uintN(v)
	if len(v) == 4 && be > 0xffff && be&0xffff == 0 {
		le := uint64(binary.LittleEndian.Uint32(v))
		if le >= 1 && le <= 0xffff {
			return le
		}
	}
	return be
}

// RouterOS 6.x IPFIX carries flowStartSysUpTime (22) and flowEndSysUpTime
// (21) but no systemInitTimeMilliseconds (160), and IPFIX headers carry no
// sysUptime: the boot time that makes these uptimes absolute must be
// estimated. Every record ends before its message is exported, so
//
//	boot = exportTime - uptimeAtExport <= exportTime - last
//
// and, the header's export time being truncated to the second, each
// record gives the upper bound exportSeconds*1000 + 1000 - last. The
// estimate is the smallest of these bounds over every record seen from
// the (exporter, observation domain): it only decreases as records come
// (refined monotonically), and flows are placed at estimate + uptime.
//
// Error bound: the estimate is never earlier than the true boot time, and
// is later by less than d + 1 s, where d is the shortest delay between a
// flow's last packet and its export among the records seen (a busy
// exporter always has records exported right after their last packet, such
// as flows cut by the active timeout, so d tends to 0). Every flow is then
// placed late by that same error, its duration is exact, and no flow ends
// more than 1 s after its message's export second. Before, every flow was
// anchored on the export second, each late by its own export delay (up to
// the inactive timeout, 15 s by default).
//
// When a message's records give a bound earlier or later than the
// estimate by more than bootResetMs (modulo 2^32 ms, so that the 49.7-day
// uptime wrap is harmless) the exporter restarted (uptimes went back) or
// its clock was stepped: the estimate starts over from that message.

// bootResetMs is how far (ms) a message's boot time bound may differ from
// the estimate before the estimate starts over. Records of one boot differ
// by their export delays, at most the flow timeouts.
const bootResetMs = 10 * 60 * 1000

// bootEstimate is the estimated boot time of an exporter's domain (unix
// ms), valid once a record was seen.
type bootEstimate struct {
	ms    int64
	valid bool
}

// noteBootCandidate records the boot time bound given by a record whose
// flow ended at uptime last.
func (c *pktCtx) noteBootCandidate(last uint32) {
	cand := c.exportMs + 1000 - int64(last)
	// Compared modulo 2^32 ms: records on both sides of an uptime wrap
	// give bounds 2^32 ms apart that mean the same boot.
	if !c.hasCand || int32(uint32(cand-c.bootCand)) < 0 {
		c.bootCand, c.hasCand = cand, true
	}
}

// deferFix records that the flows dst[from:] of a data set hold raw uptimes
// to be made absolute by fixBootTimes.
func (d *Decoder) deferFix(dst []store.Flow, c *pktCtx, from int) {
	if !c.deferred || len(dst) == from {
		return
	}
	c.deferred = false
	c.fix[c.nfix] = struct{ from, to int }{from, len(dst)}
	c.nfix++
	if c.nfix == len(c.fix) {
		d.fixBootTimes(dst, c)
	}
}

// fixBootTimes refines the boot time estimate of c's domain with the
// message's records and makes the deferred flows' times absolute.
func (d *Decoder) fixBootTimes(dst []store.Flow, c *pktCtx) {
	b := &c.dom.boot
	if c.hasCand {
		switch diff := int64(int32(uint32(c.bootCand - b.ms))); {
		case !b.valid:
			*b = bootEstimate{ms: c.bootCand, valid: true}
		case diff > bootResetMs || diff < -bootResetMs:
			d.restartDomain(c.dom)
			*b = bootEstimate{ms: c.bootCand, valid: true}
		case diff < 0:
			b.ms += diff
		}
	}
	// The uptime at export, modulo 2^32 like the records' uptimes.
	up := uint32(c.exportMs - b.ms)
	for _, r := range c.fix[:c.nfix] {
		for i := r.from; i < r.to; i++ {
			f := &dst[i]
			s := c.exportMs - int64(int32(up-uint32(f.Start)))
			e := c.exportMs - int64(int32(up-uint32(f.End)))
			f.Start, f.End = clampTimes(s, e, c.exportMs, c.nowMs)
		}
	}
	c.nfix = 0
	c.hasCand = false
}

// routerOSUptimeTimes computes a flow's start and end (unix ms) from
// uptime-relative IPFIX fields flowStartSysUpTime (22) and flowEndSysUpTime
// (21) when the record also has one absolute time and the exporter never
// says when it booted (no IE 160). The flow is anchored on the export time
// as its end, keeping its duration (the modular 32-bit difference, so an
// uptime wrap inside the flow is harmless). Records with uptimes only use
// the boot time estimate above.
func routerOSUptimeTimes(exportMs int64, first, last uint32, hasFirst, hasLast bool) (start, end int64) {
	end = exportMs
	start = exportMs
	if hasFirst && hasLast {
		dur := int64(int32(last - first))
		if dur > 0 {
			start = end - dur
		}
	}
	return start, end
}
