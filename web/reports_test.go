package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// fakeReporter is a store.Reporter that records the requests and answers
// rows made from them (the real one is report.Builder, which the browser
// test uses).
type fakeReporter struct {
	mu   sync.Mutex
	reqs []store.ReportRequest
	rows []store.ReportRow
	fail error
}

func (f *fakeReporter) Report(_ context.Context, q store.ReportRequest) (*store.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, q)
	if f.fail != nil {
		return nil, f.fail
	}
	tz := "UTC"
	if q.Location != nil {
		tz = q.Location.String()
	}
	return &store.Report{Kind: q.Kind, Label: q.Label, From: q.From, To: q.To, TimeZone: tz, Percentile: q.Percentile,
		Rows: append([]store.ReportRow(nil), f.rows...), Generated: q.To}, nil
}

// last returns the last request.
func (f *fakeReporter) last(t *testing.T) store.ReportRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("the reporter was not asked")
	}
	return f.reqs[len(f.reqs)-1]
}

// fakeRuns is a ReportRuns and a ReportSchedules.
type fakeRuns struct {
	runs      []store.ReportRun
	schedules []store.ReportSchedule
	limit     int
}

func (f *fakeRuns) ReportSchedules() []store.ReportSchedule { return f.schedules }

func (f *fakeRuns) ReportRuns(_ context.Context, limit int) ([]store.ReportRun, error) {
	f.limit = limit
	return f.runs[:min(limit, len(f.runs))], nil
}

func withReports(r store.Reporter, runs *fakeRuns) envOption {
	return func(_ *Config, d *Deps) {
		d.Reports = r
		if runs != nil {
			d.ReportRuns, d.ReportSchedules = runs, runs
		}
	}
}

// reportRows are two subscribers of November 2026 on gw1.
func reportRows(gw int64) []store.ReportRow {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return []store.ReportRow{
		{Period: "2026-11", From: from, To: from.AddDate(0, 1, 0), RouterID: gw, Router: "gw1", Subscriber: "alice", CustomerID: "C-1001",
			DownloadBytes: 40e9, UploadBytes: 4e9, TotalBytes: 44e9, PeakDown: store.Rate{BPS: 95e6, At: from.Add(200 * time.Hour)},
			PeakUp: store.Rate{BPS: 12e6, At: from.Add(100 * time.Hour)}, PctDown: 60e6, PctUp: 8e6, PctBillable: 60e6, Samples: 8640,
			TopApps: []store.AppShare{{App: "youtube", Bytes: 20e9}, {App: "netflix", Bytes: 10e9}}},
		{Period: "2026-11", From: from, To: from.AddDate(0, 1, 0), RouterID: gw, Router: "gw1", Subscriber: "=cmd|evil", DownloadBytes: 1e9,
			UploadBytes: 2e9, TotalBytes: 3e9, PctDown: 1e6, PctUp: 2e6, PctBillable: 2e6, Samples: 8640},
	}
}

// TestReportAPIParams: the query's period (in its time zone), kind,
// percentile, split, router (by name or id), search and top_apps reach the
// reporter; the defaults are the previous calendar month in UTC, per
// subscriber, the 95th percentile and 3 applications.
func TestReportAPIParams(t *testing.T) {
	t.Parallel()
	rep := &fakeReporter{}
	e := newEnv(t, withReports(rep, nil))
	e.login()
	gw := e.addRouter(datasetRouter())
	e.now = time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)

	var got store.Report
	e.getJSON("/api/v1/reports", &got)
	q := rep.last(t)
	if q.Label != "2026-11" || !q.From.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !q.To.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) ||
		q.Location != time.UTC || q.Kind != store.ReportBySubscriber || q.Percentile != 95 || q.TopApps != 3 || q.Split != "" ||
		q.Sources != nil || q.Search != "" {
		t.Errorf("the default request is %+v", q)
	}
	if got.Label != "2026-11" || got.Kind != "subscriber" || got.Rows == nil {
		t.Errorf("the answer is %+v, want the period, the kind and an empty list of rows", got)
	}

	e.getJSON(fmt.Sprintf("/api/v1/reports?period=2026-01..2026-03&tz=Europe/Berlin&by=interface&percentile=99.5&split=none&router=gw1&search=wan&top_apps=0"), &got)
	q = rep.last(t)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if q.Label != "2026-01..2026-03" || !q.From.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)) || !q.To.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, berlin)) ||
		q.Location.String() != "Europe/Berlin" || q.Kind != store.ReportByInterface || q.Percentile != 99.5 || q.Split != "none" ||
		len(q.Sources) != 1 || q.Sources[0] != gw.ID || q.Search != "wan" || q.TopApps != 0 {
		t.Errorf("the request is %+v", q)
	}
	if got.TimeZone != "Europe/Berlin" {
		t.Errorf("the answer's zone is %q", got.TimeZone)
	}
	// A router by id, a day, the fleet.
	e.getJSON(fmt.Sprintf("/api/v1/reports?period=2026-11-05&by=fleet&router=%d&percentile=100", gw.ID), &got)
	if q = rep.last(t); q.Label != "2026-11-05" || q.To.Sub(q.From) != 24*time.Hour || q.Kind != store.ReportByFleet ||
		q.Sources[0] != gw.ID || q.Percentile != 100 {
		t.Errorf("the request is %+v", q)
	}
}

// TestReportAPIErrors: a bad query is a 400 that says what is wrong, and
// never reaches the reporter.
func TestReportAPIErrors(t *testing.T) {
	t.Parallel()
	rep := &fakeReporter{}
	e := newEnv(t, withReports(rep, nil))
	e.login()
	e.addRouter(datasetRouter())
	for _, tc := range []struct{ query, want string }{
		{"period=2026-13", "period: "},
		{"period=november", "is not a month (YYYY-MM) or a day"},
		{"period=2026-12..2026-01", "ends (2026-01) before it starts"},
		{"period=2024-01..2026-01", "longer than 400 days"},
		{"tz=Mars/Olympus", `tz: "Mars/Olympus" is not a time zone`},
		{"tz=Local", `tz: "Local" is not a time zone`},
		{"by=customer", `by: "customer" is not one of subscriber, router, interface, fleet`},
		{"percentile=0", "percentile: \"0\" is not a number above 0 and at most 100"},
		{"percentile=100.1", "percentile: "},
		{"percentile=NaN", "percentile: "},
		{"percentile=p95", "percentile: "},
		{"split=week", `split: "week" is not month or none`},
		{"top_apps=11", "top_apps: "},
		{"format=xml", `format: "xml" is not json or csv`},
		{"router=gw9", `router: no router "gw9"`},
		{"search=" + strings.Repeat("x", 201), "search: longer than 200"},
	} {
		code, body := e.do(http.MethodGet, "/api/v1/reports?"+tc.query, nil)
		var eb errorBody
		if code != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || !strings.Contains(eb.Error, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.query, code, body, tc.want)
		}
	}
	if len(rep.reqs) != 0 {
		t.Errorf("bad queries reached the reporter: %+v", rep.reqs)
	}
	// A query the reporter refuses is a 400 too; its failures are 500s
	// without the details.
	rep.fail = fmt.Errorf("cannot report: %w", store.ErrBadQuery)
	if code, body := e.do(http.MethodGet, "/api/v1/reports?period=2026-11", nil); code != http.StatusBadRequest {
		t.Errorf("a refused query: %d %s", code, body)
	}
	rep.fail = errors.New("disk I/O error at /var/lib/flowbox/flowbox.db")
	if code, body := e.do(http.MethodGet, "/api/v1/reports?period=2026-11&format=csv", nil); code != http.StatusInternalServerError ||
		strings.Contains(string(body), "/var/lib") {
		t.Errorf("a failing reporter: %d %s, want 500 without the details", code, body)
	}
}

// TestReportCSV: format=csv downloads store.WriteReportCSV's CSV as
// flowbox-report-<by>-<period>.csv, text cells guarded against formulas;
// the JSON has the same rows.
func TestReportCSV(t *testing.T) {
	t.Parallel()
	rep := &fakeReporter{}
	e := newEnv(t, withReports(rep, nil))
	e.login()
	gw := e.addRouter(datasetRouter())
	rep.rows = reportRows(gw.ID)
	res, err := e.client.Get(e.ts.URL + "/api/v1/reports?period=2026-11&tz=Europe/Berlin&format=csv")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		res.Header.Get("Content-Disposition") != `attachment; filename="flowbox-report-subscriber-2026-11.csv"` {
		t.Fatalf("csv: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
	}
	recs, err := csv.NewReader(res.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || strings.Join(recs[0], ",") != strings.Join(store.ReportCSVHeader(store.ReportBySubscriber), ",") {
		t.Fatalf("csv records %q", recs)
	}
	col := func(name string) int {
		for i, h := range recs[0] {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	if r := recs[1]; r[col("subscriber")] != "alice" || r[col("customer_id")] != "C-1001" || r[col("download_bytes")] != "40000000000" ||
		r[col("percentile_billable_bps")] != "60000000" || r[col("percentile")] != "95" || r[col("top_apps")] != "youtube=20000000000;netflix=10000000000" {
		t.Errorf("alice's record %q", r)
	}
	if r := recs[2]; r[col("subscriber")] != "'=cmd|evil" {
		t.Errorf("a formula-like name is %q in the CSV", r[col("subscriber")])
	}
	// A range's label names the file too.
	code, _ := e.do(http.MethodGet, "/api/v1/reports?period=2026-01..2026-03&by=router&format=csv", nil)
	if code != http.StatusOK {
		t.Fatalf("csv of a range: %d", code)
	}
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/api/v1/reports?period=2026-01..2026-03&by=router&format=json&download=1", nil)
	res2, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Body.Close()
	var got store.Report
	if err := json.NewDecoder(res2.Body).Decode(&got); err != nil || len(got.Rows) != 2 || got.Rows[0].TopApps[0].App != "youtube" ||
		res2.Header.Get("Content-Disposition") != `attachment; filename="flowbox-report-router-2026-01..2026-03.json"` {
		t.Errorf("json download: %v %+v %q", err, got, res2.Header.Get("Content-Disposition"))
	}
	if f := reportFileName("subscriber", `a/b"c`, "csv"); f != "flowbox-report-subscriber-a_b_c.csv" {
		t.Errorf("file name %q", f)
	}
}

// TestReportsDisabled: without a reporter the API answers 503 with why
// and the page says reports are unavailable; without a scheduler the runs
// are an empty list that says nothing is scheduled.
func TestReportsDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.login()
	code, b := e.do(http.MethodGet, "/api/v1/reports?period=2026-11", nil)
	var eb errorBody
	if code != http.StatusServiceUnavailable || json.Unmarshal(b, &eb) != nil || eb.Error != errReportsDisabled {
		t.Errorf("reports without a reporter: %d %s", code, b)
	}
	var runs ReportRunsResult
	e.getJSON("/api/v1/reports/runs", &runs)
	if runs.Configured || runs.Message != msgNoSchedules || runs.Runs == nil || len(runs.Runs) != 0 {
		t.Errorf("runs without a scheduler: %+v", runs)
	}
	code, b = e.do(http.MethodGet, "/reports", nil)
	if code != http.StatusOK || !strings.Contains(string(b), `id="reports-disabled"`) || strings.Contains(string(b), "reports.js") ||
		!strings.Contains(string(b), `<a href="/reports" class="active">Reports</a>`) {
		t.Errorf("GET /reports without a reporter: %d, want the page saying reports are unavailable", code)
	}
}

// TestReportRuns lists the schedules with their next due run, and the
// scheduled runs, newest first as the scheduler gives them, bounded by
// limit.
func TestReportRuns(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC)
	runs := &fakeRuns{runs: []store.ReportRun{
		{ID: 2, Schedule: "monthly-billing", Period: "2026-11", Started: at, Finished: at.Add(time.Minute), OK: false, Rows: 120,
			Deliveries: []store.ReportDelivery{{Target: "folder /var/lib/flowbox/reports", OK: true}, {Target: "mail to billing@example.net", Detail: "dial tcp: connection refused"}}},
		{ID: 1, Schedule: "monthly-billing", Period: "2026-10", Started: at.AddDate(0, -1, 0), OK: true, CatchUp: true},
	}, schedules: []store.ReportSchedule{{Name: "monthly-billing", Every: "month", By: "subscriber", TimeZone: "Europe/Berlin",
		Targets: []string{"folder /var/lib/flowbox/reports"}, NextPeriod: "2026-12", NextDue: time.Date(2026, 12, 31, 23, 15, 0, 0, time.UTC)}}}
	e := newEnv(t, withReports(&fakeReporter{}, runs))
	e.login()
	var got ReportRunsResult
	e.getJSON("/api/v1/reports/runs", &got)
	if !got.Configured || got.Message != "" || len(got.Runs) != 2 || runs.limit != defaultReportRuns || got.Runs[0].Deliveries[1].Detail == "" ||
		got.Runs[1].Deliveries == nil || !got.Runs[1].CatchUp {
		t.Errorf("runs: %+v (limit %d)", got, runs.limit)
	}
	if len(got.Schedules) != 1 || got.Schedules[0].NextPeriod != "2026-12" || !got.Schedules[0].NextDue.Equal(runs.schedules[0].NextDue) {
		t.Errorf("schedules: %+v", got.Schedules)
	}
	e.getJSON("/api/v1/reports/runs?limit=1", &got)
	if len(got.Runs) != 1 || got.Runs[0].ID != 2 {
		t.Errorf("one run: %+v", got.Runs)
	}
	if code, _ := e.do(http.MethodGet, "/api/v1/reports/runs?limit=0", nil); code != http.StatusBadRequest {
		t.Errorf("limit=0: %d", code)
	}
}

// TestReportRoles: reports carry customers' traffic: they need a login
// (401) like the usage API, and a viewer's session or token reads them.
func TestReportRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withReports(&fakeReporter{}, nil))
	admin := e.addUser("admin", store.RoleAdmin)
	e.addUser("view", store.RoleViewer)
	for _, p := range []string{"/api/v1/reports?period=2026-11", "/api/v1/reports?period=2026-11&format=csv", "/api/v1/reports/runs"} {
		if code, _ := e.do(http.MethodGet, p, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a login: %d, want 401", p, code)
		}
		if code, b := e.doWith(e.clientAs("view"), "", http.MethodGet, p, nil); code != http.StatusOK {
			t.Errorf("GET %s as a viewer: %d %s", p, code, b)
		}
		if code, b := e.doWith(nil, e.makeToken(admin, "viewer-"+fmt.Sprint(len(p)), store.RoleViewer, time.Time{}), http.MethodGet, p, nil); code != http.StatusOK {
			t.Errorf("GET %s with a viewer token: %d %s", p, code, b)
		}
	}
	for _, rt := range [][2]string{{http.MethodGet, "/api/v1/reports"}, {http.MethodGet, "/api/v1/reports/runs"}, {http.MethodGet, "/reports"}} {
		if role, ok := e.srv.routeRoles[routeKey(rt[0], rt[1])]; !ok || role != e.srv.routeRoles[routeKey(http.MethodGet, "/api/v1/subscribers/usage")] {
			t.Errorf("%s %s: role %q (declared %v), want the usage API's", rt[0], rt[1], role, ok)
		}
	}
	if code, b := e.doWith(e.clientAs("view"), "", http.MethodGet, "/reports", nil); code != http.StatusOK || !strings.Contains(string(b), `data-role="viewer"`) ||
		!strings.Contains(string(b), "/static/reports.js") || !strings.Contains(string(b), `<a href="/reports" class="active">Reports</a>`) {
		t.Errorf("GET /reports as a viewer: %d", code)
	}
	if code, _ := e.doWith(e.clientAs("view"), "", http.MethodPost, "/api/v1/reports", map[string]string{}); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/reports: %d, want 405", code)
	}
}

// TestOpenAPIReportSchemas: the reports' schemas in the OpenAPI document
// name the fields the store's types write.
func TestOpenAPIReportSchemas(t *testing.T) {
	t.Parallel()
	schemas := buildOpenAPI()["components"].(openAPI)["schemas"].(openAPI)
	for name, v := range map[string]any{
		"Report": store.Report{}, "ReportRow": store.ReportRow{}, "Rate": store.Rate{}, "AppShare": store.AppShare{},
		"ReportRun": store.ReportRun{}, "ReportDelivery": store.ReportDelivery{}, "ReportRuns": ReportRunsResult{}, "ReportSchedule": store.ReportSchedule{},
	} {
		sc, ok := schemas[name].(openAPI)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		var props []string
		for p := range sc["properties"].(openAPI) {
			props = append(props, p)
		}
		slices.Sort(props)
		var fields []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if tag != "" && tag != "-" {
				fields = append(fields, tag)
			}
		}
		slices.Sort(fields)
		if !slices.Equal(props, fields) {
			t.Errorf("schema %s has %v, the Go type %T writes %v", name, props, v, fields)
		}
	}
}
