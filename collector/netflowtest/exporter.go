package netflowtest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Target is one /ip/traffic-flow/target of a router: where to send and how.
type Target struct {
	// Addr is the collector's address and port.
	Addr netip.AddrPort
	// Version is 1, 5, 9 or 10 (IPFIX).
	Version int
	// TemplateRefresh and TemplateTimeout are v9-template-refresh and
	// v9-template-timeout; zero means the RouterOS defaults (20, 30m).
	TemplateRefresh int
	TemplateTimeout time.Duration
	// SysInitTime adds IE 160 to IPFIX records (RouterOS v7).
	SysInitTime bool
}

func (t Target) validate() error {
	if !t.Addr.IsValid() || t.Addr.Port() == 0 {
		return fmt.Errorf("target %s: address and port are required", t.Addr)
	}
	return EncoderConfig{Version: t.Version, TemplateRefresh: t.TemplateRefresh,
		TemplateTimeout: t.TemplateTimeout}.Validate()
}

// ExporterConfig configures an Exporter.
type ExporterConfig struct {
	// Source is the local address to send from (127.0.0.2:0 gives each
	// simulated router its own exporter address). The zero value lets the
	// system choose.
	Source netip.AddrPort
	// Targets are the collectors to send to; they can change at run time
	// with SetTargets.
	Targets []Target
	// Rate is the number of flows per second, before the daily curve.
	Rate float64
	// DailyCurve scales the rate by the model's daily curve (quiet at
	// night, peak at 21:00), read at the model's ModelConfig.Clock, or at
	// each send's real time without one.
	DailyCurve bool
	// BootTime is when the simulated router booted; flow times are uptime
	// relative to it. Zero means 3 days before the exporter was built.
	BootTime time.Time
	// Tick is how often flows are sent; default 10ms.
	Tick time.Duration
	// Pool, when positive, makes the exporter cycle through that many flows
	// generated once (times re-stamped on each send) instead of asking the
	// model for new flows: for load generation, where the model would cost
	// more than the encoding.
	Pool int
	// MaxBurst bounds the flows sent in one tick; flows due beyond it are
	// not sent and are counted in ExporterStats.Lagged. Default: 100ms
	// worth at Rate, at least 1000.
	MaxBurst int
	// Account, when set, sees every flow the model generates (the
	// router's traffic, which its interface counters count) and returns
	// those the router exports (a simulated router drops what its
	// traffic-flow does not see). It may reuse flows' storage.
	Account func(now time.Time, flows []store.Flow) []store.Flow
}

// TargetStats counts what was sent to one target.
type TargetStats struct {
	Target Target
	EncoderStats
	// SendErrors counts packets the socket refused.
	SendErrors uint64
}

// ExporterStats counts what an exporter sent, in total and per target.
type ExporterStats struct {
	// Generated is the number of flows taken from the model.
	Generated uint64
	// Lagged counts flows that were due but not sent because the exporter
	// fell behind by more than MaxBurst flows in a tick.
	Lagged uint64
	// Packets, Flows, Octets and FlowPackets sum the targets' counters of
	// what was sent successfully.
	Packets, Flows, Octets, FlowPackets uint64
	// SendErrors sums the targets' send errors.
	SendErrors uint64
	Targets    []TargetStats
}

// Exporter sends a model's flows over UDP to its targets, the way a router
// with /ip/traffic-flow enabled does. New only builds; Start opens the socket
// and starts sending; Stop stops.
type Exporter struct {
	cfg    ExporterConfig
	model  *Model
	logger *slog.Logger

	mu         sync.Mutex // guards everything below
	targets    []*targetState
	rate       float64
	stats      ExporterStats
	flows      []store.Flow
	flows6     []store.Flow
	pool       []store.Flow
	poolPos    int
	arena      []byte // batchSize packets of slotSize bytes
	batch      [][]byte
	batchStats []EncoderStats
	bw         *batchWriter
	conn       *net.UDPConn
	stop       chan struct{}
	done       chan struct{}
}

type targetState struct {
	t       Target
	enc     *Encoder
	errs    uint64
	sent    EncoderStats // counters of packets that left successfully
	errLogs int
}

// NewExporter builds an exporter of model's flows. It opens nothing.
func NewExporter(cfg ExporterConfig, model *Model, logger *slog.Logger) (*Exporter, error) {
	if model == nil {
		return nil, errors.New("cannot build exporter: no model")
	}
	if logger == nil {
		return nil, errors.New("cannot build exporter: no logger")
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("cannot build exporter: rate %g is negative", cfg.Rate)
	}
	if cfg.Tick == 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.Tick < time.Millisecond {
		return nil, fmt.Errorf("cannot build exporter: tick %s is below 1ms", cfg.Tick)
	}
	if cfg.MaxBurst == 0 {
		cfg.MaxBurst = max(1000, int(cfg.Rate/10))
	}
	if cfg.BootTime.IsZero() {
		cfg.BootTime = time.Now().Add(-72 * time.Hour)
	}
	e := &Exporter{cfg: cfg, model: model, logger: logger, rate: cfg.Rate,
		arena: make([]byte, batchSize*slotSize), batch: make([][]byte, batchSize),
		batchStats: make([]EncoderStats, batchSize)}
	if err := e.SetTargets(cfg.Targets); err != nil {
		return nil, fmt.Errorf("cannot build exporter: %w", err)
	}
	if cfg.Pool > 0 {
		e.pool = model.AppendFlows(make([]store.Flow, 0, cfg.Pool), cfg.Pool, time.UnixMilli(0))
	}
	return e, nil
}

// SetTargets replaces the targets. A target whose address, version and
// IE 160 choice are unchanged keeps its sequence number and template
// schedule; a changed refresh or timeout applies from the next packet.
func (e *Exporter) SetTargets(ts []Target) error {
	for _, t := range ts {
		if err := t.validate(); err != nil {
			return fmt.Errorf("cannot set targets: %w", err)
		}
		if e.cfg.Source.IsValid() && !e.cfg.Source.Addr().IsUnspecified() &&
			e.cfg.Source.Addr().Is4() != t.Addr.Addr().Is4() {
			return fmt.Errorf("cannot set targets: target %s and source %s are of different families", t.Addr, e.cfg.Source)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	next := make([]*targetState, 0, len(ts))
	for _, t := range ts {
		var st *targetState
		for _, old := range e.targets {
			if old.t.Addr == t.Addr && old.t.Version == t.Version && old.t.SysInitTime == t.SysInitTime {
				st = old
				break
			}
		}
		if st == nil {
			enc, err := NewEncoder(EncoderConfig{Version: t.Version, TemplateRefresh: t.TemplateRefresh,
				TemplateTimeout: t.TemplateTimeout, BootTime: e.cfg.BootTime, SysInitTime: t.SysInitTime})
			if err != nil {
				return fmt.Errorf("cannot set targets: %w", err)
			}
			st = &targetState{enc: enc}
		} else {
			st.enc.SetTemplateSchedule(t.TemplateRefresh, t.TemplateTimeout)
		}
		st.t = t
		next = append(next, st)
	}
	e.targets = next
	return nil
}

// SetRate changes the flow rate (flows/s).
func (e *Exporter) SetRate(rate float64) {
	e.mu.Lock()
	e.rate = max(rate, 0)
	e.mu.Unlock()
}

// Stats returns the counters.
func (e *Exporter) Stats() ExporterStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Targets = make([]TargetStats, 0, len(e.targets))
	for _, t := range e.targets {
		s.Targets = append(s.Targets, TargetStats{Target: t.t, EncoderStats: t.sent, SendErrors: t.errs})
	}
	return s
}

// LocalAddr returns the address the exporter sends from, once started.
func (e *Exporter) LocalAddr() netip.AddrPort {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return netip.AddrPort{}
	}
	return e.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Start opens the socket and starts sending. It fails when the source
// address cannot be bound or the exporter is already running.
func (e *Exporter) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		return errors.New("cannot start exporter: already running")
	}
	var laddr *net.UDPAddr
	if e.cfg.Source.IsValid() {
		laddr = net.UDPAddrFromAddrPort(e.cfg.Source)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return fmt.Errorf("cannot open exporter socket on %s: %w", e.cfg.Source, err)
	}
	if err := conn.SetWriteBuffer(4 << 20); err != nil {
		e.logger.Debug("cannot raise socket send buffer", "error", err)
	}
	bw, err := newBatchWriter(conn, batchSize)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("cannot start exporter: %w", err)
	}
	e.conn, e.bw = conn, bw
	e.stop, e.done = make(chan struct{}), make(chan struct{})
	go e.loop(e.stop, e.done)
	return nil
}

// Stop stops sending, waits for the sender and closes the socket. It is a
// no-op when the exporter is not running.
func (e *Exporter) Stop() {
	e.mu.Lock()
	stop, done := e.stop, e.done
	e.stop = nil
	e.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	e.mu.Lock()
	_ = e.conn.Close()
	e.conn = nil
	e.mu.Unlock()
}

func (e *Exporter) loop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	last := time.Now()
	credit := 0.0
	tick := func(now time.Time) {
		dt := min(now.Sub(last), time.Second).Seconds()
		last = now
		e.mu.Lock()
		rate := e.rate
		e.mu.Unlock()
		if e.cfg.DailyCurve {
			rate *= e.model.ActivityAt(now)
		}
		credit += rate * dt
		n := int(credit)
		credit -= float64(n)
		e.step(now, n)
	}
	for {
		select {
		case <-stop:
			// The flows accrued since the last tick are sent too, so that
			// a run sends rate x duration even when the ticker was starved
			// (a loaded machine), and a short run sends something.
			tick(time.Now())
			return
		case now := <-t.C:
			tick(now)
		}
	}
}

// chunk is how many flows step generates and encodes at a time: small
// enough to stay in cache, large enough to fill packets.
const chunk = 1024

// step sends n flows, stamped at now, to every target. With no target the
// flows are not generated at all (the router has nowhere to send them).
// Like a router's flow cache, it keeps IPv4 and IPv6 flows apart so that
// each packet is filled with records of one template.
func (e *Exporter) step(now time.Time, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n <= 0 || len(e.targets) == 0 {
		return
	}
	if n > e.cfg.MaxBurst {
		e.stats.Lagged += uint64(n - e.cfg.MaxBurst)
		n = e.cfg.MaxBurst
	}
	for n > 0 {
		k := min(n, chunk)
		n -= k
		e.flows = e.nextFlows(e.flows[:0], k, now)
		e.stats.Generated += uint64(len(e.flows))
		if e.cfg.Account != nil {
			e.flows = e.cfg.Account(now, e.flows)
		}
		// Stable partition: IPv4 first, IPv6 after, in e.flows6 as scratch.
		e.flows6 = e.flows6[:0]
		v4 := e.flows[:0]
		for i := range e.flows {
			if is6(&e.flows[i]) {
				e.flows6 = append(e.flows6, e.flows[i])
			} else {
				v4 = append(v4, e.flows[i])
			}
		}
		e.flows = append(v4, e.flows6...)
		for _, st := range e.targets {
			e.sendAll(st, now)
		}
	}
}

func (e *Exporter) nextFlows(dst []store.Flow, n int, now time.Time) []store.Flow {
	if len(e.pool) == 0 {
		return e.model.AppendFlows(dst, n, now)
	}
	nowMs := now.UnixMilli()
	for range n {
		f := e.pool[e.poolPos]
		e.poolPos++
		if e.poolPos == len(e.pool) {
			e.poolPos = 0
		}
		f.Start += nowMs
		f.End += nowMs
		dst = append(dst, f)
	}
	return dst
}

// batchSize is how many packets go to the kernel in one sendmmsg call.
const batchSize = 64

// slotSize is the room of one packet in the batch arena (MaxPacketSize
// rounded up).
const slotSize = 2048

// sendAll encodes e.flows for one target and sends the packets in batches.
func (e *Exporter) sendAll(st *targetState, now time.Time) {
	flows := e.flows
	k := 0
	for len(flows) > 0 {
		before := st.enc.Stats()
		slot := e.arena[k*slotSize : k*slotSize : (k+1)*slotSize]
		pkt, n := st.enc.AppendPacket(slot, flows, now)
		flows = flows[n:]
		d := diffStats(st.enc.Stats(), before)
		st.sent.Skipped += d.Skipped
		d.Skipped = 0
		if len(pkt) == 0 {
			if n == 0 {
				break // cannot happen with a valid encoder; never spin
			}
			continue
		}
		e.batch[k], e.batchStats[k] = pkt, d
		k++
		if k == batchSize {
			e.flush(st, k)
			k = 0
		}
	}
	e.flush(st, k)
}

// flush sends the first k packets of the batch and counts them.
func (e *Exporter) flush(st *targetState, k int) {
	if k == 0 {
		return
	}
	sent, err := e.bw.writeBatch(e.batch[:k], st.t.Addr)
	for i := range sent {
		d := e.batchStats[i]
		st.sent.add(d)
		e.stats.Packets += d.Packets
		e.stats.Flows += d.Flows
		e.stats.Octets += d.Octets
		e.stats.FlowPackets += d.FlowPackets
	}
	if err != nil {
		lost := uint64(k - sent)
		st.errs += lost
		e.stats.SendErrors += lost
		if st.errLogs < 3 {
			st.errLogs++
			e.logger.Warn("cannot send flow export", "target", st.t.Addr.String(), "error", err)
		}
	}
}

func diffStats(a, b EncoderStats) EncoderStats {
	return EncoderStats{
		Packets: a.Packets - b.Packets, TemplatePackets: a.TemplatePackets - b.TemplatePackets,
		Flows: a.Flows - b.Flows, Octets: a.Octets - b.Octets, FlowPackets: a.FlowPackets - b.FlowPackets,
		Skipped: a.Skipped - b.Skipped,
	}
}

func (s *EncoderStats) add(d EncoderStats) {
	s.Packets += d.Packets
	s.TemplatePackets += d.TemplatePackets
	s.Flows += d.Flows
	s.Octets += d.Octets
	s.FlowPackets += d.FlowPackets
	s.Skipped += d.Skipped
}
