package flowdb

// The NAT-mapping store (issue 15): which inside address and port a router
// translated to a public address and port, and when, kept for
// store.nat-retention so that "who used 203.0.113.7 port 51234 at 14:02:11
// on 3 March?" has an answer months later.
//
// At ingest the writer derives a mapping from every translated flow (both
// directions of a connection give the same one) and merges it into a
// bounded in-memory cache of open mappings (natCache). A mapping is one
// row while its flows keep coming: a gap of more than natIdle, or a row
// reaching natMaxSpan, starts a new row. The writer's maintenance writes
// the changed mappings every minute in one transaction (and at shutdown),
// and drops from memory those idle for natIdle; when the cache is full the
// least recently used are written early (counted, never lost silently).
// A flow that starts before what the cache still holds may continue a
// written row: when a filter of the mappings that left memory in the last
// hour or two (natBloom) says its mapping may be one of them, the flush
// looks for that row in the database (natProbe).
//
// Rows live in one table per UTC day of their last flow's end,
// nat_YYYYMMDD (listed in nat_days), so that retention drops whole days:
//
//	m      minute of the day of last_seen (0..1439)
//	pub    public address, 4 or 16 bytes     port   public port
//	off    last_seen: ms within the minute   proto  IP protocol
//	k      router (uvarint), inside port (2 bytes), inside address (4 or 16)
//	dur    last_seen - first_seen, ms
//	v      far end port of the first flow (2 bytes), distinct far ends
//	       (approximate; uvarint), flows (uvarint), far end address (0, 4
//	       or 16 bytes)
//
// The WITHOUT ROWID primary key (m, pub, port, off, proto, k) leads with
// the time of the last flow because a flow is exported when it ends: the
// rows of a flush go to the newest minutes, next to each other, while
// first_seen may be up to an active timeout old. A lookup of an address
// and port seeks once per minute of last_seen in [At - window, At + window
// + the day's longest row]: about 65 seeks per day table. What no query
// filters on is packed in k and v: fewer columns to bind at ingest, fewer
// bytes on disk.

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

const (
	// natIdle is the longest gap between the flows of one row: a longer
	// one starts a new row. A mapping no flow came for in that long
	// leaves the cache at the next flush.
	natIdle = 5 * time.Minute
	// natMaxSpan bounds last_seen - first_seen of a row made of several
	// flows (longer use continues in a new row; LookupNAT joins them
	// again), which bounds the minutes a lookup seeks.
	natMaxSpan = time.Hour
	// natEarlyFlush is the number of mappings waiting for their write
	// (flushed early or retired) that makes the writer flush at once,
	// without waiting for the minute.
	natEarlyFlush = 8192
	// natMinPending is the least bound of the mappings waiting for their
	// write while flushes fail (the cache's size when larger); beyond it,
	// the oldest are dropped and counted.
	natMinPending = 1 << 16
	// Lookup defaults and bounds.
	natDefaultWindow = 2 * time.Minute
	natMaxWindow     = 24 * time.Hour
	natDefaultLimit  = 1000
	natMaxLimit      = 100000

	// natBloomBits is the size of each of the two generations of the
	// filter of the mappings that left memory (2 MiB each), natBloomAge
	// how long a generation takes them.
	natBloomBits = 1 << 24
	natBloomAge  = time.Hour
	// natRowsPerInsert is the rows of one multi-row INSERT of a flush.
	natRowsPerInsert = 32

	natDayMs    = 24 * 3600 * 1000
	natMinuteMs = 60 * 1000
)

// NATStats are the counters of the NAT-mapping store since the start.
type NATStats struct {
	// Written counts mapping rows inserted; Updated the rows rewritten as
	// their mapping went on.
	Written, Updated uint64
	// Evicted counts mappings written early because the cache was full
	// (nat-cache); Dropped those lost because the database could not be
	// written while they waited.
	Evicted, Dropped uint64
	// Probes counts the database reads for flows that may have continued
	// a written mapping; Continued those that did.
	Probes, Continued uint64
	// FlushErrors counts the flushes that failed (and were retried).
	FlushErrors uint64
	// Cached is the mappings in memory (open, or waiting for their write),
	// CacheCapacity the bound of the open ones (nat-cache).
	Cached, CacheCapacity int
	// Days is the day tables kept; Oldest the start of the oldest one.
	Days   int
	Oldest time.Time
}

// natCounters are NATStats' counters, shared with the metrics.
type natCounters struct {
	written, updated, evicted, dropped, probes, continued, flushErrors atomic.Uint64
	cached, days, oldest                                               atomic.Int64
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
		counter("flowbox_store_nat_mappings_written_total", "NAT mapping rows inserted.", &c.written),
		counter("flowbox_store_nat_mappings_updated_total", "NAT mapping rows rewritten as their mapping went on.", &c.updated),
		counter("flowbox_store_nat_cache_evictions_total", "NAT mappings written early because the cache was full (store.nat-cache).", &c.evicted),
		counter("flowbox_store_nat_mappings_dropped_total", "NAT mappings lost because the database could not be written while they waited.", &c.dropped),
		counter("flowbox_store_nat_probes_total", "Database reads for flows that may continue a written NAT mapping.", &c.probes),
		counter("flowbox_store_nat_flush_errors_total", "NAT mapping flushes that failed (retried at the next one).", &c.flushErrors),
		gauge("flowbox_store_nat_cache_mappings", "NAT mappings held in memory (open or waiting for their write).", &c.cached),
		gauge("flowbox_store_nat_days", "Day tables of NAT mappings kept.", &c.days),
	}
}

// NATStats returns the NAT store's counters.
func (s *FlowDB) NATStats() NATStats {
	c := &s.natCount
	st := NATStats{
		Written: c.written.Load(), Updated: c.updated.Load(), Evicted: c.evicted.Load(), Dropped: c.dropped.Load(),
		Probes: c.probes.Load(), Continued: c.continued.Load(), FlushErrors: c.flushErrors.Load(),
		Cached: int(c.cached.Load()), Days: int(c.days.Load()),
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

// natState is where a cache entry is.
type natState uint8

const (
	natLive    natState = iota // in the map and the LRU list: flows may extend it
	natEvicted                 // in the map, not in the list: written and dropped by the next flush unless a flow revives it
	natRetired                 // not in the map (a newer row of its mapping may be): written and dropped by the next flush
)

// natEntry is one mapping row in memory.
type natEntry struct {
	key         natKey
	first, last int64 // unix ms
	flows       uint64
	remote      [16]byte
	rport       uint16
	// seen is a 64-bit linear-counting sketch of the far ends (address and
	// port); base the far ends counted before it (a row continued from
	// the database).
	seen uint64
	base uint32
	// storedLast is the last_seen of the row written for the entry
	// (stored): its key, which moves as later flows extend it.
	storedLast int64
	stored     bool
	dirty      bool // changed since its last write
	probe      bool // may continue a written row: the flush looks
	queued     bool // in natCache.pending
	state      natState
	prev, next *natEntry // LRU list (natLive only)
	// h is the key's hash, hnext the next entry of the same hash in
	// natCache.m.
	h     uint64
	hnext *natEntry
	// touched is when a flow last came for the entry (writer's clock,
	// unix ms), seq the natCache.seq then: the LRU list is in their order.
	touched int64
	seq     uint64
}

// remotes estimates the distinct far ends of the entry.
func (e *natEntry) remotes() uint32 {
	z := 64 - bits.OnesCount64(e.seen)
	if z == 64 {
		return e.base
	}
	if z == 0 {
		z = 1 // saturated: about 266
	}
	return e.base + uint32(math.Round(-64*math.Log(float64(z)/64)))
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
	maxSpan, maxLast int64
	rows             int64
	probe            *sql.Stmt // natProbe's query, prepared on the writer connection
}

// natBloom is a Bloom filter of the mappings that left memory in the
// last natBloomAge to twice that: two generations of natBloomBits bits,
// the older dropped every natBloomAge. A flow whose mapping it does not
// hold continues no written row (false positives only cost a probe).
type natBloom struct {
	seed  maphash.Seed
	gens  [2][]uint64
	since int64 // unix ms when gens[0] began
}

func (b *natBloom) hashes(k natKey) (h1, h2 uint64) {
	h := maphash.Comparable(b.seed, k)
	return h, h>>32 | h<<32 | 1
}

// add records a mapping that left memory at now (unix ms).
func (b *natBloom) add(k natKey, now int64) {
	if b.gens[0] == nil {
		b.gens[0], b.since = make([]uint64, natBloomBits/64), now
	}
	if now-b.since >= natBloomAge.Milliseconds() {
		old := b.gens[1]
		if old == nil {
			old = make([]uint64, natBloomBits/64)
		}
		clear(old)
		b.gens[0], b.gens[1], b.since = old, b.gens[0], now
	}
	h1, h2 := b.hashes(k)
	for i := range uint64(4) {
		bit := (h1 + i*h2) % natBloomBits
		b.gens[0][bit/64] |= 1 << (bit % 64)
	}
}

// has reports whether the mapping may have left memory recently.
func (b *natBloom) has(k natKey) bool {
	h1, h2 := b.hashes(k)
	for _, g := range b.gens {
		if g == nil {
			continue
		}
		in := true
		for i := range uint64(4) {
			bit := (h1 + i*h2) % natBloomBits
			if g[bit/64]&(1<<(bit%64)) == 0 {
				in = false
				break
			}
		}
		if in {
			return true
		}
	}
	return false
}

// natCache is the writer's NAT mappings in memory. The writer mutates it
// under mu; lookups read it under mu's read lock. days is the writer's
// own.
type natCache struct {
	mu       sync.RWMutex
	capacity int
	// m holds the live and evicted entries by the hash of their key
	// (chained by hnext): a small key makes a cache-friendly map. n counts
	// them.
	m     map[uint64]*natEntry
	n     int
	hseed maphash.Seed
	lru   natEntry // sentinel: lru.next is the most recently used
	live  int
	// seq counts the successful flushes: the entries touched since the
	// last one (seq == natCache.seq) head the LRU list.
	seq uint64
	// pending are the entries waiting for their write to leave memory
	// (evicted or retired; revived ones stay in it until the flush).
	pending    []*natEntry
	maxPending int
	// horizon is the latest last_seen of the entries that left memory: a
	// flow starting more than natIdle after it cannot continue a written
	// row.
	horizon int64
	// bootHorizon is the horizon at the start: the mappings written
	// before it are not in bloom.
	bootHorizon int64
	bloom       natBloom
	free        []*natEntry
	days        map[int64]*natDay

	// Flush scratch.
	writes []*natEntry
	order  []natOrder
	arena  []byte
	logged bool // a drop was logged since the last successful flush
	failed bool // the last flush failed: the next is the minute's
}

// newNATCache loads the day tables and returns the writer's cache.
func newNATCache(ctx context.Context, s *FlowDB) (*natCache, error) {
	c := &natCache{
		capacity:   s.cfg.NATCache,
		m:          make(map[uint64]*natEntry),
		hseed:      maphash.MakeSeed(),
		maxPending: max(s.cfg.NATCache, natMinPending),
		days:       make(map[int64]*natDay),
	}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	rows, err := s.w.QueryContext(ctx, "SELECT day, name, max_span, max_last, rows FROM nat_days")
	if err != nil {
		return nil, fmt.Errorf("cannot load the NAT mapping days: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d := &natDay{}
		var day int64
		if err := rows.Scan(&day, &d.name, &d.maxSpan, &d.maxLast, &d.rows); err != nil {
			return nil, fmt.Errorf("cannot load the NAT mapping days: %w", err)
		}
		d.start = day * 1000
		c.days[d.start] = d
		c.horizon = max(c.horizon, d.maxLast)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot load the NAT mapping days: %w", err)
	}
	c.bootHorizon = c.horizon
	c.bloom.seed = maphash.MakeSeed()
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

// LRU list operations (natLive entries).
func (c *natCache) pushFront(e *natEntry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

func (c *natCache) unlink(e *natEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// get returns the entry of k in m, or nil.
func (c *natCache) get(k natKey, h uint64) *natEntry {
	for e := c.m[h]; e != nil; e = e.hnext {
		if e.key == k {
			return e
		}
	}
	return nil
}

// put adds e to m, replacing the entry of its key if any.
func (c *natCache) put(e *natEntry) {
	if old := c.get(e.key, e.h); old != nil {
		c.del(old)
	}
	e.hnext = c.m[e.h]
	c.m[e.h] = e
	c.n++
}

// del removes e from m when it is there.
func (c *natCache) del(e *natEntry) {
	for p := c.m[e.h]; p != nil; p = p.hnext {
		if p != e {
			continue
		}
		if head := c.m[e.h]; head == e {
			if e.hnext == nil {
				delete(c.m, e.h)
			} else {
				c.m[e.h] = e.hnext
			}
		} else {
			q := head
			for q.hnext != e {
				q = q.hnext
			}
			q.hnext = e.hnext
		}
		e.hnext = nil
		c.n--
		return
	}
}

// lookup returns the entry of k in m, or nil.
func (c *natCache) lookup(k natKey) *natEntry { return c.get(k, maphash.Comparable(c.hseed, k)) }

func (c *natCache) newEntry(k natKey, start, end int64, remote [16]byte, rport uint16) *natEntry {
	var e *natEntry
	if n := len(c.free); n > 0 {
		e = c.free[n-1]
		c.free = c.free[:n-1]
		*e = natEntry{}
	} else {
		e = &natEntry{}
	}
	e.key, e.first, e.last, e.flows = k, start, end, 1
	e.remote, e.rport, e.seen = remote, rport, remoteBit(remote, rport)
	e.dirty = true
	return e
}

func (c *natCache) release(e *natEntry) {
	*e = natEntry{}
	if len(c.free) < c.capacity/4 {
		c.free = append(c.free, e)
	}
}

func (c *natCache) queue(e *natEntry) {
	if !e.queued {
		e.queued = true
		c.pending = append(c.pending, e)
	}
}

// natObserve merges the NAT mappings of a group's flows into the cache.
// The writer calls it beside the raw write (it touches no database).
func (s *FlowDB) natObserve(group []*store.Batch) {
	c := s.nat
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range group {
		for i := range b.Flows {
			c.addFlow(&b.Flows[i], b.Recv.UnixMilli(), &s.natCount)
		}
	}
	if over := len(c.pending) - c.maxPending; over > 0 {
		// Only while flushes fail: the oldest waiting mappings are lost.
		n := c.dropPending(over)
		s.natCount.dropped.Add(uint64(n))
		if !c.logged && n > 0 {
			c.logged = true
			s.logger.Error("NAT mappings are being dropped: the database cannot be written", "dropped", n)
		}
	}
	s.natCount.cached.Store(int64(c.n + c.retired()))
}

// retired counts the pending entries outside the map.
func (c *natCache) retired() int {
	n := 0
	for _, e := range c.pending {
		if e.state == natRetired {
			n++
		}
	}
	return n
}

// dropPending drops the n oldest entries waiting for their write (revived
// ones stay) and returns how many were dropped.
func (c *natCache) dropPending(n int) int {
	dropped := 0
	kept := c.pending[:0]
	for _, e := range c.pending {
		if dropped < n && e.state != natLive {
			if e.state == natEvicted {
				c.del(e)
			}
			c.horizon = max(c.horizon, e.last)
			c.release(e)
			dropped++
			continue
		}
		kept = append(kept, e)
	}
	clear(c.pending[len(kept):])
	c.pending = kept
	return dropped
}

// addFlow derives the mappings of one flow: the source translated
// (upstream: inside = source, public = post-NAT source, far end = the
// post-NAT destination) and the destination translated (downstream:
// public = destination, inside = post-NAT destination, far end = the
// source). A hairpinned flow gives both.
func (c *natCache) addFlow(f *store.Flow, now int64, cnt *natCounters) {
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
		c.add(natKey{router: f.RouterID, pub: a.As16(), pport: f.PostNATSrcPort, in: src.As16(), iport: f.SrcPort, proto: f.Proto},
			start, end, remote.As16(), rport, now, cnt)
	}
	if a := f.PostNATDstAddr.Unmap(); dst.IsValid() && a.IsValid() && !a.IsUnspecified() &&
		(a != dst || (f.PostNATDstPort != 0 && f.PostNATDstPort != f.DstPort)) {
		c.add(natKey{router: f.RouterID, pub: dst.As16(), pport: f.DstPort, in: a.As16(), iport: f.PostNATDstPort, proto: f.Proto},
			start, end, src.As16(), f.SrcPort, now, cnt)
	}
}

// add merges one flow of mapping k, [start, end], received at now, into
// the cache.
func (c *natCache) add(k natKey, start, end int64, remote [16]byte, rport uint16, now int64, cnt *natCounters) {
	const idle, span = natIdle / time.Millisecond, natMaxSpan / time.Millisecond
	h := maphash.Comparable(c.hseed, k)
	e := c.get(k, h)
	if e != nil {
		if start <= e.last+int64(idle) && end >= e.first-int64(idle) && max(e.last, end)-min(e.first, start) <= int64(span) {
			e.first, e.last = min(e.first, start), max(e.last, end)
			e.flows++
			e.seen |= remoteBit(remote, rport)
			e.dirty = true
			e.touched, e.seq = max(e.touched, now), c.seq
			switch e.state {
			case natLive:
				c.unlink(e)
				c.pushFront(e)
			case natEvicted:
				e.state = natLive
				c.pushFront(e)
				c.live++
				c.evict(cnt)
			}
			return
		}
		if end < e.first {
			// A late flow of an earlier use: a row of its own, which may
			// continue a written one.
			n := c.newEntry(k, start, end, remote, rport)
			n.probe, n.state = true, natRetired
			c.queue(n)
			return
		}
		// A new use of the mapping (after a gap, or past the span): the
		// current row is done.
		if e.state == natLive {
			c.unlink(e)
			c.live--
		}
		e.state = natRetired
		c.queue(e)
	}
	n := c.newEntry(k, start, end, remote, rport)
	n.probe = e == nil && start-int64(idle) <= c.horizon && (start-int64(idle) <= c.bootHorizon || c.bloom.has(k))
	n.h, n.touched, n.seq = h, now, c.seq
	c.put(n)
	c.pushFront(n)
	c.live++
	c.evict(cnt)
}

// evict moves the least recently used entries beyond the bound to the
// pending ones: the next flush writes them early.
func (c *natCache) evict(cnt *natCounters) {
	for c.live > c.capacity {
		e := c.lru.prev
		c.unlink(e)
		c.live--
		e.state = natEvicted
		c.queue(e)
		cnt.evicted.Add(1)
	}
}

// natFlushIfFull flushes at once when many mappings wait for their write
// (unless the last flush failed: the minute's maintenance retries).
func (s *FlowDB) natFlushIfFull(ctx context.Context) {
	if s.nat != nil && !s.nat.failed && len(s.nat.pending) >= natEarlyFlush {
		if err := s.natFlush(ctx, s.now()); err != nil {
			s.setHealth(err)
		}
	}
}

// natFlush writes, in one transaction, the mappings that changed since
// the last flush and those waiting to leave memory, after moving the
// mappings idle for natIdle at now to the latter. On failure everything
// stays in memory for the next flush.
func (s *FlowDB) natFlush(ctx context.Context, now time.Time) error {
	c := s.nat
	if c == nil {
		return nil
	}
	cut := now.UnixMilli() - natIdle.Milliseconds()
	c.mu.Lock()
	// The least recently touched, from the tail: idle ones leave.
	for e := c.lru.prev; e != &c.lru && e.touched < cut; {
		prev := e.prev
		c.unlink(e)
		c.live--
		e.state = natEvicted
		c.queue(e)
		e = prev
	}
	// The entries touched since the last flush, from the head: the
	// changed ones are written.
	writes := c.writes[:0]
	for e := c.lru.next; e != &c.lru && e.seq >= c.seq; e = e.next {
		if e.dirty && !e.queued {
			writes = append(writes, e)
		}
	}
	writes = append(writes, c.pending...)
	c.mu.Unlock()
	c.writes = writes
	if len(writes) == 0 {
		return nil
	}
	// About the day tables' key order (minute of last_seen, public
	// address, port: IPv4 addresses in order, IPv6 ones by a hash), so
	// that the inserts follow each other in the B-tree.
	order := c.order[:0]
	var m0 int64
	for i, e := range writes {
		if m := e.last / natMinuteMs; i == 0 || m < m0 {
			m0 = m
		}
	}
	for _, e := range writes {
		a := uint64(binary.BigEndian.Uint32(e.key.pub[12:]))
		if !netip.AddrFrom16(e.key.pub).Is4In6() {
			a = e.h >> 32
		}
		order = append(order, natOrder{uint64(e.last/natMinuteMs-m0)<<48 | a<<16 | uint64(e.key.pport), e})
	}
	slices.SortFunc(order, func(a, b natOrder) int { return cmp.Compare(a.k, b.k) })
	for i := range order {
		writes[i] = order[i].e
	}
	clear(order)
	c.order = order[:0]
	created, err := s.natWrite(ctx, writes)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		for _, start := range created {
			delete(c.days, start)
		}
		s.natCount.flushErrors.Add(1)
		c.failed = true
		return fmt.Errorf("cannot write NAT mappings: %w", store.DescribeWriteError(err))
	}
	for _, e := range writes {
		e.queued = false
		if e.dirty {
			e.dirty, e.stored, e.storedLast, e.probe = false, true, e.last, false
		}
		if e.state == natLive {
			continue
		}
		if e.state == natEvicted {
			c.del(e)
		}
		c.horizon = max(c.horizon, e.last)
		c.bloom.add(e.key, now.UnixMilli())
		c.release(e)
	}
	clear(c.pending)
	c.pending = c.pending[:0]
	clear(writes)
	c.seq++
	c.logged, c.failed = false, false
	s.natCount.cached.Store(int64(c.n))
	s.natCount.days.Store(int64(len(c.days)))
	s.natCount.oldest.Store(c.oldestDay())
	return nil
}

// natOrder is an entry to write with its sort key.
type natOrder struct {
	k uint64
	e *natEntry
}

// natRowKey identifies a written row.
type natRowKey struct {
	key   natKey
	first int64
}

// natWrite writes the entries in one transaction; it returns the day
// tables it created (to forget should the transaction fail).
func (s *FlowDB) natWrite(ctx context.Context, writes []*natEntry) (created []int64, err error) {
	c := s.nat
	// The probes' statements are prepared before the transaction takes
	// the writer's one connection.
	probing := false
	for _, e := range writes {
		probing = probing || e.probe
	}
	if probing {
		for _, d := range c.days {
			if d.probe == nil {
				if d.probe, err = s.w.PrepareContext(ctx, natSelect(d.name, true, true)); err != nil {
					return nil, fmt.Errorf("cannot prepare the lookup of %s: %w", d.name, err)
				}
			}
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot begin: %w", err)
	}
	defer tx.Rollback()
	if probing {
		if err := s.natProbeAll(ctx, tx, writes); err != nil {
			return nil, err
		}
	}
	type dayWrite struct {
		d                *natDay
		args             []any // rows waiting for their multi-row INSERT
		insN, ins1, del  *sql.Stmt
		maxSpan, maxLast int64
		rows             int64
	}
	days := map[int64]*dayWrite{}
	defer func() {
		for _, dw := range days {
			for _, st := range []*sql.Stmt{dw.insN, dw.ins1, dw.del} {
				if st != nil {
					st.Close()
				}
			}
		}
	}()
	const cols = "(m, pub, port, off, proto, k, dur, v)"
	const vals = "(?, ?, ?, ?, ?, ?, ?, ?)"
	day := func(first int64) (*dayWrite, error) {
		start := floorDiv(first, natDayMs) * natDayMs
		if dw := days[start]; dw != nil {
			return dw, nil
		}
		d := c.days[start]
		if d == nil {
			d = &natDay{start: start, name: natTable(start)}
			if _, err := tx.ExecContext(ctx, natTableSQL(d.name)); err != nil {
				return nil, fmt.Errorf("cannot create %s: %w", d.name, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO nat_days (day, name) VALUES (?, ?)", start/1000, d.name); err != nil {
				return nil, fmt.Errorf("cannot record %s: %w", d.name, err)
			}
			c.days[start] = d
			created = append(created, start)
		}
		dw := &dayWrite{d: d}
		days[start] = dw
		return dw, nil
	}
	// insert writes the rows of dw's args (all when flush, else a full
	// multi-row INSERT's worth).
	insert := func(dw *dayWrite, flush bool) error {
		var err error
		for len(dw.args) >= natCols*natRowsPerInsert {
			if dw.insN == nil {
				q := "INSERT OR REPLACE INTO " + dw.d.name + " " + cols + " VALUES " +
					strings.TrimSuffix(strings.Repeat(vals+", ", natRowsPerInsert), ", ")
				if dw.insN, err = tx.PrepareContext(ctx, q); err != nil {
					return fmt.Errorf("cannot prepare the insert into %s: %w", dw.d.name, err)
				}
			}
			if _, err := dw.insN.ExecContext(ctx, dw.args[:natCols*natRowsPerInsert]...); err != nil {
				return fmt.Errorf("cannot write rows of %s: %w", dw.d.name, err)
			}
			dw.args = append(dw.args[:0], dw.args[natCols*natRowsPerInsert:]...)
		}
		if !flush {
			return nil
		}
		for len(dw.args) > 0 {
			if dw.ins1 == nil {
				if dw.ins1, err = tx.PrepareContext(ctx, "INSERT OR REPLACE INTO "+dw.d.name+" "+cols+" VALUES "+vals); err != nil {
					return fmt.Errorf("cannot prepare the insert into %s: %w", dw.d.name, err)
				}
			}
			if _, err := dw.ins1.ExecContext(ctx, dw.args[:natCols]...); err != nil {
				return fmt.Errorf("cannot write a row of %s: %w", dw.d.name, err)
			}
			dw.args = dw.args[natCols:]
		}
		return nil
	}
	arena := c.arena[:0]
	blob := func(a [16]byte) []byte {
		o := len(arena)
		arena = appendNATAddr(arena, a)
		return arena[o:len(arena):len(arena)]
	}
	kBlob := func(e *natEntry) []byte {
		o := len(arena)
		arena = appendNATK(arena, e.key)
		return arena[o:len(arena):len(arena)]
	}
	var written, updated uint64
	for _, e := range writes {
		if !e.dirty {
			continue // left memory unchanged since its write
		}
		moved := e.stored && e.storedLast != e.last
		if moved && c.days[floorDiv(e.storedLast, natDayMs)*natDayMs] != nil {
			// A later flow extended the row: its key moves. Rows of a
			// day are inserted after its deletes (at the flush's end).
			dw, err := day(e.storedLast)
			if err != nil {
				return created, err
			}
			if dw.del == nil {
				if dw.del, err = tx.PrepareContext(ctx, "DELETE FROM "+dw.d.name+
					" WHERE m = ? AND pub = ? AND port = ? AND off = ? AND proto = ? AND k = ?"); err != nil {
					return created, fmt.Errorf("cannot prepare the delete from %s: %w", dw.d.name, err)
				}
			}
			m, off := natMinute(e.storedLast, dw.d.start)
			if _, err := dw.del.ExecContext(ctx, m, blob(e.key.pub), e.key.pport, off, e.key.proto, kBlob(e)); err != nil {
				return created, fmt.Errorf("cannot move a row of %s: %w", dw.d.name, err)
			}
			dw.rows--
		}
		dw, err := day(e.last)
		if err != nil {
			return created, err
		}
		m, off := natMinute(e.last, dw.d.start)
		dur := e.last - e.first
		o := len(arena)
		arena = appendNATV(arena, e.rport, e.remotes(), e.flows, e.remote)
		v := arena[o:len(arena):len(arena)]
		dw.args = append(dw.args, m, blob(e.key.pub), e.key.pport, off, e.key.proto, kBlob(e), dur, v)
		if err := insert(dw, false); err != nil {
			return created, err
		}
		if e.stored {
			updated++
		} else {
			written++
		}
		if !e.stored || moved {
			dw.rows++
		}
		dw.maxSpan, dw.maxLast = max(dw.maxSpan, dur), max(dw.maxLast, e.last)
	}
	c.arena = arena[:0]
	for _, dw := range days {
		if err := insert(dw, true); err != nil {
			return created, err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE nat_days SET max_span = max(max_span, ?), max_last = max(max_last, ?), rows = rows + ? WHERE day = ?",
			dw.maxSpan, dw.maxLast, dw.rows, dw.d.start/1000); err != nil {
			return created, fmt.Errorf("cannot update %s in nat_days: %w", dw.d.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return created, fmt.Errorf("cannot commit: %w", err)
	}
	for _, dw := range days {
		dw.d.maxSpan, dw.d.maxLast = max(dw.d.maxSpan, dw.maxSpan), max(dw.d.maxLast, dw.maxLast)
		dw.d.rows += dw.rows
	}
	s.natCount.written.Add(written)
	s.natCount.updated.Add(updated)
	return nil, nil
}

// natProbeAll looks for the written rows that the entries flagged probe
// continue, and merges them in. The rows that entries already own are
// not for the taking.
func (s *FlowDB) natProbeAll(ctx context.Context, tx *sql.Tx, writes []*natEntry) error {
	c := s.nat
	probing := make(map[natKey]bool)
	for _, e := range writes {
		if e.probe {
			probing[e.key] = true
		}
	}
	claimed := make(map[natRowKey]bool)
	for _, o := range writes {
		if o.stored && probing[o.key] {
			claimed[natRowKey{o.key, o.storedLast}] = true
		}
	}
	for _, e := range writes {
		if !e.probe {
			continue
		}
		if o := c.lookup(e.key); o != nil && o != e && o.stored {
			claimed[natRowKey{o.key, o.storedLast}] = true
		}
		row, ok, err := s.natProbe(ctx, tx, e, claimed)
		if err != nil {
			return err
		}
		c.mu.Lock()
		e.probe = false
		if ok {
			claimed[natRowKey{e.key, row.last}] = true
			if row.first < e.first {
				e.remote, e.rport = row.remote, row.rport // the first far end is kept
			}
			e.first, e.last = min(e.first, row.first), max(e.last, row.last)
			e.flows += row.flows
			e.seen |= remoteBit(row.remote, row.rport)
			e.base += max(row.remotes, 1) - 1
			e.stored, e.storedLast = true, row.last
			s.natCount.continued.Add(1)
		}
		c.mu.Unlock()
	}
	return nil
}

// natStored is a row read back from a day table.
type natStored struct {
	key         natKey
	first, last int64
	flows       uint64
	remote      [16]byte
	rport       uint16
	remotes     uint32
}

// natProbe looks for the written row of e's mapping that e continues: the
// latest that ended within natIdle of e's flows, not claimed, and with
// which e stays within natMaxSpan. It seeks the minutes of that end only.
func (s *FlowDB) natProbe(ctx context.Context, tx *sql.Tx, e *natEntry, claimed map[natRowKey]bool) (natStored, bool, error) {
	s.natCount.probes.Add(1)
	lo, hi := e.first-natIdle.Milliseconds(), e.last+natIdle.Milliseconds()
	var best natStored
	found := false
	for _, d := range s.nat.days {
		mlo, mhi, ok := natMinutes(d.start, lo, hi)
		if !ok || d.probe == nil {
			continue // no row in its minutes, or created by this flush
		}
		rows, err := tx.StmtContext(ctx, d.probe).QueryContext(ctx, mlo, mhi, natBytes(e.key.pub), e.key.pport, e.key.proto,
			lo-d.start, hi-d.start)
		if err != nil {
			return best, false, fmt.Errorf("cannot read %s: %w", d.name, err)
		}
		err = scanNAT(rows, d.start, e.key.pub, func(r *natStored) {
			if r.key != e.key || claimed[natRowKey{r.key, r.last}] ||
				max(e.last, r.last)-min(e.first, r.first) > natMaxSpan.Milliseconds() {
				return
			}
			if !found || r.last > best.last {
				best, found = *r, true
			}
		})
		if err != nil {
			return best, false, fmt.Errorf("cannot read %s: %w", d.name, err)
		}
	}
	return best, found, nil
}

// natRetention drops the day tables whose rows all ended before the NAT
// retention (a day table holds the rows whose last flow ended that day).
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
		if d.probe != nil {
			d.probe.Close()
		}
		c.mu.Lock()
		delete(c.days, d.start)
		c.mu.Unlock()
		s.logger.Debug("dropped NAT mappings", "table", d.name, "rows", d.rows)
	}
	s.natCount.days.Store(int64(len(c.days)))
	s.natCount.oldest.Store(c.oldestDay())
	return nil
}

// natTable is the name of the day table of the UTC day starting at start
// (unix ms).
func natTable(start int64) string {
	return "nat_" + time.UnixMilli(start).UTC().Format("20060102")
}

// natTableSQL creates a day table.
func natTableSQL(name string) string {
	return `CREATE TABLE IF NOT EXISTS ` + name + ` (
	m INTEGER NOT NULL, pub BLOB NOT NULL, port INTEGER NOT NULL, off INTEGER NOT NULL, proto INTEGER NOT NULL,
	k BLOB NOT NULL, dur INTEGER NOT NULL, v BLOB NOT NULL,
	PRIMARY KEY (m, pub, port, off, proto, k)
) WITHOUT ROWID`
}

// natCols is the columns of a day table.
const natCols = 8

// appendNATAddr appends an address in its 4- or 16-byte form (nothing
// for none).
func appendNATAddr(b []byte, a [16]byte) []byte {
	switch {
	case a == [16]byte{}:
		return b
	case netip.AddrFrom16(a).Is4In6():
		return append(b, a[12:]...)
	}
	return append(b, a[:]...)
}

// appendNATK appends a row's k: router, inside port and address.
func appendNATK(b []byte, k natKey) []byte {
	b = binary.AppendUvarint(b, uint64(k.router))
	b = binary.BigEndian.AppendUint16(b, k.iport)
	return appendNATAddr(b, k.in)
}

// appendNATV appends a row's v: far end port, far ends, flows, far end
// address.
func appendNATV(b []byte, rport uint16, remotes uint32, flows uint64, remote [16]byte) []byte {
	b = binary.BigEndian.AppendUint16(b, rport)
	b = binary.AppendUvarint(b, uint64(remotes))
	b = binary.AppendUvarint(b, flows)
	return appendNATAddr(b, remote)
}

// natAddr16 reads a 4- or 16-byte address (the zero array for none).
func natAddr16(b []byte) ([16]byte, bool) {
	if len(b) == 0 {
		return [16]byte{}, true
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return [16]byte{}, false
	}
	return a.As16(), true
}

// decodeNATKV decodes k and v into r.
func decodeNATKV(r *natStored, k, v []byte) error {
	router, n := binary.Uvarint(k)
	if n <= 0 || len(k) < n+2 {
		return fmt.Errorf("invalid NAT row key of %d bytes", len(k))
	}
	r.key.router, r.key.iport = int64(router), binary.BigEndian.Uint16(k[n:])
	in, ok := natAddr16(k[n+2:])
	if !ok || len(k) == n+2 {
		return fmt.Errorf("invalid inside address of %d bytes", len(k)-n-2)
	}
	r.key.in = in
	if len(v) < 4 {
		return fmt.Errorf("invalid NAT row value of %d bytes", len(v))
	}
	r.rport = binary.BigEndian.Uint16(v)
	v = v[2:]
	remotes, n := binary.Uvarint(v)
	if n <= 0 {
		return errors.New("invalid NAT row value")
	}
	v = v[n:]
	flows, n := binary.Uvarint(v)
	if n <= 0 {
		return errors.New("invalid NAT row value")
	}
	if r.remote, ok = natAddr16(v[n:]); !ok {
		return fmt.Errorf("invalid far end address of %d bytes", len(v)-n)
	}
	r.remotes, r.flows = uint32(remotes), flows
	return nil
}

// natSelect is the query of a day table's rows of one public address (and
// port, protocol) whose last_seen falls in minutes ?1..?2 and whose
// [first, last] (ms since the day's start) intersects [?lo, ?hi] (the last
// two arguments). It seeks the primary key once per minute.
func natSelect(table string, port, proto bool) string {
	var b strings.Builder
	b.WriteString(`WITH RECURSIVE mm(m) AS (SELECT ? UNION ALL SELECT m + 1 FROM mm WHERE m < ?)
SELECT n.m, n.off, n.port, n.proto, n.k, n.dur, n.v
FROM mm CROSS JOIN `)
	b.WriteString(table)
	b.WriteString(` AS n WHERE n.m = mm.m AND n.pub = ?`)
	if port {
		b.WriteString(` AND n.port = ?`)
	}
	if proto {
		b.WriteString(` AND n.proto = ?`)
	}
	b.WriteString(` AND n.m * 60000 + n.off >= ? AND n.m * 60000 + n.off - n.dur <= ?`)
	return b.String()
}

// scanNAT reads natSelect's rows of public address pub in the day table
// starting at start.
func scanNAT(rows *sql.Rows, start int64, pub [16]byte, fn func(*natStored)) error {
	defer rows.Close()
	var r natStored
	var k, v []byte
	for rows.Next() {
		var m, off, port, proto, dur int64
		if err := rows.Scan(&m, &off, &port, &proto, &k, &dur, &v); err != nil {
			return err
		}
		if err := decodeNATKV(&r, k, v); err != nil {
			return err
		}
		r.key.pub, r.key.pport, r.key.proto = pub, uint16(port), uint8(proto)
		r.last = start + m*natMinuteMs + off
		r.first = r.last - dur
		fn(&r)
	}
	return rows.Err()
}

// natMinutes returns the minutes of the day table starting at start that
// hold last_seen values within [lo, hi] (unix ms).
func natMinutes(start, lo, hi int64) (mlo, mhi int64, ok bool) {
	mlo = max(floorDiv(lo-start, natMinuteMs), 0)
	mhi = min(floorDiv(hi-start, natMinuteMs), natDayMs/natMinuteMs-1)
	return mlo, mhi, mlo <= mhi
}

// natMinute splits a last_seen into the minute of its day and the ms
// within the minute.
func natMinute(last, dayStart int64) (m, off int64) {
	rel := last - dayStart
	return rel / natMinuteMs, rel % natMinuteMs
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
	storedLast int64 // the key of the row written for a cached entry; -1 when none
}

// LookupNAT returns the mappings of q.Public (and q.Port, q.Proto when
// set) in use within [q.At - q.Window, q.At + q.Window], ordered by how
// close they are to q.At: those of the day tables and those the writer
// still holds in memory. Rows of one mapping that follow each other are
// joined. Router names and subscribers are left to the caller.
func (s *FlowDB) LookupNAT(ctx context.Context, q store.NATQuery) ([]store.NATMapping, error) {
	switch {
	case !q.Public.IsValid():
		return nil, errors.New("cannot look up NAT mappings: a public address is required")
	case q.Public.Zone() != "":
		return nil, fmt.Errorf("cannot look up NAT mappings: %s: a public address has no zone", q.Public)
	case q.Public.IsUnspecified() || q.Public.IsMulticast():
		return nil, fmt.Errorf("cannot look up NAT mappings: %s is not a public address", q.Public)
	case q.At.IsZero():
		return nil, errors.New("cannot look up NAT mappings: a time is required")
	case q.Window < 0 || q.Window > natMaxWindow:
		return nil, fmt.Errorf("cannot look up NAT mappings: window %s is outside [0, %s]", q.Window, natMaxWindow)
	case q.Limit < 0:
		return nil, fmt.Errorf("cannot look up NAT mappings: negative limit %d", q.Limit)
	}
	if q.Window == 0 {
		q.Window = natDefaultWindow
	}
	if q.Limit == 0 {
		q.Limit = natDefaultLimit
	}
	q.Limit = min(q.Limit, natMaxLimit)
	pub := q.Public.Unmap().As16()
	at := q.At.UnixMilli()
	lo, hi := at-q.Window.Milliseconds(), at+q.Window.Milliseconds()

	// The cache first: a mapping written meanwhile is then found twice
	// (and merged), never missed.
	var found []natMatch
	if s.nat != nil {
		found = s.nat.snapshot(pub, q.Port, q.Proto, lo, hi)
	}
	cachedN := len(found)
	byRow := make(map[natRowKey]int, 2*cachedN)
	for i := range found {
		// A row is its entry's when it has its key (last), its first
		// (extended since), or the key it was written with.
		byRow[natRowKey{found[i].key, -found[i].first}] = i
		byRow[natRowKey{found[i].key, found[i].last}] = i
		if found[i].storedLast >= 0 {
			byRow[natRowKey{found[i].key, found[i].storedLast}] = i
		}
	}
	err := s.natRead(ctx, pub, q, lo, hi, func(r *natStored) {
		i, ok := byRow[natRowKey{r.key, r.last}]
		if !ok {
			i, ok = byRow[natRowKey{r.key, -r.first}]
		}
		if ok && i < cachedN {
			// Written after the snapshot: keep the most of both.
			m := &found[i]
			m.first, m.last = min(m.first, r.first), max(m.last, r.last)
			m.flows, m.remotes = max(m.flows, r.flows), max(m.remotes, r.remotes)
			return
		}
		found = append(found, natMatch{natStored: *r, storedLast: -1})
	})
	if err != nil {
		return nil, err
	}
	found = joinNAT(found)
	dist := func(m *natMatch) int64 {
		switch {
		case at < m.first:
			return m.first - at
		case at > m.last:
			return at - m.last
		}
		return 0
	}
	slices.SortFunc(found, func(a, b natMatch) int {
		if d := cmp.Compare(dist(&a), dist(&b)); d != 0 {
			return d
		}
		if d := cmp.Compare(a.first, b.first); d != 0 {
			return d
		}
		if d := cmp.Compare(a.key.router, b.key.router); d != 0 {
			return d
		}
		if d := cmp.Compare(a.key.pport, b.key.pport); d != 0 {
			return d
		}
		return bytes.Compare(a.key.in[:], b.key.in[:])
	})
	found = found[:min(len(found), q.Limit)]
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
	return out, nil
}

// joinNAT joins the rows of one mapping that follow each other (within
// natIdle): a long use written as several rows is one match.
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
			p.remotes += max(m.remotes, 1) - 1
			continue
		}
		out = append(out, m)
	}
	return out
}

// snapshot returns the cached mappings of pub (and port, proto when not 0)
// that intersect [lo, hi].
func (c *natCache) snapshot(pub [16]byte, port uint16, proto uint8, lo, hi int64) []natMatch {
	var out []natMatch
	take := func(e *natEntry) {
		if e.key.pub != pub || (port != 0 && e.key.pport != port) || (proto != 0 && e.key.proto != proto) ||
			e.first > hi || e.last < lo {
			return
		}
		m := natMatch{natStored: natStored{key: e.key, first: e.first, last: e.last, flows: e.flows,
			remote: e.remote, rport: e.rport, remotes: e.remotes()}, storedLast: -1}
		if e.stored {
			m.storedLast = e.storedLast
		}
		out = append(out, m)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.m {
		for ; e != nil; e = e.hnext {
			take(e)
		}
	}
	for _, e := range c.pending {
		if e.state == natRetired {
			take(e)
		}
	}
	return out
}

// natRead reads the day tables' rows of a lookup in one read transaction.
func (s *FlowDB) natRead(ctx context.Context, pub [16]byte, q store.NATQuery, lo, hi int64, fn func(*natStored)) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("cannot look up NAT mappings: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT day, name, max_span FROM nat_days WHERE day * 1000 <= ? + max_span AND day * 1000 + ? > ? ORDER BY day",
		hi, natDayMs, lo)
	if err != nil {
		return fmt.Errorf("cannot look up NAT mappings: %w", err)
	}
	var days []natDay
	for rows.Next() {
		var d natDay
		if err := rows.Scan(&d.start, &d.name, &d.maxSpan); err != nil {
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
	for _, d := range days {
		mlo, mhi, ok := natMinutes(d.start, lo, hi+d.maxSpan)
		if !ok {
			continue
		}
		args := []any{mlo, mhi, pubBytes}
		if q.Port != 0 {
			args = append(args, q.Port)
		}
		if q.Proto != 0 {
			args = append(args, q.Proto)
		}
		args = append(args, lo-d.start, hi-d.start)
		rows, err := tx.QueryContext(ctx, natSelect(d.name, q.Port != 0, q.Proto != 0), args...)
		if err != nil {
			return fmt.Errorf("cannot look up NAT mappings in %s: %w", d.name, err)
		}
		if err := scanNAT(rows, d.start, pub, fn); err != nil {
			return fmt.Errorf("cannot look up NAT mappings in %s: %w", d.name, err)
		}
	}
	return nil
}

// FlowDB is the SQLite implementation of store.NATMappings.
var _ store.NATMappings = (*FlowDB)(nil)
