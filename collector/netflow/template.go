package netflow

import (
	"bytes"
	"net/netip"
	"slices"
)

// templateKey identifies a template: per exporter address (every MikroTik
// uses the same template ids, see routeros.go), NetFlow version,
// observation domain / source id and template id.
type templateKey struct {
	addr    netip.Addr
	domain  uint32
	id      uint16
	version uint16
}

// varLen is the field length that marks an IPFIX variable-length field
// (also used by some v9 exporters, e.g. H3C).
const varLen = 0xffff

// field is one compiled field of a template.
type field struct {
	kind   kind
	length uint16 // varLen for variable length
	off    uint16 // offset in the record (fixed-length templates)
}

// template is a compiled template or options template.
type template struct {
	key     templateKey
	options bool
	fields  []field
	// used holds, for fixed-length templates, the fields that are not
	// skipped, with their offsets: the hot loop visits only those.
	used []field
	// fixedLen is the record length when no field has a variable length,
	// 0 otherwise; minLen is the smallest possible record length (> 0).
	fixedLen int
	minLen   int
	updated  int64  // unix ns of the last definition or refresh
	raw      []byte // the definition as received, to detect redefinitions
}

// kind says what to do with a field's bytes.
type kind uint8

// Field kinds. Counter kinds have a fallback order (see finishFlow).
const (
	kSkip kind = iota
	kBytes
	kPackets
	kProto
	kToS
	kTCPFlags
	kSrcPort
	kDstPort
	kSrcAddr
	kDstAddr
	kSrcMask
	kDstMask
	kInIf
	kOutIf
	kNextHop
	kBGPNextHop
	kSrcAS
	kDstAS
	kLast  // flowEndSysUpTime (21)
	kFirst // flowStartSysUpTime (22)
	kPostBytes
	kPostPackets
	kTotalBytes
	kTotalPackets
	kInitBytes
	kRespBytes
	kInitPackets
	kRespPackets
	kSamplingInterval // 34: may be little-endian (RouterOS)
	kSamplerRandomInterval
	kSamplerID
	kSamplingPacketInterval
	kSamplingPacketSpace
	kSamplingSize
	kSamplingPopulation
	kSrcMAC
	kDstMAC
	kPostSrcMAC
	kPostDstMAC
	kVLAN
	kPostVLAN
	kDot1qVLAN
	kStartSec
	kEndSec
	kStartMs
	kEndMs
	kStartNTPus
	kEndNTPus
	kStartNTPns
	kEndNTPns
	kSysInit
	kDurMs
	kDurUs
	kPostNATSrc
	kPostNATDst
	kPostNATSrcPort
	kPostNATDstPort
	kRevBytes        // RFC 5103 reverse octetDeltaCount (PEN 29305, IE 1)
	kRevPackets      // reverse packetDeltaCount
	kRevTotalBytes   // reverse octetTotalCount (85)
	kRevTotalPackets // reverse packetTotalCount (86)
)

// reversePEN is the private enterprise number of RFC 5103 reverse
// information elements (biflows: softflowd -b, YAF, ipfixprobe).
const reversePEN = 29305

// Field value classes: which lengths a kind accepts.
const (
	classUint  = iota // unsigned integer, 1..8 bytes
	classAddr4        // IPv4 address, 4 bytes
	classAddr6        // IPv6 address, 16 bytes
	classNTP          // NTP timestamp, 8 bytes
)

// ieKinds maps an IANA information element id (v9 field type) to a kind
// and a class.
var ieKinds = map[uint16]struct {
	k     kind
	class uint8
}{
	1: {kBytes, classUint}, 2: {kPackets, classUint}, 4: {kProto, classUint},
	5: {kToS, classUint}, 6: {kTCPFlags, classUint}, 7: {kSrcPort, classUint},
	8: {kSrcAddr, classAddr4}, 9: {kSrcMask, classUint}, 10: {kInIf, classUint},
	11: {kDstPort, classUint}, 12: {kDstAddr, classAddr4}, 13: {kDstMask, classUint},
	14: {kOutIf, classUint}, 15: {kNextHop, classAddr4}, 16: {kSrcAS, classUint},
	17: {kDstAS, classUint}, 18: {kBGPNextHop, classAddr4}, 21: {kLast, classUint},
	22: {kFirst, classUint}, 23: {kPostBytes, classUint}, 24: {kPostPackets, classUint},
	27: {kSrcAddr, classAddr6}, 28: {kDstAddr, classAddr6}, 29: {kSrcMask, classUint},
	30: {kDstMask, classUint}, 34: {kSamplingInterval, classUint}, 48: {kSamplerID, classUint},
	50: {kSamplerRandomInterval, classUint}, 56: {kSrcMAC, classUint}, 57: {kPostDstMAC, classUint},
	58: {kVLAN, classUint}, 59: {kPostVLAN, classUint}, 62: {kNextHop, classAddr6},
	63: {kBGPNextHop, classAddr6}, 80: {kDstMAC, classUint}, 81: {kPostSrcMAC, classUint},
	85: {kTotalBytes, classUint}, 86: {kTotalPackets, classUint},
	150: {kStartSec, classUint}, 151: {kEndSec, classUint}, 152: {kStartMs, classUint},
	153: {kEndMs, classUint}, 154: {kStartNTPus, classNTP}, 155: {kEndNTPus, classNTP},
	156: {kStartNTPns, classNTP}, 157: {kEndNTPns, classNTP}, 160: {kSysInit, classUint},
	161: {kDurMs, classUint}, 162: {kDurUs, classUint},
	225: {kPostNATSrc, classAddr4}, 226: {kPostNATDst, classAddr4},
	227: {kPostNATSrcPort, classUint}, 228: {kPostNATDstPort, classUint},
	231: {kInitBytes, classUint}, 232: {kRespBytes, classUint}, 243: {kDot1qVLAN, classUint},
	281: {kPostNATSrc, classAddr6}, 282: {kPostNATDst, classAddr6},
	298: {kInitPackets, classUint}, 299: {kRespPackets, classUint},
	302: {kSamplerID, classUint}, 305: {kSamplingPacketInterval, classUint},
	306: {kSamplingPacketSpace, classUint}, 309: {kSamplingSize, classUint},
	310: {kSamplingPopulation, classUint},
}

// fieldKind returns the kind of IE id (of enterprise pen, 0 for IANA) with
// the given length. Fields we do not use, other enterprises' fields and
// fields of an unexpected length are skipped. Of RFC 5103 reverse fields,
// the counters are kept: a biflow record's bytes and packets are those of
// both directions, as for NSEL initiator and responder counters.
func fieldKind(id, length uint16, pen uint32) kind {
	if length == varLen || length == 0 {
		return kSkip
	}
	if pen == reversePEN {
		if length > 8 {
			return kSkip
		}
		switch id {
		case 1:
			return kRevBytes
		case 2:
			return kRevPackets
		case 85:
			return kRevTotalBytes
		case 86:
			return kRevTotalPackets
		}
		return kSkip
	}
	if pen != 0 {
		return kSkip
	}
	m, ok := ieKinds[id]
	if !ok {
		return kSkip
	}
	switch m.class {
	case classUint:
		if length >= 1 && length <= 8 {
			return m.k
		}
	case classAddr4:
		if length == 4 {
			return m.k
		}
	case classAddr6:
		if length == 16 {
			return m.k
		}
	case classNTP:
		if length == 8 {
			return m.k
		}
	}
	return kSkip
}

// newTemplate makes a template from its compiled fields and raw definition
// (both copied).
func newTemplate(k templateKey, options bool, fields []field, raw []byte, nowNs int64) *template {
	t := &template{key: k, options: options, fields: slices.Clone(fields), updated: nowNs, raw: bytes.Clone(raw)}
	fixed := true
	for _, f := range fields {
		if f.length == varLen {
			fixed = false
			t.minLen++ // at least the 1-byte length prefix
		} else {
			t.minLen += int(f.length)
		}
	}
	if fixed && t.minLen <= 0xffff {
		t.fixedLen = t.minLen
		off := 0
		for _, f := range fields {
			if f.kind != kSkip {
				f.off = uint16(off)
				t.used = append(t.used, f)
			}
			off += int(f.length)
		}
	}
	return t
}

// lookupTemplate returns the live template of k, or nil (an expired one is
// deleted).
func (d *Decoder) lookupTemplate(k templateKey, nowNs int64) *template {
	t := d.templates[k]
	if t == nil {
		return nil
	}
	if nowNs-t.updated > int64(d.cfg.TemplateTTL) {
		d.deleteTemplate(k)
		return nil
	}
	return t
}

// refreshTemplate handles a template definition (raw bytes and compiled
// fields, both copied if kept): an identical definition only refreshes the
// cached template; otherwise the new template replaces any previous one. It
// reports false when the cache is full.
func (d *Decoder) refreshTemplate(e *exporter, k templateKey, options bool, raw []byte, fields []field, nowNs int64) bool {
	e.lastTemplate = nowNs
	if t := d.templates[k]; t != nil {
		if t.options == options && bytes.Equal(t.raw, raw) {
			t.updated = nowNs
			return true
		}
		d.templates[k] = newTemplate(k, options, fields, raw, nowNs)
		return true
	}
	if len(d.templates) >= d.cfg.MaxTemplates {
		// Make room from expired templates before refusing.
		ttl := int64(d.cfg.TemplateTTL)
		for ok, t := range d.templates {
			if nowNs-t.updated > ttl {
				d.deleteTemplate(ok)
			}
		}
		if len(d.templates) >= d.cfg.MaxTemplates {
			return false
		}
	}
	d.templates[k] = newTemplate(k, options, fields, raw, nowNs)
	if x := d.exporters[k.addr]; x != nil {
		x.stats.Templates++
	}
	return true
}

// deleteTemplate removes template k.
func (d *Decoder) deleteTemplate(k templateKey) {
	if _, ok := d.templates[k]; !ok {
		return
	}
	delete(d.templates, k)
	if x := d.exporters[k.addr]; x != nil && x.stats.Templates > 0 {
		x.stats.Templates--
	}
}

// withdraw removes the templates of (addr, version, domain): one id, or all
// data templates (all=true, options=false) or all options templates.
func (d *Decoder) withdraw(k templateKey, all, options bool) {
	if !all {
		d.deleteTemplate(k)
		return
	}
	for tk, t := range d.templates {
		if tk.addr == k.addr && tk.version == k.version && tk.domain == k.domain && t.options == options {
			d.deleteTemplate(tk)
		}
	}
}
