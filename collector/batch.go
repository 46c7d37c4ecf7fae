package collector

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Reasons for which decoded flows are dropped. They are the values of the
// reason label of flowbox_collector_dropped_flows_total and keys of
// store.ExporterStats.FlowsDropped (with ReasonNoTemplateSets).
const (
	// ReasonQueueFull: the batch queue to the sink was full.
	ReasonQueueFull = "queue_full"
	// ReasonSinkError: the sink returned an error for the batch.
	ReasonSinkError = "sink_error"
	// ReasonShutdown: the sink did not take the batch before the flush
	// timeout at shutdown.
	ReasonShutdown = "shutdown"
)

// dropReasons lists the reasons counted by the collector itself, in the
// order of the exporterCounts.dropped array.
var dropReasons = [...]string{ReasonQueueFull, ReasonSinkError, ReasonShutdown}

const (
	dropQueueFull = iota
	dropSinkError
	dropShutdown
	numDropReasons
)

// batch is a slice of flows on its way to the sink. Batches travel by
// pointer and are recycled through the free list.
type batch struct {
	flows []store.Flow
}

// batchHeadroom is the extra capacity of a batch beyond BatchSize, so that
// the last packet of a full batch rarely makes append reallocate.
const batchHeadroom = 512

// pool is the bounded free list of batches: readers take from it and the
// sink goroutine gives back. When it is empty a new batch is allocated, when
// it is full a returned batch is left to the garbage collector.
type pool struct {
	free chan *batch
	size int
}

func newPool(capacity, batchSize int) *pool {
	return &pool{free: make(chan *batch, capacity), size: batchSize}
}

func (p *pool) get() *batch {
	select {
	case b := <-p.free:
		return b
	default:
		return &batch{flows: make([]store.Flow, 0, p.size+batchHeadroom)}
	}
}

func (p *pool) put(b *batch) {
	clear(b.flows) // drop references (strings) held by old flows
	b.flows = b.flows[:0]
	select {
	case p.free <- b:
	default:
	}
}

// exporterCounts are the collector's own per-exporter counters, next to the
// decoder's.
type exporterCounts struct {
	bytes, packets uint64 // sums of the decoded flows' counters, scaled
	stored         uint64
	dropped        [numDropReasons]uint64
	touched        time.Time // last update, for eviction
}

// exporterTable holds exporterCounts per exporter address, for at most max
// exporters: beyond it, the one not updated the longest is forgotten (its
// counts stay in the totals).
type exporterTable struct {
	mu        sync.Mutex
	max       int
	m         map[netip.Addr]*exporterCounts
	forgotten uint64 // exporters evicted to stay within max
}

func newExporterTable(limit int) *exporterTable {
	return &exporterTable{max: limit, m: make(map[netip.Addr]*exporterCounts)}
}

// getLocked returns the counters of addr, creating them (and evicting the
// stalest exporter when the table is full).
func (t *exporterTable) getLocked(addr netip.Addr, now time.Time) *exporterCounts {
	e, ok := t.m[addr]
	if !ok {
		if len(t.m) >= t.max {
			var oldest netip.Addr
			var oldestT time.Time
			for a, c := range t.m {
				if !oldest.IsValid() || c.touched.Before(oldestT) {
					oldest, oldestT = a, c.touched
				}
			}
			delete(t.m, oldest)
			t.forgotten++
		}
		e = &exporterCounts{}
		t.m[addr] = e
	}
	e.touched = now
	return e
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

// received records a batch of decoded flows.
func (t *exporterTable) received(flows []store.Flow) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	runs(flows, func(addr netip.Addr, run []store.Flow) {
		e := t.getLocked(addr, now)
		for i := range run {
			e.bytes += run[i].Scale(run[i].Bytes)
			e.packets += run[i].Scale(run[i].Packets)
		}
	})
}

// stored records flows the sink accepted.
func (t *exporterTable) stored(flows []store.Flow) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	runs(flows, func(addr netip.Addr, run []store.Flow) {
		t.getLocked(addr, now).stored += uint64(len(run))
	})
}

// dropped records flows dropped for reason (one of the drop* indexes).
func (t *exporterTable) dropped(flows []store.Flow, reason int) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	runs(flows, func(addr netip.Addr, run []store.Flow) {
		t.getLocked(addr, now).dropped[reason] += uint64(len(run))
	})
}

// sinkLoop hands queued batches to the sink until the queue is closed. It
// uses sinkCtx for the sink calls; once sinkCtx is done (the flush timeout
// at shutdown passed), the batches still queued are dropped and counted.
func (c *Collector) sinkLoop(sinkCtx context.Context) {
	var lim rateLimiter
	for b := range c.queue {
		n := uint64(len(b.flows))
		if err := sinkCtx.Err(); err != nil {
			c.drops[dropShutdown].Add(n)
			c.exporters.dropped(b.flows, dropShutdown)
			c.pool.put(b)
			continue
		}
		if err := c.sink.InsertFlows(sinkCtx, b.flows); err != nil {
			reason := dropSinkError
			if sinkCtx.Err() != nil {
				reason = dropShutdown
			}
			c.drops[reason].Add(n)
			c.exporters.dropped(b.flows, reason)
			if ok, suppressed := lim.allow(time.Now()); ok {
				c.log.Warn("sink refused a batch, flows dropped",
					"flows", n, "reason", dropReasons[reason], "error", err, "suppressed", suppressed)
			}
		} else {
			c.stored.Add(n)
			c.exporters.stored(b.flows)
		}
		c.pool.put(b)
	}
}

// rateLimiter lets one event through per interval and counts the rest, for
// logs on the hot path. It is used by one goroutine.
type rateLimiter struct {
	last       time.Time
	suppressed int
}

const logInterval = 10 * time.Second

// allow reports whether to log now, and how many events were suppressed
// since the last one logged.
func (l *rateLimiter) allow(now time.Time) (bool, int) {
	if !l.last.IsZero() && now.Sub(l.last) < logInterval {
		l.suppressed++
		return false, 0
	}
	s := l.suppressed
	l.last, l.suppressed = now, 0
	return true, s
}
