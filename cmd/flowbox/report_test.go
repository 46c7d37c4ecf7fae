package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestReportRequest: the options become the request (last calendar month
// in the zone by default), and a bad one is a usage error naming it.
func TestReportRequest(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 30, 0, 0, time.UTC) // 01:30 on 1 Dec in Berlin, 30 Nov in Mexico City
	ok := reportFlags{tz: "Europe/Berlin", by: "subscriber", percentile: 95, topApps: 3, format: "table"}
	q, err := reportRequest(ok, now)
	if err != nil || q.Label != "2026-11" || q.From.Format(time.RFC3339) != "2026-11-01T00:00:00+01:00" ||
		q.To.Format(time.RFC3339) != "2026-12-01T00:00:00+01:00" || q.Kind != "subscriber" || q.Percentile != 95 || q.TopApps != 3 {
		t.Fatalf("the default request: %+v %v", q, err)
	}
	mx := ok
	mx.tz = "America/Mexico_City"
	if q, err := reportRequest(mx, now); err != nil || q.Label != "2026-10" {
		t.Errorf("last month in Mexico City on 30 Nov: %+v %v", q, err)
	}
	r := ok
	r.period, r.by, r.percentile, r.split, r.search, r.topApps, r.format = "2026-01..2026-12", "fleet", 99.9, "none", "x", 0, "json"
	if q, err := reportRequest(r, now); err != nil || q.Label != "2026-01..2026-12" || q.To.Sub(q.From) != 365*24*time.Hour ||
		q.Kind != "fleet" || q.Percentile != 99.9 || q.Split != "none" || q.Search != "x" || q.TopApps != 0 {
		t.Errorf("a year of the fleet: %+v %v", q, err)
	}
	for _, c := range []struct {
		edit func(*reportFlags)
		want string
	}{
		{func(f *reportFlags) { f.period = "2026-13" }, "--period: "},
		{func(f *reportFlags) { f.period = "last-month" }, "is not a month (YYYY-MM) or a day"},
		{func(f *reportFlags) { f.period = "2026-12..2026-11" }, "before it starts"},
		{func(f *reportFlags) { f.period = "2025-01..2026-12" }, "longer than 400 days"},
		{func(f *reportFlags) { f.tz = "Mars/Base" }, `--tz "Mars/Base" is not a time zone`},
		{func(f *reportFlags) { f.by = "customer" }, `--by "customer" is not subscriber, router, interface or fleet`},
		{func(f *reportFlags) { f.percentile = 0 }, "--percentile 0 is not above 0"},
		{func(f *reportFlags) { f.percentile = 101 }, "--percentile 101 is not above 0"},
		{func(f *reportFlags) { f.split = "week" }, `--split "week"`},
		{func(f *reportFlags) { f.topApps = 11 }, "--top-apps 11"},
		{func(f *reportFlags) { f.format = "xml" }, `--format "xml" is not table, csv or json`},
	} {
		f := ok
		c.edit(&f)
		if _, err := reportRequest(f, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", f, err, c.want)
		}
	}
	// Through the command line: usage errors (exit status 2) before the
	// data directory is opened.
	for _, args := range [][]string{{"--period", "2026-13"}, {"--by", "tower"}, {"--percentile", "0"}, {"--format", "pdf"}, {"extra"}} {
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		err := run(context.Background(), e, append([]string{"report", "--data-dir", t.TempDir() + "/none"}, args...))
		var ue usageError
		if !errors.As(err, &ue) || exitCode(err) != 2 {
			t.Errorf("report %v: %v, want a usage error", args, err)
		}
	}
	// A data directory without a database is an error, and stays empty.
	missing := filepath.Join(t.TempDir(), "nothing-here")
	if _, err := runWithEnv(nil, "report", "--data-dir", missing); err == nil || !strings.Contains(err.Error(), "cannot open the data directory") {
		t.Errorf("report on a missing data directory: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("report created the missing data directory: %v", err)
	}
}

// cannedReport is a report of two subscribers in November 2026 (Berlin).
func cannedReport() *store.Report {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, berlin)
	to := from.AddDate(0, 1, 0)
	return &store.Report{Kind: store.ReportBySubscriber, Label: "2026-11", From: from, To: to, TimeZone: "Europe/Berlin", Percentile: 95,
		Generated: time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), Rows: []store.ReportRow{
			{Period: "2026-11", From: from, To: to, RouterID: 1, Router: "tower-a", Subscriber: "Maria Garcia", CustomerID: "C-1001",
				DownloadBytes: 41_500_000_000, UploadBytes: 3_200_000_000, TotalBytes: 44_700_000_000,
				PeakDown: store.Rate{BPS: 95_300_000, At: time.Date(2026, 11, 5, 19, 35, 0, 0, time.UTC)}, PeakUp: store.Rate{BPS: 12_000_000},
				PctDown: 61_200_000, PctUp: 8_000_000, PctBillable: 61_200_000, Samples: 8640,
				TopApps: []store.AppShare{{App: "youtube", Bytes: 20_000_000_000}, {App: "netflix", Bytes: 9_000_000_000}}},
			{Period: "2026-11", From: from, To: to, RouterID: 2, Router: "tower-b", Subscriber: "jlopez", DownloadBytes: 900_000,
				UploadBytes: 100_000, TotalBytes: 1_000_000, PctDown: 800, PctUp: 120, PctBillable: 800, Samples: 8640},
		}}
}

// TestWriteReport: the table is aligned, in human units, with a totals
// line; the CSV is store.WriteReportCSV's; the JSON is the API's.
func TestWriteReport(t *testing.T) {
	var tb bytes.Buffer
	if err := writeReport(&tb, cannedReport(), "table"); err != nil {
		t.Fatal(err)
	}
	table := tb.String()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "Report 2026-11 (2026-11-01 to 2026-11-30, Europe/Berlin), per subscriber, 95th percentile") ||
		!strings.Contains(lines[0], "generated 2026-12-01 07:00") {
		t.Fatalf("table:\n%s", table)
	}
	for _, want := range []string{"SUBSCRIBER", "CUSTOMER", "95TH BILLABLE", "Maria Garcia", "C-1001", "41.5 GB", "3.2 GB", "44.7 GB",
		"95.3 Mb/s @11-05 20:35", "12.0 Mb/s", "61.2 Mb/s", "youtube 20 GB, netflix 9 GB", "jlopez", "800 b/s", "total (2 rows)", "44.7 GB"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	// Aligned: the columns start at the same offsets on every line.
	if h, r := strings.Index(lines[1], "DOWNLOAD"), strings.Index(lines[2], "41.5 GB"); h != r {
		t.Errorf("DOWNLOAD at %d, its value at %d:\n%s", h, r, table)
	}

	var cb bytes.Buffer
	if err := writeReport(&cb, cannedReport(), "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&cb).ReadAll()
	if err != nil || len(recs) != 3 || strings.Join(recs[0], ",") != strings.Join(store.ReportCSVHeader(store.ReportBySubscriber), ",") ||
		recs[1][6] != "C-1001" {
		t.Errorf("csv: %q %v", recs, err)
	}

	var jb bytes.Buffer
	if err := writeReport(&jb, cannedReport(), "json"); err != nil {
		t.Fatal(err)
	}
	var back store.Report
	if err := json.Unmarshal(jb.Bytes(), &back); err != nil || back.Label != "2026-11" || len(back.Rows) != 2 ||
		back.Rows[0].PeakDown.BPS != 95_300_000 || back.Rows[0].TopApps[1].App != "netflix" {
		t.Errorf("json: %+v %v", back, err)
	}
	// The fleet and interfaces name their columns; several months get a
	// period column.
	rep := cannedReport()
	rep.Kind = store.ReportByInterface
	rep.Rows[1].Period = "2026-12"
	rep.Rows[0].InterfaceName, rep.Rows[1].Interface = "ether1-wan", 7
	tb.Reset()
	if err := writeReport(&tb, rep, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PERIOD", "INTERFACE", "IN", "OUT", "PEAK IN", "95TH OUT", "ether1-wan", "ifIndex 7", "2026-12"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("the interface table lacks %q:\n%s", want, tb.String())
		}
	}
}

// TestWriteReportRuns: a table with a line per delivery, or JSON.
func TestWriteReportRuns(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC)
	runs := []store.ReportRun{
		{ID: 2, Schedule: "monthly-billing", Period: "2026-11", Started: at, Finished: at.Add(time.Minute), OK: false, Rows: 120, Error: "1 of 2 deliveries failed",
			Deliveries: []store.ReportDelivery{{Target: "folder /var/lib/flowbox/reports", OK: true}, {Target: "mail to billing@example.net", Detail: "connection refused"}}},
		{ID: 1, Schedule: "monthly-billing", Period: "2026-10", Started: at.AddDate(0, -1, 0), Finished: at.AddDate(0, -1, 0), OK: true, CatchUp: true, Rows: 118},
	}
	var b bytes.Buffer
	if err := writeReportRuns(&b, runs, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SCHEDULE", "monthly-billing", "2026-11", "failed: 1 of 2 deliveries failed", "folder /var/lib/flowbox/reports: ok",
		"mail to billing@example.net: failed (connection refused)", "ok (catch-up)", "120"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the runs table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := writeReportRuns(&b, nil, true); err != nil || strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("no runs as JSON: %q %v", b.String(), err)
	}
	b.Reset()
	if err := writeReportRuns(&b, nil, false); err != nil || !strings.Contains(b.String(), "no scheduled report has run") {
		t.Errorf("no runs: %q %v", b.String(), err)
	}
}

// TestReportCommand stores a few flows of three subscribers on two routers
// and reads `flowbox report` over the two UTC days they fall in, as JSON,
// CSV and a table, per subscriber, router and the fleet, filtered by
// router and search, while the store is open for writing; then `report
// runs` before and after a run is recorded.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := storetest.Open(ctx, dir, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, r := range []*store.Router{{Name: "tower-a", Address: "127.0.0.2:8728"}, {Name: "tower-b", Address: "127.0.0.3:8728"}} {
		if err := st.AddRouter(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	at := time.Now().Add(-10 * time.Minute).UnixMilli()
	flow := func(exp, sub string, dir store.Direction, bytes uint64) store.Flow {
		return store.Flow{Exporter: netip.AddrPortFrom(netip.MustParseAddr(exp), 2055), Start: at - 1000, End: at,
			SrcAddr: netip.MustParseAddr("192.0.2.1"), DstAddr: netip.MustParseAddr("10.0.0.1"), Bytes: bytes, Packets: 1,
			Direction: dir, Subscriber: sub, Proto: 6, SrcPort: 443, DstPort: 50000, Application: "https"}
	}
	if err := st.InsertFlows(ctx, []store.Flow{
		flow("127.0.0.2", "Maria Garcia", store.DirDownload, 5_000_000), flow("127.0.0.2", "Maria Garcia", store.DirUpload, 200_000),
		flow("127.0.0.2", "jlopez", store.DirDownload, 9_000_000), flow("127.0.0.3", "Ana Ruiz", store.DirUpload, 70_000),
	}); err != nil {
		t.Fatal(err)
	}
	cancel() // the writer flushes the rollups and the samples when it stops
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	day := time.UnixMilli(at).UTC()
	period := day.Add(-24*time.Hour).Format("2006-01-02") + ".." + day.Format("2006-01-02")
	report := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		cmd := []string{"report"}
		if len(args) > 0 && args[0] == "runs" {
			cmd, args = []string{"report", "runs"}, args[1:]
		}
		if err := run(context.Background(), e, append(append(cmd, "--data-dir", dir), args...)); err != nil {
			t.Fatalf("report %v: %v (%s)", args, err, errb.String())
		}
		return out.String()
	}

	var rep store.Report
	if err := json.Unmarshal([]byte(report("--period", period, "--tz", "UTC", "--format", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]store.ReportRow{}
	for _, r := range rep.Rows {
		got[r.Router+"/"+r.Subscriber] = r
	}
	if rep.Label != period || rep.Kind != "subscriber" || rep.TimeZone != "UTC" || len(rep.Rows) != 3 ||
		got["tower-a/Maria Garcia"].DownloadBytes != 5_000_000 || got["tower-a/Maria Garcia"].UploadBytes != 200_000 ||
		got["tower-a/jlopez"].TotalBytes != 9_000_000 || got["tower-b/Ana Ruiz"].UploadBytes != 70_000 || got["tower-a/jlopez"].PeakDown.BPS <= 0 {
		t.Fatalf("json report: %+v", rep)
	}

	recs, err := csv.NewReader(strings.NewReader(report("--period", period, "--tz", "UTC", "--format", "csv", "--router", "tower-b"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0][0] != "period" || recs[1][5] != "Ana Ruiz" {
		t.Fatalf("csv report of tower-b: %q", recs)
	}

	table := report("--period", period, "--tz", "UTC", "--search", "GARC")
	for _, want := range []string{"Report " + period, "SUBSCRIBER", "Maria Garcia", "tower-a", "5 MB", "200 kB", "5.2 MB", "https", "total (1 rows)"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "jlopez") {
		t.Errorf("search did not filter:\n%s", table)
	}
	routers := report("--period", period, "--tz", "UTC", "--by", "router", "--percentile", "99")
	for _, want := range []string{"per router, 99th percentile", "99TH BILLABLE", "tower-a", "tower-b"} {
		if !strings.Contains(routers, want) {
			t.Errorf("the router table lacks %q:\n%s", want, routers)
		}
	}
	if err := json.Unmarshal([]byte(report("--period", period, "--tz", "UTC", "--by", "fleet", "--format", "json")), &rep); err != nil ||
		len(rep.Rows) != 1 || rep.Rows[0].DownloadBytes != 14_000_000 {
		t.Errorf("the fleet: %+v %v", rep.Rows, err)
	}

	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if err := run(context.Background(), e, []string{"report", "--data-dir", dir, "--router", "nope"}); err == nil || !strings.Contains(err.Error(), `no router "nope"`) {
		t.Errorf("an unknown router: %v", err)
	}

	if runs := report("runs"); !strings.Contains(runs, "no scheduled report has run") {
		t.Errorf("report runs before any: %q", runs)
	}
	st2, err := storetest.Open(context.Background(), dir, store.DefaultConfig(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	run1 := store.ReportRun{Schedule: "monthly-billing", Period: "2026-11", Started: time.Now(), OK: true, Rows: 3,
		Deliveries: []store.ReportDelivery{{Target: "folder " + dir, OK: true}}}
	if err := st2.AddReportRun(context.Background(), &run1); err != nil {
		t.Fatal(err)
	}
	if runs := report("runs"); !strings.Contains(runs, "monthly-billing") || !strings.Contains(runs, "running") {
		t.Errorf("report runs while one runs: %q", runs)
	}
	run1.Finished = time.Now()
	if err := st2.FinishReportRun(context.Background(), &run1); err != nil {
		t.Fatal(err)
	}
	if runs := report("runs"); !strings.Contains(runs, "monthly-billing") || !strings.Contains(runs, "folder "+dir+": ok") {
		t.Errorf("report runs: %q", runs)
	}
	var js []store.ReportRun
	if err := json.Unmarshal([]byte(report("runs", "--json")), &js); err != nil || len(js) != 1 || js[0].Schedule != "monthly-billing" {
		t.Errorf("report runs --json: %+v %v", js, err)
	}
}
