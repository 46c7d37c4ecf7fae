package netflow

import (
	"encoding/binary"
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// Header lengths.
const (
	v9HeaderLen    = 20
	ipfixHeaderLen = 16
)

// Set ids of template and options template sets.
const (
	v9TemplateSet       = 0
	v9OptionsSet        = 1
	ipfixTemplateSet    = 2
	ipfixOptionsSet     = 3
	firstDataSet        = 256
	maxFieldsPerTmpl    = 1024
	setHeaderLen        = 4
	v9OptionsHeaderLen  = 6
	ipfixTemplateHdrLen = 4
)

// walkResult is what walking the sets of a datagram found.
type walkResult struct {
	records      int  // data records decoded (flows and options)
	waiting      bool // a data set had no template and now waits
	newTemplates bool // a template was defined (pending sets may match)
	soft         *Error
}

// decodeV9 decodes a NetFlow v9 datagram. The header count is never
// trusted (softflowd writes 1, others leave templates out): flowsets are
// walked by their lengths to the end of the datagram.
func (d *Decoder) decodeV9(dst []store.Flow, e *exporter, from netip.AddrPort, b []byte, nowNs int64) ([]store.Flow, *Error) {
	if len(b) < v9HeaderLen {
		return dst, errorf(ReasonShortPacket, 0, "NetFlow v9 header needs %d bytes, have %d", v9HeaderLen, len(b))
	}
	secs := binary.BigEndian.Uint32(b[8:12])
	c := pktCtx{
		from:      from,
		e:         e,
		version:   9,
		uptime:    binary.BigEndian.Uint32(b[4:8]),
		hasUptime: true,
		exportMs:  int64(secs) * 1000,
		domainID:  binary.BigEndian.Uint32(b[16:20]),
		nowMs:     nowNs / 1e6,
		override:  e.override,
	}
	seq := binary.BigEndian.Uint32(b[12:16])
	c.dom = d.domain(e, 9, c.domainID, nowNs)
	if c.dom.clock.wentBack(c.uptime, secs) {
		d.restartDomain(c.dom)
	}
	dst, w, err := d.walkSets(dst, &c, b, v9HeaderLen, nowNs)
	// The sequence number counts packets: a gap is converted to records
	// with the average records per packet.
	lostPkts, restarted := c.dom.seq.observe(seq, 1, secs, true, maxGapPackets, maxRatePackets)
	if restarted {
		d.countRestart(c.dom.e)
	}
	d.addLost(e, c.dom.seq.v9Records(lostPkts, w.records, !w.waiting && err == nil))
	return d.afterWalk(dst, e, w, err, nowNs)
}

// decodeIPFIX decodes an IPFIX message; the header length bounds the sets
// (bytes after it are ignored).
func (d *Decoder) decodeIPFIX(dst []store.Flow, e *exporter, from netip.AddrPort, b []byte, nowNs int64) ([]store.Flow, *Error) {
	if len(b) < ipfixHeaderLen {
		return dst, errorf(ReasonShortPacket, 0, "IPFIX header needs %d bytes, have %d", ipfixHeaderLen, len(b))
	}
	mlen := int(binary.BigEndian.Uint16(b[2:4]))
	if mlen < ipfixHeaderLen || mlen > len(b) {
		return dst, errorf(ReasonBadLength, 2, "message length %d, datagram %d bytes", mlen, len(b))
	}
	b = b[:mlen]
	secs := binary.BigEndian.Uint32(b[4:8])
	c := pktCtx{
		from:     from,
		e:        e,
		version:  10,
		exportMs: int64(secs) * 1000,
		domainID: binary.BigEndian.Uint32(b[12:16]),
		nowMs:    nowNs / 1e6,
		override: e.override,
	}
	seq := binary.BigEndian.Uint32(b[8:12])
	c.dom = d.domain(e, 10, c.domainID, nowNs)
	dst, w, err := d.walkSets(dst, &c, b, ipfixHeaderLen, nowNs)
	if c.nfix > 0 {
		// Uptime-relative times without IE 160: made absolute now that
		// every record of the message refined the boot time estimate
		// (which may detect a restart, before the sequence check).
		d.fixBootTimes(dst, &c)
	}
	// The sequence number counts data records; when some could not be
	// counted (waiting sets, a fault) tracking resyncs on the next message.
	lost, restarted := c.dom.seq.observe(seq, uint32(w.records), secs, !w.waiting && err == nil, maxGapRecords, maxRateRecords)
	if restarted {
		d.countRestart(c.dom.e)
	}
	d.addLost(e, lost)
	return d.afterWalk(dst, e, w, err, nowNs)
}

// afterWalk decodes waiting data sets whose template just arrived and picks
// the error to return.
func (d *Decoder) afterWalk(dst []store.Flow, e *exporter, w walkResult, err *Error, nowNs int64) ([]store.Flow, *Error) {
	if w.newTemplates && len(e.pending) > 0 {
		dst = d.decodePending(dst, e, nowNs)
	}
	if err != nil {
		return dst, err
	}
	return dst, w.soft
}

// walkSets walks the sets of a v9 or IPFIX datagram from off.
func (d *Decoder) walkSets(dst []store.Flow, c *pktCtx, b []byte, off int, nowNs int64) ([]store.Flow, walkResult, *Error) {
	var w walkResult
	tmplSet, optSet := uint16(ipfixTemplateSet), uint16(ipfixOptionsSet)
	if c.version == 9 {
		tmplSet, optSet = v9TemplateSet, v9OptionsSet
	}
	for off < len(b) {
		if len(b)-off < setHeaderLen {
			break // trailing bytes too short for a set: padding
		}
		id := binary.BigEndian.Uint16(b[off:])
		length := int(binary.BigEndian.Uint16(b[off+2:]))
		if length < setHeaderLen {
			if allZero(b[off:]) {
				break // zero padding to the end of the datagram
			}
			return dst, w, errorf(ReasonBadSet, off, "set %d has length %d", id, length)
		}
		var overrun *Error
		if length > len(b)-off {
			// Decode what the datagram holds of the set (whole records
			// only), then report the fault.
			overrun = errorf(ReasonBadSet, off, "set %d length %d runs past the datagram (%d bytes left)", id, length, len(b)-off)
			length = len(b) - off
		}
		body := b[off+setHeaderLen : off+length]
		bodyOff := off + setHeaderLen
		var err *Error
		switch {
		case id == tmplSet:
			err = d.templateSet(c, body, bodyOff, false, &w, nowNs)
		case id == optSet:
			err = d.templateSet(c, body, bodyOff, true, &w, nowNs)
		case id >= firstDataSet:
			t := d.lookupTemplate(c.dom, id, nowNs)
			if t == nil {
				d.addPending(c, id, body, nowNs)
				w.waiting = true
				break
			}
			var n int
			dst, n, err = d.decodeDataSet(dst, c, t, body, bodyOff)
			w.records += n
		}
		if err != nil {
			return dst, w, err
		}
		if overrun != nil {
			return dst, w, overrun
		}
		off += length
	}
	return dst, w, nil
}

// templateSet parses a template or options template set (v9 or IPFIX).
func (d *Decoder) templateSet(c *pktCtx, body []byte, bodyOff int, options bool, w *walkResult, nowNs int64) *Error {
	ipfix := c.version == 10
	for p := 0; len(body)-p >= ipfixTemplateHdrLen; {
		rest := body[p:]
		if allZero(rest) {
			return nil // set padding
		}
		id := binary.BigEndian.Uint16(rest)
		cnt := int(binary.BigEndian.Uint16(rest[2:]))
		if ipfix && cnt == 0 {
			// Withdrawal (RFC 7011 8.1): template id = set id withdraws
			// every template of that kind of the domain.
			all := (!options && id == ipfixTemplateSet) || (options && id == ipfixOptionsSet)
			if !all && id < firstDataSet {
				return errorf(ReasonBadTemplate, bodyOff+p, "withdrawal of template id %d", id)
			}
			d.withdraw(c.dom, id, all, options)
			p += ipfixTemplateHdrLen
			continue
		}
		fields, n, err := parseTemplate(rest, bodyOff+p, ipfix, options, d.fieldBuf[:0])
		d.fieldBuf = fields[:0]
		if err != nil {
			return err
		}
		if d.refreshTemplate(c.dom, id, options, rest[:n], fields, nowNs) && w.soft == nil {
			w.soft = errorf(ReasonTemplateLimit, bodyOff+p, "template quota reached (%d per domain, %d in all): template %d took the place of an older one of this exporter",
				d.cfg.MaxTemplatesPerDomain, d.cfg.MaxTemplates, id)
		}
		w.newTemplates = true
		p += n
	}
	return nil
}

// parseTemplate compiles the template record (not a withdrawal) at the
// start of rest into fields (appended to fields, which it returns) and
// returns the record's length. off is rest's offset in the datagram, for
// errors.
func parseTemplate(rest []byte, off int, ipfix, options bool, fields []field) ([]field, int, *Error) {
	hdr := ipfixTemplateHdrLen
	if options {
		hdr = v9OptionsHeaderLen
	}
	if len(rest) < ipfixTemplateHdrLen {
		return fields, 0, errorf(ReasonBadTemplate, off, "template header runs past its set")
	}
	id := binary.BigEndian.Uint16(rest)
	cnt := int(binary.BigEndian.Uint16(rest[2:]))
	if id < firstDataSet {
		return fields, 0, errorf(ReasonBadTemplate, off, "template id %d below 256", id)
	}
	if len(rest) < hdr {
		return fields, 0, errorf(ReasonBadTemplate, off, "template %d header runs past its set", id)
	}
	// Field counts: scope fields first (options templates), then the
	// rest. v9 options templates give byte lengths; IPFIX counts.
	var nScope, nFields int
	switch {
	case !options:
		nFields = cnt
	case ipfix:
		nScope = int(binary.BigEndian.Uint16(rest[4:]))
		nFields = cnt
		if nScope == 0 || nScope > cnt {
			return fields, 0, errorf(ReasonBadTemplate, off, "options template %d has %d scope fields of %d", id, nScope, cnt)
		}
	default: // v9 options: cnt is the scope length in bytes
		scopeLen, optLen := cnt, int(binary.BigEndian.Uint16(rest[4:]))
		if scopeLen%4 != 0 || optLen%4 != 0 {
			return fields, 0, errorf(ReasonBadTemplate, off, "options template %d scope/option lengths %d/%d not multiples of 4", id, scopeLen, optLen)
		}
		nScope = scopeLen / 4
		nFields = nScope + optLen/4
	}
	if nFields == 0 || nFields > maxFieldsPerTmpl {
		return fields, 0, errorf(ReasonBadTemplate, off, "template %d has %d fields", id, nFields)
	}
	q := hdr
	minLen := 0
	for i := range nFields {
		if len(rest)-q < 4 {
			return fields, 0, errorf(ReasonBadTemplate, off+q, "template %d field %d runs past its set", id, i)
		}
		typ := binary.BigEndian.Uint16(rest[q:])
		l := binary.BigEndian.Uint16(rest[q+2:])
		q += 4
		var pen uint32
		if ipfix && typ&0x8000 != 0 {
			if len(rest)-q < 4 {
				return fields, 0, errorf(ReasonBadTemplate, off+q, "template %d field %d enterprise number runs past its set", id, i)
			}
			pen = binary.BigEndian.Uint32(rest[q:])
			typ &= 0x7fff
			q += 4
		}
		k := fieldKind(typ, l, pen)
		if !ipfix && options && i < nScope {
			k = kSkip // v9 scope types are not information elements
		}
		fields = append(fields, field{kind: k, length: l})
		if l == varLen {
			minLen++
		} else {
			minLen += int(l)
		}
	}
	if minLen == 0 {
		return fields, 0, errorf(ReasonBadTemplate, off, "template %d has records of length 0", id)
	}
	return fields, q, nil
}
