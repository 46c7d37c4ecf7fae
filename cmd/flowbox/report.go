package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	// --tz names IANA zones; the container image has no zoneinfo.
	_ "time/tzdata"

	"github.com/flowbox/flowbox/report"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// reportUsage is the synopsis of `flowbox report`.
const reportUsage = "usage: flowbox report [--period YYYY-MM|YYYY-MM-DD|FROM..TO] [--tz ZONE] [--by subscriber|router|interface|fleet]\n" +
	"         [--percentile P] [--split month|none] [--router NAME] [--search TEXT] [--top-apps N] [--format table|csv|json]\n" +
	"       flowbox report runs [--limit N] [--json]"

// reportFlags are the options of `flowbox report` before they are checked.
type reportFlags struct {
	period, tz, by, split, router, search, format string
	percentile                                    float64
	topApps                                       int
}

// reportRequest checks the options and turns them into a report request
// (without the router, which needs the inventory) and the output format.
func reportRequest(f reportFlags, now time.Time) (store.ReportRequest, error) {
	var q store.ReportRequest
	switch f.format {
	case "table", "csv", "json":
	default:
		return q, fmt.Errorf("--format %q is not table, csv or json", f.format)
	}
	if f.tz == "" {
		f.tz = "Local"
	}
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return q, fmt.Errorf("--tz %q is not a time zone (an IANA name such as Europe/Berlin, UTC or Local)", f.tz)
	}
	from, to, label, err := store.ParseReportPeriod(f.period, loc, now)
	if err != nil {
		return q, fmt.Errorf("--period: %w (a month 2026-11, a day 2026-11-05, or FROM..TO such as 2026-01..2026-12)", err)
	}
	q = store.ReportRequest{From: from, To: to, Location: loc, Label: label, Kind: f.by, Percentile: f.percentile,
		Split: f.split, Search: f.search, TopApps: f.topApps}
	switch f.by {
	case store.ReportBySubscriber, store.ReportByRouter, store.ReportByInterface, store.ReportByFleet:
	default:
		return q, fmt.Errorf("--by %q is not subscriber, router, interface or fleet", f.by)
	}
	if math.IsNaN(f.percentile) || f.percentile <= 0 || f.percentile > 100 {
		return q, fmt.Errorf("--percentile %v is not above 0 and at most 100", f.percentile)
	}
	switch f.split {
	case "", "month", "none":
	default:
		return q, fmt.Errorf("--split %q is not month or none", f.split)
	}
	if f.topApps < 0 || f.topApps > 10 {
		return q, fmt.Errorf("--top-apps %d is not within 0..10", f.topApps)
	}
	return q, nil
}

// runReport implements `flowbox report`: the traffic report of a period
// (calendar months by default) per subscriber, router, interface or the
// whole fleet, with totals, peaks, a percentile of the 5-minute rates and
// the top applications, as a table, CSV or JSON. It works while `flowbox
// serve` runs (from cron on the first of the month, say). `flowbox report
// runs` lists the runs of the scheduled reports (read-only).
func runReport(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "runs" {
		return runReportRuns(ctx, e, args[1:])
	}
	fs := newFlagSet(e, "report")
	load := commonFlags(fs)
	var f reportFlags
	fs.StringVar(&f.period, "period", "", "`PERIOD`: a month (2026-11), a day (2026-11-05) or FROM..TO, both ends included (2026-01..2026-12); default last month")
	fs.StringVar(&f.tz, "tz", "Local", "time `ZONE` of the calendar (IANA name, e.g. Europe/Berlin)")
	fs.StringVar(&f.by, "by", store.ReportBySubscriber, "a row per subscriber, router, interface, or one for the fleet")
	fs.Float64Var(&f.percentile, "percentile", store.DefaultPercentile, "the `P`th percentile of the 5-minute rates, above 0 and at most 100")
	fs.StringVar(&f.split, "split", "", "month: a row per calendar month; none: one over the period (default month when the period spans months)")
	fs.StringVar(&f.router, "router", "", "only this router (`NAME` or id)")
	fs.StringVar(&f.search, "search", "", "only subscribers (or interfaces) whose name contains `TEXT` (any case)")
	fs.IntVar(&f.topApps, "top-apps", 3, "applications listed per row (0 to 10)")
	fs.StringVar(&f.format, "format", "table", "output: table, csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"report: unexpected argument " + strconv.Quote(fs.Arg(0)) + "\n" + reportUsage}
	}
	q, err := reportRequest(f, time.Now())
	if err != nil {
		return usageError{"report: " + err.Error()}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	// Read only, beside serve: the months serve (or a report there) kept
	// are read, the others computed from the samples.
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	if f.router != "" {
		id, err := reportRouter(ctx, st, f.router)
		if err != nil {
			return err
		}
		q.Sources = []int64{id}
	}
	b := report.New(report.Deps{Flows: st.FlowDB, Inventory: st.Inventory, Now: time.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rep, err := b.Report(ctx, q)
	if err != nil {
		return fmt.Errorf("cannot make the report: %w", err)
	}
	return writeReport(e.stdout, rep, f.format)
}

// reportRouter resolves --router, a router's name or id.
func reportRouter(ctx context.Context, st *storagepkg.Storage, v string) (int64, error) {
	rs, err := st.ListRouters(ctx)
	if err != nil {
		return 0, fmt.Errorf("cannot list routers: %w", err)
	}
	for _, r := range rs {
		if r.Name == v || strconv.FormatInt(r.ID, 10) == v {
			return r.ID, nil
		}
	}
	return 0, fmt.Errorf("report: no router %q (flowbox router list shows them)", v)
}

// writeReport writes a report as a table, CSV (store.WriteReportCSV) or
// JSON (the API's).
func writeReport(w io.Writer, rep *store.Report, format string) error {
	switch format {
	case "csv":
		return store.WriteReportCSV(w, rep)
	case "json":
		if rep.Rows == nil {
			rep.Rows = []store.ReportRow{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("cannot write JSON: %w", err)
		}
		return nil
	}
	return writeReportTable(w, rep)
}

// reportOrdinal names a percentile: 95th, 99.9th, 1st, 2nd, 3rd, 11th.
func reportOrdinal(p float64) string {
	s := strconv.FormatFloat(p, 'f', -1, 64)
	if p != math.Trunc(p) {
		return s + "th"
	}
	n := int(p)
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return s + "th"
	case n%10 == 1:
		return s + "st"
	case n%10 == 2:
		return s + "nd"
	case n%10 == 3:
		return s + "rd"
	}
	return s + "th"
}

// reportRate formats a rate in bits per second with SI units ("95.3 Mb/s").
func reportRate(bps float64) string {
	units := []string{"b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s"}
	i := 0
	for bps >= 1000 && i < len(units)-1 {
		bps /= 1000
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(math.Round(bps), 'f', 0, 64) + " " + units[0]
	}
	return strconv.FormatFloat(bps, 'f', 1, 64) + " " + units[i]
}

// writeReportTable writes a report as an aligned table with human units:
// a line saying what it is, a row per entity, a totals line.
func writeReportTable(w io.Writer, rep *store.Report) error {
	loc, err := time.LoadLocation(rep.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	by := map[string]string{store.ReportBySubscriber: "per subscriber", store.ReportByRouter: "per router",
		store.ReportByInterface: "per interface", store.ReportByFleet: "the whole fleet"}[rep.Kind]
	fmt.Fprintf(w, "Report %s (%s to %s, %s), %s, %s percentile of the 5-minute rates; generated %s\n", rep.Label,
		rep.From.In(loc).Format("2006-01-02"), rep.To.In(loc).Add(-time.Nanosecond).Format("2006-01-02"), rep.TimeZone, by,
		reportOrdinal(rep.Percentile), rep.Generated.In(loc).Format("2006-01-02 15:04"))
	if rep.Note != "" {
		fmt.Fprintf(w, "Note: %s\n", rep.Note)
	}
	periods := map[string]bool{}
	for _, r := range rep.Rows {
		periods[r.Period] = true
	}
	var head []string
	if len(periods) > 1 {
		head = append(head, "PERIOD")
	}
	switch rep.Kind {
	case store.ReportBySubscriber:
		head = append(head, "SUBSCRIBER", "CUSTOMER", "ROUTER")
	case store.ReportByRouter:
		head = append(head, "ROUTER")
	case store.ReportByInterface:
		head = append(head, "ROUTER", "INTERFACE")
	default:
		head = append(head, "FLEET")
	}
	down, up := "DOWNLOAD", "UPLOAD"
	if rep.Kind == store.ReportByInterface {
		down, up = "IN", "OUT"
	}
	pct := strings.ToUpper(reportOrdinal(rep.Percentile))
	head = append(head, down, up, "TOTAL", "PEAK "+down, "PEAK "+up, pct+" "+down, pct+" "+up, pct+" BILLABLE", "TOP APPS")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	peak := func(r store.Rate) string {
		if r.At.IsZero() {
			return reportRate(r.BPS)
		}
		return reportRate(r.BPS) + " @" + r.At.In(loc).Format("01-02 15:04")
	}
	var tDown, tUp, tTotal uint64
	for _, r := range rep.Rows {
		var cells []string
		if len(periods) > 1 {
			cells = append(cells, r.Period)
		}
		switch rep.Kind {
		case store.ReportBySubscriber:
			cells = append(cells, r.Subscriber, reportDash(r.CustomerID), r.Router)
		case store.ReportByRouter:
			cells = append(cells, r.Router)
		case store.ReportByInterface:
			name := r.InterfaceName
			if name == "" {
				name = "ifIndex " + strconv.FormatUint(uint64(r.Interface), 10)
			}
			cells = append(cells, r.Router, name)
		default:
			cells = append(cells, "all routers")
		}
		apps := make([]string, len(r.TopApps))
		for i, a := range r.TopApps {
			apps[i] = a.App + " " + humanBytes(a.Bytes)
		}
		cells = append(cells, humanBytes(r.DownloadBytes), humanBytes(r.UploadBytes), humanBytes(r.TotalBytes), peak(r.PeakDown), peak(r.PeakUp),
			reportRate(r.PctDown), reportRate(r.PctUp), reportRate(r.PctBillable), reportDash(strings.Join(apps, ", ")))
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		tDown += r.DownloadBytes
		tUp += r.UploadBytes
		tTotal += r.TotalBytes
	}
	lead := len(head) - 9 // the label columns
	total := make([]string, len(head))
	total[0] = fmt.Sprintf("total (%d rows)", len(rep.Rows))
	total[lead], total[lead+1], total[lead+2] = humanBytes(tDown), humanBytes(tUp), humanBytes(tTotal)
	fmt.Fprintln(tw, strings.Join(total, "\t")+"\t")
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cannot write the table: %w", err)
	}
	return nil
}

// reportDash shows an empty cell as "-".
func reportDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runReportRuns implements `flowbox report runs`: the runs of the
// scheduled reports, newest first, with each delivery's outcome.
func runReportRuns(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "report runs")
	load := commonFlags(fs)
	limit := fs.Int("limit", 20, "at most `N` runs, newest first")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *limit < 1 {
		return usageError{reportUsage}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	st, err := storagepkg.Open(ctx, cfg.DataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		return fmt.Errorf("cannot open the data directory %s: %w", cfg.DataDir, err)
	}
	defer st.Close()
	runs, err := st.ReportRuns(ctx, *limit)
	if err != nil {
		return fmt.Errorf("cannot read the report runs: %w", err)
	}
	return writeReportRuns(e.stdout, runs, *asJSON)
}

// writeReportRuns writes runs as JSON or as a table with a line per
// delivery.
func writeReportRuns(w io.Writer, runs []store.ReportRun, asJSON bool) error {
	if asJSON {
		if runs == nil {
			runs = []store.ReportRun{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(runs); err != nil {
			return fmt.Errorf("cannot write JSON: %w", err)
		}
		return nil
	}
	if len(runs) == 0 {
		fmt.Fprintln(w, "no scheduled report has run (reports are scheduled in the configuration)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tSCHEDULE\tPERIOD\tRESULT\tROWS\tDELIVERIES\t")
	for _, r := range runs {
		result := "ok"
		switch {
		case r.Finished.IsZero() && !r.OK && r.Error == "":
			result = "running"
		case !r.OK:
			result = "failed"
		}
		if r.CatchUp {
			result += " (catch-up)"
		}
		if r.Error != "" {
			result += ": " + r.Error
		}
		var ds []string
		for _, d := range r.Deliveries {
			s := d.Target + ": ok"
			if !d.OK {
				s = d.Target + ": failed"
			}
			if d.Detail != "" {
				s += " (" + d.Detail + ")"
			}
			ds = append(ds, s)
		}
		if len(ds) == 0 {
			ds = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t\n", r.Started.Local().Format("2006-01-02 15:04"), r.Schedule, r.Period, result, r.Rows, ds[0])
		for _, d := range ds[1:] {
			fmt.Fprintf(tw, "\t\t\t\t\t%s\t\n", d)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cannot write the table: %w", err)
	}
	return nil
}
