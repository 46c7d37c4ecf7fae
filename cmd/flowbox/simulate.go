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
	scenario    string
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
	fs.StringVar(&o.scenario, "scenario", "", "mix in unusual traffic: ddos, portscan or spam")
	fs.StringVar(&o.password, "password", "", "fleet mode: API password of user admin on every router (default: generated per router)")
	fs.BoolVar(&o.tls, "tls", false, "fleet mode: serve API-SSL with a self-signed certificate instead of the plain API")
	fs.BoolVar(&o.dailyCurve, "daily-curve", false, "fleet mode: scale the rate by the time of day (quiet at night, peak at 21:00; see --sim-start and --sim-tz)")
	fs.BoolVar(&o.jsonOut, "json", false, "print machine-readable JSON lines")
	fs.StringVar(&o.logLevel, "log-level", "", "log level: debug, info, warn or error (default: log.level of the config)")
	startClock := simClockFlags(fs, "simulate", "fleet mode: ")
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
		model, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: o.seed + uint64(i), Index: i,
			Subscribers: o.subscribers, Scenario: o.scenario})
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
	f, err := simulator.New(simulator.Config{Routers: o.routers, APIPortBase: o.apiPortBase, TLS: o.tls,
		Versions: versions, Password: o.password, Rate: o.rate, DailyCurve: o.dailyCurve,
		Subscribers: o.subscribers, Seed: o.seed, Scenario: o.scenario,
		Location: o.clock.loc, Clock: o.clock.now}, logger)
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
	if o.jsonOut {
		if err := writeJSONLine(e.stdout, map[string]any{"mode": "fleet", "routers": infos}); err != nil {
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
	}
	<-ctx.Done()
	f.Stop()
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
