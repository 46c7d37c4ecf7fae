package web

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Bounds and defaults of the reports API.
const (
	// defaultReportTopApps is how many applications each row lists when
	// the query does not say.
	defaultReportTopApps = 3
	// maxReportTopApps bounds top_apps (the report keeps at most 10).
	maxReportTopApps = 10
	// defaultReportRuns and maxReportRuns bound GET /reports/runs.
	defaultReportRuns = 50
	maxReportRuns     = 500
	// reportTimeout bounds one report: a year of 5-minute samples of every
	// subscriber is a long read on a small box. It leaves a quarter of
	// web.response-timeout to write the answer.
	reportTimeout = 90 * time.Second
)

// errReportsDisabled is the answer of GET /reports when the server has no
// report builder.
const errReportsDisabled = "reports are unavailable on this server: it has no report builder"

// msgNoSchedules is the message of GET /reports/runs when no report is
// scheduled.
const msgNoSchedules = "no scheduled reports are configured"

// ReportRuns lists the runs of the scheduled reports (the inventory's
// run log, store.ReportRunLog, implements it).
type ReportRuns interface {
	// ReportRuns returns the newest runs first, at most limit.
	ReportRuns(ctx context.Context, limit int) ([]store.ReportRun, error)
}

// ReportSchedules describes the configured report schedules (the
// scheduler implements it).
type ReportSchedules interface {
	// ReportSchedules returns the schedules in configuration order, with
	// their next due run and latest run.
	ReportSchedules() []store.ReportSchedule
}

// ReportRunsResult is the answer of GET /api/v1/reports/runs. Configured
// is false (with a Message and no runs) when no report is scheduled.
// Schedules are the configured schedules, when the server knows them.
type ReportRunsResult struct {
	Configured bool                   `json:"configured"`
	Message    string                 `json:"message,omitempty"`
	Schedules  []store.ReportSchedule `json:"schedules"`
	Runs       []store.ReportRun      `json:"runs"`
}

// reportKinds are the valid by= values, in the order the page lists them.
var reportKinds = []string{store.ReportBySubscriber, store.ReportByRouter, store.ReportByInterface, store.ReportByFleet}

// reportQuery is a parsed GET /reports query.
type reportQuery struct {
	req    store.ReportRequest
	format string
	// router is the router= parameter as given (a name or an id).
	router string
}

// parseReportQuery reads the parameters of GET /reports: period, tz, by,
// percentile, split, router, search, top_apps and format.
func (s *Server) parseReportQuery(r *http.Request) (reportQuery, error) {
	var rq reportQuery
	q, err := queryValues(r)
	if err != nil {
		return rq, err
	}
	loc, err := parseTZ(q)
	if err != nil {
		return rq, err
	}
	if loc == nil {
		loc = time.UTC
	}
	period := strings.TrimSpace(q.Get("period"))
	if len(period) > maxTimeParam {
		return rq, badf("period: longer than %d characters", maxTimeParam)
	}
	from, to, label, err := store.ParseReportPeriod(period, loc, s.now())
	if err != nil {
		return rq, badf("period: %v (a month 2026-11, a day 2026-11-05, or FROM..TO such as 2026-01..2026-12)", err)
	}
	rq.req = store.ReportRequest{From: from, To: to, Location: loc, Label: label}
	if rq.req.Kind, err = parseReportKind(q.Get("by")); err != nil {
		return rq, err
	}
	if rq.req.Percentile, err = parsePercentile(q.Get("percentile")); err != nil {
		return rq, err
	}
	switch rq.req.Split = strings.TrimSpace(q.Get("split")); rq.req.Split {
	case "", "month", "none":
	default:
		return rq, badf("split: %q is not month or none", rq.req.Split)
	}
	rq.req.Search = strings.TrimSpace(q.Get("search"))
	if len(rq.req.Search) > maxSubscriberName {
		return rq, badf("search: longer than %d characters", maxSubscriberName)
	}
	if rq.req.TopApps, err = intParam(q, "top_apps", defaultReportTopApps, 0, maxReportTopApps); err != nil {
		return rq, err
	}
	switch rq.format = q.Get("format"); rq.format {
	case "":
		rq.format = "json"
	case "json", "csv":
	default:
		return rq, badf("format: %q is not json or csv", rq.format)
	}
	rq.router = strings.TrimSpace(q.Get("router"))
	if len(rq.router) > maxSubscriberName {
		return rq, badf("router: longer than %d characters", maxSubscriberName)
	}
	return rq, nil
}

// parseReportKind reads by=: subscriber (default), router, interface or
// fleet.
func parseReportKind(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return store.ReportBySubscriber, nil
	}
	for _, k := range reportKinds {
		if v == k {
			return k, nil
		}
	}
	return "", badf("by: %q is not one of %s", v, strings.Join(reportKinds, ", "))
}

// parsePercentile reads percentile=, a number in (0, 100]; empty is
// store.DefaultPercentile.
func parsePercentile(v string) (float64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return store.DefaultPercentile, nil
	}
	p, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(p) || p <= 0 || p > 100 {
		return 0, badf("percentile: %q is not a number above 0 and at most 100", v)
	}
	return p, nil
}

// reportSource resolves router= (a router's name or id) to its id; an id
// no longer in the inventory is kept (its flows may still be stored).
func (s *Server) reportSource(ctx context.Context, v string) (int64, error) {
	rs, err := s.deps.Routers.ListRouters(ctx)
	if err != nil {
		return 0, err
	}
	for _, rt := range rs {
		if rt.Name == v {
			return rt.ID, nil
		}
	}
	if id, err := strconv.ParseInt(v, 10, 64); err == nil && id != 0 {
		return id, nil
	}
	return 0, badf("router: no router %q (give its name or id)", v)
}

// reportFileName is the download name of a report:
// flowbox-report-<by>-<period>.csv, with any character a file name should
// not carry replaced.
func reportFileName(kind, label, ext string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, label)
	return "flowbox-report-" + kind + "-" + clean + "." + ext
}

// handleReport answers GET /api/v1/reports: the traffic report of a
// period (download, upload, total, peaks, a percentile of the 5-minute
// rates and the top applications per subscriber, router, interface or
// the whole fleet), as JSON or CSV.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	if s.deps.Reports == nil {
		writeError(w, http.StatusServiceUnavailable, errReportsDisabled)
		return
	}
	rq, err := s.parseReportQuery(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx, cancel := contextWithTimeout(r, min(reportTimeout, s.cfg.ResponseTimeout*3/4))
	defer cancel()
	if rq.router != "" {
		id, err := s.reportSource(ctx, rq.router)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		rq.req.Sources = []int64{id}
	}
	// A report reads as much as the heaviest dashboard query: it waits for
	// one of the same slots.
	release, err := s.natSlot(ctx)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	rep, err := s.deps.Reports.Report(ctx, rq.req)
	release()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if rep.Rows == nil {
		rep.Rows = []store.ReportRow{}
	}
	if rq.format == "csv" {
		// Written to memory first, so that a failure is still a JSON
		// error; a report has a row per subscriber, not per flow.
		var buf bytes.Buffer
		if err := store.WriteReportCSV(&buf, rep); err != nil {
			s.writeErr(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+reportFileName(rep.Kind, rep.Label, "csv")+`"`)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(buf.Bytes())
		return
	}
	if r.URL.Query().Get("download") == "1" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+reportFileName(rep.Kind, rep.Label, "json")+`"`)
	}
	writeJSON(w, http.StatusOK, rep)
}

// handleReportRuns answers GET /api/v1/reports/runs: the runs of the
// scheduled reports, newest first; without schedules, configured is false
// with a message and no runs (nothing is wrong: nothing is scheduled).
func (s *Server) handleReportRuns(w http.ResponseWriter, r *http.Request) {
	q, err := queryValues(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", defaultReportRuns, 1, maxReportRuns)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if s.deps.ReportRuns == nil {
		writeJSON(w, http.StatusOK, ReportRunsResult{Message: msgNoSchedules, Schedules: []store.ReportSchedule{}, Runs: []store.ReportRun{}})
		return
	}
	schedules := []store.ReportSchedule{}
	if s.deps.ReportSchedules != nil {
		schedules = append(schedules, s.deps.ReportSchedules.ReportSchedules()...)
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	runs, err := s.deps.ReportRuns.ReportRuns(ctx, limit)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if runs == nil {
		runs = []store.ReportRun{}
	}
	for i := range runs {
		if runs[i].Deliveries == nil {
			runs[i].Deliveries = []store.ReportDelivery{}
		}
	}
	writeJSON(w, http.StatusOK, ReportRunsResult{Configured: true, Schedules: schedules, Runs: runs})
}

// handleReportsPage shows the traffic reports: a period, a time zone, per
// subscriber, router, interface or the fleet, printable, with CSV and JSON
// downloads and the scheduled runs.
func (s *Server) handleReportsPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "reports", pageData{Title: "Reports", User: userOf(r), Role: roleOf(r), ReportsDisabled: s.deps.Reports == nil})
}
