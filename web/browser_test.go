package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/internal/testutil"
)

// screenshot saves a full-page PNG of the tab as dir/name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if err := browsertest.Screenshot(ctx, dir, name); err != nil {
		t.Fatal(err)
	}
}

// must runs one action that returns a value.
func must[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBrowser(t *testing.T) {
	browsertest.Need(t)
	e, gw1, _ := datasetEnv(t)
	// The browser starts after the server so that it stops first: an
	// open page would keep the server's Close waiting.
	ctx := browsertest.Start(t, 150*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	base := e.ts.URL

	// Log in through the form.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/fleet"),
		chromedp.WaitVisible(`#login-form`),
		chromedp.SendKeys(`#username`, "admin"),
		chromedp.SendKeys(`#password`, testPassword),
	); err != nil {
		t.Fatalf("login page: %v", err)
	}
	screenshot(t, ctx, art, "0-login")
	if err := chromedp.Do(ctx,
		chromedp.Submit(`#login-form`),
		chromedp.WaitVisible(`#fleet tbody a.router-link`),
	); err != nil {
		t.Fatalf("log in: %v", err)
	}
	screenshot(t, ctx, art, "1-fleet")

	// Add a router through the form: connect, plan, apply, verify.
	if err := chromedp.Do(ctx,
		chromedp.Click(`#add-open`),
		chromedp.WaitVisible(`#add-form`),
		chromedp.SendKeys(`#add-address`, "192.0.2.50"),
		chromedp.SendKeys(`#add-name`, "tower-3"),
		chromedp.SendKeys(`#add-password`, "router-secret"),
		chromedp.Click(`#add-connect`),
		chromedp.WaitVisible(`#add-plan-table tbody tr`),
	); err != nil {
		t.Fatalf("add router: %v", err)
	}
	screenshot(t, ctx, art, "2-add-plan")
	if err := chromedp.Do(ctx,
		chromedp.Click(`#add-apply`),
		chromedp.WaitVisible(`.verify-result .badge.ok`),
	); err != nil {
		t.Fatalf("apply and verify: %v", err)
	}
	if verify := must(t, ctx, chromedp.Text(`.verify-result`)); !strings.Contains(verify, "Verify: flows arriving") {
		t.Errorf("verification shows %q", verify)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#fleet tbody tr[data-id]").length === 3`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Errorf("the fleet does not show 3 routers after the add: %v", err)
	}
	screenshot(t, ctx, art, "3-add-verified")

	// The router page: chart points and top talkers.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/routers/%d", base, gw1.ID)),
		chromedp.WaitVisible(`#chart canvas`),
		chromedp.WaitVisible(`#top-local tbody tr.click`),
		chromedp.WaitVisible(`#top-as tbody tr.click`),
	); err != nil {
		t.Fatalf("router page: %v", err)
	}
	if points := must(t, ctx, chromedp.Evaluate[int](`Number(document.getElementById("chart").dataset.points)`)); points < 100 {
		t.Errorf("the chart drew %d non-zero points, want at least 100 over 24 h", points)
	}
	if talkers := must(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#top-local tbody tr.click").length`)); talkers != 3 {
		t.Errorf("%d top talkers, want 3", talkers)
	}
	screenshot(t, ctx, art, "4-router")

	// The protocols table (from the rollups); a click on udp filters the
	// ports table down to udp/53.
	if protos := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#top-proto tbody tr.click")].map(r => r.dataset.key + " " + r.querySelector("td.key").textContent)`)); !slices.Equal(protos, []string{"6 tcp", "17 udp"}) {
		t.Errorf("protocols table %q, want tcp then udp", protos)
	}
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#top-proto tbody tr[data-key="17"]`),
		chromedp.WaitVisible(`#filters .chip[data-filter="proto"]`),
	); err != nil {
		t.Fatalf("click a protocol: %v", err)
	}
	poll := `(() => { const k = [...document.querySelectorAll("#top-port tbody tr.click")].map(r => r.dataset.key);
		return k.length === 1 && k[0] === "udp/53"; })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](poll, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the ports are not filtered by protocol 17: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(`#filters .chip button`),
		chromedp.WaitNotPresent(`#filters .chip`),
	); err != nil {
		t.Fatalf("remove the protocol filter: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#top-port tbody tr.click").length > 1`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the ports are not unfiltered: %v", err)
	}

	// A click on the first talker filters the whole page by it.
	firstKey := must(t, ctx, chromedp.Evaluate[string](`document.querySelector("#top-local tbody tr.click").dataset.key`))
	// Click the row of that key: the table may re-render (a late answer
	// of the unfiltered view) between reading the key and the click.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#top-local tbody tr.click[data-key="`+firstKey+`"]`),
		chromedp.WaitVisible(`#filters .chip`),
	); err != nil {
		t.Fatalf("click a talker: %v", err)
	}
	chip := must(t, ctx, chromedp.Text(`#filters .chip`))
	url := must(t, ctx, chromedp.Location())
	if !strings.Contains(chip, "host = "+firstKey) || !strings.Contains(url, "host="+firstKey) {
		t.Errorf("after the click: chip %q, url %q; want host = %s", chip, url, firstKey)
	}
	poll = `(() => { const k = [...document.querySelectorAll("#top-conversation tbody tr.click")].map(r => r.dataset.key);
		return k.length > 0 && k.every(x => x.startsWith("` + firstKey + `|")); })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](poll, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the conversations are not filtered by %s: %v", firstKey, err)
	}
	screenshot(t, ctx, art, "5-router-filtered")

	// A click on a conversation filters by the pair: the local and the
	// remote host together; then a click on a country adds it.
	pair := must(t, ctx, chromedp.Evaluate[string](`document.querySelectorAll("#top-conversation tbody tr.click")[1].dataset.key`))
	l, r, _ := strings.Cut(pair, "|")
	if err := chromedp.Do(ctx,
		chromedp.Click(`#filters .chip button`),
		chromedp.WaitNotPresent(`#filters .chip`),
		browsertest.ClickJS(fmt.Sprintf(`#top-conversation tbody tr[data-key="%s"]`, pair)),
		chromedp.WaitVisible(`#filters .chip[data-filter="remote"]`),
	); err != nil {
		t.Fatalf("click a conversation: %v", err)
	}
	chips := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#filters .chip")].map(c => c.firstChild.textContent)`))
	if !slices.Equal(chips, []string{"local host = " + l, "remote host = " + r}) {
		t.Errorf("after a click on %s the filters are %q", pair, chips)
	}
	poll = `(() => { const k = [...document.querySelectorAll("#top-conversation tbody tr.click")].map(r => r.dataset.key);
		return k.length === 1 && k[0] === "` + pair + `"; })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](poll, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the conversations are not filtered by the pair %s: %v", pair, err)
	}
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#top-country tbody tr.click`),
		chromedp.WaitVisible(`#filters .chip[data-filter="country"]`),
	); err != nil {
		t.Fatalf("click a country: %v", err)
	}
	if loc := must(t, ctx, chromedp.Location()); !strings.Contains(loc, "local="+l) || !strings.Contains(loc, "remote="+r) || !strings.Contains(loc, "country=") {
		t.Errorf("the URL %s does not keep the three filters", loc)
	}
	screenshot(t, ctx, art, "5a-router-conversation-country")

	// A host filter over a week: raw flows are only kept for 48 h, and the
	// page says so once, above the chart, instead of failing in each table.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/routers/%d?range=7d&host=10.0.1.7", base, gw1.ID)),
		chromedp.WaitVisible(`#page-notice`),
	); err != nil {
		t.Fatalf("filter beyond the raw window: %v", err)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#page-notice`)); msg != "filters on hosts work on the last 48 h; pick a shorter range" {
		t.Errorf("the page says %q", msg)
	}
	if cells := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("table.top tbody td")].map(c => c.textContent)`)); len(cells) != 8 || slices.ContainsFunc(cells, func(c string) bool { return c != "—" }) {
		t.Errorf("the top tables show %q, want a dash each", cells)
	}
	screenshot(t, ctx, art, "5b-router-raw-window")

	// The flow search and the CSV download.
	dl := t.TempDir()
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl})
			return err
		}),
		chromedp.Navigate(base+"/flows?proto=udp"),
		chromedp.WaitVisible(`#flows tbody tr td.num`),
	); err != nil {
		t.Fatalf("flows page: %v", err)
	}
	screenshot(t, ctx, art, "6-flows")
	if err := chromedp.Do(ctx, chromedp.Click(`#csv`)); err != nil {
		t.Fatalf("click CSV: %v", err)
	}
	var csvFile string
	testutil.WaitFor(t, 10*time.Second, "the CSV export to download", func() (bool, string) {
		matches, _ := filepath.Glob(filepath.Join(dl, "*"))
		for _, m := range matches {
			if strings.HasSuffix(m, ".csv") {
				csvFile = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("the download directory holds %q", matches)
	})
	b, err := os.ReadFile(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines < 100 || !strings.HasPrefix(string(b), "end,start,") {
		t.Errorf("downloaded CSV has %d lines", lines)
	}

	// Settings, and the phone layout of the router page.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/settings"),
		chromedp.WaitVisible(`#settings tbody tr`),
		chromedp.WaitVisible(`#users tbody tr`),
	); err != nil {
		t.Fatalf("settings page: %v", err)
	}
	if cells := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#settings tbody td")].map(c => c.textContent)`)); !slices.Equal(cells, []string{":2055, :4739", "48 h", "—", "—"}) {
		t.Errorf("settings show %q", cells)
	}
	screenshot(t, ctx, art, "7-settings")
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(fmt.Sprintf("%s/routers/%d", base, gw1.ID)),
		chromedp.WaitVisible(`#top-local tbody tr.click`),
	); err != nil {
		t.Fatalf("phone layout: %v", err)
	}
	if w := must(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the router page is %d px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, art, "8-router-phone")

	// Remove gw2 from its page: back on the fleet, which says so and no
	// longer lists it.
	gw2 := e.routerID("gw2")
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 1000),
		chromedp.Navigate(fmt.Sprintf("%s/routers/%d", base, gw2)),
		chromedp.WaitVisible(`#btn-remove`),
		chromedp.Click(`#btn-remove`),
		chromedp.WaitVisible(`#remove-form`),
	); err != nil {
		t.Fatalf("open the remove form: %v", err)
	}
	screenshot(t, ctx, art, "9-router-remove")
	if err := chromedp.Do(ctx,
		chromedp.Click(`#remove-undo`),
		chromedp.Click(`#remove-confirm`),
		chromedp.WaitVisible(`#fleet-notice`),
		chromedp.WaitVisible(`#fleet tbody tr[data-id]`),
	); err != nil {
		t.Fatalf("remove a router: %v", err)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#fleet-notice`)); msg != "Removed gw2." {
		t.Errorf("the fleet says %q after the removal", msg)
	}
	if ids := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#fleet tbody tr[data-id]")].map(r => r.dataset.id)`)); slices.Contains(ids, strconv.FormatInt(gw2, 10)) {
		t.Errorf("the fleet still lists gw2 (%q)", ids)
	}
	if _, err := e.st.GetRouterByID(context.Background(), gw2); err == nil {
		t.Error("gw2 is still in the store")
	}
	t.Logf("screenshots in %s", art)
}

// browserLogin logs the browser in through the login form.
func browserLogin(tb testing.TB, ctx context.Context, base string) {
	tb.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login?next=%2Ffleet"),
		chromedp.WaitVisible(`#login-form`),
		chromedp.SendKeys(`#username`, "admin"),
		chromedp.SendKeys(`#password`, testPassword),
		chromedp.Submit(`#login-form`),
		chromedp.WaitVisible(`#fleet`),
	); err != nil {
		tb.Fatalf("log in: %v", err)
	}
}

// BenchmarkRouterPageFirstPaint opens the router page (24 h of the known
// dataset) with the browser cache disabled, as on a first visit, and reports
// the first contentful paint and the time until the chart and every table
// have their data, both from the start of the navigation.
func BenchmarkRouterPageFirstPaint(b *testing.B) {
	browsertest.Need(b)
	e, gw1, _ := datasetEnv(b)
	ctx := browsertest.Start(b, 90*time.Second, nil)
	browserLogin(b, ctx, e.ts.URL)
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		b.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		b.Fatal(err)
	}
	page := fmt.Sprintf("%s/routers/%d?range=24h", e.ts.URL, gw1.ID)
	var fcp, loaded float64
	n := 0
	for b.Loop() {
		if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitReady(`#main[data-loaded-ms]`)); err != nil {
			b.Fatal(err)
		}
		t := must(b, ctx, chromedp.Evaluate[[]float64](`[(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime,
			Number(document.getElementById("main").dataset.loadedMs)]`))
		if t[0] < 0 {
			b.Fatal("no first-contentful-paint entry")
		}
		fcp += t[0]
		loaded += t[1]
		n++
	}
	b.ReportMetric(fcp/float64(n), "fcp-ms")
	b.ReportMetric(loaded/float64(n), "data-ms")
}
