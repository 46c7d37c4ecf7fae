package web

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// TestBrowserSubscribers opens the Subscribers page on the known dataset:
// the week's table lists alice and bob with their totals, a click on alice
// charts her traffic, her card's links open her flows and the router page
// filtered by her, a search narrows the table, and a phone shows the page
// without horizontal scrolling.
//
// The page computes its periods in the browser's time zone, so the browser
// runs in a fixed zone without daylight saving time (and with a half-hour
// offset): in the host's zone, "Last 7 days" (from midnight six days ago)
// is longer than 7 days late in the evening of a week where the clocks went
// back, and the chart falls back to days.
func TestBrowserSubscribers(t *testing.T) {
	browsertest.Need(t)
	e, gw1, flows := datasetEnv(t)
	want, wantTot := wantUsage(flows, func(*store.Flow) bool { return true })
	ctx := browsertest.Start(t, 90*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	base := e.ts.URL
	if err := chromedp.Do(ctx, browserTimezone("Asia/Kolkata")); err != nil {
		t.Fatal(err)
	}
	browserLogin(t, ctx, base)
	if off := must(t, ctx, chromedp.Evaluate[int](`new Date().getTimezoneOffset()`)); off != -330 {
		t.Fatalf("the page runs %d minutes behind UTC, want Asia/Kolkata's -330", off)
	}

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
	// "Last seen" has its date (the table spans days), in the browser's
	// English: "Dec 6, 10:05 AM".
	for _, seen := range must(t, ctx, chromedp.Evaluate[[]string](rows+`.map(r => r.lastElementChild.textContent)`)) {
		if !regexp.MustCompile(`^[A-Z][a-z]{2} \d{1,2}, \d{2}:\d{2}`).MatchString(seen) {
			t.Errorf("last seen %q, want a date and a time", seen)
		}
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
	gw1ID := strconv.FormatInt(gw1.ID, 10)
	routerHref := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("detail-router-link").getAttribute("href")`))
	if routerHref != "/routers/"+gw1ID+"?subscriber=alice&range=24h" {
		t.Errorf("the router link is %q", routerHref)
	}
	if text := must(t, ctx, chromedp.TextContent(`#detail-router-link`)); text != "Router page for alice" {
		t.Errorf("the router link says %q", text)
	}
	flowsHref := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("detail-flows-link").getAttribute("href")`))
	if !strings.HasPrefix(flowsHref, "/flows?subscriber=alice&router="+gw1ID+"&from=") || !strings.Contains(flowsHref, "&to=") {
		t.Errorf("the flows link is %q", flowsHref)
	}
	screenshot(t, ctx, art, "s2-subscribers-alice")

	// The card's flows link: the Flows page lists alice's flows only.
	if err := chromedp.Do(ctx,
		chromedp.Click(`#detail-flows-link`),
		chromedp.WaitVisible(`#flows tbody tr td.subscriber`),
	); err != nil {
		t.Fatalf("open alice's flows: %v", err)
	}
	cells := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#flows tbody tr")].map(r => { const c = r.querySelector("td.subscriber"); return c ? c.textContent : "(no subscriber cell)"; })`))
	if len(cells) == 0 || slices.ContainsFunc(cells, func(c string) bool { return c != "alice" }) {
		t.Errorf("alice's flows show the subscribers %q", cells)
	}
	if v := must(t, ctx, chromedp.Evaluate[[]string](`["f-subscriber", "f-router", "f-range"].map(id => document.getElementById(id).value)`)); !slices.Equal(v, []string{"alice", gw1ID, "custom"}) {
		t.Errorf("the flow search form says subscriber, router, range %q", v)
	}
	screenshot(t, ctx, art, "s2a-flows-alice")

	// The card's router page link: filtered by alice, whose only host is
	// 10.0.0.5.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+routerHref),
		chromedp.WaitVisible(`#filters .chip[data-filter="subscriber"]`),
	); err != nil {
		t.Fatalf("open the router page of alice: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("main").dataset.loadedMs !== undefined`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the router page does not load: %v", err)
	}
	if chips := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#filters .chip")].map(c => c.firstChild.textContent)`)); !slices.Equal(chips, []string{"subscriber = alice"}) {
		t.Errorf("the router page's filters are %q", chips)
	}
	if talkers := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#top-local tbody tr")].map(r => r.dataset.key || r.textContent)`)); !slices.Equal(talkers, []string{"10.0.0.5"}) {
		t.Errorf("alice's top talkers are %q, want 10.0.0.5 only", talkers)
	}
	if loc := must(t, ctx, chromedp.Location()); !strings.Contains(loc, "subscriber=alice") {
		t.Errorf("the router page's URL %s lost the filter", loc)
	}
	if href := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("flows-link").getAttribute("href")`)); !strings.Contains(href, "subscriber=alice") {
		t.Errorf("the router page's flows link %q lost the filter", href)
	}
	screenshot(t, ctx, art, "s2b-router-alice")

	// The chip removes the filter: every talker is back.
	if err := chromedp.Do(ctx,
		chromedp.Click(`#filters .chip[data-filter="subscriber"] button`),
		chromedp.WaitNotPresent(`#filters .chip`),
	); err != nil {
		t.Fatalf("remove the subscriber filter: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#top-local tbody tr.click").length === 3 && !location.search.includes("subscriber")`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Errorf("without the subscriber filter the router page does not show the 3 talkers: %v", err)
	}

	// Back to the week's table.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/subscribers?period=7d")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](rows+`.length === 2`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("back on the subscribers page: %v", err)
	}

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

// browserTimezone makes the tab's pages run in the time zone tz (an IANA
// name) instead of the host's.
func browserTimezone(tz string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: tz}); err != nil {
			return chromedp.Void{}, fmt.Errorf("cannot set the browser's time zone to %s: %w", tz, err)
		}
		return chromedp.Void{}, nil
	}
}
