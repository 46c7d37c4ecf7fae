// Package collector receives NetFlow v1/v5/v9 and IPFIX over UDP and runs
// the ingest pipeline's first half: each reader decodes its datagrams with
// collector/netflow into a batch, the enrichment stage labels the batch in
// place, and the batch goes onto the pipeline's one bounded queue (the
// store's) without ever blocking: when the queue is full the batch is
// dropped and counted. The store's single writer takes it from there.
//
//	UDP sockets -> reader: trust check, decode -> enrich in place -> one queue -> store writer
//
// Each listen address gets Workers sockets sharing it with SO_REUSEPORT; the
// kernel hashes an exporter's datagrams onto one of them, so each reader
// goroutine keeps its own decoder and template cache.
//
// Only trusted exporters are decoded (onboarded routers and
// collector.allowed-exporters, as Deps.Trust says): datagrams from other
// sources are counted per source, their flows (from the header count)
// counted as dropped "untrusted", and their templates never cached.
//
// Nothing is lost silently: kernel socket drops, decode errors, data sets
// that never got a template, sequence gaps, and every dropped flow, by
// reason (store.DropReasons: queue full, untrusted, and the writer's write
// errors, too old, future, shutdown), are counted in one per-exporter table
// (Exporters), cumulative across restarts (Restore), and in the metrics.
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

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/store"
)

// Sink is the pipeline's one bounded queue and its writer (*flowdb.FlowDB).
// Readers fill batches from GetBatch and Submit them; a refused batch comes
// back to the caller, who counts it and gives it back with PutBatch.
type Sink interface {
	GetBatch() *store.Batch
	PutBatch(b *store.Batch)
	// Submit queues a batch without blocking (store.ErrQueueFull when
	// the queue is full).
	Submit(b *store.Batch) error
	// SubmitWait waits for room until ctx is done (shutdown).
	SubmitWait(ctx context.Context, b *store.Batch) error
}

// Stage labels flows in place before they are queued (the enrichment:
// router, direction, subscriber, application, geo). It is called by every
// reader goroutine concurrently.
type Stage interface {
	Enrich(flows []store.Flow)
}

// Trust says whether an exporter address may send flows (an onboarded
// router, or in collector.allowed-exporters). It is called per datagram by
// every reader goroutine and must be fast and safe for concurrent use.
type Trust interface {
	Trusted(addr netip.Addr) bool
}

// Deps are the collector's dependencies.
type Deps struct {
	// Sink takes the batches of flows. Required.
	Sink Sink
	// Stage enriches each batch before it is queued (optional).
	Stage Stage
	// Trust decides which exporters are decoded (optional: without it
	// every exporter is trusted).
	Trust Trust
	// Logger receives the collector's logs. Required.
	Logger *slog.Logger
	// Registerer receives the collector's metrics. Required.
	Registerer prometheus.Registerer
	// Now is the clock given to the decoder (for template expiry and flow
	// times); time.Now when nil.
	Now func() time.Time
	// TemplateFile is where the readers' templates are kept across
	// restarts (loaded at start, saved every templateSaveInterval and at
	// shutdown); "" keeps them in memory only.
	TemplateFile string
}

// Template persistence intervals: readers copy their templates at most
// every templateSnapInterval, and the file is written every
// templateSaveInterval (and at shutdown). A crash loses at most the
// templates learned since the last save; exporters resend them within
// their template timeout (RouterOS: 1 minute, as provisioned).
const (
	templateSnapInterval = 20 * time.Second
	templateSaveInterval = time.Minute
)

// Collector is the UDP collector. Build it with New, run it with Run.
type Collector struct {
	cfg      Config
	sink     Sink
	stage    Stage
	trust    Trust
	log      *slog.Logger
	now      func() time.Time
	sampling map[netip.Addr]uint32

	started  atomic.Bool
	stopping atomic.Bool // set when ctx is done: readers drain and stop
	ready    chan struct{}

	// Set before ready is closed, read-only afterwards.
	listeners []*listener
	readers   []*reader

	exporters *exporterTable

	templateFile string
	tplSaves     atomic.Uint64 // template file writes
	tplErrors    atomic.Uint64 // failed template file loads and writes

	// noForceRcvbuf skips SO_RCVBUFFORCE, so that tests run as root can
	// see the kernel cap the buffer.
	noForceRcvbuf bool

	// procMu guards the /proc/net/udp poll.
	procMu sync.Mutex
}

// WriteObserver returns the per-exporter table as the store's observer, so
// that what the writer stores and drops is counted per exporter with the
// collector's own drops (store.SetWriteObserver).
func (c *Collector) WriteObserver() store.WriteObserver { return c.exporters }

// Restore seeds the per-exporter counters with those saved by previous runs
// (store.ExporterStats), so that they stay cumulative across restarts.
// Call it before Run.
func (c *Collector) Restore(saved []store.ExporterStats) { c.exporters.restore(saved) }

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
		stage:     deps.Stage,
		trust:     deps.Trust,
		log:       deps.Logger,
		now:       now,
		sampling:  sampling,
		ready:     make(chan struct{}),
		exporters: newExporterTable(cfg.MaxExporters),

		templateFile: deps.TemplateFile,
	}
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

// Run opens the sockets and collects until ctx is done. It then drains
// what the kernel already holds, hands every batch to the sink's queue
// (waiting at most FlushTimeout for room: what is left is counted as
// dropped, reason shutdown) and returns nil. It returns an error when a
// socket cannot be opened. Run may be called once.
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
	c.loadTemplates()
	close(c.ready)

	// The flush deadline starts when ctx is done.
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()

	var wg sync.WaitGroup
	for _, r := range c.readers {
		wg.Go(func() { r.run(flushCtx) })
	}
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		c.pollKernelDrops(ctx)
	}()
	saveDone := make(chan struct{})
	go func() {
		defer close(saveDone)
		c.saveTemplatesLoop(ctx)
	}()

	<-ctx.Done()
	flushTimer := time.AfterFunc(c.cfg.FlushTimeout, cancelFlush)
	defer flushTimer.Stop()
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
	<-saveDone
	c.saveTemplates(true)
	// Last look at the drop counters, while /proc/net/udp still lists the
	// sockets.
	c.readKernelDrops()
	for _, l := range c.listeners {
		l.close()
	}
	c.log.Info("collector stopped", "flows_queued", c.exporters.queuedTotal(),
		"flows_dropped_shutdown", c.exporters.drops[reasonIndex(store.DropShutdown)].Load())
	return nil
}

// pollKernelDrops reads /proc/net/udp every snapshotInterval until ctx is
// done, so that drops show even when no datagram arrives to carry
// SO_RXQ_OVFL.
func (c *Collector) pollKernelDrops(ctx context.Context) {
	every(ctx, snapshotInterval, c.readKernelDrops)
}

// every calls fn every d until ctx is done.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
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
// sorted by address, cumulative across restarts (Restore). FlowsDropped
// always has every key of store.DropReasons; RouterID is the router the
// enrichment attributed the exporter's flows to. Decoder counters lag by at
// most about a second while Run runs and are exact after it returned.
func (c *Collector) Exporters() []store.ExporterStats {
	byAddr := make(map[netip.Addr]*store.ExporterStats)
	get := func(a netip.Addr) *store.ExporterStats {
		e, ok := byAddr[a]
		if !ok {
			e = &store.ExporterStats{
				Exporter:     a,
				FlowsDropped: make(map[string]uint64, len(store.DropReasons)),
				DecodeErrors: make(map[string]uint64),
				Trusted:      true,
			}
			for _, r := range store.DropReasons {
				e.FlowsDropped[r] = 0
			}
			byAddr[a] = e
		}
		return e
	}
	for _, r := range c.runningReaders() {
		r.mu.Lock()
		for i := range r.stats {
			mergeDecoderStats(get(r.stats[i].Exporter.Unmap()), &r.stats[i])
		}
		r.mu.Unlock()
	}
	t := c.exporters
	t.mu.Lock()
	for a, ec := range t.m {
		e := get(a)
		e.RouterID = ec.routerID
		e.Trusted = ec.trusted
		e.FirstSeen, e.LastSeen = ec.first, ec.last
		e.Bytes += ec.bytes
		e.PktsSeen += ec.packets
		e.FlowsStored += ec.stored
		// Untrusted datagrams are not decoded: the table counts them.
		if !ec.trusted || ec.untrustedFlows > 0 {
			e.Packets = max(e.Packets, ec.datagrams)
			e.FlowsReceived += ec.untrustedFlows
		}
		for i, n := range ec.dropped {
			e.FlowsDropped[store.DropReasons[i]] += n
		}
		if b := ec.base; b != nil {
			addBase(e, b)
		}
	}
	t.mu.Unlock()
	out := make([]store.ExporterStats, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b store.ExporterStats) int { return a.Exporter.Compare(b.Exporter) })
	return out
}

// addBase adds what previous runs counted to this run's counters.
func addBase(e *store.ExporterStats, b *store.ExporterStats) {
	e.Packets += b.Packets
	e.FlowsReceived += b.FlowsReceived
	e.FlowsStored += b.FlowsStored
	e.LostFlows += b.LostFlows
	e.PendingNoTmpl += b.PendingNoTmpl
	e.SetsNoTemplate += b.SetsNoTemplate
	e.Bytes += b.Bytes
	e.PktsSeen += b.PktsSeen
	for k, v := range b.FlowsDropped {
		if k == ReasonNoTemplateSets {
			e.SetsNoTemplate += v // saved by flowbox before the sets had their own column
			continue
		}
		e.FlowsDropped[k] += v
	}
	for k, v := range b.DecodeErrors {
		e.DecodeErrors[k] += v
	}
	if e.FirstSeen.IsZero() || (!b.FirstSeen.IsZero() && b.FirstSeen.Before(e.FirstSeen)) {
		e.FirstSeen = b.FirstSeen
	}
	if b.LastSeen.After(e.LastSeen) {
		e.LastSeen = b.LastSeen
	}
	if b.LastTemplate.After(e.LastTemplate) {
		e.LastTemplate = b.LastTemplate
	}
	if e.RouterID == 0 {
		e.RouterID = b.RouterID
	}
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

// loadTemplates gives every reader the templates saved by the previous run,
// so that the first data packets after a restart decode. A missing file is
// a first start; a bad one is reported and ignored (the exporters resend
// their templates).
func (c *Collector) loadTemplates() {
	if c.templateFile == "" {
		return
	}
	n, err := netflow.LoadTemplateFile(c.templateFile, c.now(), c.decoders()...)
	if err != nil {
		c.tplErrors.Add(1)
		c.log.Warn("cannot load the saved templates; the exporters' next templates are awaited",
			"file", c.templateFile, "error", err)
		return
	}
	if n > 0 {
		c.log.Info("templates loaded", "file", c.templateFile, "templates", n)
	}
}

// saveTemplatesLoop writes the readers' latest template copies every
// templateSaveInterval until ctx is done.
func (c *Collector) saveTemplatesLoop(ctx context.Context) {
	if c.templateFile == "" {
		return
	}
	every(ctx, templateSaveInterval, func() { c.saveTemplates(false) })
}

// saveTemplates writes the template file atomically. final is set once the
// readers stopped: their decoders are then read directly, with everything
// learned up to the last datagram.
func (c *Collector) saveTemplates(final bool) {
	if c.templateFile == "" {
		return
	}
	var err error
	if final {
		err = netflow.SaveTemplateFile(c.templateFile, c.decoders()...)
	} else {
		blocks := make([][]byte, 0, len(c.readers))
		for _, r := range c.readers {
			r.mu.Lock()
			if r.tplBlock != nil {
				blocks = append(blocks, r.tplBlock)
			}
			r.mu.Unlock()
		}
		if len(blocks) == 0 {
			return
		}
		err = netflow.WriteTemplateFile(c.templateFile, blocks...)
	}
	if err != nil {
		c.tplErrors.Add(1)
		c.log.Warn("cannot save the templates", "file", c.templateFile, "error", err)
		return
	}
	c.tplSaves.Add(1)
}

// decoders returns the readers' decoders (each used only by its reader's
// goroutine, or by anyone once the readers stopped).
func (c *Collector) decoders() []*netflow.Decoder {
	decs := make([]*netflow.Decoder, len(c.readers))
	for i, r := range c.readers {
		decs[i] = r.dec
	}
	return decs
}
