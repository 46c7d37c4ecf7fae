package netflow

import (
	"net/netip"
)

// Bounds of the per-exporter state.
const (
	// maxDomains bounds the (version, observation domain) states of one
	// exporter; the least recently seen is forgotten beyond it.
	maxDomains = 256
	// maxSamplers bounds the sampler table of one domain.
	maxSamplers = 256
)

// exporter is the state of one exporter address.
type exporter struct {
	addr         netip.Addr
	port         uint16 // last UDP source port: a change means a restart
	lastSeen     int64  // unix ns
	lastTemplate int64  // unix ns
	stats        ExporterStats

	domains map[domainKey]*domain
	lastDom *domain

	pending []pendingSet
}

// domainKey identifies the sequence/sampling scope of an exporter: v9
// source id or IPFIX observation domain (v5: engine type and id), per
// NetFlow version.
type domainKey struct {
	version uint16
	id      uint32
}

// domain is the per (exporter, version, domain) state.
type domain struct {
	key      domainKey
	lastSeen int64
	seq      seqState

	// rate is the domain-wide sampling rate (v5 header, or an options
	// record without sampler id); rateExplicit says it came from such a
	// record rather than from the only sampler of the table.
	rate         uint32
	rateExplicit bool
	samplers     map[uint64]uint32 // sampler/selector id -> rate

	// sysInitMs is systemInitTimeMilliseconds (IE 160) learned from an
	// options record; 0 when unknown.
	sysInitMs int64
}

// exporter returns the state of from's address, creating it (and evicting
// the exporter silent the longest when the bound is reached). A changed
// source port resets sequence tracking.
func (d *Decoder) exporter(from netip.AddrPort, nowNs int64) *exporter {
	addr := from.Addr()
	e := d.last
	if e == nil || e.addr != addr {
		e = d.exporters[addr]
		if e == nil {
			if len(d.exporters) >= d.cfg.MaxExporters {
				d.evictExporter()
			}
			e = &exporter{addr: addr, port: from.Port(), domains: make(map[domainKey]*domain)}
			e.stats.Exporter = addr
			d.exporters[addr] = e
		}
		d.last = e
	}
	if e.port != from.Port() {
		// The exporter restarted (new socket): its sequence numbers start
		// over. Templates stay until redefined or expired.
		e.port = from.Port()
		for _, dom := range e.domains {
			dom.seq.valid = false
		}
	}
	e.lastSeen = nowNs
	return e
}

// evictExporter forgets the exporter silent the longest, with its
// templates and waiting data sets.
func (d *Decoder) evictExporter() {
	var old *exporter
	for _, e := range d.exporters {
		if old == nil || e.lastSeen < old.lastSeen {
			old = e
		}
	}
	if old == nil {
		return
	}
	for k := range d.templates {
		if k.addr == old.addr {
			delete(d.templates, k)
		}
	}
	for i := range old.pending {
		d.dropPending(old, i)
	}
	old.pending = old.pending[:0]
	delete(d.exporters, old.addr)
	if d.last == old {
		d.last = nil
	}
	d.sum.ExportersForgotten++
}

// domain returns the state of (version, id) of exporter e.
func (d *Decoder) domain(e *exporter, version uint16, id uint32, nowNs int64) *domain {
	k := domainKey{version: version, id: id}
	dom := e.lastDom
	if dom == nil || dom.key != k {
		dom = e.domains[k]
		if dom == nil {
			if len(e.domains) >= maxDomains {
				var old *domain
				for _, x := range e.domains {
					if old == nil || x.lastSeen < old.lastSeen {
						old = x
					}
				}
				delete(e.domains, old.key)
			}
			dom = &domain{key: k}
			e.domains[k] = dom
		}
		e.lastDom = dom
	}
	dom.lastSeen = nowNs
	return dom
}

// setSampler records the rate of a sampler id of dom.
func (d *Decoder) setSampler(e *exporter, dom *domain, id uint64, rate uint32) {
	if dom.samplers == nil {
		dom.samplers = make(map[uint64]uint32)
	}
	if _, ok := dom.samplers[id]; !ok && len(dom.samplers) >= maxSamplers {
		e.stats.SamplersDropped++
		return
	}
	dom.samplers[id] = rate
	if !dom.rateExplicit {
		// Flows that carry no sampler id use the exporter's only sampler;
		// with several, their rate is unknown.
		dom.rate = 0
		if len(dom.samplers) == 1 {
			dom.rate = rate
		}
	}
}

// sweep drops expired templates and expired waiting data sets.
func (d *Decoder) sweep(nowNs int64) {
	ttl := int64(d.cfg.TemplateTTL)
	for k, t := range d.templates {
		if nowNs-t.updated > ttl {
			d.deleteTemplate(k)
		}
	}
	for _, e := range d.exporters {
		d.expirePending(e, nowNs)
	}
}

// Sequence tracking.

// Bounds of a plausible sequence gap: beyond them the exporter restarted or
// jumped, and tracking resyncs without counting loss.
const (
	maxGapRecords = 1 << 22 // v5 and IPFIX: records
	maxGapPackets = 1 << 16 // v9: packets
)

// seqState tracks the sequence numbers of one (exporter, domain).
type seqState struct {
	next  uint32
	valid bool
	// avg is the running average of records per v9 packet, in 1/16.
	avg uint64
}

// observe checks sequence number seq of a datagram carrying n units (records
// or, for v9, one packet) and returns the units lost (negative when a late
// datagram fills a gap counted before). known is false when the datagram's
// units could not all be counted (sets waiting for a template): tracking
// then resyncs on the next datagram.
func (s *seqState) observe(seq, n uint32, known bool, maxGap int64) int64 {
	var lost int64
	if s.valid {
		gap := int64(int32(seq - s.next))
		switch {
		case gap == 0:
		case gap > 0 && gap <= maxGap:
			lost = gap
		case gap < 0 && -gap <= maxGap:
			// A late (reordered) datagram: it was counted lost when the
			// gap was seen; do not move the expectation backwards.
			return -int64(n)
		}
	}
	s.next = seq + n
	s.valid = known
	return lost
}

// addLost applies a loss estimate (possibly negative) to e's counter.
func (d *Decoder) addLost(e *exporter, lost int64) {
	switch {
	case lost > 0:
		e.stats.LostFlows += uint64(lost)
		d.sum.LostFlows += uint64(lost)
	case lost < 0:
		back := min(uint64(-lost), e.stats.LostFlows)
		e.stats.LostFlows -= back
		d.sum.LostFlows -= back
	}
}

// v9Lost converts a v9 packet gap into records using the running average
// of records per packet, and updates the average with this packet's n
// records.
func v9Lost(s *seqState, lostPackets int64, n int) int64 {
	avg := s.avg
	if avg == 0 {
		avg = uint64(n) << 4
	}
	// Exponential moving average, weight 1/8.
	s.avg = avg - avg/8 + (uint64(n)<<4)/8
	if lostPackets == 0 {
		return 0
	}
	if lostPackets < 0 {
		return -int64(n)
	}
	return lostPackets * int64(avg) >> 4
}
