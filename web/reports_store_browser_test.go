package web

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/report"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// withRealReports builds the console's reports on its own store with the
// real report builder.
func withRealReports() envOption {
	return func(_ *Config, d *Deps) {
		st := d.Users.(*storetest.Store)
		d.Reports = report.New(report.Deps{Flows: st.FlowDB, Inventory: st.Inventory, Now: time.Now, Logger: slog.New(slog.DiscardHandler)})
	}
}

// TestBrowserReportsFromStore opens the Reports page on the known dataset
// (a day of alice's and bob's traffic on gw1) with the real report
// builder: per subscriber the table lists alice and bob with their bytes,
// per router gw1 and gw2, the fleet in one row; printed on A4 and Letter
// it fits the page width and the PDF has the period in its title.
func TestBrowserReportsFromStore(t *testing.T) {
	browsertest.Need(t)
	e := newEnv(t, withRealReports())
	e.login()
	gw1 := e.addRouter(datasetRouter())
	e.addRouter(store.Router{Name: "gw2", Address: "127.0.0.3:8728", State: store.StateConfigured})
	flows := dataset(e.now)
	e.ingest(flows)
	want, wantTot := wantUsage(flows, func(*store.Flow) bool { return true })

	ctx := browsertest.Start(t, 120*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	if err := chromedp.Do(ctx, browserTimezone("UTC")); err != nil {
		t.Fatal(err)
	}
	browserLogin(t, ctx, e.ts.URL)
	// The two UTC days the dataset's 24 hours touch.
	first, last := e.now.UTC().Add(-24*time.Hour).Format("2006-01-02"), e.now.UTC().Format("2006-01-02")
	label := first + ".." + last
	open := func(by string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/reports?period=custom&from=%s&to=%s&tz=UTC&by=%s", e.ts.URL, first, last, by))); err != nil {
			t.Fatal(err)
		}
		waitReport(t, ctx)
		if msg := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("report-error").textContent`)); msg != "" {
			t.Fatalf("by %s: the page says %q", by, msg)
		}
	}
	rows := `[...document.querySelectorAll("#report tbody tr[data-key]")]`
	open("subscriber")
	got := must(t, ctx, chromedp.Evaluate[[]string](rows+`.map((r) => [r.dataset.key, r.dataset.download, r.dataset.upload, r.dataset.total].join(" "))`))
	var wantRows []string
	for _, name := range []string{"bob", "alice"} {
		w := want[name]
		wantRows = append(wantRows, strings.Join([]string{name, strconv.FormatUint(w.DownloadBytes, 10), strconv.FormatUint(w.UploadBytes, 10),
			strconv.FormatUint(w.DownloadBytes+w.UploadBytes, 10)}, " "))
	}
	if !slices.Equal(got, wantRows) {
		t.Errorf("per subscriber the table shows %q, want %q", got, wantRows)
	}
	if tot := must(t, ctx, chromedp.Evaluate[string](`document.querySelector('#report tfoot td[data-total="total"]').dataset.bytes`)); tot != strconv.FormatUint(wantTot.DownloadBytes+wantTot.UploadBytes, 10) {
		t.Errorf("the totals row says %s bytes, want %d", tot, wantTot.DownloadBytes+wantTot.UploadBytes)
	}
	// Every subscriber has a peak and a percentile: a day of 10-minute
	// traffic.
	for _, r := range must(t, ctx, rowsText("#report")) {
		if !strings.Contains(r, "b/s") || !strings.Contains(r, "gw1") {
			t.Errorf("the row %q has no rates or no router", r)
		}
	}
	if title := must(t, ctx, chromedp.TextContent(`#report-title`)); title != "Report "+label {
		t.Errorf("the card is titled %q, want Report %s", title, label)
	}
	screenshot(t, ctx, art, "reports-store-1-subscribers")

	for _, paper := range []browsertest.Paper{browsertest.A4, browsertest.Letter} {
		width := int(paper.PrintableWidth(12))
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), 1000), browsertest.EmulatePrint(true)); err != nil {
			t.Fatal(err)
		}
		fit := must(t, ctx, chromedp.Evaluate[[]float64](`[innerWidth, document.documentElement.scrollWidth, document.getElementById("report").getBoundingClientRect().right]`))
		if fit[1] > fit[0] || fit[2] > fit[0] {
			t.Errorf("%s: the page is %vpx wide and the table ends at %vpx, over the printable %vpx", paper.Name, fit[1], fit[2], fit[0])
		}
		pdf := must(t, ctx, browsertest.PrintPDF(paper))
		if err := os.WriteFile(filepath.Join(art, "reports-store-"+paper.Name+".pdf"), pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		info, err := browsertest.ReadPDF(pdf)
		if err != nil {
			t.Fatalf("%s: %v", paper.Name, err)
		}
		if info.Pages != 1 || !strings.Contains(info.Title, "Report "+label+" per subscriber") {
			t.Errorf("%s: the print of two subscribers has %d pages and the title %q, want 1 page and the period", paper.Name, info.Pages, info.Title)
		}
	}
	if err := chromedp.Do(ctx, browsertest.EmulatePrint(false), chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Fatal(err)
	}

	// Per router: gw1 has the subscribers' traffic and more (10.0.1.7
	// has no name), gw2 its downloads.
	open("router")
	keys := must(t, ctx, chromedp.Evaluate[[]string](rows+`.map((r) => r.dataset.key)`))
	if !slices.Contains(keys, gw1.Name) || !slices.Contains(keys, "gw2") {
		t.Errorf("per router the table lists %q", keys)
	}
	// Per interface: gw1's two named interfaces, in and out.
	open("interface")
	keys = must(t, ctx, chromedp.Evaluate[[]string](rows+`.map((r) => r.dataset.key)`))
	if !slices.Contains(keys, "gw1/ether1-wan") || !slices.Contains(keys, "gw1/bridge-lan") {
		t.Errorf("per interface the table lists %q", keys)
	}
	if heads := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#report thead th")].map((h) => h.textContent)`)); len(heads) < 4 ||
		heads[0] != "Router" || heads[1] != "Interface" || heads[2] != "In" || heads[3] != "Out" {
		t.Errorf("per interface the columns are %q", heads)
	}
	// The fleet: one row, no totals row.
	open("fleet")
	if n := must(t, ctx, chromedp.Evaluate[int](rows+`.length`)); n != 1 {
		t.Errorf("the fleet has %d rows", n)
	}
	if n := must(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#report tfoot tr").length`)); n != 0 {
		t.Errorf("the fleet's one row has %d totals rows", n)
	}
	screenshot(t, ctx, art, "reports-store-2-fleet")
}
