package netflow

import (
	"net/netip"

	"github.com/flowbox/flowbox/store"
)

// pendingSet is a data set that arrived before its template (FortiGate and
// others send data first), kept with what its records need to be decoded
// later.
type pendingSet struct {
	from      netip.AddrPort
	version   uint16
	domain    uint32
	id        uint16
	exportMs  int64
	uptime    uint32
	hasUptime bool
	arrived   int64 // unix ns
	data      []byte
}

// addPending keeps a copy of data set body (template id) until its
// template arrives, within the per-exporter and global bounds.
func (d *Decoder) addPending(c *pktCtx, id uint16, body []byte, nowNs int64) {
	e := c.e
	e.stats.NoTemplateSets++
	e.stats.NoTemplateRecords++
	d.sum.NoTemplateSets++
	d.expirePending(e, nowNs)
	if len(e.pending) >= d.cfg.MaxPending {
		d.dropPending(e, 0, false)
		e.pending = e.pending[:copy(e.pending, e.pending[1:])]
	}
	for d.pendingBytes+len(body) > d.cfg.MaxPendingBytes && len(e.pending) > 0 {
		d.dropPending(e, 0, false)
		e.pending = e.pending[:copy(e.pending, e.pending[1:])]
	}
	if d.pendingBytes+len(body) > d.cfg.MaxPendingBytes {
		// Other exporters hold the budget: this set is dropped.
		d.countPendingDropped(e, false)
		return
	}
	var buf []byte
	if n := len(e.pending); n < cap(e.pending) {
		buf = e.pending[:n+1][n].data[:0] // reuse the buffer of a removed entry
	}
	e.pending = append(e.pending, pendingSet{
		from:      c.from,
		version:   c.version,
		domain:    c.domainID,
		id:        id,
		exportMs:  c.exportMs,
		uptime:    c.uptime,
		hasUptime: c.hasUptime,
		arrived:   nowNs,
		data:      append(buf, body...),
	})
	d.pendingBytes += len(body)
}

// dropPending counts entry i of e's pending sets as dropped (expired, or
// evicted by a bound) and releases its bytes (the caller removes it from
// the slice).
func (d *Decoder) dropPending(e *exporter, i int, expired bool) {
	d.pendingBytes -= len(e.pending[i].data)
	d.countPendingDropped(e, expired)
}

// countPendingDropped counts a waiting data set of e that was dropped.
func (d *Decoder) countPendingDropped(e *exporter, expired bool) {
	e.stats.PendingDropped++
	d.sum.PendingDropped++
	if expired {
		e.stats.PendingSetsExpired++
		d.sum.PendingSetsExpired++
	} else {
		e.stats.PendingSetsEvicted++
		d.sum.PendingSetsEvicted++
	}
}

// expirePending drops e's waiting data sets older than PendingTTL.
func (d *Decoder) expirePending(e *exporter, nowNs int64) {
	ttl := int64(d.cfg.PendingTTL)
	if ttl < 0 {
		return
	}
	n := 0
	for i := range e.pending {
		if nowNs-e.pending[i].arrived > ttl {
			d.dropPending(e, i, true)
			continue
		}
		e.pending[n], e.pending[i] = e.pending[i], e.pending[n]
		n++
	}
	e.pending = e.pending[:n]
}

// decodePending decodes e's waiting data sets whose template is now known,
// in arrival order, and removes them. Faults in them are counted, not
// returned: the datagram being decoded is not at fault.
func (d *Decoder) decodePending(dst []store.Flow, e *exporter, nowNs int64) []store.Flow {
	d.expirePending(e, nowNs)
	n := 0
	for i := range e.pending {
		p := &e.pending[i]
		var t *template
		if dom := e.domains[domainKey{version: p.version, id: p.domain}]; dom != nil {
			t = d.lookupTemplate(dom, p.id, nowNs)
		}
		if t == nil {
			e.pending[n], e.pending[i] = e.pending[i], e.pending[n]
			n++
			continue
		}
		c := pktCtx{
			from:      p.from,
			e:         e,
			version:   p.version,
			domainID:  p.domain,
			exportMs:  p.exportMs,
			uptime:    p.uptime,
			hasUptime: p.hasUptime,
			nowMs:     nowNs / 1e6,
			override:  e.override,
		}
		c.dom = t.dom
		var records int
		var err *Error
		dst, records, err = d.decodeDataSet(dst, &c, t, p.data, 0)
		if c.nfix > 0 {
			d.fixBootTimes(dst, &c)
		}
		e.stats.PendingDecoded += uint64(records)
		d.sum.PendingDecoded += uint64(records)
		e.stats.PendingSetsDecoded++
		d.sum.PendingSetsDecoded++
		if err != nil {
			d.count(e, err.Reason)
		}
		d.pendingBytes -= len(p.data)
	}
	// Keep the removed entries' buffers beyond len for reuse.
	e.pending = e.pending[:n]
	return dst
}
