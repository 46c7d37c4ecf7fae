package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flowbox/flowbox/alerts"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// runAlerts prints the alerts the detectors raised (the active ones, or
// the history with --all), or acknowledges one (`alerts ack ID`). It works
// while serve runs.
func runAlerts(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "ack" {
		return runAlertsAck(ctx, e, args[1:])
	}
	fs := newFlagSet(e, "alerts")
	load := commonFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON list instead of a table")
	all := fs.Bool("all", false, "print the past alerts too, not only the active ones")
	kind := fs.String("kind", "", "only alerts of `KIND` ("+strings.Join(store.AlertKinds, ", ")+")")
	router := fs.String("router", "", "only alerts of router `NAME`")
	since := fs.Duration("since", 0, "with --all: only alerts active within `D` (default: the whole history)")
	limit := fs.Int("limit", 1000, "print at most `N` alerts, newest first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("alerts: unexpected argument %q (alerts [--json] [--all], or alerts ack ID)", fs.Arg(0))}
	}
	if *kind != "" && !slices.Contains(store.AlertKinds, *kind) {
		return usageError{fmt.Sprintf("alerts: --kind %q is not one of %s", *kind, strings.Join(store.AlertKinds, ", "))}
	}
	if *since < 0 || *limit < 1 {
		return usageError{"alerts: --since must not be negative and --limit must be positive"}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, storagepkg.DefaultConfig(), storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	f := store.AlertFilter{Active: !*all, Kind: *kind, Router: *router, Limit: *limit}
	if *all && *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	as, err := st.ListAlerts(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(as); err != nil {
			return fmt.Errorf("cannot write JSON: %w", err)
		}
		return nil
	}
	return printAlertsTable(e.stdout, as, *all)
}

func printAlertsTable(w io.Writer, as []store.Alert, all bool) error {
	if len(as) == 0 {
		if all {
			_, err := fmt.Fprintln(w, "no alerts")
			return err
		}
		_, err := fmt.Fprintln(w, "no active alerts (--all prints the past ones)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tKIND\tROUTER\tTARGET\tDIR\tSTARTED\tENDED\tPEAK\tACK\tSUMMARY")
	for _, a := range as {
		target := a.Target
		if a.Subscriber != "" {
			target += " (" + a.Subscriber + ")"
		}
		ended := "active"
		if a.Ended != nil {
			ended = a.Ended.Local().Format(time.RFC3339)
		}
		dir := a.Direction
		if dir == "" {
			dir = "-"
		}
		peak := "-"
		switch {
		case a.PeakBps > 0:
			peak = alerts.FormatBits(a.PeakBps)
		case a.PeakFlowsPerS > 0:
			peak = alerts.FormatCount(a.PeakFlowsPerS, "flows/s")
		}
		ack := "-"
		if a.AckedBy != "" {
			ack = a.AckedBy
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Severity, a.Kind, a.Router, target, dir,
			a.Started.Local().Format(time.RFC3339), ended, peak, ack, a.Summary)
	}
	return tw.Flush()
}

// runAlertsAck acknowledges an alert.
func runAlertsAck(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "alerts ack")
	load := commonFlags(fs)
	by := fs.String("by", "", "who acknowledges (default: the user running the command, $USER)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"alerts ack: want one alert ID (flowbox alerts prints them)"}
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return usageError{fmt.Sprintf("alerts ack: %q is not an alert ID", fs.Arg(0))}
	}
	who := *by
	if who == "" {
		who = e.getenv("USER")
	}
	if who == "" {
		who = "cli"
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.Shared, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	if err := st.AckAlert(ctx, id, who, time.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("alert %d does not exist (flowbox alerts --all lists them)", id)
		}
		return err
	}
	// An alert acknowledged before keeps its first acknowledgement.
	a, err := st.GetAlert(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "alert %d acknowledged by %s\n", id, a.AckedBy)
	return nil
}
