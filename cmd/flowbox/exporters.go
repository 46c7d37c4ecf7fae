package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/collector"
)

// runExporters manages the exporters trusted besides the onboarded
// routers: `flowbox exporters list`, `flowbox exporters allow PREFIX`,
// `flowbox exporters disallow PREFIX`. A running serve picks changes up
// within seconds. Prefixes from collector.allowed-exporters are listed and
// changed in the configuration.
func runExporters(ctx context.Context, e *env, args []string) error {
	const usage = "usage: flowbox exporters list|allow PREFIX|disallow PREFIX [flags]"
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return usageError{usage}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet(e, "exporters "+sub)
	load := commonFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	var prefix string
	switch sub {
	case "list":
		if fs.NArg() != 0 {
			return usageError{usage}
		}
	case "allow", "disallow":
		if fs.NArg() != 1 {
			return usageError{fmt.Sprintf("usage: flowbox exporters %s PREFIX (an address or CIDR prefix)", sub)}
		}
		prefix = fs.Arg(0)
	default:
		return usageError{usage}
	}
	st, err := openStore(ctx, e, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "allow":
		p, err := collector.ParsePrefix(prefix)
		if err != nil {
			return usageError{fmt.Sprintf("exporters allow: %v", err)}
		}
		if err := st.AllowExporter(ctx, p, "cli"); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "flows from %s are stored from now on (a running flowbox picks this up within seconds)\n", p)
		return nil
	case "disallow":
		p, err := collector.ParsePrefix(prefix)
		if err != nil {
			return usageError{fmt.Sprintf("exporters disallow: %v", err)}
		}
		ok, err := st.DisallowExporter(ctx, p)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s was not allowed with `flowbox exporters allow` (configured prefixes are changed in collector.allowed-exporters)", p)
		}
		fmt.Fprintf(e.stdout, "flows from %s are no longer stored (unless it is an onboarded router)\n", p)
		return nil
	}
	accepted, err := st.AllowedExporters(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tSOURCE\tADDED BY\tADDED")
	for _, p := range cfg.Collector.AllowedPrefixes() {
		fmt.Fprintf(tw, "%s\tconfig\t-\t-\n", p)
	}
	for _, a := range accepted {
		fmt.Fprintf(tw, "%s\tconsole\t%s\t%s\n", a.Prefix, a.AddedBy, a.AddedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// openStore opens the data directory's inventory for a command that writes
// to it beside a running serve (which holds the lock; these commands do not
// take it).
func openStore(ctx context.Context, e *env, cfg Config) (*inventoryOnly, error) {
	log := newLogger(e.stderr, cfg.Log)
	st, err := openInventory(ctx, cfg.DataDir, log.With("component", "store"))
	if err != nil {
		return nil, fmt.Errorf("cannot open store: %w", err)
	}
	return st, nil
}
