package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/coverage"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// runCoverage prints, per router and interface, the flow bytes, the
// interface counters over the same minutes, the coverage per direction and
// the likely cause of a shortfall. It opens the database read-only, so it
// works while serve runs (serve's counter poller fills it).
func runCoverage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "coverage")
	load := commonFlags(fs)
	router := fs.String("router", "", "only router `NAME`")
	since := fs.Duration("since", 0, "compare the last `D` (default: coverage.window, 1h; the newest coverage.lag minutes are left out)")
	asJSON := fs.Bool("json", false, "print the report as JSON (routers and interfaces)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("coverage: unexpected argument %q (coverage [--router NAME] [--since DUR] [--json])", fs.Arg(0))}
	}
	if *since < 0 {
		return usageError{"coverage: --since must not be negative"}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *since == 0 {
		*since = cfg.Coverage.Window
	}
	if *since <= cfg.Coverage.Lag+time.Minute {
		return usageError{fmt.Sprintf("coverage: --since %s leaves no complete minute (the newest %s are left out: their flows are not in yet)", *since, cfg.Coverage.Lag)}
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	var q store.CoverageQuery
	if *router != "" {
		r, err := st.GetRouter(ctx, *router)
		if err != nil {
			return fmt.Errorf("router %q: %w (flowbox router list names them)", *router, err)
		}
		q.RouterID = r.ID
	}
	now := time.Now()
	q.From, q.To = now.Add(-*since), now
	rep, err := coverage.Report(ctx, st, q, coverage.Options{Threshold: cfg.Coverage.Threshold, MinBytes: cfg.Coverage.MinBytes,
		Lag: cfg.Coverage.Lag, MinuteRetention: cfg.Store.Effective().MinuteRetention, Now: now})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("cannot write JSON: %w", err)
		}
		return nil
	}
	return printCoverage(e.stdout, rep, cfg.Coverage.Enabled)
}

// printCoverage prints a report as a table, then each router's summary
// and causes.
func printCoverage(w io.Writer, rep *store.CoverageReport, polling bool) error {
	fmt.Fprintf(w, "coverage from %s to %s (%s buckets), low below %g%%\n", rep.From.Local().Format(time.RFC3339),
		rep.To.Local().Format(time.RFC3339), rep.Resolution, rep.Threshold)
	if len(rep.Routers) == 0 {
		_, err := fmt.Fprintln(w, "no routers")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTER\tINTERFACE\tFLOW_IN\tCOUNTER_IN\tCOVERAGE_IN\tFLOW_OUT\tCOUNTER_OUT\tCOVERAGE_OUT\tDIAGNOSIS")
	for _, ic := range rep.Interfaces {
		diag := ic.Diagnosis
		if diag == "" {
			diag = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ic.Router, ic.Interface, humanBytes(ic.FlowBytesIn), humanBytes(ic.CounterBytesIn),
			pct(ic.CoverageIn), humanBytes(ic.FlowBytesOut), humanBytes(ic.CounterBytesOut), pct(ic.CoverageOut), diag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Routers {
		line := fmt.Sprintf("%s: %s, in %s, out %s; counter polls %d, failed %d", r.Router, r.Health, pct(r.CoverageIn), pct(r.CoverageOut), r.Polls, r.Failures)
		if r.LastError != "" {
			line += " (last error: " + r.LastError + ")"
		}
		if r.Reboots > 0 || r.Resets > 0 || r.Wraps > 0 {
			line += fmt.Sprintf("; %d reboots, %d counter resets, %d wraps", r.Reboots, r.Resets, r.Wraps)
		}
		if r.Health == store.CoverageUnknown && r.Polls == 0 {
			if polling {
				line += "; not polled yet (serve polls every coverage.interval)"
			} else {
				line += "; coverage.enabled is false"
			}
		}
		fmt.Fprintln(w, line)
		for _, c := range r.Causes {
			fmt.Fprintln(w, "  cause: "+c)
		}
	}
	return nil
}

// pct prints a coverage percentage, "-" when unknown.
func pct(p *float64) string {
	if p == nil {
		return "-"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", *p), ".0") + "%"
}
