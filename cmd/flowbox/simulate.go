package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/simulator"
)

// simulateOptions are the flags of `flowbox simulate`.
type simulateOptions struct {
	target      string
	source      string
	version     string
	rate        float64
	duration    time.Duration
	routers     int
	apiPortBase int
	subscribers int
	seed        uint64
	scenario    scenarioOptions
	password    string
	tls         bool
	dailyCurve  bool
	jsonOut     bool
	logLevel    string
	clock       simClock
}

// simClock is the simulated clock of the fleet's daily curve, from
// --sim-start and --sim-tz.
type simClock struct {
	// loc is the time zone of the daily curve.
	loc *time.Location
	// now is the simulated clock; nil means real time.
	now func() time.Time
	// start is the simulated time at start (zero without --sim-start).
	start time.Time
}

// simClockFlags adds --sim-start and --sim-tz to fs, their help starting
// with prefix. The returned function, called after parsing, validates them
// (usage errors name cmd) and starts the simulated clock: it reads the
// --sim-start time at that call, then advances with real time.
func simClockFlags(fs *flag.FlagSet, cmd, prefix string) func() (simClock, error) {
	start := fs.String("sim-start", "", prefix+"simulated clock's `TIME` at start, RFC 3339 (e.g. 2026-03-14T20:00:00-03:00), then advancing "+
		"with real time: the time of day of the daily curve (traffic mix and rate); flows keep real timestamps (default: real time)")
	tz := fs.String("sim-tz", "", prefix+"time `ZONE` of the daily curve, an IANA name such as America/Sao_Paulo (default: the local zone)")
	return func() (simClock, error) {
		c := simClock{loc: time.Local}
		if *tz != "" {
			loc, err := time.LoadLocation(*tz)
			if err != nil {
				return simClock{}, usageError{fmt.Sprintf("%s: --sim-tz: %v (want an IANA name such as America/Sao_Paulo)", cmd, err)}
			}
			c.loc = loc
		}
		if *start != "" {
			t, err := time.Parse(time.RFC3339, *start)
			if err != nil {
				return simClock{}, usageError{fmt.Sprintf("%s: --sim-start %q is not an RFC 3339 time (e.g. 2026-03-14T20:00:00-03:00)", cmd, *start)}
			}
			realStart := time.Now()
			c.start = t
			c.now = func() time.Time { return t.Add(time.Since(realStart)) }
		}
		return c, nil
	}
}

// log says which clock drives the daily curve.
func (c simClock) log(logger *slog.Logger) {
	if c.now == nil {
		logger.Info("daily curve on real time", "tz", c.loc.String())
		return
	}
	logger.Info("daily curve on a simulated clock", "start", c.start.In(c.loc).Format(time.RFC3339), "tz", c.loc.String())
}

// runSimulate runs simulated MikroTik routers (fleet mode) or, with
// --target, blasts RouterOS-shaped flows at a collector (load mode).
func runSimulate(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "simulate")
	var o simulateOptions
	fs.StringVar(&o.target, "target", "", "load mode: send flows to `HOST:PORT` without any API")
	fs.StringVar(&o.source, "source", "", "load mode: local `ADDR` every exporter sends from (default: 127.0.0.2, 127.0.0.3... for a loopback IPv4 target); use 127.0.0.1 for a container's published port")
	fs.StringVar(&o.version, "version", "", "load mode: NetFlow version 1, 5, 9 (default) or 10/ipfix; fleet mode: RouterOS 6, 7 or mixed (default)")
	fs.Float64Var(&o.rate, "rate", 0, "flows per second: in total (load mode, default 100000) or per router (fleet mode, default 200)")
	fs.DurationVar(&o.duration, "duration", 0, "stop after `D` (default: run until interrupted)")
	fs.IntVar(&o.routers, "routers", 0, "number of simulated routers (fleet default 3, load default 2)")
	fs.IntVar(&o.apiPortBase, "api-port-base", 8728, "fleet mode: router i serves the RouterOS API on 127.0.0.1:(`P`+i); 0 picks free ports")
	fs.IntVar(&o.subscribers, "subscribers", 300, "subscribers per router")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed: the same seed gives the same routers and traffic")
	fs.StringVar(&o.password, "password", "", "fleet mode: API password of user admin on every router (default: generated per router)")
	fs.BoolVar(&o.tls, "tls", false, "fleet mode: serve API-SSL with a self-signed certificate instead of the plain API")
	fs.BoolVar(&o.dailyCurve, "daily-curve", false, "fleet mode: scale the rate by the time of day (quiet at night, peak at 21:00; see --sim-start and --sim-tz)")
	fs.BoolVar(&o.jsonOut, "json", false, "print machine-readable JSON lines")
	fs.StringVar(&o.logLevel, "log-level", "", "log level: debug, info, warn or error (default: log.level of the config)")
	startClock := simClockFlags(fs, "simulate", "fleet mode: ")
	scenario := scenarioFlags(fs, "simulate", "fleet mode: ",
		" (load mode: mixed into the first exporter's flows; not export-stop)", scenarioOptions{})
	load := commonFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The simulator keeps no data; the configuration gives the log format
	// and level, and a bad file is reported like everywhere else.
	cfg, err := load()
	if err != nil {
		return err
	}
	if o.logLevel == "" {
		o.logLevel = cfg.Log.Level
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("simulate: unexpected argument %q", fs.Arg(0))}
	}
	switch o.logLevel {
	case "debug", "info", "warn", "error":
	default:
		return usageError{fmt.Sprintf("simulate: --log-level %q is not one of debug, info, warn, error", o.logLevel)}
	}
	if o.duration < 0 {
		return usageError{"simulate: --duration must not be negative"}
	}
	if o.target != "" && (flagSet(fs, "sim-start") || flagSet(fs, "sim-tz")) {
		return usageError{"simulate: --sim-start and --sim-tz are for fleet mode (without --target)"}
	}
	if o.clock, err = startClock(); err != nil {
		return err
	}
	if o.scenario, err = scenario(); err != nil {
		return err
	}
	if o.target != "" {
		if given := o.scenario.timingFlags(); given != "" {
			return usageError{fmt.Sprintf("simulate: --%s is for fleet mode (without --target): load mode mixes the scenario into its flow pool", given)}
		}
		switch o.scenario.name {
		case netflowtest.ScenarioExportStop, netflowtest.ScenarioFastTrack, netflowtest.ScenarioUnexportedInterface:
			return usageError{fmt.Sprintf("simulate: --scenario %s is for fleet mode (without --target)", o.scenario.name)}
		}
	}
	logger := newLogger(e.stderr, LogConfig{Level: o.logLevel, Format: cfg.Log.Format}).With("component", "simulate")
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if o.target != "" {
		return simulateLoad(ctx, e, o, logger)
	}
	return simulateFleet(ctx, e, o, logger)
}

// loadReport is the result line of load mode.
type loadReport struct {
	Mode           string  `json:"mode"`
	Target         string  `json:"target"`
	Version        int     `json:"version"`
	Routers        int     `json:"routers"`
	Seconds        float64 `json:"seconds"`
	Packets        uint64  `json:"packets"`
	Flows          uint64  `json:"flows"`
	Octets         uint64  `json:"octets"`
	FlowPackets    uint64  `json:"flow_packets"`
	SendErrors     uint64  `json:"send_errors"`
	Lagged         uint64  `json:"lagged"`
	FlowsPerSecond float64 `json:"flows_per_second"`
}

func parseNetFlowVersion(s string) (int, error) {
	switch strings.ToLower(s) {
	case "", "9":
		return netflowtest.V9, nil
	case "1":
		return netflowtest.V1, nil
	case "5":
		return netflowtest.V5, nil
	case "10", "ipfix":
		return netflowtest.IPFIX, nil
	}
	return 0, usageError{fmt.Sprintf("simulate: --version %q is not one of 1, 5, 9, 10 (ipfix) with --target", s)}
}

// simulateLoad sends pooled model flows to one collector from several
// exporters (goroutines and sockets) at a fixed total rate.
func simulateLoad(ctx context.Context, e *env, o simulateOptions, logger *slog.Logger) error {
	version, err := parseNetFlowVersion(o.version)
	if err != nil {
		return err
	}
	target, err := resolveTarget(o.target)
	if err != nil {
		return usageError{fmt.Sprintf("simulate: --target: %v", err)}
	}
	var source netip.Addr
	if o.source != "" {
		if source, err = netip.ParseAddr(o.source); err != nil || source.Is4() != target.Addr().Is4() {
			return usageError{fmt.Sprintf("simulate: --source %q is not an IP address of the target's family", o.source)}
		}
	}
	if o.routers == 0 {
		o.routers = 2
	}
	if o.routers < 1 || o.routers > simulator.MaxRouters {
		return usageError{fmt.Sprintf("simulate: --routers %d is outside 1..%d", o.routers, simulator.MaxRouters)}
	}
	if o.rate == 0 {
		o.rate = 100000
	}
	if o.rate < 0 {
		return usageError{"simulate: --rate must be positive"}
	}
	var exps []*netflowtest.Exporter
	defer func() {
		for _, x := range exps {
			x.Stop()
		}
	}()
	for i := range o.routers {
		mc := netflowtest.ModelConfig{Seed: o.seed + uint64(i), Index: i, Subscribers: o.subscribers}
		if i == 0 && o.scenario.name != "" {
			// The exporters cycle through a pool generated at once, where
			// no time passes: the first one's pool holds the scenario's
			// flows at a fixed share of its sessions.
			mc.Scenario, mc.ScenarioShare, mc.ScenarioRate = o.scenario.name, loadScenarioShare, -1
		}
		model, err := netflowtest.NewModel(mc)
		if err != nil {
			return fmt.Errorf("cannot build traffic model: %w", err)
		}
		src := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if target.Addr().Is6() {
			src = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
		if target.Addr().IsLoopback() && target.Addr().Is4() {
			src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}), 0)
		}
		if source.IsValid() {
			src = netip.AddrPortFrom(source, 0)
		}
		cfg := netflowtest.ExporterConfig{Source: src, Rate: o.rate / float64(o.routers), Pool: 1 << 15,
			Targets: []netflowtest.Target{{Addr: target, Version: version}}}
		x, err := netflowtest.NewExporter(cfg, model, logger.With("exporter", i))
		if err != nil {
			return fmt.Errorf("cannot build exporter: %w", err)
		}
		if err := x.Start(); err != nil && src.Addr().IsLoopback() {
			// No whole 127/8 on this platform: share 127.0.0.1, distinct ports.
			cfg.Source = netip.MustParseAddrPort("127.0.0.1:0")
			if x, err = netflowtest.NewExporter(cfg, model, logger.With("exporter", i)); err == nil {
				err = x.Start()
			}
			if err != nil {
				return fmt.Errorf("cannot start exporter %d: %w", i, err)
			}
		} else if err != nil {
			return fmt.Errorf("cannot start exporter %d: %w", i, err)
		}
		exps = append(exps, x)
	}
	start := time.Now()
	logger.Info("sending flows", "target", target.String(), "version", version, "rate", o.rate, "exporters", o.routers)
	<-ctx.Done()
	for _, x := range exps {
		x.Stop()
	}
	r := loadReport{Mode: "load", Target: target.String(), Version: version, Routers: o.routers,
		Seconds: time.Since(start).Seconds()}
	for _, x := range exps {
		st := x.Stats()
		r.Packets += st.Packets
		r.Flows += st.Flows
		r.Octets += st.Octets
		r.FlowPackets += st.FlowPackets
		r.SendErrors += st.SendErrors
		r.Lagged += st.Lagged
	}
	if r.Seconds > 0 {
		r.FlowsPerSecond = float64(r.Flows) / r.Seconds
	}
	if o.jsonOut {
		return writeJSONLine(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "sent %d flows in %d packets (%d octets, %d flow packets) to %s in %.1fs: %.0f flows/s; %d send errors, %d flows lagged\n",
		r.Flows, r.Packets, r.Octets, r.FlowPackets, r.Target, r.Seconds, r.FlowsPerSecond, r.SendErrors, r.Lagged)
	return nil
}

// resolveTarget parses HOST:PORT, resolving a host name.
func resolveTarget(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q has no port", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// routerInfo is one router of the fleet as printed.
type routerInfo struct {
	Identity    string `json:"identity"`
	Version     string `json:"version"`
	API         string `json:"api"`
	TLS         bool   `json:"tls"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	ExportFrom  string `json:"export_from"`
	Subscribers int    `json:"subscribers"`
}

// routerStats is one router's result line in fleet mode.
type routerStats struct {
	Identity string `json:"identity"`
	Targets  int    `json:"targets"`
	Packets  uint64 `json:"packets"`
	Flows    uint64 `json:"flows"`
	Octets   uint64 `json:"octets"`
}

func simulateFleet(ctx context.Context, e *env, o simulateOptions, logger *slog.Logger) error {
	if o.routers == 0 {
		o.routers = 3
	}
	if o.rate == 0 {
		o.rate = 200
	}
	versions := o.version
	if versions == "" {
		versions = "mixed"
	}
	if err := o.scenario.checkRouter("simulate", o.routers); err != nil {
		return err
	}
	scfg := simulator.Config{Routers: o.routers, APIPortBase: o.apiPortBase, TLS: o.tls,
		Versions: versions, Password: o.password, Rate: o.rate, DailyCurve: o.dailyCurve,
		Subscribers: o.subscribers, Seed: o.seed, Location: o.clock.loc, Clock: o.clock.now}
	o.scenario.apply(&scfg)
	f, err := simulator.New(scfg, logger)
	if err != nil {
		return usageError{fmt.Sprintf("simulate: %v", err)}
	}
	if err := f.Start(); err != nil {
		return fmt.Errorf("cannot start simulated fleet: %w", err)
	}
	o.clock.log(logger)
	defer f.Stop()
	var infos []routerInfo
	for _, r := range f.Routers() {
		infos = append(infos, routerInfo{Identity: r.Identity, Version: r.Version, API: r.APIAddr(), TLS: r.TLS,
			Fingerprint: r.Fingerprint, Username: r.Username, Password: r.Password,
			ExportFrom: r.ExportAddr().Addr().String(), Subscribers: len(r.Model.Subscribers())})
	}
	rep := newScenarioReporter(f, o.clock, o.jsonOut, e.stdout, logger)
	if o.jsonOut {
		line := map[string]any{"mode": "fleet", "routers": infos}
		if sc := rep.plan(); sc != nil {
			line["scenario"] = sc
		}
		if err := rep.writeJSON(line); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "%d simulated MikroTik routers; onboard them with these API logins:\n", len(infos))
		for _, i := range infos {
			api := "api"
			if i.TLS {
				api = "api-ssl"
			}
			fmt.Fprintf(e.stdout, "  %-8s RouterOS %-20s %s %s user %s password %s (exports from %s, %d subscribers)\n",
				i.Identity, i.Version, api, i.API, i.Username, i.Password, i.ExportFrom, i.Subscribers)
		}
		fmt.Fprintln(e.stdout, "flows are exported once /ip/traffic-flow is enabled with a target on 127.0.0.1; Ctrl-C stops")
		rep.printPlan("scenario ")
	}
	watched := rep.watch(ctx)
	<-ctx.Done()
	<-watched
	f.Stop()
	if err := rep.stopped(); err != nil {
		return err
	}
	var stats []routerStats
	for i, st := range f.Stats() {
		stats = append(stats, routerStats{Identity: infos[i].Identity, Targets: len(st.Targets),
			Packets: st.Packets, Flows: st.Flows, Octets: st.Octets})
	}
	if o.jsonOut {
		return writeJSONLine(e.stdout, map[string]any{"mode": "fleet", "stats": stats})
	}
	for _, s := range stats {
		fmt.Fprintf(e.stdout, "%s: sent %d flows in %d packets (%d octets)\n", s.Identity, s.Flows, s.Packets, s.Octets)
	}
	return nil
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode result: %w", err)
	}
	if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
		return fmt.Errorf("cannot write result: %w", err)
	}
	return nil
}

// loadScenarioShare is the share of the first exporter's sessions that
// belong to the scenario in load mode.
const loadScenarioShare = 0.3

// scenarioOptions are the scenario flags of simulate and demo.
type scenarioOptions struct {
	// name is the scenario, "" for none.
	name            string
	start, duration time.Duration
	router          int
	rate            float64
	// given are the flags other than --scenario set on the command line.
	given []string
}

// scenarioTimingFlags are the flags that shape a scenario.
var scenarioTimingFlags = []string{"scenario-start", "scenario-duration", "scenario-router", "scenario-rate"}

// scenarioFlags adds --scenario, --scenario-start, --scenario-duration,
// --scenario-router and --scenario-rate to fs with def's defaults, their
// help starting with prefix (and, for --scenario, ending with note). The
// returned function, called after parsing, validates them (usage errors
// name cmd).
func scenarioFlags(fs *flag.FlagSet, cmd, prefix, note string, def scenarioOptions) func() (scenarioOptions, error) {
	var o scenarioOptions
	defName := def.name
	if defName == "" {
		defName = "none"
	}
	fs.StringVar(&o.name, "scenario", defName, prefix+"`NAME` of an attack or a fault added to one router's traffic: none, "+
		strings.Join(netflowtest.Scenarios(), ", ")+note)
	fs.DurationVar(&o.start, "scenario-start", def.start, prefix+"start the scenario `D` after the routers start")
	fs.DurationVar(&o.duration, "scenario-duration", def.duration, prefix+"stop the scenario after `D` (0: run it until the end)")
	fs.IntVar(&o.router, "scenario-router", def.router, prefix+"index `N` of the router that runs the scenario (0 is the first)")
	fs.Float64Var(&o.rate, "scenario-rate", 0, prefix+"what the scenario adds per second on top of the ordinary flows: "+
		"`R` flows (ddos 100, synflood 1500, portscan 300) or SMTP sessions (spam 20); 0: these defaults")
	return func() (scenarioOptions, error) {
		if o.name == "none" {
			o.name = ""
		}
		if !netflowtest.ValidScenario(o.name) {
			return o, usageError{fmt.Sprintf("%s: --scenario %q is not one of none, %s", cmd, o.name, strings.Join(netflowtest.Scenarios(), ", "))}
		}
		for _, name := range scenarioTimingFlags {
			if flagSet(fs, name) {
				o.given = append(o.given, name)
			}
		}
		if o.name == "" && len(o.given) > 0 {
			return o, usageError{fmt.Sprintf("%s: --%s needs a --scenario", cmd, o.given[0])}
		}
		switch {
		case o.start < 0:
			return o, usageError{fmt.Sprintf("%s: --scenario-start must not be negative", cmd)}
		case o.duration < 0:
			return o, usageError{fmt.Sprintf("%s: --scenario-duration must not be negative", cmd)}
		case o.router < 0:
			return o, usageError{fmt.Sprintf("%s: --scenario-router must not be negative", cmd)}
		case o.rate < 0 || o.rate > netflowtest.MaxScenarioRate:
			return o, usageError{fmt.Sprintf("%s: --scenario-rate %g is outside 0..%d", cmd, o.rate, netflowtest.MaxScenarioRate)}
		}
		return o, nil
	}
}

// timingFlags returns the first scenario flag other than --scenario given
// on the command line, "" for none.
func (o scenarioOptions) timingFlags() string {
	if len(o.given) == 0 {
		return ""
	}
	return o.given[0]
}

// checkRouter checks --scenario-router against the fleet's size.
func (o scenarioOptions) checkRouter(cmd string, routers int) error {
	if o.name != "" && o.router >= routers {
		return usageError{fmt.Sprintf("%s: --scenario-router %d is outside 0..%d (the fleet's routers)", cmd, o.router, routers-1)}
	}
	return nil
}

// apply sets the scenario of a fleet.
func (o scenarioOptions) apply(c *simulator.Config) {
	c.Scenario, c.ScenarioRouter, c.ScenarioStart, c.ScenarioDuration, c.ScenarioRate =
		o.name, o.router, o.start, o.duration, o.rate
}

// scenarioJSON is a fleet's scenario as printed: what, where, against (or
// from) whom, and when (real time).
type scenarioJSON struct {
	Scenario    string `json:"scenario"`
	Router      string `json:"router"`
	RouterIndex int    `json:"router_index"`
	// ExportFrom is the address the router exports from: what flowbox
	// names the exporter.
	ExportFrom string `json:"export_from"`
	// Address and Subscriber are the victim or the culprit; empty for
	// export-stop.
	Address    string     `json:"address"`
	Subscriber string     `json:"subscriber"`
	Start      time.Time  `json:"start"`
	End        *time.Time `json:"end"` // null: until the simulator stops
}

// scenarioEvent is the line printed when the scenario starts or ends.
type scenarioEvent struct {
	Mode  string `json:"mode"`
	Event string `json:"event"` // scenario-start or scenario-end
	// Reason of an end: "ended" (its duration passed) or "stopped" (the
	// simulator stopped while it was on).
	Reason   string       `json:"reason,omitempty"`
	At       time.Time    `json:"at"`
	Scenario scenarioJSON `json:"scenario"`
}

// scenarioReporter prints a fleet's scenario: its plan, and lines when it
// starts and ends.
type scenarioReporter struct {
	f      *simulator.Fleet
	info   simulator.ScenarioInfo
	ok     bool
	offset time.Duration // real time minus the fleet's clock
	// exportFrom is the scenario router's export address at the start,
	// for reports once its exporter stopped.
	exportFrom netip.Addr
	json       bool
	w          io.Writer
	logger     *slog.Logger

	mu             sync.Mutex // serialises writes; guards below
	started, ended bool
}

// newScenarioReporter reports f's scenario (after f.Start) to w, as JSON
// lines or text, and to logger.
func newScenarioReporter(f *simulator.Fleet, clock simClock, jsonOut bool, w io.Writer, logger *slog.Logger) *scenarioReporter {
	r := &scenarioReporter{f: f, json: jsonOut, w: w, logger: logger}
	r.info, r.ok = f.Scenario()
	if r.ok {
		r.exportFrom = f.Routers()[r.info.Router].ExportAddr().Addr()
	}
	if clock.now != nil {
		r.offset = time.Since(clock.now())
	}
	return r
}

// plan returns the scenario as printed, nil without one.
func (r *scenarioReporter) plan() *scenarioJSON {
	if !r.ok {
		return nil
	}
	i := r.info
	from := r.f.Routers()[i.Router].ExportAddr().Addr()
	if !from.IsValid() {
		from = r.exportFrom
	}
	j := &scenarioJSON{Scenario: i.Scenario, Router: i.Identity, RouterIndex: i.Router,
		ExportFrom: from.String(), Subscriber: i.Subscriber, Start: i.Start.Add(r.offset)}
	if i.Addr.IsValid() {
		j.Address = i.Addr.String()
	}
	if !i.End.IsZero() {
		end := i.End.Add(r.offset)
		j.End = &end
	}
	return j
}

// describe says in words what the scenario does.
func (r *scenarioReporter) describe() string {
	p := r.plan()
	what := fmt.Sprintf("%s on %s", p.Scenario, p.Router)
	if p.Address != "" {
		role := "against"
		if p.Scenario == netflowtest.ScenarioPortscan || p.Scenario == netflowtest.ScenarioSpam {
			role = "from"
		}
		what += fmt.Sprintf(" %s subscriber %s (%s)", role, p.Address, p.Subscriber)
	} else {
		what += fmt.Sprintf(" (no exports from %s)", p.ExportFrom)
	}
	return what
}

// printPlan prints the scenario's plan as a line of text starting with
// prefix.
func (r *scenarioReporter) printPlan(prefix string) {
	if !r.ok {
		return
	}
	p := r.plan()
	when := "until the end"
	if p.End != nil {
		when = "for " + p.End.Sub(p.Start).Round(time.Second).String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "%s%s, from %s %s\n", prefix, r.describe(), p.Start.Local().Format(time.TimeOnly), when)
}

// writeJSON writes one JSON line, serialised with the event lines.
func (r *scenarioReporter) writeJSON(v any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return writeJSONLine(r.w, v)
}

// event reports a start or an end.
func (r *scenarioReporter) event(event, reason string) error {
	r.logger.Info("scenario "+event, "scenario", r.info.Scenario, "router", r.info.Identity,
		"address", r.plan().Address, "subscriber", r.info.Subscriber)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		return writeJSONLine(r.w, scenarioEvent{Mode: "fleet", Event: "scenario-" + event, Reason: reason,
			At: time.Now(), Scenario: *r.plan()})
	}
	verb := "started"
	if event == simulator.ScenarioEnded {
		verb = "ended"
	}
	_, err := fmt.Fprintf(r.w, "scenario %s %s\n", r.describe(), verb)
	return err
}

// watch reports the scenario's start and end until ctx is done; the
// returned channel is closed when it returns.
func (r *scenarioReporter) watch(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.f.WatchScenario(ctx, func(event string, _ simulator.ScenarioInfo) {
			reason := ""
			r.mu.Lock()
			if event == simulator.ScenarioStarted {
				r.started = true
			} else {
				r.ended, reason = true, "ended"
			}
			r.mu.Unlock()
			if err := r.event(event, reason); err != nil {
				r.logger.Warn("cannot report the scenario", "error", err)
			}
		})
	}()
	return done
}

// stopped reports the end of a scenario still on when the simulator
// stops.
func (r *scenarioReporter) stopped() error {
	r.mu.Lock()
	on := r.started && !r.ended
	r.ended = true
	r.mu.Unlock()
	if !on {
		return nil
	}
	return r.event(simulator.ScenarioEnded, "stopped")
}
