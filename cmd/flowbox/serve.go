package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
)

// runServe runs the long-lived service: collector, enrichment, store,
// provisioner and web console, until SIGINT or SIGTERM.
func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve")
	load := commonFlags(fs)
	listenNetflow := fs.String("listen-netflow", "", "UDP `ADDR[,ADDR...]` to collect NetFlow/IPFIX on (overrides collector.listen)")
	listenWeb := fs.String("listen-web", "", "`ADDR` of the web console (overrides web.listen)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadServeConfig(e, load, *listenNetflow, *listenWeb, envOverrides(e.getenv, fs))
	if err != nil {
		return err
	}
	logger := newLogger(e.stderr, cfg.Log)
	setMemoryLimit(e.getenv, logger)
	a, err := buildApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer a.close()
	return runWithReports(ctx, a) // a.run, with the scheduled reports beside it
}

// loadServeConfig loads the configuration and applies the command-line and
// environment overrides of serve (and demo), then extra mutators.
func loadServeConfig(e *env, load configLoader, listenNetflow, listenWeb string, extra ...func(*Config)) (Config, error) {
	return load(append([]func(*Config){func(cfg *Config) {
		if listenNetflow != "" {
			cfg.Collector.Listen = strings.Split(listenNetflow, ",")
		}
		if listenWeb != "" {
			cfg.Web.Listen = listenWeb
		}
		cfg.Web.ApplyEnv(e.getenv)
	}}, extra...)...)
}

// defaultMemoryLimit is the Go runtime's soft memory limit for serve when
// GOMEMLIMIT is not set: the garbage collector works harder near it, so a
// burst that fills the bounded queues does not double the heap of a small
// appliance. The process's budget is 256 MiB: the Go heap gets 200 MiB,
// the rest is SQLite's page caches (the writer's 16 MiB, four readers' 4
// MiB each) and C allocations. Measured with
// FLOWBOX_BENCH_WEB_CLIENTS=20 FLOWBOX_BENCH_INGEST_RATE=150000
// FLOWBOX_BENCH_INGEST_DURATION=30s make bench-ingest: 241 MB RSS (302 MB
// with a 256 MiB Go limit and 16 MiB reader caches).
const defaultMemoryLimit = 200 << 20

// setMemoryLimit applies defaultMemoryLimit unless GOMEMLIMIT is set.
func setMemoryLimit(getenv func(string) string, logger *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	logger.Debug("soft memory limit set", "bytes", defaultMemoryLimit)
}
