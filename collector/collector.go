// Package collector receives NetFlow v1/v5/v9 and IPFIX over UDP, decodes it
// with collector/netflow and hands the flows in batches to a Sink (the
// store).
//
// Each listen address gets Workers sockets sharing it with SO_REUSEPORT; the
// kernel hashes an exporter's datagrams onto one of them, so each reader
// goroutine keeps its own decoder and template cache. Readers append flows
// to their current batch and put full (or old) batches on a bounded queue
// without ever blocking: when the queue is full the batch is dropped and
// counted. One goroutine takes batches off the queue and calls the sink.
//
// Nothing is lost silently: kernel socket drops, decode errors, data sets
// that never got a template, sequence gaps, full queues and sink errors are
// counted in total (Prometheus metrics) and per exporter (Exporters).
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

// Sink receives decoded flows. InsertFlows must not retain flows after it
// returns (copy them). It may block (backpressure); the collector then
// queues (bounded) and drops with a count.
type Sink interface {
	InsertFlows(ctx context.Context, flows []store.Flow) error
}

// Deps are the collector's dependencies.
type Deps struct {
	// Sink receives the batches of flows. Required.
	Sink Sink
	// Logger receives the collector's logs. Required.
	Logger *slog.Logger
	// Registerer receives the collector's metrics. Required.
	Registerer prometheus.Registerer
	// Now is the clock given to the decoder (for template expiry and flow
	// times); time.Now when nil.
	Now func() time.Time
}

// Collector is the UDP collector. Build it with New, run it with Run.
type Collector struct {
	cfg      Config
	sink     Sink
	log      *slog.Logger
	now      func() time.Time
	sampling map[netip.Addr]uint32

	started  atomic.Bool
	stopping atomic.Bool // set when ctx is done: readers drain and stop
	ready    chan struct{}

	// Set before ready is closed, read-only afterwards.
	listeners []*listener
	readers   []*reader

	queue     chan *batch
	pool      *pool
	exporters *exporterTable
	drops     [numDropReasons]atomic.Uint64
	stored    atomic.Uint64

	// noForceRcvbuf skips SO_RCVBUFFORCE, so that tests run as root can
	// see the kernel cap the buffer.
	noForceRcvbuf bool

	// procMu guards the /proc/net/udp poll.
	procMu sync.Mutex
}

// New checks the configuration and builds a collector. It opens no socket
// and starts no goroutine; Run does.
func New(cfg Config, deps Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid collector configuration: %w", err)
	}
	if deps.Sink == nil {
		return nil, errors.New("cannot build collector: no sink")
	}
	if deps.Logger == nil {
		return nil, errors.New("cannot build collector: no logger")
	}
	if deps.Registerer == nil {
		return nil, errors.New("cannot build collector: no metrics registerer")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	sampling := make(map[netip.Addr]uint32, len(cfg.SamplingOverride))
	for k, v := range cfg.SamplingOverride {
		a, err := netip.ParseAddr(k)
		if err != nil {
			return nil, fmt.Errorf("cannot parse sampling-override key %q: %w", k, err)
		}
		sampling[a.Unmap()] = v
	}
	c := &Collector{
		cfg:       cfg,
		sink:      deps.Sink,
		log:       deps.Logger,
		now:       now,
		sampling:  sampling,
		ready:     make(chan struct{}),
		queue:     make(chan *batch, cfg.QueueSize),
		exporters: newExporterTable(cfg.MaxExporters),
	}
	// Batches in circulation: the queue, one per reader, one in the sink.
	c.pool = newPool(cfg.QueueSize+len(cfg.Listen)*cfg.Workers+1, cfg.BatchSize)
	if err := deps.Registerer.Register(newMetrics(c)); err != nil {
		return nil, fmt.Errorf("cannot register collector metrics: %w", err)
	}
	return c, nil
}

// Ready is closed once Run has opened every socket; Addrs is valid from
// then on.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

// Addrs returns the address each configured listener is bound to (with the
// port the kernel chose for port 0), in configuration order. It returns nil
// before Ready is closed.
func (c *Collector) Addrs() []net.Addr {
	select {
	case <-c.ready:
	default:
		return nil
	}
	out := make([]net.Addr, len(c.listeners))
	for i, l := range c.listeners {
		out[i] = l.bound
	}
	return out
}

// Run opens the sockets and collects until ctx is done. It then stops
// reading, hands every queued flow to the sink (waiting at most
// FlushTimeout) and returns nil. It returns an error when a socket cannot
// be opened. Run may be called once.
func (c *Collector) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("collector is already running or has run")
	}
	if ctx.Err() != nil {
		return nil // stopped before it started: nothing to open or flush
	}
	for _, addr := range c.cfg.Listen {
		l, err := c.openListener(ctx, addr)
		if err != nil {
			for _, o := range c.listeners {
				o.close()
			}
			c.listeners = nil
			return err
		}
		c.listeners = append(c.listeners, l)
		for _, s := range l.socks {
			c.readers = append(c.readers, c.newReader(s))
		}
	}
	for _, l := range c.listeners {
		c.log.Info("listening for flows", "listen", l.addr, "bound", l.bound.String(),
			"workers", len(l.socks), "receive_buffer_bytes", l.rcvbuf)
	}
	close(c.ready)

	// The sink keeps working after ctx is done, until the queue is drained
	// or the flush timeout passes.
	sinkCtx, cancelSink := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSink()
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		c.sinkLoop(sinkCtx)
	}()

	// The flush deadline starts when ctx is done.
	var flushOnce sync.Once
	var flushTimer <-chan time.Time
	flushBy := func() <-chan time.Time {
		flushOnce.Do(func() { flushTimer = time.After(c.cfg.FlushTimeout) })
		return flushTimer
	}

	var wg sync.WaitGroup
	for _, r := range c.readers {
		wg.Go(func() { r.run(flushBy) })
	}
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		c.pollKernelDrops(ctx)
	}()

	<-ctx.Done()
	flushBy()
	// Wake the readers so that they drain what the kernel holds, then
	// close the sockets once they are done (or after drainMax).
	c.stopping.Store(true)
	for _, l := range c.listeners {
		for _, s := range l.socks {
			_ = s.conn.SetReadDeadline(time.Now())
		}
	}
	drainTimer := time.AfterFunc(drainMax, func() {
		for _, l := range c.listeners {
			l.close()
		}
	})
	wg.Wait()
	drainTimer.Stop()
	<-pollDone
	// Last look at the drop counters, while /proc/net/udp still lists the
	// sockets.
	c.readKernelDrops()
	for _, l := range c.listeners {
		l.close()
	}
	close(c.queue)
	timer := time.AfterFunc(c.cfg.FlushTimeout, cancelSink)
	<-sinkDone
	timer.Stop()
	c.log.Info("collector stopped", "flows_stored", c.stored.Load(),
		"flows_dropped_shutdown", c.drops[dropShutdown].Load())
	return nil
}

// pollKernelDrops reads /proc/net/udp every snapshotInterval until ctx is
// done, so that drops show even when no datagram arrives to carry
// SO_RXQ_OVFL.
func (c *Collector) pollKernelDrops(ctx context.Context) {
	t := time.NewTicker(snapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.readKernelDrops()
		}
	}
}

// readKernelDrops updates the sockets' drop counters from /proc/net/udp.
func (c *Collector) readKernelDrops() {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	want := make(map[uint64]uint64)
	for _, l := range c.listeners {
		for _, s := range l.socks {
			if s.inode != 0 {
				want[s.inode] = 0
			}
		}
	}
	if len(want) == 0 {
		return
	}
	if err := procUDPDrops(want); err != nil {
		c.log.Debug("cannot read kernel drops", "error", err)
		return
	}
	for _, l := range c.listeners {
		for _, s := range l.socks {
			if v, ok := want[s.inode]; ok {
				s.noteDrops(v)
			}
		}
	}
}

// Exporters returns a snapshot of the counters of each exporter address,
// sorted by address. FlowsDropped always has the keys queue_full,
// sink_error, shutdown (flows) and no_template_sets (data sets: see
// ReasonNoTemplateSets); PendingNoTmpl counts the data sets that arrived
// before their template; RouterID is left 0 for the caller to fill. Decoder counters lag by at most about a second while
// Run runs and are exact after it returned.
func (c *Collector) Exporters() []store.ExporterStats {
	byAddr := make(map[netip.Addr]*store.ExporterStats)
	get := func(a netip.Addr) *store.ExporterStats {
		e, ok := byAddr[a]
		if !ok {
			e = &store.ExporterStats{
				Exporter:     a,
				FlowsDropped: make(map[string]uint64, len(dropReasons)+1),
				DecodeErrors: make(map[string]uint64),
			}
			for _, r := range dropReasons {
				e.FlowsDropped[r] = 0
			}
			e.FlowsDropped[ReasonNoTemplateSets] = 0
			byAddr[a] = e
		}
		return e
	}
	for _, r := range c.runningReaders() {
		r.mu.Lock()
		for i := range r.stats {
			mergeDecoderStats(get(r.stats[i].Exporter.Unmap()), &r.stats[i])
		}
		for a, t := range r.seen {
			e := get(a)
			if e.FirstSeen.IsZero() || t.first.Before(e.FirstSeen) {
				e.FirstSeen = t.first
			}
			if t.last.After(e.LastSeen) {
				e.LastSeen = t.last
			}
		}
		r.mu.Unlock()
	}
	c.exporters.mu.Lock()
	for a, ec := range c.exporters.m {
		e := get(a)
		e.Bytes += ec.bytes
		e.PktsSeen += ec.packets
		e.FlowsStored += ec.stored
		for i, n := range ec.dropped {
			e.FlowsDropped[dropReasons[i]] += n
		}
	}
	c.exporters.mu.Unlock()
	out := make([]store.ExporterStats, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b store.ExporterStats) int { return a.Exporter.Compare(b.Exporter) })
	return out
}

// runningReaders returns the readers once Run opened the sockets, nil
// before.
func (c *Collector) runningReaders() []*reader {
	select {
	case <-c.ready:
		return c.readers
	default:
		return nil
	}
}

// runningListeners returns the listeners once Run opened the sockets, nil
// before.
func (c *Collector) runningListeners() []*listener {
	select {
	case <-c.ready:
		return c.listeners
	default:
		return nil
	}
}
