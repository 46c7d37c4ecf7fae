package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/simulator"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// demoRouterPassword is the API password of the simulated routers. They
// listen on loopback only.
const demoRouterPassword = "demo-router"

// demoScenario is the demo's attack: a DDoS on a subscriber of the first
// router a minute after the start, for a minute and a half, so that a
// newcomer sees an alert open and resolve in the first minutes.
var demoScenario = scenarioOptions{name: "ddos", start: time.Minute, duration: 90 * time.Second}

// runDemo starts flowbox serve with a simulated MikroTik fleet (one v6 and
// two v7 routers by default), onboards the routers through the normal
// provisioning path with their API logins, and prints the web address and
// login. It runs until SIGINT/SIGTERM.
func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "demo")
	load := commonFlags(fs)
	listenNetflow := fs.String("listen-netflow", "", "UDP `ADDR[,ADDR...]` to collect on (overrides collector.listen)")
	listenWeb := fs.String("listen-web", "", "`ADDR` of the web console (overrides web.listen)")
	routers := fs.Int("routers", 3, "number of simulated routers (router 0 is RouterOS v6, the others v7)")
	rate := fs.Float64("rate", 300, "flows per second per router (at the evening peak)")
	subscribers := fs.Int("subscribers", 300, "subscribers per router")
	apiPortBase := fs.Int("api-port-base", 18728, "API port of the first simulated router (0: any free port)")
	seed := fs.Uint64("seed", 1, "seed of the simulated traffic")
	open := fs.Bool("open", false, "listen on every interface (default: loopback only, unless an address names a host)")
	startClock := simClockFlags(fs, "demo", "")
	scenarioOpts := scenarioFlags(fs, "demo", "", " (none turns the demo's attack off)", demoScenario)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("demo: unexpected argument %q", fs.Arg(0))}
	}
	clock, err := startClock()
	if err != nil {
		return err
	}
	scenario, err := scenarioOpts()
	if err != nil {
		return err
	}
	if *routers < 1 || *routers > simulator.MaxRouters {
		return usageError{fmt.Sprintf("demo: --routers %d is outside 1..%d", *routers, simulator.MaxRouters)}
	}
	if err := scenario.checkRouter("demo", *routers); err != nil {
		return err
	}
	cfg, err := loadServeConfig(e, load, *listenNetflow, *listenWeb, func(c *Config) {
		if !flagSet(fs, "data-dir") {
			c.DataDir = "demo-data"
		}
		// The simulated routers' DNS caches name their traffic; reverse
		// DNS would ask the Internet about addresses nobody visited.
		c.Domains.Reverse.Enabled = false
	})
	if err == nil && !*open {
		// A demo is not for the network: addresses without a host (":8080")
		// listen on loopback only, unless --open.
		cfg.Web.Listen = loopbackIfAny(cfg.Web.Listen)
		// On loopback nothing crosses the network: the demo keeps plain
		// HTTP (no certificate warning) unless the configuration names a
		// certificate. With --open, or on another address, it serves
		// HTTPS, as serve does.
		if cfg.Web.TLS.Cert == "" && !cfg.Web.TLS.SelfSigned && isLoopbackListen(cfg.Web.Listen) {
			cfg.Web.TLS.Mode = web.TLSModeOff
		}
		for i, l := range cfg.Collector.Listen {
			cfg.Collector.Listen[i] = loopbackIfAny(l)
		}
	}
	if err != nil {
		return err
	}
	adminPassword, err := demoAdminPassword(cfg.DataDir, cfg.Web.AdminPassword)
	if err != nil {
		return err
	}
	cfg.Web.AdminPassword = adminPassword
	logger := newLogger(e.stderr, cfg.Log)

	a, err := buildApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- a.run(runCtx) }()
	select {
	case <-a.collector.Ready():
	case err := <-runDone:
		return err
	}

	fcfg := simulator.Config{
		Routers:     *routers,
		APIPortBase: *apiPortBase,
		Versions:    "mixed",
		Password:    demoRouterPassword,
		Rate:        *rate,
		DailyCurve:  true,
		Subscribers: *subscribers,
		Seed:        *seed,
		Location:    clock.loc,
		Clock:       clock.now,
	}
	scenario.apply(&fcfg)
	fl, err := simulator.New(fcfg, logger.With("component", "simulate"))
	if err != nil {
		cancel()
		<-runDone
		return fmt.Errorf("cannot build the simulated fleet: %w", err)
	}
	if err := fl.Start(); err != nil {
		cancel()
		<-runDone
		return fmt.Errorf("cannot start the simulated fleet: %w", err)
	}
	defer fl.Stop()
	clock.log(logger.With("component", "simulate"))

	onboardFleet(runCtx, e, a.prov, a.enricher.PollRouter, fl, logger)

	fmt.Fprintf(e.stdout, "\nflowbox demo is running (data in %s)\n", cfg.DataDir)
	fmt.Fprintf(e.stdout, "  web console: %s\n", webURL(cfg.Web.Listen, cfg.Web.TLS.Enabled()))
	fmt.Fprintf(e.stdout, "  login:       admin / %s\n", adminPassword)
	fmt.Fprintf(e.stdout, "  routers:     %d simulated MikroTik routers, onboarded over the RouterOS API\n", len(fl.Routers()))
	scenarios := newScenarioReporter(fl, clock, false, e.stdout, logger.With("component", "simulate"))
	if scenarios.ok {
		scenarios.printPlan("  scenario:    ")
		fmt.Fprintln(e.stdout, "               (the Alerts page shows it; --scenario none turns it off)")
	}
	fmt.Fprintln(e.stdout, "Press Ctrl-C to stop.")
	watched := scenarios.watch(runCtx)
	defer func() {
		cancel()
		<-watched
	}()

	select {
	case err := <-runDone:
		return err
	case <-ctx.Done():
	}
	fl.Stop()
	cancel()
	return <-runDone
}

// onboardFleet adds (when new), provisions and verifies every simulated
// router concurrently, as a user would with `flowbox router add`.
func onboardFleet(ctx context.Context, e *env, prov *provision.Provisioner, learn func(context.Context, store.Router),
	fl *simulator.Fleet, logger *slog.Logger) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, r := range fl.Routers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := onboardRouter(ctx, prov, learn, r)
			mu.Lock()
			fmt.Fprintln(e.stdout, msg)
			mu.Unlock()
		}()
	}
	wg.Wait()
	logger.Debug("fleet onboarded")
}

// onboardRouter runs add (first run only), apply and verify for one router
// and returns a one-line report.
func onboardRouter(ctx context.Context, prov *provision.Provisioner, learn func(context.Context, store.Router), r *simulator.Router) string {
	name := r.Identity
	existing, err := prov.Router(ctx, name)
	switch {
	case err == nil && existing.Address != r.APIAddr():
		// A previous demo run used other ports: re-add with the new address.
		if err := prov.Remove(ctx, name, true); err != nil {
			return fmt.Sprintf("  %-10s cannot replace old entry: %v", name, err)
		}
		fallthrough
	case errors.Is(err, store.ErrNotFound):
		if _, _, err := prov.Add(ctx, provision.AddRequest{
			Name: name, Address: r.APIAddr(), Username: r.Username, Password: r.Password,
		}); err != nil {
			return fmt.Sprintf("  %-10s add failed: %v", name, err)
		}
	case err != nil:
		return fmt.Sprintf("  %-10s %v", name, err)
	}
	// Learn the router's subscribers and customer prefixes before its
	// flows start, so that the first flows already get a direction.
	if stored, err := prov.Router(ctx, name); err == nil {
		learn(ctx, *stored)
	}
	res, err := prov.Apply(ctx, name)
	if err != nil {
		return fmt.Sprintf("  %-10s provisioning failed: %v", name, err)
	}
	v, err := prov.Verify(ctx, name, 60*time.Second)
	if err != nil {
		return fmt.Sprintf("  %-10s verification failed: %v", name, err)
	}
	status := "flows arriving"
	if v.Exporter.IsValid() {
		status += " from " + v.Exporter.String()
	}
	if !v.OK {
		status = v.Diagnosis
	}
	return fmt.Sprintf("  %-10s RouterOS %-8s %s; %s", name, r.Version, res.Summary, status)
}

// demoAdminPassword returns the console password of the demo: the
// configured one, else the one saved in the data directory by an earlier
// run, else a new random one (saved with mode 0600).
func demoAdminPassword(dataDir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, "demo-admin-password")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 8 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 6)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("cannot generate a password: %w", err)
	}
	pw := "demo-" + hex.EncodeToString(buf)
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("cannot create data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot save the demo password: %w", err)
	}
	return pw, nil
}

// isLoopbackListen reports whether a listen address is on loopback.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// webURL turns a listen address into the URL a browser on this machine
// opens.
func webURL(listen string, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host := listen
	if strings.HasPrefix(host, ":") {
		host = "localhost" + host
	} else if strings.HasPrefix(host, "0.0.0.0:") {
		host = "localhost" + strings.TrimPrefix(host, "0.0.0.0")
	}
	return scheme + "://" + host + "/"
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// loopbackIfAny turns a listen address without a host (":8080") into the
// same port on 127.0.0.1; an address with a host is kept.
func loopbackIfAny(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
