package netflow

import (
	"bytes"
	"net/netip"
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

	dom  *domain
	link [2]templateLink // in dom.tmpl (byDomain) and dom.e.tmpl (byExporter)
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

// define (re)compiles t from its fields and raw definition (both copied,
// reusing t's buffers).
func (t *template) define(options bool, fields []field, raw []byte, nowNs int64) {
	t.options = options
	t.fields = append(t.fields[:0], fields...)
	t.raw = append(t.raw[:0], raw...)
	t.used = t.used[:0]
	t.updated = nowNs
	t.fixedLen, t.minLen = 0, 0
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
}

// lookupTemplate returns the live template id of dom, or nil (an expired
// one is dropped).
func (d *Decoder) lookupTemplate(dom *domain, id uint16, nowNs int64) *template {
	t := dom.templates[id]
	if t == nil {
		return nil
	}
	if ttl := int64(d.cfg.TemplateTTL); ttl > 0 && nowNs-t.updated > ttl {
		d.expireTemplate(t)
		return nil
	}
	return t
}

// refreshTemplate handles a template definition (raw bytes and compiled
// fields, both copied if kept) of domain dom: an identical definition only
// refreshes the cached template; otherwise the new template replaces any
// previous one of the same id. A new template beyond the domain's quota
// takes the place of the domain's oldest; beyond the cache's bound, the
// place of the oldest template of the exporter holding the most. It
// reports whether templates of dom's own exporter were evicted.
func (d *Decoder) refreshTemplate(dom *domain, id uint16, options bool, raw []byte, fields []field, nowNs int64) (evictedOwn bool) {
	e := dom.e
	e.lastTemplate = nowNs
	if t := dom.templates[id]; t != nil {
		if t.options != options || !bytes.Equal(t.raw, raw) {
			t.define(options, fields, raw, nowNs)
		}
		t.updated = nowNs
		dom.tmpl.moveToBack(t, byDomain)
		e.tmpl.moveToBack(t, byExporter)
		return false
	}
	var t *template
	switch {
	case len(dom.templates) >= d.cfg.MaxTemplatesPerDomain:
		t = dom.tmpl.head
		evictedOwn = true
	case d.templates >= d.cfg.MaxTemplates:
		victim := d.byTemplates[0] // the exporter with the most templates
		t = victim.tmpl.head
		evictedOwn = victim == e
	}
	if t != nil {
		x := t.dom.e
		x.stats.TemplatesEvicted++
		d.sum.TemplatesEvicted++
		d.removeTemplate(t) // its buffers are reused below
	} else {
		t = &template{}
	}
	t.key = templateKey{addr: e.addr, domain: dom.key.id, id: id, version: dom.key.version}
	t.define(options, fields, raw, nowNs)
	d.addTemplate(dom, t)
	return evictedOwn
}

// addTemplate links the new template t into dom.
func (d *Decoder) addTemplate(dom *domain, t *template) {
	e := dom.e
	t.dom = dom
	if dom.templates == nil {
		dom.templates = make(map[uint16]*template)
	}
	dom.templates[t.key.id] = t
	dom.tmpl.pushBack(t, byDomain)
	e.tmpl.pushBack(t, byExporter)
	d.templates++
	e.stats.Templates++
	d.heapFix(e.heapIdx)
}

// removeTemplate unlinks template t from its domain and exporter.
func (d *Decoder) removeTemplate(t *template) {
	dom := t.dom
	e := dom.e
	delete(dom.templates, t.key.id)
	dom.tmpl.remove(t, byDomain)
	e.tmpl.remove(t, byExporter)
	t.dom = nil
	d.templates--
	e.stats.Templates--
	d.heapFix(e.heapIdx)
}

// expireTemplate drops template t, unrefreshed for longer than the TTL.
func (d *Decoder) expireTemplate(t *template) {
	t.dom.e.stats.TemplatesExpired++
	d.sum.TemplatesExpired++
	d.removeTemplate(t)
}

// withdraw removes templates of dom: one id, or all data templates
// (all=true, options=false) or all options templates.
func (d *Decoder) withdraw(dom *domain, id uint16, all, options bool) {
	if !all {
		if t := dom.templates[id]; t != nil {
			d.removeTemplate(t)
		}
		return
	}
	for t := dom.tmpl.head; t != nil; {
		next := t.link[byDomain].next
		if t.options == options {
			d.removeTemplate(t)
		}
		t = next
	}
}

// Template lists: a template is in two intrusive lists, its domain's and
// its exporter's, each ordered from the least recently defined or
// refreshed.
const (
	byDomain   = 0
	byExporter = 1
)

// templateLink is a template's place in one list.
type templateLink struct{ prev, next *template }

// templateList is an intrusive doubly linked list of templates.
type templateList struct{ head, tail *template }

func (l *templateList) pushBack(t *template, k int) {
	t.link[k] = templateLink{prev: l.tail}
	if l.tail != nil {
		l.tail.link[k].next = t
	} else {
		l.head = t
	}
	l.tail = t
}

func (l *templateList) remove(t *template, k int) {
	lk := &t.link[k]
	if lk.prev != nil {
		lk.prev.link[k].next = lk.next
	} else {
		l.head = lk.next
	}
	if lk.next != nil {
		lk.next.link[k].prev = lk.prev
	} else {
		l.tail = lk.prev
	}
	*lk = templateLink{}
}

func (l *templateList) moveToBack(t *template, k int) {
	if l.tail == t {
		return
	}
	l.remove(t, k)
	l.pushBack(t, k)
}
