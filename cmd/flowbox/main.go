// Command flowbox is a router companion appliance for small wireless ISPs: it
// onboards MikroTik routers over the RouterOS API, collects their NetFlow and
// IPFIX, stores it in SQLite and shows it on a web console.
//
// Usage: flowbox [COMMAND] [--config FILE] [--data-dir DIR] [flags]. Without a
// command it runs `serve`. `flowbox help` lists the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time with -ldflags '-X main.version=...'.
var version = "dev"

// env is what a command may touch of the outside world, so tests can run
// commands in-process with their own streams.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is one subcommand of flowbox.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands lists every subcommand, in the order `flowbox help` shows them.
func commands() []command {
	return []command{
		{"serve", "run the collector, store, provisioner and web console (default)", runServe},
		{"check", "validate the configuration and inspect the data directory without writing to it (--dump prints the configuration with secrets redacted)", runCheckReadOnly},
		{"decode", "decode NetFlow/IPFIX from pcap files and print one JSON object per flow", runDecode},
		{"simulate", "run simulated MikroTik routers, or blast flows at a collector (--target)", runSimulate},
		{"stats", "print per-exporter flow statistics from the data directory (--json); works while serve runs", runStats},
		{"alerts", "print the active alerts (--all: the history too; --json), or acknowledge one (alerts ack ID); works while serve runs", runAlerts},
		{"subscribers", "import static customers from CSV (subscribers import [--replace] FILE), report their usage (subscribers usage [--month YYYY-MM] [--format table|csv|json]), or say who had an address (subscribers at --address IP --at TIME)", runSubscribers},
		{"report", "traffic report of a period for billing and planning: totals, peaks, percentiles and top applications per subscriber, router, interface or the fleet (report [--period YYYY-MM|FROM..TO] [--tz ZONE] [--by subscriber|router|interface|fleet] [--percentile P] [--format table|csv|json]; report runs [--json]); works while serve runs", runReport},
		{"coverage", "compare each router's flows with its interface counters, per interface and direction, with the likely cause of a shortfall (coverage [--router NAME] [--since DUR] [--json]); works while serve runs", runCoverage},
		{"nat", "abuse lookup behind CGNAT: which customer used a public address and port at a time (nat lookup --address IP [--port N] [--proto tcp|udp] --at TIME [--window DUR] [--json]); works while serve runs", runNAT},
		{"router", "manage routers: router add|list|show|provision|verify|undo|remove|create-user (works while serve runs)", runRouter},
		{"user", "manage console users: user add --name N --role admin|operator|viewer --password-file F, list [--json], remove --name N, set-role --name N --role R (works while serve runs)", runUser},
		{"token", "manage API tokens: create [--user N] [--name T] [--role R] [--expires DUR] [--json], list [--json], revoke NAME|ID (works while serve runs)", runToken},
		{"setup-token", "print the one-time token the console's setup page asks for while no user exists (and, on stderr, the console certificate's fingerprint)", runSetupToken},
		{"web-fingerprint", "print the SHA-256 fingerprint of the console's HTTPS certificate, to check the one the browser shows", runWebFingerprint},
		{"exporters", "trust exporters besides the onboarded routers: exporters list|allow PREFIX|disallow PREFIX (works while serve runs)", runExporters},
		{"store", "copy the SQLite store's raw flows and NAT mappings into ClickHouse before switching store.backend (store copy --to clickhouse); works while serve runs", runStore},
		{"backup", "copy the database (a consistent snapshot, works while serve runs) and the key to a new DIR", runBackup},
		{"healthcheck", "exit 0 if a running flowbox answers /healthz (--url URL, or from --config / FLOWBOX_LISTEN_WEB)", runHealthcheck},
		{"demo", "run flowbox with a simulated MikroTik fleet onboarded over the API (data in ./demo-data)", runDemo},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	err := run(ctx, e, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "flowbox: %v\n", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode maps an error to the process exit status: 2 for usage errors, 1
// otherwise.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

// usageError marks errors in the command line.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// run dispatches to the subcommand named by args[0] (serve when absent or
// when args[0] is a flag).
func run(ctx context.Context, e *env, args []string) error {
	name := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage(e.stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, e, args)
		}
	}
	usage(e.stderr)
	return usageError{fmt.Sprintf("unknown command %q", name)}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: flowbox [COMMAND] [--config FILE] [--data-dir DIR] [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

func runVersion(_ context.Context, e *env, _ []string) error {
	fmt.Fprintf(e.stdout, "flowbox %s\n", version)
	return nil
}

// newLogger builds the process logger from the log configuration.
func newLogger(w io.Writer, cfg LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.slogLevel()}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
