package web

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// manyReportRows are n subscribers of November 2026 on router gw, with
// long names, customer ids and top applications: a billing month of a
// small WISP.
func manyReportRows(gw int64, n int) []store.ReportRow {
	from := time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC) // midnight in Berlin
	rows := make([]store.ReportRow, n)
	for i := range rows {
		down, up := uint64(1e9)*uint64(i+1), uint64(1e8)*uint64(n-i)
		rows[i] = store.ReportRow{Period: "2026-11", From: from, To: from.AddDate(0, 1, 0), RouterID: gw, Router: "gw1",
			Subscriber: fmt.Sprintf("customer-%03d-with-a-rather-long-host-name.example.lan", i), CustomerID: fmt.Sprintf("C-%06d", 100000+i),
			DownloadBytes: down, UploadBytes: up, TotalBytes: down + up,
			PeakDown: store.Rate{BPS: float64(i+1) * 1.5e6, At: from.Add(time.Duration(i) * time.Hour)},
			PeakUp:   store.Rate{BPS: float64(n-i) * 2e5, At: from.Add(time.Duration(i)*time.Hour + 5*time.Minute)},
			PctDown:  float64(i+1) * 1e6, PctUp: float64(n-i) * 1e5, PctBillable: max(float64(i+1)*1e6, float64(n-i)*1e5), Samples: 8640,
			TopApps: []store.AppShare{{App: "youtube", Bytes: down / 2}, {App: "netflix", Bytes: down / 4}, {App: "whatsapp", Bytes: down / 10}}}
	}
	return rows
}

// waitReport waits until the Reports page has its answer.
func waitReport(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("main").dataset.loadedMs !== undefined`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the report did not load: %v", err)
	}
}

// TestBrowserReportsPrint opens a month's report of 60 subscribers from
// the nav: the rows, the totals row, sorting (kept in the URL), the CSV
// and JSON links, the scheduled runs; then prints it on A4 and Letter:
// in print media the navigation, the form, the buttons and the runs are
// hidden, a header says the period, zone and when it was made, the table
// fits the printable width, and the PDF has a few pages and the period in
// its title.
func TestBrowserReportsPrint(t *testing.T) {
	browsertest.Need(t)
	rep := &fakeReporter{}
	at := time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC)
	runs := &fakeRuns{runs: []store.ReportRun{
		{ID: 2, Schedule: "monthly-billing", Period: "2026-11", Started: at, Finished: at.Add(time.Minute), Rows: 60,
			Deliveries: []store.ReportDelivery{{Target: "folder /var/lib/flowbox/reports", OK: true}, {Target: "mail to billing@example.net", Detail: "dial tcp: connection refused"}}},
		{ID: 1, Schedule: "monthly-billing", Period: "2026-10", Started: at.AddDate(0, -1, 0), OK: true, CatchUp: true, Rows: 58,
			Deliveries: []store.ReportDelivery{{Target: "folder /var/lib/flowbox/reports", OK: true}}},
	}}
	runs.schedules = []store.ReportSchedule{{Name: "monthly-billing", Every: "month", By: "subscriber", TimeZone: "Europe/Berlin",
		Targets: []string{"folder /var/lib/flowbox/reports", "mail to billing@example.net"}, NextPeriod: "2026-12",
		NextDue: time.Date(2026, 12, 31, 23, 15, 0, 0, time.UTC), LastRun: &runs.runs[0]}}
	e := newEnv(t, withReports(rep, runs))
	e.login()
	gw := e.addRouter(datasetRouter())
	rep.rows = manyReportRows(gw.ID, 60)
	ctx := browsertest.Start(t, 120*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	base := e.ts.URL
	if err := chromedp.Do(ctx, browserTimezone("Europe/Berlin")); err != nil {
		t.Fatal(err)
	}
	browserLogin(t, ctx, base)

	// The nav link opens last month in the browser's zone.
	if err := chromedp.Do(ctx, chromedp.Click(`header.top nav a[href="/reports"]`), chromedp.WaitVisible(`#periods`)); err != nil {
		t.Fatalf("open the reports page: %v", err)
	}
	waitReport(t, ctx)
	q := rep.last(t)
	now := time.Now().In(q.Location)
	lastMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, q.Location).AddDate(0, -1, 0).Format("2006-01")
	if q.Location.String() != "Europe/Berlin" || q.Label != lastMonth || q.Kind != "subscriber" || q.Percentile != 95 || q.TopApps != 3 {
		t.Errorf("the page asked for %+v, want last month (%s) in Europe/Berlin per subscriber", q, lastMonth)
	}

	// A month from the picker, by URL: the rows, the totals.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/reports?period=month&month=2026-11&tz=Europe/Berlin&by=subscriber")); err != nil {
		t.Fatal(err)
	}
	waitReport(t, ctx)
	if q := rep.last(t); q.Label != "2026-11" || !q.From.Equal(time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("the month picker asked for %+v", q)
	}
	rows := `[...document.querySelectorAll("#report tbody tr[data-key]")]`
	keys := must(t, ctx, chromedp.Evaluate[[]string](rows+`.map((r) => r.dataset.key)`))
	if len(keys) != 60 || keys[0] != rep.rows[59].Subscriber {
		t.Fatalf("the table lists %d rows starting with %q, want 60, the largest total first", len(keys), keys)
	}
	var wantTotal uint64
	for _, r := range rep.rows {
		wantTotal += r.TotalBytes
	}
	if got := must(t, ctx, chromedp.Evaluate[string](`document.querySelector('#report tfoot td[data-total="total"]').dataset.bytes`)); got != strconv.FormatUint(wantTotal, 10) {
		t.Errorf("the totals row says %s bytes, want %d", got, wantTotal)
	}
	heads := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#report thead th")].map((h) => h.textContent)`))
	wantHeads := []string{"Subscriber", "Customer ID", "Router", "Download", "Upload", "Total", "Peak ↓", "Peak ↑", "95th ↓", "95th ↑", "95th billable", "Top applications"}
	if !slices.Equal(heads, wantHeads) {
		t.Errorf("the columns are %q, want %q", heads, wantHeads)
	}
	first := must(t, ctx, chromedp.Evaluate[string](`[...document.querySelector("#report tbody tr").cells].map((c) => c.innerText.replace(/\n/g, " / ")).join(" | ")`))
	if !strings.Contains(first, "C-100059") || !strings.Contains(first, "60.0 GB") || !strings.Contains(first, "90.0 Mb/s / Nov 3, 11:00") ||
		!strings.Contains(first, "youtube 30.0 GB, netflix 15.0 GB") {
		t.Errorf("the first row reads %q", first)
	}
	screenshot(t, ctx, art, "reports-1-month")

	// Sorting by name, both ways, in the URL.
	if err := chromedp.Do(ctx, browsertest.ClickJS(`#report thead button[data-sort="name"]`)); err != nil {
		t.Fatal(err)
	}
	keys = must(t, ctx, chromedp.Evaluate[[]string](rows+`.map((r) => r.dataset.key)`))
	if !sort.StringsAreSorted(keys) || len(keys) != 60 {
		t.Errorf("sorted by name: %q", keys[:3])
	}
	if err := chromedp.Do(ctx, browsertest.ClickJS(`#report thead button[data-sort="name"]`)); err != nil {
		t.Fatal(err)
	}
	keys = must(t, ctx, chromedp.Evaluate[[]string](rows+`.map((r) => r.dataset.key)`))
	if keys[0] != rep.rows[59].Subscriber {
		t.Errorf("sorted by name descending starts with %q", keys[0])
	}
	loc := must(t, ctx, chromedp.Evaluate[string](`location.search`))
	u, _ := url.ParseQuery(strings.TrimPrefix(loc, "?"))
	if u.Get("sort") != "name" || u.Get("dir") != "desc" || u.Get("month") != "2026-11" || u.Get("tz") != "Europe/Berlin" {
		t.Errorf("the URL keeps %q", loc)
	}
	for id, format := range map[string]string{"csv": "csv", "json": "json"} {
		href := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("`+id+`").getAttribute("href")`))
		hu, err := url.Parse(href)
		if err != nil || hu.Path != "/api/v1/reports" || hu.Query().Get("format") != format || hu.Query().Get("period") != "2026-11" ||
			hu.Query().Get("tz") != "Europe/Berlin" || hu.Query().Get("by") != "subscriber" {
			t.Errorf("the %s link is %q", id, href)
		}
	}
	// The schedules, then the scheduled runs.
	schedRows := must(t, ctx, rowsText("#schedules"))
	if len(schedRows) != 1 || !strings.Contains(schedRows[0], "monthly-billing | month (Europe/Berlin) | per subscriber | folder /var/lib/flowbox/reports, mail to billing@example.net | 2026-12, due ") ||
		!strings.Contains(schedRows[0], "failed 2026-11") {
		t.Errorf("the schedules read %q", schedRows)
	}
	runRows := must(t, ctx, rowsText("#runs"))
	if len(runRows) != 2 || !strings.Contains(runRows[0], "monthly-billing | 2026-11") || !strings.Contains(runRows[0], "failed") ||
		!strings.Contains(runRows[0], "✗ mail to billing@example.net: dial tcp: connection refused") || !strings.Contains(runRows[1], "catch-up") ||
		!strings.Contains(runRows[1], "ok") {
		t.Errorf("the runs read %q", runRows)
	}

	// Print on A4 and Letter.
	for _, paper := range []browsertest.Paper{browsertest.A4, browsertest.Letter} {
		width := int(paper.PrintableWidth(12))
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(paper.PrintableHeight(12))), browsertest.EmulatePrint(true)); err != nil {
			t.Fatal(err)
		}
		hidden := must(t, ctx, chromedp.Evaluate[[]string](`["header.top", "#report-form", "#print", "#csv", "#json", "#runs-card", "footer.attribution"].
			filter((s) => { const e = document.querySelector(s); return e && getComputedStyle(e).display !== "none"; })`))
		if len(hidden) != 0 {
			t.Errorf("%s: printing shows %q", paper.Name, hidden)
		}
		head := must(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("print-head")).display + " " + document.getElementById("print-head").innerText.split("\n").filter(Boolean).join(" / ")`))
		if !strings.HasPrefix(head, "block Traffic report 2026-11 / Nov 1, 2026 – Nov 30, 2026 (Europe/Berlin) · per subscriber") || !strings.Contains(head, "Europe/Berlin") || !strings.Contains(head, "95th percentile") ||
			!strings.Contains(head, "generated ") {
			t.Errorf("%s: the printed header is %q", paper.Name, head)
		}
		fit := must(t, ctx, chromedp.Evaluate[[]float64](`(() => { const t = document.getElementById("report"); const cs = getComputedStyle(document.body);
			return [innerWidth, document.documentElement.scrollWidth, t.getBoundingClientRect().right, t.scrollWidth, t.parentElement.clientWidth,
				getComputedStyle(t.tHead).display === "table-header-group" ? 1 : 0, cs.backgroundColor === "rgb(255, 255, 255)" ? 1 : 0]; })()`))
		if fit[0] != float64(width) || fit[1] > fit[0] || fit[2] > fit[0] || fit[3] > fit[4] || fit[5] != 1 || fit[6] != 1 {
			t.Errorf("%s: the table does not fit the printable width %dpx: viewport %v, page %v, table right %v, table %v in %v, header repeated %v, white %v",
				paper.Name, width, fit[0], fit[1], fit[2], fit[3], fit[4], fit[5], fit[6])
		}
		screenshot(t, ctx, art, "reports-2-print-"+paper.Name)
		pdf := must(t, ctx, browsertest.PrintPDF(paper))
		if err := os.WriteFile(filepath.Join(art, "reports-print-"+paper.Name+".pdf"), pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		info, err := browsertest.ReadPDF(pdf)
		if err != nil {
			t.Fatalf("%s: %v", paper.Name, err)
		}
		if info.Pages < 2 || info.Pages > 5 {
			t.Errorf("%s: the print of 60 rows has %d pages, want 2 to 5", paper.Name, info.Pages)
		}
		if !strings.Contains(info.Title, "Report 2026-11 per subscriber") {
			t.Errorf("%s: the PDF's title is %q", paper.Name, info.Title)
		}
		t.Logf("%s: %d pages, title %q", paper.Name, info.Pages, info.Title)
	}
	if err := chromedp.Do(ctx, browsertest.EmulatePrint(false), chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Fatal(err)
	}

	// A custom period over two months: a row per month, a Period column;
	// the custom dates reach the API as FROM..TO.
	rep.mu.Lock()
	rep.rows = manyReportRows(gw.ID, 2)
	rep.rows[1].Period = "2026-10"
	rep.mu.Unlock()
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/reports?period=custom&from=2026-10-15&to=2026-11-14&tz=UTC&by=subscriber")); err != nil {
		t.Fatal(err)
	}
	waitReport(t, ctx)
	if q := rep.last(t); q.Label != "2026-10-15..2026-11-14" || q.Location != time.UTC {
		t.Errorf("the custom period asked for %+v", q)
	}
	if heads := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#report thead th")].map((h) => h.textContent)`)); len(heads) == 0 || heads[0] != "Period" {
		t.Errorf("two months' rows have the columns %q, want Period first", heads)
	}
	if from, to := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("f-from").value`)), must(t, ctx, chromedp.Evaluate[string](`document.getElementById("f-to").value`)); from != "2026-10-15" || to != "2026-11-14" {
		t.Errorf("the custom fields say %s to %s", from, to)
	}

	// A phone: the page does not scroll sideways (the table scrolls in its
	// card).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	if w := must(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("on a phone the page is %dpx wide", w)
	}
	screenshot(t, ctx, art, "reports-3-phone")
}
