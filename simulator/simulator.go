// Package simulator runs simulated MikroTik routers in one process, for tests,
// `flowbox simulate` and `flowbox demo`. Each router has a RouterOS API
// server (routerostest.Server, on loopback) whose state comes from a WISP
// traffic model (netflowtest.Model), and a flow exporter
// (netflowtest.Exporter) that sends the model's flows from the router's own
// loopback address, only while the router's /ip/traffic-flow is enabled and
// has a target: onboarding a simulated router through the API really turns
// its exports on, and undoing it turns them off. No two routers export
// from one address (flowbox tells exporters apart by address): a target's
// src-address moves the router's exports to that address, as on RouterOS.
//
// A fleet can run a scenario on one of its routers (Config.Scenario): an
// attack on or from one of its subscribers, or a router that stops
// exporting, from a delay after Start for a given time, so that tests and
// the demo see flowbox's alerts open and resolve.
package simulator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/routeros/routerostest"
)

// MaxRouters bounds the fleet (one CGNAT block and loopback address each).
const MaxRouters = 64

// Config configures a fleet.
type Config struct {
	// Routers is the number of routers (1..64).
	Routers int
	// FirstIndex is the model index of router 0 (router i is FirstIndex+i
	// in netflowtest.ModelConfig.Index): fleets run side by side with
	// different FirstIndex have disjoint address plans and identities.
	FirstIndex int
	// APIHost is the address the API servers listen on; default 127.0.0.1.
	APIHost string
	// APIPortBase is the API port of router 0; router i listens on
	// APIPortBase+i. 0 picks free ports (tests).
	APIPortBase int
	// TLS serves API-SSL with a self-signed certificate per router.
	TLS bool
	// Versions chooses the personalities: "6", "7" or "mixed" (router 0 is
	// v6, the others v7); default "mixed".
	Versions string
	// Username is the API user (group full); default "admin".
	Username string
	// Password is every router's password; "" generates one per router.
	Password string
	// Rate is the flows per second each router exports (at the daily peak
	// when DailyCurve is set).
	Rate float64
	// DailyCurve scales each router's rate by the time of day.
	DailyCurve bool
	// Subscribers is the number of customers per router; default 300.
	Subscribers int
	// Seed makes the fleet deterministic: router i uses a seed derived from
	// Seed and i.
	Seed uint64
	// Scenario adds unusual traffic to one router's exports (one of
	// netflowtest.Scenarios, "" for none): an attack on or from one of its
	// subscribers, or, for export-stop, no exports at all while it is on
	// (its API keeps answering). See netflowtest.ModelConfig.Scenario.
	Scenario string
	// ScenarioRouter is the index of the router that runs the scenario
	// (0..Routers-1); the others export ordinary traffic. Default 0.
	ScenarioRouter int
	// ScenarioStart is the scenario's delay after Start, read on Clock
	// (real time without one). Default 0: at Start.
	ScenarioStart time.Duration
	// ScenarioDuration is how long the scenario lasts; 0 means until the
	// fleet stops.
	ScenarioDuration time.Duration
	// ScenarioRate is what the scenario adds per second (see
	// netflowtest.ModelConfig.ScenarioRate); 0 means
	// netflowtest.DefaultScenarioRate.
	ScenarioRate float64
	// Location is the time zone of the daily curve; default UTC.
	Location *time.Location
	// Clock is the clock of the daily curve (see
	// netflowtest.ModelConfig.Clock): the time of day of the simulation,
	// which shapes the application mix and, with DailyCurve, the rate.
	// Flows keep their real timestamps. Nil means real time.
	Clock func() time.Time
	// ExportFrom is the first loopback address routers export from; router
	// i uses ExportFrom+i (an address of its /ip/address list). Default
	// 127.0.0.2. Where such an address cannot be bound, Start fails: the
	// routers never share an address.
	ExportFrom netip.Addr
}

// Validate returns every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.FirstIndex < 0 || c.FirstIndex+c.Routers > MaxRouters {
		errs = append(errs, fmt.Errorf("first-index: %d leaves no room for %d routers (at most %d in all)", c.FirstIndex, c.Routers, MaxRouters))
	}
	if c.Routers < 1 || c.Routers > MaxRouters {
		errs = append(errs, fmt.Errorf("routers: %d is outside 1..%d", c.Routers, MaxRouters))
	}
	if c.APIPortBase < 0 || c.APIPortBase+c.Routers > 65535 {
		errs = append(errs, fmt.Errorf("api-port-base: %d leaves no room for %d routers", c.APIPortBase, c.Routers))
	}
	switch c.Versions {
	case "", "6", "7", "mixed":
	default:
		errs = append(errs, fmt.Errorf("version: %q is not one of 6, 7, mixed", c.Versions))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate: %g is negative", c.Rate))
	}
	if c.Subscribers < 0 || c.Subscribers > netflowtest.MaxSubscribers {
		errs = append(errs, fmt.Errorf("subscribers: %d is outside 1..%d", c.Subscribers, netflowtest.MaxSubscribers))
	}
	if !netflowtest.ValidScenario(c.Scenario) {
		errs = append(errs, fmt.Errorf("scenario: %q is not one of %s", c.Scenario, strings.Join(netflowtest.Scenarios(), ", ")))
	}
	if c.Scenario != netflowtest.ScenarioNone && c.Routers >= 1 && (c.ScenarioRouter < 0 || c.ScenarioRouter >= c.Routers) {
		errs = append(errs, fmt.Errorf("scenario-router: %d is outside 0..%d", c.ScenarioRouter, c.Routers-1))
	}
	if c.ScenarioStart < 0 {
		errs = append(errs, fmt.Errorf("scenario-start: %s is negative", c.ScenarioStart))
	}
	if c.ScenarioDuration < 0 {
		errs = append(errs, fmt.Errorf("scenario-duration: %s is negative", c.ScenarioDuration))
	}
	if c.ScenarioRate < 0 || c.ScenarioRate > netflowtest.MaxScenarioRate {
		errs = append(errs, fmt.Errorf("scenario-rate: %g is outside 0..%d", c.ScenarioRate, netflowtest.MaxScenarioRate))
	}
	if c.ExportFrom.IsValid() && !c.ExportFrom.Is4() {
		errs = append(errs, fmt.Errorf("export-from: %s is not an IPv4 address", c.ExportFrom))
	}
	return errors.Join(errs...)
}

// Router is one simulated router of the fleet.
type Router struct {
	Index    int
	Identity string
	// Major is 6 or 7.
	Major    int
	Version  string
	Username string
	Password string
	TLS      bool
	// Fingerprint is the hex SHA-256 of the API-SSL certificate.
	Fingerprint string

	Model    *netflowtest.Model
	Server   *routerostest.Server
	Exporter *netflowtest.Exporter

	apiAddr  string
	source   netip.Addr // the router's own address, exported from by default
	bootTime time.Time
	mu       sync.Mutex // serialises applying traffic-flow changes; guards below
	expCfg   netflowtest.ExporterConfig
	started  bool
	stopped  bool
	logger   *slog.Logger
	// scenario is the fleet's scenario when this router runs it, and acct
	// its interface counters' bookkeeping (counters.go).
	scenario string
	acct     *accounting
}

// APIAddr returns the address the router's API listens on (after Start).
func (r *Router) APIAddr() string {
	if a := r.Server.Addr(); a != "" {
		return a
	}
	return r.apiAddr
}

// ExportAddr returns the address the router sends flows from (after Start).
func (r *Router) ExportAddr() netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Exporter.LocalAddr()
}

// Fleet is a set of simulated routers. New only builds; Start listens and
// starts exporters; Stop stops everything.
type Fleet struct {
	cfg     Config
	logger  *slog.Logger
	routers []*Router
	started bool
}

// seedFor derives router i's seed (splitmix64 of the fleet seed and i).
func seedFor(seed uint64, i int) uint64 {
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// New builds the fleet's models, API servers and exporters. It opens no
// socket.
func New(cfg Config, logger *slog.Logger) (*Fleet, error) {
	if logger == nil {
		return nil, errors.New("cannot build fleet: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid fleet config: %w", err)
	}
	if cfg.APIHost == "" {
		cfg.APIHost = "127.0.0.1"
	}
	if cfg.Versions == "" {
		cfg.Versions = "mixed"
	}
	if cfg.Username == "" {
		cfg.Username = "admin"
	}
	if !cfg.ExportFrom.IsValid() {
		cfg.ExportFrom = netip.MustParseAddr("127.0.0.2")
	}
	f := &Fleet{cfg: cfg, logger: logger}
	src := cfg.ExportFrom
	for i := range cfg.Routers {
		r, err := f.newRouter(i, src)
		if err != nil {
			return nil, fmt.Errorf("cannot build fleet: %w", err)
		}
		f.routers = append(f.routers, r)
		src = src.Next()
	}
	return f, nil
}

// routerDNS is the share of the simulated customers' DNS queries that
// their router answers (most WISPs make the router the resolver).
const routerDNS = 0.95

func (f *Fleet) newRouter(i int, src netip.Addr) (*Router, error) {
	cfg := f.cfg
	seed := seedFor(cfg.Seed, i)
	mc := netflowtest.ModelConfig{Seed: seed, Index: cfg.FirstIndex + i, Subscribers: cfg.Subscribers,
		Location: cfg.Location, Clock: cfg.Clock, RouterDNS: routerDNS}
	if cfg.Routers > 1 && i == cfg.Routers-1 {
		// The last router of a fleet leaves its customers on public
		// resolvers: its domains are missing, and the console says why.
		mc.RouterDNS = 0
	}
	if i == cfg.ScenarioRouter {
		mc.Scenario, mc.ScenarioDuration, mc.ScenarioRate = cfg.Scenario, cfg.ScenarioDuration, cfg.ScenarioRate
	}
	model, err := netflowtest.NewModel(mc)
	if err != nil {
		return nil, fmt.Errorf("router %d: %w", i, err)
	}
	major := 7
	if cfg.Versions == "6" || (cfg.Versions == "mixed" && i == 0) {
		major = 6
	}
	password := cfg.Password
	if password == "" {
		if password, err = generatePassword(); err != nil {
			return nil, fmt.Errorf("router %d: %w", i, err)
		}
	}
	if cfg.Scenario == netflowtest.ScenarioFastTrack && i == cfg.ScenarioRouter {
		major = 6 // FastTrack hid traffic from traffic-flow before 6.33
	}
	p := personality(model, major, seed, cfg.Username, password)
	f.fleetPersonality(i, &p, model)
	p.TLS = cfg.TLS
	addSourceAddress(&p, src)
	logger := f.logger.With("router", model.Identity())
	srv, err := routerostest.NewServer(p, logger.With("component", "routeros-api"))
	if err != nil {
		return nil, fmt.Errorf("router %d: %w", i, err)
	}
	r := &Router{Index: i, Identity: model.Identity(), Major: major, Version: p.Version,
		Username: cfg.Username, Password: password, TLS: cfg.TLS, Fingerprint: srv.Fingerprint(),
		Model: model, Server: srv, source: src, bootTime: time.Now().Add(-p.Uptime), logger: logger,
		acct: newAccounting(model)}
	if i == cfg.ScenarioRouter {
		r.scenario = cfg.Scenario
	}
	if cfg.APIPortBase > 0 {
		r.apiAddr = net.JoinHostPort(cfg.APIHost, strconv.Itoa(cfg.APIPortBase+i))
	} else {
		r.apiAddr = net.JoinHostPort(cfg.APIHost, "0")
	}
	r.expCfg = netflowtest.ExporterConfig{Source: netip.AddrPortFrom(src, 0), Rate: cfg.Rate,
		DailyCurve: cfg.DailyCurve, BootTime: r.bootTime, Account: r.Account}
	if p.TrafficFlow != nil {
		r.acct.setExported(p.TrafficFlow.Interfaces)
	}
	if r.Exporter, err = netflowtest.NewExporter(r.expCfg, model, logger.With("component", "exporter")); err != nil {
		return nil, fmt.Errorf("router %d: %w", i, err)
	}
	srv.OnTrafficFlowChange(func(routerostest.TrafficFlowState) { r.apply() })
	srv.SetDNSCacheSource(dnsCache(model))
	return r, nil
}

// generatePassword returns a random 12-character password.
func generatePassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("cannot generate password: %w", err)
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b), nil
}

// Routers returns the fleet's routers.
func (f *Fleet) Routers() []*Router { return f.routers }

// Start makes every router listen on its API address and starts its
// exporter (idle until the router's traffic-flow has an enabled target).
// On error, what was started is stopped.
func (f *Fleet) Start() error {
	if f.started {
		return errors.New("cannot start fleet: already started")
	}
	f.started = true
	if r := f.scenarioRouter(); r != nil {
		// Before any export: no scenario flow precedes its start.
		r.Model.SetScenarioStart(f.now().Add(f.cfg.ScenarioStart))
	}
	for _, r := range f.routers {
		if err := r.Server.Listen(r.apiAddr); err != nil {
			f.Stop()
			return fmt.Errorf("cannot start router %s: %w", r.Identity, err)
		}
		r.mu.Lock()
		err := r.Exporter.Start()
		r.started = err == nil
		r.mu.Unlock()
		if err != nil {
			// Sharing 127.0.0.1 would make the routers one exporter.
			f.Stop()
			return fmt.Errorf("cannot start router %s: %w (each simulated router exports from a loopback address of its own; where only 127.0.0.1 is on loopback, add the others, e.g. `ifconfig lo0 alias %s` on macOS)",
				r.Identity, err, r.source)
		}
		r.apply()
	}
	return nil
}

// Stop stops every exporter and API server.
func (f *Fleet) Stop() {
	for _, r := range f.routers {
		r.mu.Lock()
		r.Exporter.Stop()
		r.stopped = true
		r.mu.Unlock()
		if err := r.Server.Close(); err != nil {
			r.logger.Warn("cannot close API server", "error", err)
		}
	}
}

// Run starts the fleet, waits for ctx to end, and stops it.
func (f *Fleet) Run(ctx context.Context) error {
	if err := f.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	f.Stop()
	return nil
}

// apply reads the router's traffic-flow state and points the exporter at
// the enabled targets, or at none when traffic-flow is disabled, sending
// from the targets' src-address (the router's own address when it is
// 0.0.0.0). It always reads the current state, so hooks that race apply
// the latest one.
func (r *Router) apply() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started || r.stopped {
		return // Start applies the state once the exporter runs
	}
	st := r.Server.TrafficFlow()
	r.Model.SetFlowTimeouts(st.ActiveFlowTimeout, st.InactiveFlowTimeout)
	r.acct.setExported(st.Interfaces)
	var ts []netflowtest.Target
	src := r.source
	if st.Enabled {
		for _, t := range st.Targets {
			if t.Disabled {
				continue
			}
			nt, err := r.target(t)
			if err != nil {
				r.logger.Warn("traffic-flow target not exported", "id", t.ID, "error", err)
				continue
			}
			if a := t.SrcAddress.Unmap(); a.IsValid() && !a.IsUnspecified() {
				// One socket per router: the first target's src-address
				// wins; a target that wants another one is not exported.
				if len(ts) > 0 && a != src {
					r.logger.Warn("traffic-flow target not exported: the simulated router exports from one address",
						"id", t.ID, "src-address", a.String(), "exporting_from", src.String())
					continue
				}
				src = a
			}
			ts = append(ts, nt)
		}
	}
	if err := r.exportFrom(src); err != nil {
		r.logger.Warn("cannot export from the target's src-address: not exporting", "src-address", src.String(), "error", err)
		ts = nil
	}
	if err := r.Exporter.SetTargets(ts); err != nil {
		r.logger.Warn("cannot apply traffic-flow targets", "error", err)
		return
	}
	r.logger.Info("traffic-flow applied", "enabled", st.Enabled, "targets", len(ts))
}

// exportFrom moves the exporter to source address src (r.mu held): a new
// socket, as a router's exports after a change of src-address. On error
// the exporter is stopped.
func (r *Router) exportFrom(src netip.Addr) error {
	if r.expCfg.Source.Addr() == src && r.Exporter.LocalAddr().IsValid() {
		return nil // already there, and running
	}
	r.Exporter.Stop()
	cfg := r.expCfg
	cfg.Source = netip.AddrPortFrom(src, 0)
	exp, err := netflowtest.NewExporter(cfg, r.Model, r.logger.With("component", "exporter"))
	if err != nil {
		return err
	}
	r.Exporter, r.expCfg = exp, cfg
	if err := exp.Start(); err != nil {
		return err
	}
	r.logger.Info("exporting from a new address", "address", src.String())
	return nil
}

// target converts a RouterOS target into an exporter target. The simulated
// routers send from loopback sources, so only collectors on this host are
// reachable: loopback addresses or addresses of a local interface.
func (r *Router) target(t routerostest.Target) (netflowtest.Target, error) {
	var v int
	switch t.Version {
	case "1":
		v = netflowtest.V1
	case "5":
		v = netflowtest.V5
	case "9", "":
		v = netflowtest.V9
	case "ipfix", "IPFIX", "10":
		v = netflowtest.IPFIX
	default:
		return netflowtest.Target{}, fmt.Errorf("unknown version %q", t.Version)
	}
	dst := t.DstAddress.Unmap()
	if !dst.Is4() || !(dst.IsLoopback() || isLocal(dst)) {
		return netflowtest.Target{}, fmt.Errorf("collector %s is not an IPv4 address of this host", t.DstAddress)
	}
	port := t.Port
	if port == 0 {
		port = 2055
	}
	return netflowtest.Target{Addr: netip.AddrPortFrom(dst, port), Version: v,
		TemplateRefresh: t.TemplateRefresh, TemplateTimeout: t.TemplateTimeout,
		SysInitTime: r.Major >= 7 && v == netflowtest.IPFIX}, nil
}

// Stats returns each router's exporter counters, in router order.
func (f *Fleet) Stats() []netflowtest.ExporterStats {
	out := make([]netflowtest.ExporterStats, len(f.routers))
	for i, r := range f.routers {
		r.mu.Lock()
		out[i] = r.Exporter.Stats()
		r.mu.Unlock()
	}
	return out
}

// isLocal reports whether a is assigned to one of this host's interfaces.
func isLocal(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// addSourceAddress puts the address the router exports from on a loopback
// bridge, as an operator would give a router a stable management address:
// flowbox attributes flows to a router by its /ip/address entries.
func addSourceAddress(p *routerostest.Personality, src netip.Addr) {
	var next uint32
	for _, i := range p.Interfaces {
		if i.Index > next && i.Index < 1<<20 {
			next = i.Index
		}
	}
	next++
	p.Interfaces = append(p.Interfaces, routerostest.Interface{Index: next, Name: "loopback", Type: "bridge",
		Comment: "management", MTU: 1500})
	p.Addresses = append(p.Addresses, routerostest.Address{Address: netip.PrefixFrom(src, 32), Interface: "loopback"})
}

// now reads the fleet's clock: Clock, else real time.
func (f *Fleet) now() time.Time {
	if f.cfg.Clock != nil {
		return f.cfg.Clock()
	}
	return time.Now()
}

// scenarioRouter returns the router that runs the scenario, nil without
// one.
func (f *Fleet) scenarioRouter() *Router {
	if f.cfg.Scenario == netflowtest.ScenarioNone {
		return nil
	}
	return f.routers[f.cfg.ScenarioRouter]
}

// ScenarioInfo describes the fleet's scenario: what, on which router,
// against (or from) whom, and when.
type ScenarioInfo struct {
	// Scenario is the scenario's name (netflowtest.ScenarioDDoS...).
	Scenario string
	// Router is the index of the router that runs it, Identity its name.
	Router   int
	Identity string
	// Addr is the victim's (ddos, synflood) or culprit's (portscan, spam)
	// address, and Subscriber the subscriber's name as the router's
	// inventory gives it (see netflowtest.Model.ScenarioTarget). Both are
	// zero for export-stop, whose target is the router.
	Addr       netip.Addr
	Subscriber string
	// Start and End are the scenario's window on the fleet's clock (Clock,
	// else real time). Start is zero before the fleet starts; End is zero
	// when the scenario lasts until the fleet stops.
	Start, End time.Time
}

// Scenario returns the fleet's scenario, and false without one.
func (f *Fleet) Scenario() (ScenarioInfo, bool) {
	r := f.scenarioRouter()
	if r == nil {
		return ScenarioInfo{}, false
	}
	addr, sub := r.Model.ScenarioTarget()
	start, end := r.Model.ScenarioWindow()
	if !f.started {
		start, end = time.Time{}, time.Time{}
	}
	return ScenarioInfo{Scenario: f.cfg.Scenario, Router: r.Index, Identity: r.Identity,
		Addr: addr, Subscriber: sub, Start: start, End: end}, true
}

// Scenario events passed to WatchScenario's callback.
const (
	ScenarioStarted = "start"
	ScenarioEnded   = "end"
)

// scenarioPoll is how often WatchScenario reads the fleet's clock at most.
const scenarioPoll = 200 * time.Millisecond

// WatchScenario calls fn with ScenarioStarted when the scenario starts and
// with ScenarioEnded when it ends, as the fleet's clock reads (within
// 200 ms of real time), and returns once it ended or ctx is done. It
// returns at once without a scenario or before Start. A scenario that
// lasts until the fleet stops never ends: the caller reports its end.
func (f *Fleet) WatchScenario(ctx context.Context, fn func(event string, info ScenarioInfo)) {
	info, ok := f.Scenario()
	if !ok || info.Start.IsZero() {
		return
	}
	started := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := f.now()
		if !started && !now.Before(info.Start) {
			started = true
			fn(ScenarioStarted, info)
		}
		if started && !info.End.IsZero() && !now.Before(info.End) {
			fn(ScenarioEnded, info)
			return
		}
		next := scenarioPoll
		if d := info.Start.Sub(now); !started && d < next {
			next = d
		} else if d := info.End.Sub(now); started && !info.End.IsZero() && d < next {
			next = d
		}
		t.Reset(max(next, time.Millisecond))
	}
}
