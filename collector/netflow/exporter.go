package netflow

import (
	"net/netip"
)

// Bounds of the per-exporter state.
const (
	// maxDomains bounds the (version, observation domain) states of one
	// exporter; the least recently seen is forgotten (with its templates)
	// beyond it.
	maxDomains = 256
	// maxSamplers bounds the sampler table of one domain.
	maxSamplers = 256
)

// exporter is the state of one exporter address.
//
// Templates are keyed by address, not by address and port: RouterOS sends
// from a fixed source port, and a new source port means the exporter
// restarted (a new socket). Its sequence tracking then starts over, while
// its templates stay until they are redefined, withdrawn, evicted or
// expired (a restarted exporter sends them again first).
type exporter struct {
	addr         netip.Addr
	port         uint16 // last UDP source port: a change means a restart
	lastSeen     int64  // unix ns
	lastTemplate int64  // unix ns
	override     uint32 // configured sampling rate, 0 if none
	stats        ExporterStats

	domains map[domainKey]*domain
	lastDom *domain
	domLRU  domainList // most recently seen first

	// tmpl holds every template of the exporter, least recently defined
	// or refreshed first: the head is evicted when the whole cache is full
	// and this exporter holds the most, and expires first.
	tmpl    templateList
	heapIdx int // position in Decoder.byTemplates

	pending []pendingSet

	prev, next *exporter // Decoder.lru
}

// domainKey identifies the sequence/sampling/template scope of an
// exporter: v9 source id or IPFIX observation domain (v5: engine type and
// id), per NetFlow version.
type domainKey struct {
	version uint16
	id      uint32
}

// domain is the per (exporter, version, domain) state.
type domain struct {
	key      domainKey
	e        *exporter
	lastSeen int64
	seq      seqState
	clock    headerClock

	// templates of the domain by id; tmpl orders them, least recently
	// defined or refreshed first (the head is evicted beyond
	// MaxTemplatesPerDomain).
	templates map[uint16]*template
	tmpl      templateList

	// rate is the domain-wide sampling rate (v5 header, or an options
	// record without sampler id); rateExplicit says it came from such a
	// record rather than from the only sampler of the table.
	rate         uint32
	rateExplicit bool
	samplers     map[uint64]uint32 // sampler/selector id -> rate

	// sysInitMs is systemInitTimeMilliseconds (IE 160) learned from an
	// options record; 0 when unknown.
	sysInitMs int64
	// boot is the boot time estimated from uptime-relative IPFIX times
	// when IE 160 is unknown (routeros.go).
	boot bootEstimate

	prev, next *domain // exporter.domLRU
}

// exporter returns the state of from's address, creating it (and forgetting
// the exporter silent the longest when the bound is reached). A changed
// source port is a restart: sequence tracking starts over.
func (d *Decoder) exporter(from netip.AddrPort, nowNs int64) *exporter {
	addr := from.Addr()
	e := d.last
	if e == nil || e.addr != addr {
		e = d.exporters[addr]
		if e == nil {
			e = d.newExporter(addr, from.Port())
		}
		d.last = e
	}
	if d.lru.head != e {
		d.lru.moveToFront(e)
	}
	if e.port != from.Port() {
		// The exporter restarted (new socket): its sequence numbers start
		// over. Templates stay until redefined or expired.
		e.port = from.Port()
		d.restartExporter(e)
	}
	e.lastSeen = nowNs
	return e
}

// newExporter adds the state of addr (last heard from port), forgetting the
// exporter silent the longest when MaxExporters is reached: O(1) plus its
// own templates and waiting data sets.
func (d *Decoder) newExporter(addr netip.Addr, port uint16) *exporter {
	if len(d.exporters) >= d.cfg.MaxExporters && d.lru.tail != nil {
		d.forgetExporter(d.lru.tail)
	}
	e := &exporter{addr: addr, port: port, domains: make(map[domainKey]*domain)}
	e.stats.Exporter = addr
	e.override = d.cfg.SamplingOverride[addr]
	d.exporters[addr] = e
	d.lru.pushFront(e)
	d.heapPush(e)
	return e
}

// forgetExporter drops exporter e with its templates and waiting data sets.
func (d *Decoder) forgetExporter(e *exporter) {
	for t := e.tmpl.head; t != nil; t = e.tmpl.head {
		d.removeTemplate(t)
	}
	for i := range e.pending {
		d.dropPending(e, i, false)
	}
	e.pending = e.pending[:0]
	d.heapRemove(e)
	d.lru.remove(e)
	delete(d.exporters, e.addr)
	if d.last == e {
		d.last = nil
	}
	d.sum.ExportersForgotten++
}

// domain returns the state of (version, id) of exporter e, creating it
// (and forgetting the domain of e seen the longest ago beyond maxDomains).
func (d *Decoder) domain(e *exporter, version uint16, id uint32, nowNs int64) *domain {
	k := domainKey{version: version, id: id}
	dom := e.lastDom
	if dom == nil || dom.key != k {
		dom = e.domains[k]
		if dom == nil {
			if len(e.domains) >= maxDomains && e.domLRU.tail != nil {
				d.forgetDomain(e.domLRU.tail)
			}
			dom = &domain{key: k, e: e}
			e.domains[k] = dom
			e.domLRU.pushFront(dom)
		}
		e.lastDom = dom
	}
	if e.domLRU.head != dom {
		e.domLRU.moveToFront(dom)
	}
	dom.lastSeen = nowNs
	return dom
}

// forgetDomain drops domain dom of its exporter, with its templates.
func (d *Decoder) forgetDomain(dom *domain) {
	e := dom.e
	for t := dom.tmpl.head; t != nil; t = dom.tmpl.head {
		d.removeTemplate(t)
	}
	e.domLRU.remove(dom)
	delete(e.domains, dom.key)
	if e.lastDom == dom {
		e.lastDom = nil
	}
}

// restartExporter starts the sequence and time tracking of every domain of
// e over, and counts a restart.
func (d *Decoder) restartExporter(e *exporter) {
	for dom := e.domLRU.head; dom != nil; dom = dom.next {
		dom.restart()
	}
	d.countRestart(e)
}

// restartDomain starts the sequence and time tracking of dom over, and
// counts a restart of its exporter.
func (d *Decoder) restartDomain(dom *domain) {
	dom.restart()
	d.countRestart(dom.e)
}

// countRestart counts a restart of exporter e.
func (d *Decoder) countRestart(e *exporter) {
	e.stats.Restarts++
	d.sum.Restarts++
}

// restart forgets what a restarted exporter resets: sequence numbers,
// header clock and estimated boot time. The records-per-packet average of
// v9 describes the traffic and is kept.
func (dom *domain) restart() {
	dom.seq.reset()
	dom.clock = headerClock{}
	dom.boot = bootEstimate{}
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

// sweep drops expired templates and expired waiting data sets. It visits
// each exporter once and pops expired templates from the head of its
// age-ordered list, so its cost is the number of exporters plus what
// expired, never the whole cache.
func (d *Decoder) sweep(nowNs int64) {
	ttl := int64(d.cfg.TemplateTTL)
	for _, e := range d.exporters {
		if ttl > 0 {
			for t := e.tmpl.head; t != nil && nowNs-t.updated > ttl; t = e.tmpl.head {
				d.expireTemplate(t)
			}
		}
		if len(e.pending) > 0 {
			d.expirePending(e, nowNs)
		}
	}
}

// exporterList is an intrusive doubly linked list of exporters.
type exporterList struct{ head, tail *exporter }

func (l *exporterList) pushFront(e *exporter) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	} else {
		l.tail = e
	}
	l.head = e
}

func (l *exporterList) remove(e *exporter) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (l *exporterList) moveToFront(e *exporter) {
	l.remove(e)
	l.pushFront(e)
}

// domainList is an intrusive doubly linked list of domains.
type domainList struct{ head, tail *domain }

func (l *domainList) pushFront(x *domain) {
	x.prev, x.next = nil, l.head
	if l.head != nil {
		l.head.prev = x
	} else {
		l.tail = x
	}
	l.head = x
}

func (l *domainList) remove(x *domain) {
	if x.prev != nil {
		x.prev.next = x.next
	} else {
		l.head = x.next
	}
	if x.next != nil {
		x.next.prev = x.prev
	} else {
		l.tail = x.prev
	}
	x.prev, x.next = nil, nil
}

func (l *domainList) moveToFront(x *domain) {
	l.remove(x)
	l.pushFront(x)
}

// The exporters by number of templates: a binary max-heap on
// stats.Templates, updated in O(log n) when an exporter gains or loses a
// template (never on the data path).

func (d *Decoder) heapLess(i, j int) bool {
	return d.byTemplates[i].stats.Templates > d.byTemplates[j].stats.Templates
}

func (d *Decoder) heapSwap(i, j int) {
	h := d.byTemplates
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (d *Decoder) heapUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !d.heapLess(i, p) {
			return
		}
		d.heapSwap(i, p)
		i = p
	}
}

// heapDown moves the exporter at i down and reports whether it moved.
func (d *Decoder) heapDown(i int) bool {
	n := len(d.byTemplates)
	i0 := i
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && d.heapLess(r, l) {
			m = r
		}
		if !d.heapLess(m, i) {
			break
		}
		d.heapSwap(i, m)
		i = m
	}
	return i > i0
}

func (d *Decoder) heapPush(e *exporter) {
	e.heapIdx = len(d.byTemplates)
	d.byTemplates = append(d.byTemplates, e)
	d.heapUp(e.heapIdx)
}

func (d *Decoder) heapRemove(e *exporter) {
	i, last := e.heapIdx, len(d.byTemplates)-1
	if i != last {
		d.heapSwap(i, last)
	}
	d.byTemplates[last] = nil
	d.byTemplates = d.byTemplates[:last]
	if i != last {
		d.heapFix(i)
	}
	e.heapIdx = -1
}

// heapFix restores the heap after the template count of the exporter at i
// changed.
func (d *Decoder) heapFix(i int) {
	if !d.heapDown(i) {
		d.heapUp(i)
	}
}
