package flowdb

// The NAT-mapping store (issue 15): which inside address and port a router
// translated to a public address and port, and when, kept for
// store.nat-retention so that "who used 203.0.113.7 port 51234 at 14:02:11
// on 3 March?" has an answer months later.
//
// At ingest the writer derives a mapping record from every translated
// flow (both directions of a connection give the same mapping) and
// appends it to a bounded buffer (natCache.recs, store.nat-cache), a
// 56-byte append, unless the latest record of its mapping (found by a
// direct-mapped index) takes it. Every minute (and when the buffer fills)
// the new records are radix-sorted and merged: consecutive flows of one mapping
// (gaps under natIdle, a span under natMaxSpan) become one entry. Entries
// no flow extended for natHold are written, the others stay in memory to
// be extended. When the buffer is still half full after merging, all of
// it is written early (counted). A write that fails keeps its entries
// waiting for the next (bounded; beyond it they are dropped and counted).
//
// On disk, the entries of one router and public address whose last flow
// ended in one minute are one row, a block: delta-coded by public port,
// with dictionaries of the block's inside addresses and far ends, times to
// the second (widened outward: first seen rounded down, last seen up). A
// mapping costs about 7-18 bytes (14 on the simulated fleet). Rows live in one table per UTC day of
// their minute, natb_YYYYMMDD (listed in nat_days), so that retention
// drops whole days:
//
//	b     minute of the day (0..1439) of the entries' last seen
//	pub   public address, 4 or 16 bytes
//	r     router
//	n     entries in the block
//	data  the block (see natEncoder)
//
// indexed by (pub, b). A lookup of an address reads the rows of the
// minutes from the window's start to its end plus the day's longest entry,
// one index range per day table, and decodes their blocks (a port lookup
// stops at the port: a block is in public port order). A long use of a
// mapping is one entry per natMaxSpan (or per natIdle gap, or per early
// write); LookupNAT joins them again.

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

const (
	// natIdle is the longest gap between the flows of one entry (and
	// between entries LookupNAT joins).
	natIdle = 5 * time.Minute
	// natHold is how long an entry no flow extended stays in memory
	// before its write.
	natHold = 2 * time.Minute
	// natMaxSpan bounds last_seen - first_seen of an entry made of several
	// flows (longer use continues in a new entry), which bounds the
	// minutes a lookup reads.
	natMaxSpan = 30 * time.Minute
	// natMinPending is the least bound of the entries waiting for their
	// write while writes fail (the cache's size when larger); beyond it,
	// the oldest are dropped and counted.
	natMinPending = 1 << 16
	// A port lookup follows the mappings it found past its window, up to
	// natFollow on either side, when they are at most natFollowMax.
	natFollow    = 24 * time.Hour
	natFollowMax = 100

	natDayMs    = 24 * 3600 * 1000
	natMinuteMs = 60 * 1000

	// natFormat is the format of the day tables this code writes (1: one
	// row per mapping, converted at start; see natmap_v1.go).
	natFormat = 2
	// natBlockVersion is a block's first byte.
	natBlockVersion = 1
)

// NATStats are the counters of the NAT-mapping store since the start.
type NATStats struct {
	// Written counts the mapping entries written; Blocks the rows (blocks)
	// that held them.
	Written, Blocks uint64
	// Evicted counts the entries written early because the buffer was
	// full (nat-cache); Dropped those lost because the database could not
	// be written while they waited.
	Evicted, Dropped uint64
	// FlushErrors counts the writes that failed (and were retried).
	FlushErrors uint64
	// Cached is the mapping records in memory (merged or not, and those
	// waiting for their write), CacheCapacity the bound of the buffer
	// (nat-cache).
	Cached, CacheCapacity int
	// Days is the day tables kept; Oldest the start of the oldest one.
	Days   int
	Oldest time.Time
}

// natCounters are NATStats' counters, shared with the metrics.
type natCounters struct {
	written, blocks, evicted, dropped, flushErrors atomic.Uint64
	cached, days, oldest                           atomic.Int64
}

// natCollectors returns the Prometheus collectors of the NAT store.
func natCollectors(c *natCounters) []prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		counter("flowbox_store_nat_mappings_written_total", "NAT mapping entries written.", &c.written),
		counter("flowbox_store_nat_blocks_written_total", "Blocks (rows) of NAT mapping entries written.", &c.blocks),
		counter("flowbox_store_nat_cache_evictions_total", "NAT mapping entries written early because the buffer was full (store.nat-cache).", &c.evicted),
		counter("flowbox_store_nat_mappings_dropped_total", "NAT mappings lost because the database could not be written while they waited.", &c.dropped),
		counter("flowbox_store_nat_flush_errors_total", "NAT mapping writes that failed (retried at the next one).", &c.flushErrors),
		gauge("flowbox_store_nat_cache_mappings", "NAT mapping records held in memory (merged or not, or waiting for their write).", &c.cached),
		gauge("flowbox_store_nat_days", "Day tables of NAT mappings kept.", &c.days),
	}
}

// NATStats returns the NAT store's counters.
func (s *FlowDB) NATStats() NATStats {
	c := &s.natCount
	st := NATStats{
		Written: c.written.Load(), Blocks: c.blocks.Load(), Evicted: c.evicted.Load(), Dropped: c.dropped.Load(),
		FlushErrors: c.flushErrors.Load(), Cached: int(c.cached.Load()), Days: int(c.days.Load()),
	}
	if s.nat != nil {
		st.CacheCapacity = s.nat.capacity
	}
	if o := c.oldest.Load(); o != 0 {
		st.Oldest = time.UnixMilli(o).UTC()
	}
	return st
}

// natKey identifies a mapping: addresses are 16 bytes (IPv4 mapped).
type natKey struct {
	router       int64
	pub, in      [16]byte
	pport, iport uint16
	proto        uint8
}

// natStored is a mapping entry as the store keeps it.
type natStored struct {
	key         natKey
	first, last int64 // unix ms
	flows       uint64
	remote      [16]byte // far end of the first flow (zero: unknown)
	rport       uint16
	remotes     uint32 // distinct far ends (approximate)
}

// natRec is a mapping in memory, one flow's or several merged: 56 bytes
// for the common case where the router id fits 16 bits and the addresses
// are IPv4. k1 is router<<48 | public address<<16 | public port and k2
// wide<<56 | protocol<<48 | inside address<<16 | inside port; a wide
// record (IPv6, or a large router id) has hashes in k1 and k2 and its
// router and addresses in natCache.wide[w].
type natRec struct {
	k1, k2      uint64
	first, last int64 // unix ms
	seen        uint64
	remote      uint32 // the IPv4 far end (0: unknown or wide)
	flows       uint32
	w           int32
	rport       uint16
}

const natWideBit = 1 << 56

func (r *natRec) isWide() bool { return r.k2&natWideBit != 0 }

// natWide is the router and addresses of a wide record.
type natWide struct {
	router          int64
	pub, in, remote [16]byte
}

// remotes estimates the distinct far ends merged into r from its 64-bit
// linear-counting sketch.
func (r *natRec) remotes() uint32 {
	z := 64 - bits.OnesCount64(r.seen)
	if z == 64 {
		return 0
	}
	if z == 0 {
		z = 1 // saturated: about 266
	}
	return uint32(math.Round(-64 * math.Log(float64(z)/64)))
}

// remoteBit is the sketch bit of a far end.
func remoteBit(a [16]byte, port uint16) uint64 {
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(a[i])
		lo = lo<<8 | uint64(a[8+i])
	}
	h := (hi*0x9e3779b97f4a7c15 ^ lo) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>31 ^ uint64(port)) * 0x94d049bb133111eb
	return 1 << (h >> 58)
}

// natDay is one day table, as the writer knows it.
type natDay struct {
	start            int64 // unix ms of the UTC day
	name             string
	format           int
	maxSpan, maxLast int64
	rows             int64 // entries
}

// natCache is the writer's NAT mappings in memory. The writer mutates it
// under mu; lookups read it under mu's read lock. days is the writer's
// own.
type natCache struct {
	mu       sync.RWMutex
	capacity int
	// recs are the records: recs[:sorted] sorted and merged, the rest
	// appended since. scratch is the merge's other buffer.
	recs, scratch []natRec
	sorted        int
	radix         []natRec // sortTail's scratch
	// idx is, by a hash of a mapping, the position + 1 in recs of its
	// latest record (direct-mapped: a collision only costs an append).
	// Extending a record of the sorted part in place keeps it sorted: a
	// flow that continues it starts after the mapping's earlier records
	// ended (plus natIdle).
	idx      []uint32
	idxShift uint
	wide     []natWide
	seed     maphash.Seed
	// pending are the entries waiting for their write (in order within
	// runs; unsorted after failed writes).
	pending    []natStored
	maxPending int
	days       map[int64]*natDay

	enc    natEncoder
	logged bool // a drop was logged since the last successful write
}

// newNATCache loads the day tables, converts those of format 1, and
// returns the writer's cache.
func newNATCache(ctx context.Context, s *FlowDB) (*natCache, error) {
	bits := bits.Len(uint(s.cfg.NATCache))
	c := &natCache{
		idx:        make([]uint32, 1<<bits),
		idxShift:   uint(64 - bits),
		capacity:   s.cfg.NATCache,
		seed:       maphash.MakeSeed(),
		maxPending: max(s.cfg.NATCache, natMinPending),
		days:       make(map[int64]*natDay),
	}
	rows, err := s.w.QueryContext(ctx, "SELECT day, name, format, max_span, max_last, rows FROM nat_days")
	if err != nil {
		return nil, fmt.Errorf("cannot load the NAT mapping days: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d := &natDay{}
		var day int64
		if err := rows.Scan(&day, &d.name, &d.format, &d.maxSpan, &d.maxLast, &d.rows); err != nil {
			return nil, fmt.Errorf("cannot load the NAT mapping days: %w", err)
		}
		d.start = day * 1000
		c.days[d.start] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load the NAT mapping days: %w", err)
	}
	rows.Close()
	s.nat = c
	if err := s.natConvertV1(ctx); err != nil {
		return nil, err
	}
	s.natCount.days.Store(int64(len(c.days)))
	s.natCount.oldest.Store(c.oldestDay())
	return c, nil
}

func (c *natCache) oldestDay() int64 {
	var o int64
	for start := range c.days {
		if o == 0 || start < o {
			o = start
		}
	}
	return o
}

// natObserve appends the NAT mappings of a group's flows to the buffer.
// The writer calls it beside the raw write (it touches no database).
func (s *FlowDB) natObserve(group []*store.Batch) {
	c := s.nat
	if c == nil {
		return
	}
	c.mu.Lock()
	for _, b := range group {
		for i := range b.Flows {
			c.addFlow(&b.Flows[i])
		}
	}
	n := len(c.recs) + len(c.pending)
	c.mu.Unlock()
	s.natCount.cached.Store(int64(n))
}

// addFlow derives the mappings of one flow: the source translated
// (upstream: inside = source, public = post-NAT source, far end = the
// post-NAT destination) and the destination translated (downstream:
// public = destination, inside = post-NAT destination, far end = the
// source). A hairpinned flow gives both.
func (c *natCache) addFlow(f *store.Flow) {
	if !f.PostNATSrcAddr.IsValid() && !f.PostNATDstAddr.IsValid() {
		return
	}
	end := f.End
	start := f.Start
	if start == 0 || start > end {
		start = end
	}
	src, dst := f.SrcAddr.Unmap(), f.DstAddr.Unmap()
	if a := f.PostNATSrcAddr.Unmap(); src.IsValid() && a.IsValid() && !a.IsUnspecified() &&
		(a != src || (f.PostNATSrcPort != 0 && f.PostNATSrcPort != f.SrcPort)) {
		remote, rport := f.PostNATDstAddr.Unmap(), f.PostNATDstPort
		if !remote.IsValid() || remote.IsUnspecified() {
			remote, rport = dst, f.DstPort
		}
		c.add(f.RouterID, a, f.PostNATSrcPort, src, f.SrcPort, f.Proto, start, end, remote, rport)
	}
	if a := f.PostNATDstAddr.Unmap(); dst.IsValid() && a.IsValid() && !a.IsUnspecified() &&
		(a != dst || (f.PostNATDstPort != 0 && f.PostNATDstPort != f.DstPort)) {
		c.add(f.RouterID, dst, f.DstPort, a, f.PostNATDstPort, f.Proto, start, end, src, f.SrcPort)
	}
}

func v4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

// add appends the record of one flow of a mapping. When the buffer is
// full, the flow's mapping is still kept: natFlushIfFull merges (and
// writes) right after the group.
func (c *natCache) add(router int64, pub netip.Addr, pport uint16, in netip.Addr, iport uint16, proto uint8,
	start, end int64, remote netip.Addr, rport uint16) {
	r := natRec{first: start, last: end, flows: 1, w: -1, rport: rport, seen: remoteBit(remote.As16(), rport)}
	if router >= 0 && router <= 0xffff && pub.Is4() && in.Is4() && (remote.Is4() || !remote.IsValid()) {
		r.k1 = uint64(router)<<48 | uint64(v4(pub))<<16 | uint64(pport)
		r.k2 = uint64(proto)<<48 | uint64(v4(in))<<16 | uint64(iport)
		if remote.IsValid() {
			r.remote = v4(remote)
		}
	} else {
		w := natWide{router: router, pub: pub.As16(), in: in.As16()}
		if remote.IsValid() {
			w.remote = remote.As16()
		}
		hp := maphash.Comparable(c.seed, struct {
			router int64
			pub    [16]byte
		}{router, w.pub})
		hi := maphash.Comparable(c.seed, w.in)
		r.k1 = (hp&0xffffffffffff)<<16 | uint64(pport)
		r.k2 = natWideBit | uint64(proto)<<48 | (hi&0xffffffff)<<16 | uint64(iport)
		r.w = int32(len(c.wide))
		c.wide = append(c.wide, w)
	}
	if !r.isWide() {
		// The latest record of the mapping since the merge, when it is
		// there and the flow continues it, takes the flow.
		h := (r.k1*0x9e3779b97f4a7c15 ^ r.k2) * 0xbf58476d1ce4e5b9 >> c.idxShift
		if p := int(c.idx[h]) - 1; p >= 0 && p < len(c.recs) {
			q := &c.recs[p]
			const idle, span = int64(natIdle / time.Millisecond), int64(natMaxSpan / time.Millisecond)
			if q.k1 == r.k1 && q.k2 == r.k2 && start <= q.last+idle && end >= q.first-idle && max(q.last, end)-min(q.first, start) <= span {
				q.first, q.last = min(q.first, start), max(q.last, end)
				q.flows = min(q.flows, math.MaxUint32-1) + 1
				q.seen |= r.seen
				return
			}
		}
		c.idx[h] = uint32(len(c.recs) + 1)
	}
	if len(c.recs) == cap(c.recs) && cap(c.recs) < c.capacity {
		c.recs = slices.Grow(c.recs, min(c.capacity, max(1024, 2*cap(c.recs)))-len(c.recs))
	}
	c.recs = append(c.recs, r)
}

// full reports whether the buffer reached its bound.
func (c *natCache) full() bool { return len(c.recs) >= c.capacity }

// cmpRec orders records by router and public address, then public port,
// protocol, inside address and port, then first seen.
func (c *natCache) cmpRec(a, b *natRec) int {
	if (a.k2|b.k2)&natWideBit == 0 {
		if a.k1 != b.k1 {
			return cmp.Compare(a.k1, b.k1)
		}
		if a.k2 != b.k2 {
			return cmp.Compare(a.k2, b.k2)
		}
		return cmp.Compare(a.first, b.first)
	}
	if d := cmp.Compare(a.k1>>16, b.k1>>16); d != 0 {
		return d
	}
	aw, bw := a.isWide(), b.isWide()
	if aw != bw {
		if aw {
			return 1
		}
		return -1
	}
	wa, wb := &c.wide[a.w], &c.wide[b.w]
	if d := cmp.Compare(wa.router, wb.router); d != 0 {
		return d
	}
	if d := bytes.Compare(wa.pub[:], wb.pub[:]); d != 0 {
		return d
	}
	if d := cmp.Compare(a.k1, b.k1); d != 0 {
		return d
	}
	if d := cmp.Compare(a.k2, b.k2); d != 0 {
		return d
	}
	if d := bytes.Compare(wa.in[:], wb.in[:]); d != 0 {
		return d
	}
	return cmp.Compare(a.first, b.first)
}

// sameMapping reports whether two records are of one mapping.
func (c *natCache) sameMapping(a, b *natRec) bool {
	if a.k1 != b.k1 || a.k2 != b.k2 {
		return false
	}
	if !a.isWide() {
		return true
	}
	wa, wb := &c.wide[a.w], &c.wide[b.w]
	return wa.router == wb.router && wa.pub == wb.pub && wa.in == wb.in
}

// merge sorts the records appended since the last merge and merges them
// with the others: consecutive flows of one mapping become one entry.
func (c *natCache) merge() {
	c.sortTail(c.recs[c.sorted:])
	out := c.scratch[:0]
	if cap(out) < len(c.recs) {
		out = make([]natRec, 0, max(len(c.recs)*5/4, min(c.capacity, 2*cap(out))))
	}
	const idle, span = int64(natIdle / time.Millisecond), int64(natMaxSpan / time.Millisecond)
	i, j := 0, c.sorted
	for i < c.sorted || j < len(c.recs) {
		var r *natRec
		if j >= len(c.recs) || (i < c.sorted && c.cmpRec(&c.recs[i], &c.recs[j]) <= 0) {
			r = &c.recs[i]
			i++
		} else {
			r = &c.recs[j]
			j++
		}
		if n := len(out); n > 0 {
			p := &out[n-1]
			if c.sameMapping(p, r) && r.first <= p.last+idle && max(p.last, r.last)-p.first <= span {
				p.last = max(p.last, r.last)
				p.flows = min(p.flows, math.MaxUint32-r.flows) + r.flows
				p.seen |= r.seen
				continue
			}
		}
		out = append(out, *r)
	}
	c.recs, c.scratch = out, c.recs[:0]
	c.sorted = len(c.recs)
	c.reindex()
}

// reindex points idx at the latest record of every mapping (recs sorted).
func (c *natCache) reindex() {
	clear(c.idx)
	for i := range c.recs {
		if r := &c.recs[i]; !r.isWide() {
			c.idx[(r.k1*0x9e3779b97f4a7c15^r.k2)*0xbf58476d1ce4e5b9>>c.idxShift] = uint32(i + 1)
		}
	}
}

// sortTail sorts records in cmpRec's order: a least-significant-digit
// radix sort on k1 (8-bit digits; the digits all records share are
// skipped: a router and its few public addresses leave mostly the port's
// two), then an insertion sort of the runs of equal k1 by k2 and first.
// With wide records (whose order needs their addresses), a comparison
// sort.
func (c *natCache) sortTail(tail []natRec) {
	wide := false
	for i := range tail {
		wide = wide || tail[i].isWide()
	}
	if wide || len(tail) < 64 {
		slices.SortFunc(tail, func(a, b natRec) int { return c.cmpRec(&a, &b) })
		return
	}
	if cap(c.radix) < len(tail) {
		c.radix = make([]natRec, len(tail), max(len(tail), c.capacity/4))
	}
	src, dst := tail, c.radix[:len(tail)]
	var count [256]int
	for shift := uint(0); shift < 64; shift += 8 {
		clear(count[:])
		for i := range src {
			count[byte(src[i].k1>>shift)]++
		}
		if count[byte(src[0].k1>>shift)] == len(src) {
			continue
		}
		pos := 0
		for d, n := range count {
			count[d] = pos
			pos += n
		}
		for i := range src {
			d := byte(src[i].k1 >> shift)
			dst[count[d]] = src[i]
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &tail[0] {
		copy(tail, src)
	}
	for i := 1; i < len(tail); i++ {
		if tail[i].k1 != tail[i-1].k1 {
			continue
		}
		for j := i; j > 0 && tail[j].k1 == tail[j-1].k1 &&
			(tail[j].k2 < tail[j-1].k2 || (tail[j].k2 == tail[j-1].k2 && tail[j].first < tail[j-1].first)); j-- {
			tail[j], tail[j-1] = tail[j-1], tail[j]
		}
	}
}

// stored returns the entry of a record.
func (c *natCache) stored(r *natRec) natStored {
	e := natStored{first: r.first, last: r.last, flows: uint64(r.flows), rport: r.rport, remotes: r.remotes()}
	e.key.pport, e.key.iport, e.key.proto = uint16(r.k1), uint16(r.k2), uint8(r.k2>>48)
	if r.isWide() {
		w := &c.wide[r.w]
		e.key.router, e.key.pub, e.key.in, e.remote = w.router, w.pub, w.in, w.remote
		return e
	}
	e.key.router = int64(r.k1 >> 48)
	e.key.pub = netip.AddrFrom4(be4(uint32(r.k1 >> 16))).As16()
	e.key.in = netip.AddrFrom4(be4(uint32(r.k2 >> 16))).As16()
	if r.remote != 0 {
		e.remote = netip.AddrFrom4(be4(r.remote)).As16()
	}
	return e
}

func be4(v uint32) (b [4]byte) {
	binary.BigEndian.PutUint32(b[:], v)
	return b
}

// natFlushIfFull merges the buffer when it is full, and writes when that
// leaves it half full (the buffer exceeds its bound by a group at most).
func (s *FlowDB) natFlushIfFull(ctx context.Context) {
	if s.nat != nil && s.nat.full() {
		if err := s.natFlush(ctx, s.now(), false); err != nil {
			s.setHealth(err)
		}
	}
}

// natFlush merges the records in memory and writes, in one transaction,
// the entries idle for natHold at now (all of them when all, or when the
// buffer stays half full) with those waiting from failed writes. On
// failure they wait for the next flush.
func (s *FlowDB) natFlush(ctx context.Context, now time.Time, all bool) error {
	c := s.nat
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.merge()
	early := !all && len(c.recs) > c.capacity/2
	cut := now.Add(-natHold).UnixMilli()
	kept := c.recs[:0]
	var written int
	wide := len(c.wide) > 0
	for i := range c.recs {
		r := &c.recs[i]
		if all || early || r.last < cut || r.last-r.first >= natMaxSpan.Milliseconds() {
			c.pending = append(c.pending, c.stored(r))
			written++
			continue
		}
		kept = append(kept, *r)
	}
	c.recs = kept
	c.sorted = len(kept)
	c.reindex()
	if early {
		s.natCount.evicted.Add(uint64(written))
	}
	if wide {
		// Only the wide records kept keep their addresses.
		var ws []natWide
		for i := range c.recs {
			if r := &c.recs[i]; r.isWide() {
				ws = append(ws, c.wide[r.w])
				r.w = int32(len(ws) - 1)
			}
		}
		c.wide = ws
	}
	if over := len(c.pending) - c.maxPending; over > 0 {
		// Only while writes fail: the oldest waiting entries are lost.
		c.pending = slices.Delete(c.pending, 0, over)
		s.natCount.dropped.Add(uint64(over))
		if !c.logged {
			c.logged = true
			s.logger.Error("NAT mappings are being dropped: the database cannot be written", "dropped", over)
		}
	}
	pending := c.pending
	s.natCount.cached.Store(int64(len(c.recs) + len(pending)))
	c.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	created, err := s.natWrite(ctx, pending)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		for _, start := range created {
			delete(c.days, start)
		}
		s.natCount.flushErrors.Add(1)
		return fmt.Errorf("cannot write NAT mappings: %w", store.DescribeWriteError(err))
	}
	c.pending = c.pending[:0]
	if cap(c.pending) > 2*c.capacity { // grown while writes failed
		c.pending = nil
	}
	c.logged = false
	s.natCount.cached.Store(int64(len(c.recs)))
	s.natCount.days.Store(int64(len(c.days)))
	s.natCount.oldest.Store(c.oldestDay())
	return nil
}

// cmpStored orders entries as blocks want them (natCache.cmpRec's order).
func cmpStored(a, b *natStored) int {
	if d := cmp.Compare(a.key.router, b.key.router); d != 0 {
		return d
	}
	if d := bytes.Compare(a.key.pub[:], b.key.pub[:]); d != 0 {
		return d
	}
	if d := cmp.Compare(a.key.pport, b.key.pport); d != 0 {
		return d
	}
	if d := cmp.Compare(a.key.proto, b.key.proto); d != 0 {
		return d
	}
	if d := bytes.Compare(a.key.in[:], b.key.in[:]); d != 0 {
		return d
	}
	if d := cmp.Compare(a.key.iport, b.key.iport); d != 0 {
		return d
	}
	return cmp.Compare(a.first, b.first)
}

// natBlock is one encoded row of a day table.
type natBlock struct {
	minute  int64 // unix ms of the minute of its entries' last seen
	router  int64
	pub     [16]byte
	n       int
	data    []byte
	maxSpan int64 // ms, of the stored (second) times
	maxLast int64 // unix ms
}

// natBlocks encodes entries (sorted by router and public address, then in
// block order within each run of them) into blocks, calling emit for each:
// one block per router, public address and minute of last seen. The block
// passed to emit is valid until emit returns.
func (enc *natEncoder) blocks(entries []natStored, emit func(*natBlock) error) error {
	for i := 0; i < len(entries); {
		j := i + 1
		for j < len(entries) && entries[j].key.router == entries[i].key.router && entries[j].key.pub == entries[i].key.pub {
			j++
		}
		group := entries[i:j]
		i = j
		// The group's minutes: usually one; else the entries in minute
		// order (stable: each minute's stay in block order).
		m0 := natMinuteOf(group[0].last)
		single := true
		for k := range group {
			if natMinuteOf(group[k].last) != m0 {
				single = false
				break
			}
		}
		if single {
			if err := enc.block(group, nil, emit); err != nil {
				return err
			}
			continue
		}
		order := enc.minuteOrder(group)
		for len(order) > 0 {
			m := natMinuteOf(group[order[0]].last)
			n := 1
			for n < len(order) && natMinuteOf(group[order[n]].last) == m {
				n++
			}
			if err := enc.block(group, order[:n], emit); err != nil {
				return err
			}
			order = order[n:]
		}
	}
	return nil
}

// minuteOrder returns the indexes of the entries of group in the order of
// the minute of their last seen, stable (a counting sort when the minutes
// span a day at most).
func (enc *natEncoder) minuteOrder(group []natStored) []int32 {
	lo, hi := natMinuteOf(group[0].last), natMinuteOf(group[0].last)
	for k := range group {
		m := natMinuteOf(group[k].last)
		lo, hi = min(lo, m), max(hi, m)
	}
	order := slices.Grow(enc.order[:0], len(group))[:len(group)]
	enc.order = order
	if n := (hi-lo)/natMinuteMs + 1; n <= natDayMs/natMinuteMs {
		count := make([]int32, n+1)
		for k := range group {
			count[(natMinuteOf(group[k].last)-lo)/natMinuteMs+1]++
		}
		for i := 1; i < len(count); i++ {
			count[i] += count[i-1]
		}
		for k := range group {
			m := (natMinuteOf(group[k].last) - lo) / natMinuteMs
			order[count[m]] = int32(k)
			count[m]++
		}
		return order
	}
	for k := range order {
		order[k] = int32(k)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return cmp.Compare(natMinuteOf(group[a].last), natMinuteOf(group[b].last))
	})
	return order
}

// block encodes one block of the group's entries (those of idx when not
// nil), which share their minute.
func (enc *natEncoder) block(group []natStored, idx []int32, emit func(*natBlock) error) error {
	enc.reset()
	n := len(group)
	if idx != nil {
		n = len(idx)
	}
	first := &group[0]
	if idx != nil {
		first = &group[idx[0]]
	}
	b := natBlock{minute: natMinuteOf(first.last), router: first.key.router, pub: first.key.pub, n: n}
	for k := range n {
		e := &group[k]
		if idx != nil {
			e = &group[idx[k]]
		}
		span, last := enc.add(e, b.minute)
		b.maxSpan, b.maxLast = max(b.maxSpan, span), max(b.maxLast, last)
	}
	b.data = enc.buf
	return emit(&b)
}

// natMinuteOf is the unix ms of the minute holding a last seen.
func natMinuteOf(last int64) int64 { return store.FloorDiv(last, natMinuteMs) * natMinuteMs }

// natWrite writes the entries in one transaction; it returns the day
// tables it created (to forget should the transaction fail).
func (s *FlowDB) natWrite(ctx context.Context, entries []natStored) (created []int64, err error) {
	c := s.nat
	if !slices.IsSortedFunc(entries, func(a, b natStored) int { return cmpStored(&a, &b) }) {
		// Runs of several failed writes.
		slices.SortFunc(entries, func(a, b natStored) int { return cmpStored(&a, &b) })
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot begin: %w", err)
	}
	defer tx.Rollback()
	w := natDayWriter{tx: tx, days: c.days}
	defer w.close()
	var written, blocks uint64
	err = c.enc.blocks(entries, func(b *natBlock) error {
		if err := w.insert(ctx, b); err != nil {
			return err
		}
		written += uint64(b.n)
		blocks++
		return nil
	})
	created = w.created
	if err != nil {
		return created, err
	}
	if err := w.finish(ctx); err != nil {
		return created, err
	}
	if err := tx.Commit(); err != nil {
		return created, fmt.Errorf("cannot commit: %w", err)
	}
	w.apply()
	s.natCount.written.Add(written)
	s.natCount.blocks.Add(blocks)
	return nil, nil
}

// natDayWriter inserts blocks into the day tables within a transaction,
// creating the tables it needs.
type natDayWriter struct {
	tx      *sql.Tx
	days    map[int64]*natDay
	created []int64
	open    map[int64]*natDayWrite
}

type natDayWrite struct {
	d                      *natDay
	ins                    *sql.Stmt
	maxSpan, maxLast, rows int64
}

func (w *natDayWriter) day(ctx context.Context, start int64) (*natDayWrite, error) {
	if dw := w.open[start]; dw != nil {
		return dw, nil
	}
	d := w.days[start]
	if d == nil {
		d = &natDay{start: start, name: natTable(start), format: natFormat}
		for _, q := range natTableSQL(d.name) {
			if _, err := w.tx.ExecContext(ctx, q); err != nil {
				return nil, fmt.Errorf("cannot create %s: %w", d.name, err)
			}
		}
		if _, err := w.tx.ExecContext(ctx, "INSERT OR IGNORE INTO nat_days (day, name, format) VALUES (?, ?, ?)", start/1000, d.name, natFormat); err != nil {
			return nil, fmt.Errorf("cannot record %s: %w", d.name, err)
		}
		w.days[start] = d
		w.created = append(w.created, start)
	}
	if d.format != natFormat {
		return nil, fmt.Errorf("cannot write into %s: format %d", d.name, d.format)
	}
	ins, err := w.tx.PrepareContext(ctx, "INSERT INTO "+d.name+" (b, pub, r, n, data) VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		return nil, fmt.Errorf("cannot prepare the insert into %s: %w", d.name, err)
	}
	if w.open == nil {
		w.open = make(map[int64]*natDayWrite)
	}
	dw := &natDayWrite{d: d, ins: ins}
	w.open[start] = dw
	return dw, nil
}

// insert writes a block.
func (w *natDayWriter) insert(ctx context.Context, b *natBlock) error {
	start := store.FloorDiv(b.minute, natDayMs) * natDayMs
	dw, err := w.day(ctx, start)
	if err != nil {
		return err
	}
	if _, err := dw.ins.ExecContext(ctx, (b.minute-start)/natMinuteMs, natBytes(b.pub), b.router, b.n, b.data); err != nil {
		return fmt.Errorf("cannot write a block of %s: %w", dw.d.name, err)
	}
	dw.rows += int64(b.n)
	dw.maxSpan, dw.maxLast = max(dw.maxSpan, b.maxSpan), max(dw.maxLast, b.maxLast)
	return nil
}

// finish records the day tables' bounds in nat_days.
func (w *natDayWriter) finish(ctx context.Context) error {
	for _, dw := range w.open {
		if _, err := w.tx.ExecContext(ctx, "UPDATE nat_days SET max_span = max(max_span, ?), max_last = max(max_last, ?), rows = rows + ? WHERE day = ?",
			dw.maxSpan, dw.maxLast, dw.rows, dw.d.start/1000); err != nil {
			return fmt.Errorf("cannot update %s in nat_days: %w", dw.d.name, err)
		}
	}
	return nil
}

// apply updates the writer's days after the commit.
func (w *natDayWriter) apply() {
	for _, dw := range w.open {
		dw.d.maxSpan, dw.d.maxLast = max(dw.d.maxSpan, dw.maxSpan), max(dw.d.maxLast, dw.maxLast)
		dw.d.rows += dw.rows
	}
}

func (w *natDayWriter) close() {
	for _, dw := range w.open {
		dw.ins.Close()
	}
}

// natRetention drops the day tables whose entries all ended before the
// NAT retention (a day table holds the entries whose last flow ended that
// day).
func (s *FlowDB) natRetention(ctx context.Context, now time.Time) error {
	c := s.nat
	if c == nil {
		return nil
	}
	cut := now.Add(-s.cfg.NATRetention).UnixMilli()
	var old []*natDay
	for _, d := range c.days {
		if d.start+natDayMs <= cut {
			old = append(old, d)
		}
	}
	slices.SortFunc(old, func(a, b *natDay) int { return cmp.Compare(a.start, b.start) })
	for _, d := range old {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("cannot drop %s: %w", d.name, store.DescribeWriteError(err))
		}
		for _, q := range []stmt{{"DROP TABLE IF EXISTS " + d.name, nil}, {"DELETE FROM nat_days WHERE day = ?", []any{d.start / 1000}}} {
			if _, err := tx.ExecContext(ctx, q.q, q.args...); err != nil {
				tx.Rollback()
				return fmt.Errorf("cannot drop %s: %w", d.name, store.DescribeWriteError(err))
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("cannot drop %s: %w", d.name, store.DescribeWriteError(err))
		}
		c.mu.Lock()
		delete(c.days, d.start)
		c.mu.Unlock()
		s.logger.Debug("dropped NAT mappings", "table", d.name, "entries", d.rows)
	}
	s.natCount.days.Store(int64(len(c.days)))
	s.natCount.oldest.Store(c.oldestDay())
	return nil
}

// natTable is the name of the day table of the UTC day starting at start
// (unix ms).
func natTable(start int64) string {
	return "natb_" + time.UnixMilli(start).UTC().Format("20060102")
}

// natTableSQL creates a day table and its index.
func natTableSQL(name string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + name + ` (
	b INTEGER NOT NULL, pub BLOB NOT NULL, r INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + name + `_pub ON ` + name + ` (pub, b)`,
	}
}

// natSelect is the query of a day table's blocks of a public address in
// the minutes ?2..?3.
func natSelect(table string) string {
	return "SELECT b, r, data FROM " + table + " WHERE pub = ? AND b BETWEEN ? AND ?"
}

// natBytes returns an address in its 4- or 16-byte form (nil for none).
func natBytes(a [16]byte) []byte {
	if a == ([16]byte{}) {
		return nil
	}
	return addrBytes(addrOf(a))
}

func addrOf(a [16]byte) netip.Addr { return netip.AddrFrom16(a).Unmap() }

// natMatch is a mapping found by a lookup.
type natMatch struct {
	natStored
	cached bool // from memory
}

// LookupNAT returns the mappings of q.Public (and q.Port, q.Proto when
// set) in use within [q.At - q.Window, q.At + q.Window], ordered by how
// close they are to q.At: those of the day tables and those the writer
// still holds in memory. Entries of one mapping that follow each other
// are joined. Router names and subscribers are left to the caller.
func (s *FlowDB) LookupNAT(ctx context.Context, q store.NATQuery) ([]store.NATMapping, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	pub := q.Public.Unmap().As16()
	at := q.At.UnixMilli()
	lo, hi := at-q.Window.Milliseconds(), at+q.Window.Milliseconds()

	var found []natMatch
	if err := s.natCollect(ctx, pub, q, lo, hi, func(e *natStored) bool { return true }, &found); err != nil {
		return nil, err
	}
	if q.Port != 0 && len(found) > 0 && len(found) <= natFollowMax {
		// Follow the mappings found past the window, natMaxSpan at a time,
		// while one of their entries may continue: the match then spans
		// the whole use (up to natFollow on either side).
		keys := make(map[natKey]bool, len(found))
		for i := range found {
			keys[found[i].key] = true
		}
		idle, span := natIdle.Milliseconds(), natMaxSpan.Milliseconds()
		// Only chains of entries that reach into the window stay.
		chain := func() {
			found = joinNAT(found)
			found = slices.DeleteFunc(found, func(m natMatch) bool { return m.last < lo || m.first > hi })
		}
		for end, n := hi, 0; n < int(natFollow/natMaxSpan); n++ {
			chain()
			if !slices.ContainsFunc(found, func(m natMatch) bool { return m.last >= end-idle }) {
				break
			}
			from := end
			if err := s.natCollect(ctx, pub, q, from+1, from+span, func(e *natStored) bool { return keys[e.key] && e.first > from }, &found); err != nil {
				return nil, err
			}
			end = from + span
		}
		for start, n := lo, 0; n < int(natFollow/natMaxSpan); n++ {
			chain()
			if !slices.ContainsFunc(found, func(m natMatch) bool { return m.first <= start+idle }) {
				break
			}
			to := start
			if err := s.natCollect(ctx, pub, q, to-span, to-1, func(e *natStored) bool { return keys[e.key] && e.last < to }, &found); err != nil {
				return nil, err
			}
			start = to - span
		}
	}
	found = joinNAT(found)
	found = slices.DeleteFunc(found, func(m natMatch) bool { return m.last < lo || m.first > hi })
	out := make([]store.NATMapping, len(found))
	for i := range found {
		m := &found[i]
		out[i] = store.NATMapping{
			RouterID: m.key.router, Proto: m.key.proto, ProtoName: store.ProtoName(m.key.proto),
			PublicAddr: addrOf(m.key.pub), PublicPort: m.key.pport,
			InsideAddr: addrOf(m.key.in), InsidePort: m.key.iport,
			RemotePort: m.rport, Remotes: m.remotes,
			FirstSeen: time.UnixMilli(m.first).UTC(), LastSeen: time.UnixMilli(m.last).UTC(), Flows: m.flows,
		}
		if m.remote != ([16]byte{}) {
			out[i].RemoteAddr = addrOf(m.remote)
		}
	}
	slices.SortFunc(out, func(a, b store.NATMapping) int { return store.CompareNATMatches(at, &a, &b) })
	out = out[:min(len(out), q.Limit)]
	return out, nil
}

func ceilDiv(a, b int64) int64 { return -store.FloorDiv(-a, b) }

// natCollect appends to found the entries of pub (and q's port and
// protocol) in use within [lo, hi] that keep accepts: those in memory,
// then those of the day tables. An entry written meanwhile is then found
// twice and skipped the second time, never missed.
func (s *FlowDB) natCollect(ctx context.Context, pub [16]byte, q store.NATQuery, lo, hi int64, keep func(*natStored) bool, found *[]natMatch) error {
	type rowID struct {
		key                natKey
		first, last, flows int64
	}
	var mem map[rowID]bool
	if s.nat != nil {
		for _, m := range s.nat.snapshot(pub, q.Port, q.Proto, lo, hi) {
			if !keep(&m.natStored) {
				continue
			}
			if mem == nil {
				mem = make(map[rowID]bool)
			}
			mem[rowID{m.key, store.FloorDiv(m.first, 1000), ceilDiv(m.last, 1000), int64(m.flows)}] = true
			*found = append(*found, m)
		}
	}
	return s.natRead(ctx, pub, q, lo, hi, func(r *natStored) {
		if !keep(r) || (mem != nil && mem[rowID{r.key, r.first / 1000, r.last / 1000, int64(r.flows)}]) {
			return
		}
		*found = append(*found, natMatch{natStored: *r})
	})
}

// joinNAT joins the entries of one mapping that follow each other (within
// natIdle): a long use written as several entries is one match.
func joinNAT(ms []natMatch) []natMatch {
	slices.SortFunc(ms, func(a, b natMatch) int {
		if d := cmp.Compare(a.key.router, b.key.router); d != 0 {
			return d
		}
		if d := cmp.Compare(a.key.proto, b.key.proto); d != 0 {
			return d
		}
		if d := cmp.Compare(a.key.pport, b.key.pport); d != 0 {
			return d
		}
		if d := bytes.Compare(a.key.in[:], b.key.in[:]); d != 0 {
			return d
		}
		if d := cmp.Compare(a.key.iport, b.key.iport); d != 0 {
			return d
		}
		return cmp.Compare(a.first, b.first)
	})
	out := ms[:0]
	for _, m := range ms {
		if n := len(out); n > 0 && out[n-1].key == m.key && m.first <= out[n-1].last+natIdle.Milliseconds() {
			p := &out[n-1]
			p.last = max(p.last, m.last)
			p.flows += m.flows
			p.remotes = max(p.remotes, m.remotes)
			continue
		}
		out = append(out, m)
	}
	return out
}

// snapshot returns the mappings in memory of pub (and port, proto when not
// 0) that intersect [lo, hi].
func (c *natCache) snapshot(pub [16]byte, port uint16, proto uint8, lo, hi int64) []natMatch {
	var out []natMatch
	a := addrOf(pub)
	c.mu.RLock()
	defer c.mu.RUnlock()
	var pub4 uint64
	if a.Is4() {
		pub4 = uint64(v4(a))
	}
	for i := range c.recs {
		r := &c.recs[i]
		if r.first > hi || r.last < lo || (port != 0 && uint16(r.k1) != port) || (proto != 0 && uint8(r.k2>>48) != proto) {
			continue
		}
		if r.isWide() {
			if c.wide[r.w].pub != pub {
				continue
			}
		} else if !a.Is4() || (r.k1>>16)&0xffffffff != pub4 {
			continue
		}
		out = append(out, natMatch{natStored: c.stored(r), cached: true})
	}
	for i := range c.pending {
		e := &c.pending[i]
		if e.key.pub == pub && (port == 0 || e.key.pport == port) && (proto == 0 || e.key.proto == proto) && e.first <= hi && e.last >= lo {
			out = append(out, natMatch{natStored: *e, cached: true})
		}
	}
	return out
}

// natRead reads the day tables' entries of a lookup in one read
// transaction.
func (s *FlowDB) natRead(ctx context.Context, pub [16]byte, q store.NATQuery, lo, hi int64, fn func(*natStored)) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("cannot look up NAT mappings: %w", err)
	}
	defer tx.Rollback()
	// Stored times are widened to the second: an entry whose last flow
	// ended up to a second before lo (in an earlier minute) may be stored
	// as ending at lo.
	from := lo - 1000
	rows, err := tx.QueryContext(ctx, "SELECT day, name, format, max_span FROM nat_days WHERE day * 1000 <= ? + max_span AND day * 1000 + ? > ? ORDER BY day",
		hi, natDayMs, from)
	if err != nil {
		return fmt.Errorf("cannot look up NAT mappings: %w", err)
	}
	var days []natDay
	for rows.Next() {
		var d natDay
		if err := rows.Scan(&d.start, &d.name, &d.format, &d.maxSpan); err != nil {
			rows.Close()
			return fmt.Errorf("cannot look up NAT mappings: %w", err)
		}
		d.start *= 1000
		days = append(days, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot look up NAT mappings: %w", err)
	}
	pubBytes := natBytes(pub)
	var dec natDecoder
	for _, d := range days {
		if d.format != natFormat {
			return fmt.Errorf("cannot look up NAT mappings of %s: they are in the format of an older flowbox; start flowbox serve once to convert them",
				time.UnixMilli(d.start).UTC().Format(time.DateOnly))
		}
		bmin := max(store.FloorDiv(from-d.start, natMinuteMs), 0)
		bmax := min(store.FloorDiv(hi+d.maxSpan-d.start, natMinuteMs), natDayMs/natMinuteMs-1)
		if bmin > bmax {
			continue
		}
		rows, err := tx.QueryContext(ctx, natSelect(d.name), pubBytes, bmin, bmax)
		if err != nil {
			return fmt.Errorf("cannot look up NAT mappings in %s: %w", d.name, err)
		}
		for rows.Next() {
			var b, router int64
			var data []byte
			if err := rows.Scan(&b, &router, &data); err != nil {
				rows.Close()
				return fmt.Errorf("cannot look up NAT mappings in %s: %w", d.name, err)
			}
			err := dec.decode(data, natKey{router: router, pub: pub}, d.start+b*natMinuteMs, q.Port, func(e *natStored) {
				if (q.Proto == 0 || e.key.proto == q.Proto) && e.first <= hi && e.last >= lo {
					fn(e)
				}
			})
			if err != nil {
				rows.Close()
				return fmt.Errorf("cannot look up NAT mappings in %s: minute %d of router %d: %w", d.name, b, router, err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("cannot look up NAT mappings in %s: %w", d.name, err)
		}
	}
	return nil
}

// NATKeptSince returns the start of the oldest day table of mappings (the
// zero time when there is none).
func (s *FlowDB) NATKeptSince(ctx context.Context) (time.Time, error) {
	var day sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT min(day) FROM nat_days").Scan(&day); err != nil {
		return time.Time{}, fmt.Errorf("cannot read the NAT mapping days: %w", err)
	}
	if !day.Valid {
		return time.Time{}, nil
	}
	return time.Unix(day.Int64, 0).UTC(), nil
}

// FlowDB is the SQLite implementation of store.NATMappings.
var _ store.NATMappings = (*FlowDB)(nil)

// EachNATMapping calls fn with every NAT mapping the store keeps, day by
// day (the oldest first), for a copy to another store (flowbox store
// copy). It stops at fn's first error.
func (s *FlowDB) EachNATMapping(ctx context.Context, fn func(*store.NATMapping) error) error {
	rows, err := s.r.QueryContext(ctx, "SELECT day, name, format FROM nat_days ORDER BY day")
	if err != nil {
		return fmt.Errorf("cannot list the NAT mapping days: %w", err)
	}
	var days []natDay
	for rows.Next() {
		var d natDay
		if err := rows.Scan(&d.start, &d.name, &d.format); err != nil {
			rows.Close()
			return fmt.Errorf("cannot list the NAT mapping days: %w", err)
		}
		d.start *= 1000
		days = append(days, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot list the NAT mapping days: %w", err)
	}
	var dec natDecoder
	for _, d := range days {
		if d.format != natFormat {
			return fmt.Errorf("cannot read the NAT mappings of %s: they are in the format of an older flowbox; start flowbox serve once to convert them",
				time.UnixMilli(d.start).UTC().Format(time.DateOnly))
		}
		if err := s.eachNATOfDay(ctx, &dec, d, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *FlowDB) eachNATOfDay(ctx context.Context, dec *natDecoder, d natDay, fn func(*store.NATMapping) error) error {
	rows, err := s.r.QueryContext(ctx, "SELECT b, pub, r, data FROM "+d.name+" ORDER BY b")
	if err != nil {
		return fmt.Errorf("cannot read the NAT mappings in %s: %w", d.name, err)
	}
	defer rows.Close()
	var ferr error
	for rows.Next() {
		var b, router int64
		var pub, data []byte
		if err := rows.Scan(&b, &pub, &router, &data); err != nil {
			return fmt.Errorf("cannot read the NAT mappings in %s: %w", d.name, err)
		}
		a, ok := netip.AddrFromSlice(pub)
		if !ok {
			continue
		}
		err := dec.decode(data, natKey{router: router, pub: a.As16()}, d.start+b*natMinuteMs, 0, func(e *natStored) {
			if ferr != nil {
				return
			}
			m := store.NATMapping{
				RouterID: e.key.router, Proto: e.key.proto, ProtoName: store.ProtoName(e.key.proto),
				PublicAddr: addrOf(e.key.pub), PublicPort: e.key.pport, InsideAddr: addrOf(e.key.in), InsidePort: e.key.iport,
				RemotePort: e.rport, Remotes: e.remotes, FirstSeen: time.UnixMilli(e.first).UTC(), LastSeen: time.UnixMilli(e.last).UTC(), Flows: e.flows,
			}
			if e.remote != ([16]byte{}) {
				m.RemoteAddr = addrOf(e.remote)
			}
			ferr = fn(&m)
		})
		if err != nil {
			return fmt.Errorf("cannot read the NAT mappings in %s: minute %d of router %d: %w", d.name, b, router, err)
		}
		if ferr != nil {
			return ferr
		}
	}
	return rows.Err()
}
