package netflow

import "encoding/binary"

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

// routerOSUptimeTimes computes a flow's start and end (unix ms) from
// uptime-relative IPFIX fields flowStartSysUpTime (22) and flowEndSysUpTime
// (21) when the exporter never says when it booted: RouterOS 6.x sends
// 21/22 without systemInitTimeMilliseconds (160) and IPFIX headers carry no
// sysUptime, so the absolute times cannot be derived. The flow is anchored
// on the export time as its end, keeping its duration (the modular 32-bit
// difference, so an uptime wrap inside the flow is harmless): flows are
// exported when they end or time out, so the end is off by at most the
// exporter's flow timeouts.
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
