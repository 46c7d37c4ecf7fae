package web

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// TestBrowserSubscribers opens the Subscribers page on the known dataset:
// the week's table lists alice and bob with their totals, a click on alice
// charts her traffic, a search narrows the table, and a phone shows the
// page without horizontal scrolling.
func TestBrowserSubscribers(t *testing.T) {
	browsertest.Need(t)
	e, gw1, flows := datasetEnv(t)
	want, wantTot := wantUsage(flows, func(*store.Flow) bool { return true })
	ctx := browsertest.Start(t, 90*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	base := e.ts.URL
	browserLogin(t, ctx, base)

	// The nav link, then the "Last 7 days" period.
	if err := chromedp.Do(ctx,
		chromedp.Click(`header.top nav a[href="/subscribers"]`),
		chromedp.WaitVisible(`#periods button[data-period="7d"]`),
		chromedp.Click(`#periods button[data-period="7d"]`),
	); err != nil {
		t.Fatalf("open the subscribers page: %v", err)
	}
	rows := `[...document.querySelectorAll("#usage tbody tr[data-subscriber]")]`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.search.includes("period=7d") && `+rows+`.length === 2`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the week's table does not list 2 subscribers: %v", err)
	}
	got := must(t, ctx, chromedp.Evaluate[[]string](rows+`.map(r => [r.dataset.subscriber, r.dataset.routerId, r.dataset.download, r.dataset.upload, r.dataset.total].join(" "))`))
	var wantRows []string
	for _, name := range []string{"bob", "alice"} {
		w := want[name]
		wantRows = append(wantRows, strings.Join([]string{name, strconv.FormatInt(gw1.ID, 10), strconv.FormatUint(w.DownloadBytes, 10),
			strconv.FormatUint(w.UploadBytes, 10), strconv.FormatUint(w.DownloadBytes+w.UploadBytes, 10)}, " "))
	}
	if !slices.Equal(got, wantRows) {
		t.Errorf("the table shows %q, want %q", got, wantRows)
	}
	if tot := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("total-all").dataset.bytes`)); tot != strconv.FormatUint(wantTot.DownloadBytes+wantTot.UploadBytes, 10) {
		t.Errorf("the totals row says %s bytes, want %d", tot, wantTot.DownloadBytes+wantTot.UploadBytes)
	}
	if info := must(t, ctx, chromedp.TextContent(`#page-info`)); info != "1–2 of 2" {
		t.Errorf("the pager says %q", info)
	}
	if note := must(t, ctx, chromedp.TextContent(`#period-note`)); !strings.HasPrefix(note, "Read ") || !strings.Contains(note, "hourly") {
		t.Errorf("the period line says %q", note)
	}
	if href := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("csv").getAttribute("href")`)); !strings.HasPrefix(href, "/api/v1/subscribers/usage.csv?from=") {
		t.Errorf("the CSV link is %q", href)
	}
	screenshot(t, ctx, art, "s1-subscribers-week")

	// A click on alice: her card with a chart of her hours.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#usage tbody tr[data-subscriber="alice"]`),
		chromedp.WaitVisible(`#detail #detail-chart canvas`),
	); err != nil {
		t.Fatalf("open alice's card: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`Number(document.getElementById("detail-chart").dataset.points) > 0`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("alice's chart has no data points: %v", err)
	}
	points := must(t, ctx, chromedp.Evaluate[int](`Number(document.getElementById("detail-chart").dataset.points)`))
	sum := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("detail-chart").dataset.sum`))
	if a := want["alice"]; points < 40 || sum != strconv.FormatUint(a.DownloadBytes+a.UploadBytes, 10) {
		t.Errorf("alice's chart: %d points summing to %s bytes, want at least 40 (hours of download and upload) summing to %d", points, sum, a.DownloadBytes+a.UploadBytes)
	}
	if name := must(t, ctx, chromedp.TextContent(`#detail-name`)); name != "alice" {
		t.Errorf("the card is titled %q", name)
	}
	if href := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("detail-router-link").getAttribute("href")`)); href != "/routers/"+strconv.FormatInt(gw1.ID, 10) {
		t.Errorf("the router link is %q", href)
	}
	screenshot(t, ctx, art, "s2-subscribers-alice")

	// A search for "bo" leaves bob only, and the URL keeps it.
	if err := chromedp.Do(ctx, chromedp.SendKeys(`#search`, "bo")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const r = `+rows+`; return r.length === 1 && r[0].dataset.subscriber === "bob"; })()`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the search for bo does not leave bob only: %v", err)
	}
	if loc := must(t, ctx, chromedp.Location()); !strings.Contains(loc, "search=bo") || !strings.Contains(loc, "period=7d") {
		t.Errorf("the URL %s does not keep the view", loc)
	}
	screenshot(t, ctx, art, "s3-subscribers-search")

	// A reload keeps the view; the phone layout has no horizontal scroll.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Reload(),
		chromedp.WaitVisible(`#usage tbody tr[data-subscriber="bob"]`),
	); err != nil {
		t.Fatalf("phone layout: %v", err)
	}
	if n := must(t, ctx, chromedp.Evaluate[int](rows+`.length`)); n != 1 {
		t.Errorf("after a reload the table has %d rows, want bob only", n)
	}
	if w := must(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the subscribers page is %d px wide on a 390 px phone", w)
	}
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#usage tbody tr[data-subscriber="bob"]`),
		chromedp.WaitVisible(`#detail-chart canvas`),
	); err != nil {
		t.Fatalf("open bob's card on the phone: %v", err)
	}
	if w := must(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("with the card open the page is %d px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, art, "s4-subscribers-phone")
	t.Logf("screenshots in %s", art)
}
