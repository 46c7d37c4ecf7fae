// Package alerts detects attacks, abuse and export trouble in the enriched
// flow stream and keeps each finding's life as a store.Alert: opened,
// updated with its peaks and evidence, resolved after a quiet period.
//
//	readers: decode -> enrich -> Detector.Observe (per-tick aggregates, sharded)
//	every interval: Evaluate -> host/router/interface state -> detectors -> lifecycle -> store + listeners
//
// Observe runs in every reader goroutine, on the flows before they are
// queued to the store's writer, so an attack is seen even when the
// writer's queue overflows under it. It does a few map operations per flow
// under a per-shard lock taken once per batch. Everything else happens in
// Evaluate, on the detector's own goroutine: it never reads SQLite.
//
// Rates are per host (a local address seen by a router, per direction),
// per router and per interface, decayed sums of the flows' contributions
// (observe.go). Each detector has absolute floors, which work from the
// first minute, and compares with a baseline (an exponentially weighted
// average of the same rate over about an hour, frozen while an alert is
// active) that refines them: a host that always receives 400 Mbit/s does
// not alert at 300.
//
// Listeners (notifications, mitigation) learn every opened, escalated and
// resolved alert through AlertChanged, which must not block.
package alerts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Listener learns the changes of alerts. AlertChanged is called from the
// detector's goroutine and must not block (queue and return).
type Listener interface {
	AlertChanged(ev store.AlertEvent)
}

// RouterSource names the routers (the inventory).
type RouterSource interface {
	ListRouters(ctx context.Context) ([]store.Router, error)
}

// Deps are the detector's dependencies.
type Deps struct {
	// Logger receives the detector's logs. Required.
	Logger *slog.Logger
	// Store keeps the alerts. Required.
	Store store.Alerts
	// Routers names the routers and says which are onboarded. Required.
	Routers RouterSource
	// Exporters returns the collector's per-exporter counters (export
	// health: last packet, sequence gaps, sets without template). Nil
	// disables the export-health detectors.
	Exporters func() []store.ExporterStats
	// InterfaceName names a router's interface at a time ("" when
	// unknown); nil names them by index.
	InterfaceName func(routerID int64, index uint32, t time.Time) string
	// Coverage returns each router's coverage (flows over interface
	// counters) as of the counter poller's last round; nil disables the
	// coverage-low alert.
	Coverage func() []store.RouterCoverage
	// Listeners learn every alert change.
	Listeners []Listener
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Detector is the alert detector. Build it with New; feed it with Observe;
// run it with Run (or call Evaluate on a clock of your own).
type Detector struct {
	cfg       Config
	log       *slog.Logger
	st        store.Alerts
	routers   RouterSource
	exporters func() []store.ExporterStats
	coverage  func() []store.RouterCoverage
	ifName    func(int64, uint32, time.Time) string
	listeners []Listener
	now       func() time.Time
	tau       time.Duration
	ampPorts  []bool // by UDP source port

	shards []shard
	spares []*tick
	watch  atomic.Pointer[watchSet]

	// The evaluator's state (Evaluate's goroutine only).
	started   time.Time
	last      time.Time
	hosts     map[hostKey]*hostState
	rstate    map[int64]*routerState
	ifstate   map[ifKey]*ifState
	active    map[alertKey]*activeAlert
	names     map[int64]store.Router
	namesAt   time.Time
	prunedAt  time.Time
	evaluated bool

	mu     sync.Mutex // guards status
	status store.DetectorStatus
}

// Time constants: tau is the horizon of the rates (flowbox provisions a
// 1-minute active timeout, so every flow reports at least once per tau);
// baselineTau the memory of the host and router baselines.
const (
	tau         = time.Minute
	baselineTau = time.Hour
	// hostIdle is how long a host's state is kept without traffic.
	hostIdle = 15 * time.Minute
	// namesEvery is how often the router names are re-read; namesSoon
	// while a router is unknown.
	namesEvery = time.Minute
	namesSoon  = 5 * time.Second
	// pruneEvery is how often resolved alerts past retention are deleted.
	pruneEvery = 6 * time.Hour
)

// New builds a detector.
func New(cfg Config, deps Deps) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid alerts configuration: %w", err)
	}
	if deps.Logger == nil || deps.Store == nil || deps.Routers == nil {
		return nil, errors.New("cannot build the alert detector: Logger, Store and Routers are required")
	}
	d := &Detector{cfg: cfg, log: deps.Logger, st: deps.Store, routers: deps.Routers, exporters: deps.Exporters,
		coverage: deps.Coverage,
		ifName:   deps.InterfaceName, listeners: deps.Listeners, now: deps.Now, tau: tau,
		ampPorts: make([]bool, 65536),
		hosts:    map[hostKey]*hostState{}, rstate: map[int64]*routerState{}, ifstate: map[ifKey]*ifState{},
		active: map[alertKey]*activeAlert{}, names: map[int64]store.Router{}}
	if d.now == nil {
		d.now = time.Now
	}
	for _, p := range cfg.Inbound.AmplificationPorts {
		d.ampPorts[p] = true
	}
	n := max(2, 2*runtime.GOMAXPROCS(0))
	d.shards = make([]shard, n)
	d.spares = make([]*tick, n)
	for i := range d.shards {
		d.shards[i].cur = newTick()
		d.spares[i] = newTick()
	}
	empty := watchSet{}
	d.watch.Store(&empty)
	d.status = store.DetectorStatus{Enabled: cfg.Enabled, MaxHosts: cfg.MaxHosts}
	return d, nil
}

// AddListener adds a listener (before Run).
func (d *Detector) AddListener(l Listener) { d.listeners = append(d.listeners, l) }

// Status returns the detector's own health.
func (d *Detector) Status() store.DetectorStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// Run evaluates the detectors every interval until ctx is done. At start
// it ends the alerts a previous run left active (the state does not
// survive a restart) and prunes the history past its retention.
func (d *Detector) Run(ctx context.Context) error {
	if !d.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	now := d.now()
	if n, err := d.st.EndActiveAlerts(context.WithoutCancel(ctx), now); err != nil {
		d.log.Warn("cannot end the alerts of the previous run", "err", err)
	} else if n > 0 {
		d.log.Info("ended the alerts a previous run left active", "alerts", n)
	}
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.Evaluate(ctx, d.now())
		}
	}
}

// rates are a host's rates: bytes/s, packets/s, flows/s; UDP bytes/s from
// reflection ports, bare SYN packets/s, single-packet SYN-only flows/s.
type rates struct {
	bytes, pkts, flows  float64
	amp, syn, singleSyn float64
}

func (r *rates) scale(f float64) {
	r.bytes, r.pkts, r.flows = r.bytes*f, r.pkts*f, r.flows*f
	r.amp, r.syn, r.singleSyn = r.amp*f, r.syn*f, r.singleSyn*f
}

func (r *rates) add(th *tickHost) {
	r.bytes += th.bytesC
	r.pkts += th.pktsC
	r.flows += th.flowsC
	r.amp += th.ampC
	r.syn += th.synC
	r.singleSyn += th.singleSynC
}

func maxRates(a, b rates) rates {
	return rates{max(a.bytes, b.bytes), max(a.pkts, b.pkts), max(a.flows, b.flows),
		max(a.amp, b.amp), max(a.syn, b.syn), max(a.singleSyn, b.singleSyn)}
}

// hostState is what the detector knows of a host.
type hostState struct {
	// slow are the decayed rates (horizon tau); fast the last tick's
	// alone (as if it lasted tau): quick to rise and to fall, spiky.
	slow, fast rates
	// base are the baselines, learned while no alert of the host is
	// active.
	base      rates
	sub       string
	routerOwn bool
	seen      time.Time
	// win counts distinct destinations per minute (outbound hosts);
	// tickX those of the last tick alone.
	win   *window
	tickX *distinct
	ev    *evidence // the last tick's, when watched
	// alerting is set while one of the host's alerts is active: the
	// baseline does not learn from an attack.
	alerting bool
}

// window is an outbound host's distinct counters over the current and the
// previous minute.
type window struct {
	cur, prev distinct
	start     time.Time
}

func (w *window) estimate(pick func(*distinct) *bitmap) float64 {
	b := *pick(&w.cur)
	b.or(pick(&w.prev))
	return b.estimate()
}

// routerState is what the detector knows of a router's export and
// traffic.
type routerState struct {
	// bps is the decayed rate, fast the last tick's alone, base the
	// baseline.
	bps, fast, base float64
	learned         time.Duration
	lowSince        time.Time
	// lastFlow is when the router's last flows were observed (the
	// detector's start for a router known from the collector's counters
	// that has sent none since).
	lastFlow time.Time
	// The collector's counters: the last totals, and the deltas of the
	// last minute's ticks (a ring).
	prevLost, prevRecv, prevNoTmpl uint64
	counted                        bool
	ring                           []exportDelta
	ringAt                         int
	noTmplFrom                     time.Time
	skewFrom                       time.Time
	skew                           time.Duration // signed: + the router's flows are ahead
}

// exportDelta is what a router's counters grew by in one tick.
type exportDelta struct{ lost, recv, noTmpl uint64 }

// minute sums the deltas of the last minute.
func (r *routerState) minute() (s exportDelta) {
	for _, x := range r.ring {
		s.lost, s.recv, s.noTmpl = s.lost+x.lost, s.recv+x.recv, s.noTmpl+x.noTmpl
	}
	return s
}

// ifState is what the detector knows of an interface's traffic.
type ifState struct {
	bps, fast, base float64
	learned         time.Duration
	lowSince        time.Time
	seen            time.Time
}

// alertKey identifies an active alert: inbound attacks on a host are one
// alert whatever their dominant signature; the others one per kind.
type alertKey struct {
	router int64
	target string
	group  string
}

// activeAlert is an alert being tracked.
type activeAlert struct {
	a        store.Alert
	lastTrue time.Time
	host     *hostKey
	stored   bool
}

// signal is one detector's finding in an evaluation.
type signal struct {
	key       alertKey
	host      *hostKey
	kind      string
	severity  string
	direction string
	sub       string
	bps, pps  float64
	fps       float64
	measures  map[string]float64
	ev        *evidence
	summary   string
	// kindPrefix: the summary is prefixed with the alert's kind.
	kindPrefix bool
}

// Evaluate runs one evaluation at now: it takes the shards' aggregates,
// updates the state, runs the detectors and the alerts' lifecycle.
func (d *Detector) Evaluate(ctx context.Context, now time.Time) {
	if !d.cfg.Enabled {
		return
	}
	begin := time.Now()
	if d.started.IsZero() {
		d.started = now
	}
	dt := d.cfg.Interval
	if d.evaluated {
		dt = max(now.Sub(d.last), 0)
	}
	d.last, d.evaluated = now, true
	decay := math.Exp(-dt.Seconds() / d.tau.Seconds())
	learn := 1 - math.Exp(-dt.Seconds()/baselineTau.Seconds())

	// Decay everything, then add the ticks.
	for _, h := range d.hosts {
		h.slow.scale(decay)
		h.fast, h.tickX, h.ev = rates{}, nil, nil
	}
	for _, r := range d.rstate {
		r.bps, r.fast = r.bps*decay, 0
	}
	for _, s := range d.ifstate {
		s.bps, s.fast = s.bps*decay, 0
	}
	var dropped uint64
	minLag, maxLead := map[int64]int64{}, map[int64]int64{}
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		t := sh.cur
		sh.cur = d.spares[i]
		sh.mu.Unlock()
		dropped += t.dropped + d.merge(t, now, minLag, maxLead)
		t.reset()
		d.spares[i] = t
	}
	fastScale := d.tau.Seconds() / max(dt.Seconds(), 1)
	for _, r := range d.rstate {
		r.fast *= fastScale
	}
	for _, s := range d.ifstate {
		s.fast *= fastScale
	}

	d.refreshNames(ctx, now)
	var signals []signal
	watch := make([]watchCand, 0, 64)
	for k, h := range d.hosts {
		if h.win != nil && now.Sub(h.win.start) >= time.Minute {
			h.win.prev, h.win.cur, h.win.start = h.win.cur, distinct{}, now
		}
		h.fast.scale(fastScale)
		sigs, ratio := d.detectHost(k, h, dt)
		signals = append(signals, sigs...)
		if ratio >= 0.5 || h.alerting {
			watch = append(watch, watchCand{k, ratio})
		}
		if !h.alerting {
			d := h.slow
			d.scale(learn)
			h.base.scale(1 - learn)
			h.base.bytes, h.base.pkts, h.base.flows = h.base.bytes+d.bytes, h.base.pkts+d.pkts, h.base.flows+d.flows
			h.base.amp, h.base.syn, h.base.singleSyn = h.base.amp+d.amp, h.base.syn+d.syn, h.base.singleSyn+d.singleSyn
		}
		if now.Sub(h.seen) > hostIdle && !h.alerting {
			delete(d.hosts, k)
		}
	}
	signals = append(signals, d.detectRouters(now, dt, minLag, maxLead)...)
	signals = append(signals, d.detectInterfaces(now, dt)...)
	signals = append(signals, d.detectCoverage()...)
	d.publishWatch(watch)
	d.lifecycle(ctx, now, signals)

	if now.Sub(d.prunedAt) >= pruneEvery {
		d.prunedAt = now
		if n, err := d.st.PruneAlerts(ctx, now.Add(-d.cfg.Retention)); err != nil {
			d.log.Warn("cannot prune old alerts", "err", err)
		} else if n > 0 {
			d.log.Info("pruned old alerts", "alerts", n)
		}
	}
	d.mu.Lock()
	d.status.Hosts = len(d.hosts)
	d.status.HostsDropped += dropped
	d.status.Evaluations++
	d.status.LastEvaluation = now
	d.status.EvaluationSeconds = time.Since(begin).Seconds()
	d.status.Active = len(d.active)
	d.mu.Unlock()
}

// merge adds one shard's tick into the state; it returns the flows of
// hosts that found no room.
func (d *Detector) merge(t *tick, now time.Time, minLag, maxLead map[int64]int64) uint64 {
	var dropped uint64
	for i := range t.hosts {
		th := &t.hosts[i]
		h := d.hosts[th.key]
		if h == nil {
			if len(d.hosts) >= d.cfg.MaxHosts {
				dropped += uint64(math.Round(th.flowsC * d.tau.Seconds()))
				continue
			}
			h = &hostState{}
			d.hosts[th.key] = h
		}
		h.slow.add(th)
		h.fast.add(th)
		h.sub, h.routerOwn, h.seen = th.sub, th.routerOwn, now
		if th.x != nil {
			if h.win == nil {
				h.win = &window{start: now}
			}
			if h.tickX == nil {
				h.tickX = &distinct{}
			}
			h.tickX.hosts.or(&th.x.hosts)
			h.tickX.ports.or(&th.x.ports)
			h.tickX.smtp.or(&th.x.smtp)
			h.win.cur.hosts.or(&th.x.hosts)
			h.win.cur.ports.or(&th.x.ports)
			h.win.cur.smtp.or(&th.x.smtp)
		}
		if th.ev != nil {
			if h.ev == nil {
				h.ev = th.ev
			} else {
				h.ev.merge(th.ev)
			}
		}
	}
	for id, tr := range t.routers {
		r := d.router(id)
		r.lastFlow = now
		r.bps += tr.bytesC
		r.fast += tr.bytesC
		if l, ok := minLag[id]; !ok || tr.minLagMs < l {
			minLag[id] = tr.minLagMs
		}
		if l, ok := maxLead[id]; !ok || tr.maxLeadMs > l {
			maxLead[id] = tr.maxLeadMs
		}
	}
	for pk, ti := range t.ifs {
		k := unpackIf(pk)
		s := d.ifstate[k]
		if s == nil {
			if len(d.ifstate) >= d.cfg.MaxHosts {
				continue
			}
			s = &ifState{}
			d.ifstate[k] = s
		}
		s.bps += ti.inC + ti.outC
		s.fast += ti.inC + ti.outC
		s.seen = now
	}
	return dropped
}

func (d *Detector) router(id int64) *routerState {
	r := d.rstate[id]
	if r == nil {
		r = &routerState{ring: make([]exportDelta, max(1, int((time.Minute+d.cfg.Interval-1)/d.cfg.Interval)))}
		d.rstate[id] = r
	}
	return r
}

type watchCand struct {
	k     hostKey
	ratio float64
}

// publishWatch publishes the hosts whose evidence the next tick collects:
// the most intense near a threshold, and those in an alert.
func (d *Detector) publishWatch(c []watchCand) {
	slices.SortFunc(c, func(a, b watchCand) int { return cmp.Compare(b.ratio, a.ratio) })
	w := make(watchSet, min(len(c), maxWatch))
	for _, x := range c[:min(len(c), maxWatch)] {
		w[x.k.hash()] = struct{}{}
	}
	d.watch.Store(&w)
}

// refreshNames re-reads the routers every namesEvery, and sooner (every
// namesSoon) while flows come from a router it does not know.
func (d *Detector) refreshNames(ctx context.Context, now time.Time) {
	unknown := false
	for id := range d.rstate {
		if _, ok := d.names[id]; !ok && id != 0 {
			unknown = true
			break
		}
	}
	if !d.namesAt.IsZero() && now.Sub(d.namesAt) < namesEvery && !(unknown && now.Sub(d.namesAt) >= namesSoon) {
		return
	}
	d.namesAt = now
	rs, err := d.routers.ListRouters(ctx)
	if err != nil {
		d.log.Warn("cannot list routers", "err", err)
		return
	}
	names := make(map[int64]store.Router, len(rs))
	for _, r := range rs {
		r.Password = ""
		names[r.ID] = r
	}
	d.names = names
}

// routerName names a router by id.
func (d *Detector) routerName(id int64) string {
	if r, ok := d.names[id]; ok {
		return r.Name
	}
	if id == 0 {
		return "unknown exporter"
	}
	return fmt.Sprintf("router %d", id)
}
