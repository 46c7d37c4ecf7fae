package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/report/scheduler"
	"github.com/flowbox/flowbox/store"
)

// reportInventory is what the report scheduler keeps in the inventory:
// its runs, and the routers its schedules name.
type reportInventory interface {
	store.ReportRunLog
	scheduler.Routers
}

// newReportScheduler builds the scheduled reports (the reports section)
// on the reports rep makes and the run log of inv. It starts nothing.
func newReportScheduler(cfg scheduler.Config, rep store.Reporter, inv reportInventory, reg prometheus.Registerer, logger *slog.Logger) (*scheduler.Scheduler, error) {
	s, err := scheduler.New(cfg, scheduler.Deps{
		Reporter:   rep,
		Runs:       inv,
		Routers:    inv,
		Logger:     logger.With("component", "reports"),
		Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot build the report scheduler: %w", err)
	}
	return s, nil
}

// runWithReports runs the app with its scheduled reports beside it (the
// scheduler is built with the app: a bad password file stops serve before
// anything starts); they stop when the app does, before the store closes.
func runWithReports(ctx context.Context, a *app) error {
	rep, sched := a.report, a.sched
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- sched.Run(sctx) }()
	// The calendar months that are over in the reports' zone are kept
	// summarized, so that the first report of a month that just closed
	// answers from them (the console's, the CLI's, a schedule's).
	loc, err := time.LoadLocation(a.cfg.Reports.TimeZone)
	if err != nil {
		loc = time.Local // the config check has refused a bad zone already
	}
	warmed := make(chan struct{})
	go func() { defer close(warmed); rep.WarmEvery(sctx, loc, 6*time.Hour) }()
	defer func() { <-warmed }()
	err = a.run(ctx)
	stop()
	if serr := <-done; serr != nil && err == nil {
		err = fmt.Errorf("reports: %w", serr)
	}
	return err
}

// printReportFailures prints, for `flowbox stats`, how many of the latest
// scheduled report runs failed and the schedules whose latest run failed
// (what failed). It prints nothing when no report ran.
func printReportFailures(ctx context.Context, w io.Writer, runs store.ReportRunLog) error {
	latest, err := runs.ReportRuns(ctx, 100)
	if err != nil {
		return fmt.Errorf("cannot read the report runs: %w", err)
	}
	if len(latest) == 0 {
		return nil
	}
	failed := 0
	seen := map[string]bool{}
	var lines []string
	for _, r := range latest {
		if !r.OK {
			failed++
		}
		if seen[r.Schedule] {
			continue
		}
		seen[r.Schedule] = true
		if r.OK {
			continue
		}
		what := r.Error
		if r.Finished.IsZero() && what == "" {
			what = "unfinished (flowbox stopped during the run)"
		}
		for _, d := range r.Deliveries {
			if !d.OK {
				if what != "" {
					what += "; "
				}
				what += d.Target + ": " + d.Detail
			}
		}
		lines = append(lines, fmt.Sprintf("scheduled report %s %s failed at %s: %s", r.Schedule, r.Period,
			r.Started.UTC().Format(time.RFC3339), what))
	}
	fmt.Fprintf(w, "scheduled report runs: %d latest, %d failed\n", len(latest), failed)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return nil
}

// scheduleList gives the console the scheduler's schedules
// (web.ReportSchedules).
type scheduleList struct{ s *scheduler.Scheduler }

// ReportSchedules implements web.ReportSchedules.
func (l scheduleList) ReportSchedules() []store.ReportSchedule { return l.s.Schedules() }
