// Package coverage checks that flowbox counts every byte: it polls each
// router's interface counters over the RouterOS API (every minute, v6 and
// v7, wraps and reboots handled), stores them as per-interface minute and
// hour series beside the flow rollups, and compares the two over the same
// minutes (Report). Below a threshold it names the likely cause from the
// router's own configuration (Diagnose): FastTrack before RouterOS 6.33,
// L3 hardware offload on v7, interfaces left out of /ip traffic-flow,
// packet sampling, flow loss on the way.
//
// New only builds; Run polls until its context ends.
package coverage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/internal/poll"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/store"
)

// API is the part of a RouterOS API session the poller uses: Print runs
// `<path>/print` with `=.proplist=` and optional query words.
type API interface {
	Print(ctx context.Context, path string, proplist []string, query ...string) ([]map[string]string, error)
	Close() error
}

// ErrUnavailable is wrapped by API errors when the router lacks a menu or
// property (an older version, no switch chip): the poller then treats the
// menu as empty.
var ErrUnavailable = routeros.ErrUnavailable

// DialFunc opens an API session with a router of the inventory.
type DialFunc func(ctx context.Context, r store.Router) (API, error)

// RouterLister lists the router inventory.
type RouterLister interface {
	ListRouters(ctx context.Context) ([]store.Router, error)
}

// Store keeps the counter series and the poller's state
// (*flowdb.FlowDB implements it).
type Store interface {
	SaveCounterDeltas(ctx context.Context, ds []store.CounterDelta) error
	SaveCoverageState(ctx context.Context, st store.CoverageState) error
	RollupCounterHours(ctx context.Context, now time.Time) error
	PruneCounters(ctx context.Context, now time.Time) (int64, error)
}

// Deps are the poller's dependencies.
type Deps struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil registers nothing
	Routers    RouterLister
	Dial       DialFunc
	Store      Store
	// Source answers the health reports made after each round (nil: no
	// health, hence no coverage-low alert).
	Source Source
	// MinuteRetention is the store's minute-retention (reports beyond it
	// use hour buckets).
	MinuteRetention time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Poller polls the routers' interface counters.
type Poller struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	m    *metrics

	mu      sync.Mutex
	routers map[int64]*routerState
	health  []store.RouterCoverage
	rolled  time.Time
	pruned  time.Time
}

// sample is one interface's counters at one poll.
type sample struct {
	rxB, txB, rxP, txP uint64
}

// routerState is what the poller keeps per router between polls.
type routerState struct {
	at     time.Time // when prev was read
	uptime time.Duration
	prev   map[uint32]sample
	state  store.CoverageState
}

// New builds a poller.
func New(cfg Config, deps Deps) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid coverage configuration: %w", err)
	}
	if deps.Logger == nil || deps.Routers == nil || deps.Dial == nil || deps.Store == nil {
		return nil, errors.New("cannot build the counter poller: Logger, Routers, Dial and Store are required")
	}
	p := &Poller{cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, m: newMetrics(), routers: map[int64]*routerState{}}
	if p.now == nil {
		p.now = time.Now
	}
	if deps.Registerer != nil {
		if err := p.m.register(deps.Registerer); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Config returns the poller's configuration.
func (p *Poller) Config() Config { return p.cfg }

// Run polls every router each Interval until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	if !p.cfg.Enabled {
		<-ctx.Done()
		return nil
	}
	poll.Every(ctx, p.cfg.Interval, p.Round)
	return nil
}

// Round polls every router of the inventory once (Concurrency at a
// time), then builds the hour buckets, prunes past retention and refreshes
// the health.
func (p *Poller) Round(ctx context.Context) {
	routers, err := p.deps.Routers.ListRouters(ctx)
	if err != nil {
		p.log.Warn("cannot list routers for the counter poll", "error", err)
		return
	}
	poll.Each(routers, p.cfg.Concurrency, func(r store.Router) { p.PollRouter(ctx, r) })
	p.forget(routers)
	now := p.now()
	if now.Sub(p.rolled) >= 5*time.Minute || now.Truncate(time.Hour) != p.rolled.Truncate(time.Hour) {
		if err := p.deps.Store.RollupCounterHours(ctx, now); err != nil {
			p.log.Warn("cannot build the counter hours", "error", err)
		} else {
			p.rolled = now
		}
	}
	if now.Sub(p.pruned) >= time.Hour {
		if n, err := p.deps.Store.PruneCounters(ctx, now); err != nil {
			p.log.Warn("cannot prune the interface counters", "error", err)
		} else {
			p.pruned = now
			if n > 0 {
				p.log.Debug("interface counters pruned", "rows", n)
			}
		}
	}
	p.refreshHealth(ctx, now)
}

// forget drops the state of routers no longer in the inventory.
func (p *Poller) forget(routers []store.Router) {
	keep := make(map[int64]bool, len(routers))
	for _, r := range routers {
		keep[r.ID] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.routers {
		if !keep[id] {
			delete(p.routers, id)
		}
	}
}

// refreshHealth makes the report of the last Window (for Fleet and the
// coverage-low alert).
func (p *Poller) refreshHealth(ctx context.Context, now time.Time) {
	if p.deps.Source == nil {
		return
	}
	rep, err := Report(ctx, p.deps.Source, store.CoverageQuery{From: now.Add(-p.cfg.Window), To: now}, p.Options(now))
	if err != nil {
		p.log.Warn("cannot compute the coverage health", "error", err)
		return
	}
	p.mu.Lock()
	p.health = rep.Routers
	p.mu.Unlock()
}

// Options returns the report options of the poller's configuration.
func (p *Poller) Options(now time.Time) Options {
	return Options{Threshold: p.cfg.Threshold, MinBytes: p.cfg.MinBytes, Lag: p.cfg.Lag,
		MinuteRetention: p.deps.MinuteRetention, Now: now}
}

// Health returns each router's coverage over the last Window, as of the
// last round.
func (p *Poller) Health() []store.RouterCoverage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]store.RouterCoverage(nil), p.health...)
}

// Menus the poller reads.
var (
	propsResource = []string{"uptime", "version"}
	propsIface    = []string{".id", "name", "name.oid", "slave", "dynamic", "rx-byte", "tx-byte", "rx-packet", "tx-packet"}
	propsTF       = []string{"enabled", "interfaces", "packet-sampling", "sampling-interval", "sampling-space", "active-flow-timeout"}
	propsFilter   = []string{".id", "chain", "action", "disabled", "bytes", "packets", "hw-offload"}
	propsSwitch   = []string{"name", "l3-hw-offloading"}
	propsVLAN     = []string{"name", "interface"}
	propsPPPoE    = []string{"service-name", "interface", "disabled"}
)

// PollRouter polls one router now: its counters (saved as deltas since
// the previous poll) and its configuration. A failure is counted on the
// router and shown in its state.
func (p *Poller) PollRouter(ctx context.Context, r store.Router) {
	start := p.now()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	p.mu.Lock()
	rs := p.routers[r.ID]
	if rs == nil {
		rs = &routerState{}
		p.routers[r.ID] = rs
	}
	st := rs.state
	p.mu.Unlock()
	st.RouterID, st.Router = r.ID, r.Name
	st.Polls++
	deltas, next, err := p.poll(ctx, r, rs, &st)
	now := p.now()
	st.LastPoll = now
	if err != nil {
		st.Failures++
		st.LastError, st.LastErrorAt = err.Error(), now
		p.m.polls.WithLabelValues(r.Name, "error").Inc()
		p.log.Warn("cannot poll the interface counters", "router", r.Name, "error", err)
	} else {
		st.LastError = ""
		p.m.polls.WithLabelValues(r.Name, "ok").Inc()
	}
	// Saving has its own deadline: a poll that timed out is still recorded.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Timeout)
	defer scancel()
	if len(deltas) > 0 {
		if err := p.deps.Store.SaveCounterDeltas(sctx, deltas); err != nil {
			// The deltas are lost, not the counters: the next poll
			// starts from the values read now.
			st.Failures++
			st.LastError, st.LastErrorAt = err.Error(), now
			p.m.polls.WithLabelValues(r.Name, "store_error").Inc()
			p.log.Warn("cannot save the interface counters", "router", r.Name, "error", err)
		}
	}
	if err := p.deps.Store.SaveCoverageState(sctx, st); err != nil {
		p.log.Warn("cannot save the counter poller's state", "router", r.Name, "error", err)
	}
	p.mu.Lock()
	if next != nil {
		rs.prev, rs.at = next.prev, next.at
		rs.uptime = next.uptime
	}
	rs.state = st
	p.mu.Unlock()
	p.m.pollSeconds.Observe(p.now().Sub(start).Seconds())
}

// polled is what a successful counter read leaves for the next poll.
type polled struct {
	at     time.Time
	uptime time.Duration
	prev   map[uint32]sample
}

// poll reads the router; it returns the deltas since the previous poll and
// the new samples (nil when the counters could not be read).
func (p *Poller) poll(ctx context.Context, r store.Router, rs *routerState, st *store.CoverageState) ([]store.CounterDelta, *polled, error) {
	api, err := p.deps.Dial(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	defer api.Close()
	res, err := api.Print(ctx, "/system/resource", propsResource)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read /system/resource: %w", err)
	}
	var uptime time.Duration
	uptimeOK := false
	if len(res) > 0 {
		st.Version = res[0]["version"]
		if d, err := routeros.ParseDuration(res[0]["uptime"]); err == nil {
			uptime, uptimeOK = d, true
		}
	}
	rows, err := api.Print(ctx, "/interface", propsIface)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// Some versions reject name.oid: retry without it.
		rows, err = api.Print(ctx, "/interface", withoutOID(propsIface))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the interface counters: %w", err)
	}
	at := p.now()
	p.mu.Lock()
	prev, prevAt, prevUp := rs.prev, rs.at, rs.uptime
	p.mu.Unlock()
	// A reboot since the previous poll: uptime went down, or is shorter
	// than the time since that poll.
	rebooted := uptimeOK && !prevAt.IsZero() && (uptime < prevUp || uptime < at.Sub(prevAt)-time.Second)
	if rebooted {
		st.Reboots++
		p.log.Info("router rebooted since the last counter poll: counters start again", "router", r.Name, "uptime", uptime)
	}
	next := &polled{at: at, uptime: uptime, prev: make(map[uint32]sample, len(rows))}
	names := make(map[uint32]string, len(rows))
	var deltas []store.CounterDelta
	for _, row := range rows {
		idx, ok := routeros.IfIndex(row)
		if !ok {
			continue
		}
		cur, ok := parseSample(row)
		if !ok {
			p.m.badRows.Inc()
			continue
		}
		if len(next.prev) >= p.cfg.MaxInterfaces {
			p.m.ifaceDrops.Inc()
			continue
		}
		next.prev[idx] = cur
		names[idx] = row["name"]
		switch {
		case isTrue(row["slave"]):
			names[idx] = row["name"] + slaveMark
		case isTrue(row["dynamic"]) || strings.HasPrefix(row["name"], "<"):
			names[idx] = row["name"] + dynamicMark
		}
		old, seen := prev[idx]
		if !seen || prevAt.IsZero() {
			continue
		}
		d := store.CounterDelta{RouterID: r.ID, Index: idx, From: prevAt, To: at}
		var changes [4]Change
		d.RxBytes, changes[0] = Delta(old.rxB, cur.rxB, rebooted)
		d.TxBytes, changes[1] = Delta(old.txB, cur.txB, rebooted)
		d.RxPackets, changes[2] = Delta(old.rxP, cur.rxP, rebooted)
		d.TxPackets, changes[3] = Delta(old.txP, cur.txP, rebooted)
		for _, c := range changes {
			switch c {
			case Wrapped:
				st.Wraps++
				p.m.wraps.WithLabelValues(r.Name).Inc()
			case Reset:
				st.Resets++
				p.m.resets.WithLabelValues(r.Name).Inc()
			}
		}
		deltas = append(deltas, d)
	}
	st.Interfaces = names
	if err := p.readConfig(ctx, api, st); err != nil {
		st.ConfigError = err.Error()
		p.m.configErrors.WithLabelValues(r.Name).Inc()
	} else {
		st.ConfigError, st.ConfigRead = "", true
	}
	return deltas, next, nil
}

// slaveMark is appended to the name of a bridge or bond port in
// CoverageState.Interfaces: flows name the bridge, not its ports.
const slaveMark = "\x00slave"

// readConfig reads what the diagnosis needs: /ip/traffic-flow, the
// fasttrack filter rules, the switch's L3 offload (v7), and the
// interfaces that carry others (VLAN parents, PPPoE servers).
func (p *Poller) readConfig(ctx context.Context, api API, st *store.CoverageState) error {
	tf, err := printOptional(ctx, api, "/ip/traffic-flow", propsTF)
	if err != nil {
		return err
	}
	if len(tf) > 0 {
		st.TrafficFlowEnabled = isTrue(tf[0]["enabled"])
		st.TrafficFlowInterfaces = tf[0]["interfaces"]
		st.PacketSampling = isTrue(tf[0]["packet-sampling"])
		st.SamplingInterval, _ = strconv.Atoi(tf[0]["sampling-interval"])
		st.SamplingSpace, _ = strconv.Atoi(tf[0]["sampling-space"])
		st.ActiveFlowTimeout, _ = routeros.ParseDuration(tf[0]["active-flow-timeout"])
	}
	rules, err := printOptional(ctx, api, "/ip/firewall/filter", propsFilter, "?action=fasttrack-connection")
	if err != nil {
		return err
	}
	st.FastTrack = nil
	for _, r := range rules {
		if r["action"] != "" && r["action"] != "fasttrack-connection" {
			continue
		}
		b, _ := strconv.ParseUint(r["bytes"], 10, 64)
		pk, _ := strconv.ParseUint(r["packets"], 10, 64)
		st.FastTrack = append(st.FastTrack, store.FastTrackRule{ID: r[".id"], Chain: r["chain"], Disabled: isTrue(r["disabled"]),
			HWOffload: isTrue(r["hw-offload"]), Bytes: b, Packets: pk})
	}
	sw, err := printOptional(ctx, api, "/interface/ethernet/switch", propsSwitch)
	if err != nil {
		return err
	}
	st.L3HWOffload = false
	for _, s := range sw {
		if isTrue(s["l3-hw-offloading"]) {
			st.L3HWOffload = true
		}
	}
	// Interfaces that carry others: their counters include traffic the
	// flows name by the inner interface.
	carriers := map[string]string{}
	vlans, err := printOptional(ctx, api, "/interface/vlan", propsVLAN)
	if err != nil {
		return err
	}
	for _, v := range vlans {
		carriers[v["interface"]] = "VLAN " + v["name"]
	}
	servers, err := printOptional(ctx, api, "/interface/pppoe-server/server", propsPPPoE)
	if err != nil {
		return err
	}
	for _, s := range servers {
		if !isTrue(s["disabled"]) {
			carriers[s["interface"]] = "PPPoE sessions"
		}
	}
	for idx, name := range st.Interfaces {
		if what, ok := carriers[name]; ok {
			st.Interfaces[idx] = name + carrierMark + what
		}
	}
	return nil
}

// carrierMark separates an interface's name from what it carries in
// CoverageState.Interfaces.
const carrierMark = "\x00carries "

// dynamicMark is appended to the name of a dynamic interface (a PPPoE or
// L2TP session, "<pppoe-USER>"): one subscriber's traffic, too little and
// too bursty to judge against the minute edges.
const dynamicMark = "\x00dynamic"

// InterfaceName splits a name of CoverageState.Interfaces into the
// interface's name and, for a bridge port or an interface carrying VLANs
// or PPPoE sessions, why its counters cannot be compared with flows.
func InterfaceName(s string) (name, skip string) {
	if n, ok := strings.CutSuffix(s, slaveMark); ok {
		return n, "a bridge or bond port: flows name the bridge, not its ports"
	}
	if n, ok := strings.CutSuffix(s, dynamicMark); ok {
		return n, "a dynamic interface (one session): its traffic is judged on the interfaces it crosses"
	}
	if n, what, ok := strings.Cut(s, carrierMark); ok {
		return n, "carries " + what + ": flows name the inner interfaces"
	}
	return s, ""
}

// printOptional prints a menu; a menu the router lacks is empty.
func printOptional(ctx context.Context, api API, path string, props []string, query ...string) ([]map[string]string, error) {
	rows, err := api.Print(ctx, path, props, query...)
	if errors.Is(err, ErrUnavailable) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return rows, nil
}

func withoutOID(props []string) []string {
	out := make([]string, 0, len(props))
	for _, p := range props {
		if !strings.HasSuffix(p, ".oid") {
			out = append(out, p)
		}
	}
	return out
}

// parseSample reads the four counters of an /interface row.
func parseSample(row map[string]string) (sample, bool) {
	var v [4]uint64
	for i, k := range []string{"rx-byte", "tx-byte", "rx-packet", "tx-packet"} {
		n, err := strconv.ParseUint(row[k], 10, 64)
		if err != nil {
			return sample{}, false
		}
		v[i] = n
	}
	return sample{v[0], v[1], v[2], v[3]}, true
}

func isTrue(s string) bool { return s == "true" || s == "yes" }
