package collector

import (
	"container/list"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/store"
)

// reasonIndex maps a store.Drop* reason to its slot in the counters.
func reasonIndex(reason string) int {
	for i, r := range store.DropReasons {
		if r == reason {
			return i
		}
	}
	return len(store.DropReasons) - 1 // unreachable with the store's reasons
}

// exporterEntry is everything the pipeline counts for one exporter address.
type exporterEntry struct {
	addr     netip.Addr
	routerID int64
	trusted  bool
	first    time.Time
	last     time.Time
	// packets and payload bytes of the datagrams; flows of untrusted
	// exporters (from the headers: they are not decoded).
	datagrams, payload, untrustedFlows uint64
	bytes, packets                     uint64 // sums of the received flows' counters, scaled
	received, stored                   uint64 // flows handed to the writer, and written
	dropped                            [numReasons]uint64
	// base is what the previous runs counted (loaded at start), so that
	// the counters are cumulative across restarts.
	base *store.ExporterStats
	elem *list.Element
}

// numReasons is the number of drop reasons (store.DropReasons).
const numReasons = 6

// exporterTable is the pipeline's one per-exporter table: datagrams, trust,
// flows received, stored and dropped by reason, first and last seen. It is
// bounded by max with O(1) eviction of the exporter heard the longest ago
// (its counts stay in the totals). Readers update it per datagram and per
// batch, the store's writer through the store.WriteObserver methods.
type exporterTable struct {
	mu        sync.Mutex
	max       int
	m         map[netip.Addr]*exporterEntry
	lru       list.List // of *exporterEntry, most recently heard first
	forgotten uint64    // exporters evicted to stay within max

	drops [numReasons]atomic.Uint64 // totals by reason, for the metrics
	total atomic.Uint64             // flows stored, for the metrics
}

var _ store.WriteObserver = (*exporterTable)(nil)

func newExporterTable(limit int) *exporterTable {
	return &exporterTable{max: limit, m: make(map[netip.Addr]*exporterEntry)}
}

// getLocked returns the entry of addr, creating it (and evicting the
// exporter heard the longest ago when the table is full).
func (t *exporterTable) getLocked(addr netip.Addr) *exporterEntry {
	if e, ok := t.m[addr]; ok {
		return e
	}
	if len(t.m) >= t.max {
		if back := t.lru.Back(); back != nil {
			old := back.Value.(*exporterEntry)
			t.lru.Remove(back)
			delete(t.m, old.addr)
			t.forgotten++
		}
	}
	e := &exporterEntry{addr: addr}
	e.elem = t.lru.PushFront(e)
	t.m[addr] = e
	return e
}

// datagram records a datagram of n payload bytes from addr at now.
func (t *exporterTable) datagram(addr netip.Addr, n int, trusted bool, now time.Time) {
	t.mu.Lock()
	e := t.getLocked(addr)
	t.lru.MoveToFront(e.elem)
	if e.first.IsZero() {
		e.first = now
	}
	e.last = now
	e.trusted = trusted
	e.datagrams++
	e.payload += uint64(n)
	t.mu.Unlock()
}

// untrusted records the flows of an untrusted exporter's datagram, counted
// and not stored.
func (t *exporterTable) untrusted(addr netip.Addr, flows uint64) {
	t.drops[reasonIndex(store.DropUntrusted)].Add(flows)
	t.mu.Lock()
	e := t.getLocked(addr)
	e.untrustedFlows += flows
	e.dropped[reasonIndex(store.DropUntrusted)] += flows
	t.mu.Unlock()
}

// runs calls fn for each run of consecutive flows from one exporter
// address. Flows of one datagram share their exporter, so runs are long.
func runs(flows []store.Flow, fn func(addr netip.Addr, run []store.Flow)) {
	for i := 0; i < len(flows); {
		a := flows[i].Exporter.Addr()
		j := i + 1
		for j < len(flows) && flows[j].Exporter.Addr() == a {
			j++
		}
		fn(a, flows[i:j])
		i = j
	}
}

// received records a batch of decoded, enriched flows handed to the writer.
func (t *exporterTable) received(flows []store.Flow) {
	t.mu.Lock()
	defer t.mu.Unlock()
	runs(flows, func(addr netip.Addr, run []store.Flow) {
		e := t.getLocked(addr)
		e.routerID = run[0].RouterID
		e.received += uint64(len(run))
		for i := range run {
			e.bytes += run[i].Scale(run[i].Bytes)
			e.packets += run[i].Scale(run[i].Packets)
		}
	})
}

// FlowsStored implements store.WriteObserver.
func (t *exporterTable) FlowsStored(flows []store.Flow) {
	t.total.Add(uint64(len(flows)))
	t.mu.Lock()
	defer t.mu.Unlock()
	runs(flows, func(addr netip.Addr, run []store.Flow) {
		t.getLocked(addr).stored += uint64(len(run))
	})
}

// FlowsDropped implements store.WriteObserver; the collector counts its own
// drops (queue full, shutdown) with it too.
func (t *exporterTable) FlowsDropped(flows []store.Flow, reason string) {
	i := reasonIndex(reason)
	t.drops[i].Add(uint64(len(flows)))
	t.mu.Lock()
	defer t.mu.Unlock()
	runs(flows, func(addr netip.Addr, run []store.Flow) {
		t.getLocked(addr).dropped[i] += uint64(len(run))
	})
}

// restore seeds the table with the counters saved by previous runs, so that
// what Exporters reports stays cumulative across restarts.
func (t *exporterTable) restore(saved []store.ExporterStats) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range saved {
		s := saved[i]
		if !s.Exporter.IsValid() {
			continue
		}
		e := t.getLocked(s.Exporter.Unmap())
		e.base = &s
		if e.routerID == 0 {
			e.routerID = s.RouterID
		}
		e.trusted = s.Trusted
	}
}

// queuedTotal returns the flows handed to the writer's queue since start.
func (t *exporterTable) queuedTotal() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for _, e := range t.m {
		n += e.received
	}
	return n
}
