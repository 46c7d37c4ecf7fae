package web

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/internal/testutil"
)

// pdfPage matches a page object of a PDF (not the /Pages tree).
var pdfPage = regexp.MustCompile(`/Type\s*/Page\b[^s]`)

// setValue sets a form field from inside the page, as a paste would, and
// fires its events.
func setValue(sel, v string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = %q;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return e.value === %q; })()`, sel, v, v)
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg); err != nil {
			return fmt.Errorf("cannot set %s to %q: %w", sel, v, err)
		}
		return nil
	})
}

// waitLoaded waits until the page has every answer (#main gets
// data-loaded-ms when the lookup and "who had it" answered).
func waitLoaded() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`document.getElementById("main").dataset.loadedMs !== undefined`,
			chromedp.WithPollingTimeout(20*time.Second))(ctx, tg)
		if err != nil {
			return fmt.Errorf("the page did not finish loading: %w", err)
		}
		return nil
	})
}

// rowsText returns each row of a table body as its cells' text joined by
// " | ".
func rowsText(sel string) chromedp.Action[[]string] {
	return chromedp.Evaluate[[]string](fmt.Sprintf(`[...document.querySelectorAll(%q)].map((r) => [...r.cells].map((c) => c.innerText.replace(/\n/g, " / ")).join(" | "))`, sel+" tbody tr"))
}

// TestBrowserAbuseLookup follows an operator answering an abuse complaint:
// the time zone defaults to the browser's; the complaint's local time in
// São Paulo asks the right instant; the answer names alice with her
// mapping in both zones, the evidence flows and who had the inside
// address; the URL keeps the query (a reload answers again); printing
// hides the navigation and buttons and fits on one or two pages of A4 and
// Letter; the CSV downloads; an old complaint finds bob (port reuse) with
// raw flows gone; a time without a mapping says so and asks who had the
// address itself; "who had it?" answers for a public address without NAT.
func TestBrowserAbuseLookup(t *testing.T) {
	browsertest.Need(t)
	nat := &fakeNAT{}
	e := newEnv(t, withNAT(nat))
	e.login()
	e.addRouter(datasetRouter())

	ctx := browsertest.Start(t, 120*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	dl := t.TempDir()
	base := e.ts.URL
	// The browser is in Tokyo whatever the machine's zone.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	browserLogin(t, ctx, base)

	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`header.top nav a[href="/abuse"]`),
		chromedp.WaitVisible(`#lookup`),
		waitLoaded(),
	); err != nil {
		t.Fatalf("abuse page: %v", err)
	}
	if tz := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("f-tz").value`)); tz != "Asia/Tokyo" {
		t.Errorf("the zone is %q by default, want the browser's Asia/Tokyo", tz)
	}
	if n, _ := nat.count(); n != 0 {
		t.Errorf("the empty page looked up %d times", n)
	}

	// The complaint: 203.0.113.7 port 51234/tcp at 11:02:11 in São Paulo.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`#f-address`, "203.0.113.7"),
		chromedp.SendKeys(`#f-port`, "51234"),
		setValue(`#f-proto`, "tcp"),
		chromedp.SendKeys(`#f-at`, "2026-03-03 11:02:11"),
		setValue(`#f-tz`, "America/Sao_Paulo"),
		browsertest.ClickJS(`#lookup-go`),
		waitLoaded(),
		chromedp.WaitVisible(`#answer`),
	); err != nil {
		t.Fatalf("look up: %v", err)
	}
	if q := nat.lastQuery(t); !q.At.Equal(complaintAt) || q.Public != complaintAddr || q.Port != 51234 || q.Proto != 6 || q.Window != 2*time.Minute {
		t.Errorf("the page asked %+v, want 203.0.113.7:51234/tcp at %v ±2m", q, complaintAt)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#nat-message`)); msg != "203.0.113.7 port 51234 was 100.64.1.10 port 40000 on gw1: alice (customer C-1001)." {
		t.Errorf("the answer says %q", msg)
	}
	matches := must(t, ctx, rowsText(`#matches`))
	want := []string{"gw1 | tcp | 203.0.113.7:51234 | 100.64.1.10:40000 | 192.0.2.80:443 | 2026-03-03 11:01:50 GMT-3 / 2026-03-03 14:01:50 UTC | " +
		"2026-03-03 11:02:40 GMT-3 / 2026-03-03 14:02:40 UTC | alice | C-1001"}
	if !slices.Equal(matches, want) {
		t.Errorf("the mappings are\n%q\nwant\n%q", matches, want)
	}
	facts := must(t, ctx, rowsText(`#query-facts`))
	if !slices.Equal(facts, []string{"Public address | 203.0.113.7 port 51234 tcp", "Time | 2026-03-03 11:02:11 GMT-3 / 2026-03-03 14:02:11 UTC",
		"Window | ± 2m0s", "Raw flows of that time | still kept"}) {
		t.Errorf("the query facts are %q", facts)
	}
	flows := must(t, ctx, rowsText(`#evidence`))
	if len(flows) != 2 || !strings.Contains(flows[0], "gw1 | 100.64.1.10:40000 | 192.0.2.80:443 | tcp | 1.50 kB | 3 | upload | alice") ||
		!strings.HasPrefix(flows[1], "2026-03-03 11:02:10 GMT-3 / 2026-03-03 14:02:10 UTC") {
		t.Errorf("the evidence flows are %q", flows)
	}
	if vis := must(t, ctx, chromedp.Evaluate[bool](`document.getElementById("flows-note").classList.contains("hidden")`)); !vis {
		t.Errorf("the page says raw flows are gone while they are kept")
	}
	who := must(t, ctx, rowsText(`#who-facts`))
	if want := []string{"Address | 100.64.1.10", "Time | 2026-03-03 11:02:11 GMT-3 / 2026-03-03 14:02:11 UTC", "Holder | alice",
		"Customer ID | C-1001", "Learned from | dhcp on gw1", "Prefix | 100.64.1.10/32",
		"Held from | 2026-03-03 08:02:11 GMT-3 / 2026-03-03 11:02:11 UTC", "Held until | still held"}; !slices.Equal(who, want) {
		t.Errorf("who had the inside address: %q", who)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#who-message`)); msg != "alice had 100.64.1.10 (dhcp on gw1)." {
		t.Errorf("who had it says %q", msg)
	}
	// The query is in the URL.
	loc := must(t, ctx, chromedp.Evaluate[string](`location.href`))
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); u.Path != "/abuse" || q.Get("address") != "203.0.113.7" || q.Get("port") != "51234" || q.Get("proto") != "tcp" ||
		q.Get("at") != "2026-03-03 11:02:11" || q.Get("tz") != "America/Sao_Paulo" || q.Get("window") != "2m" {
		t.Errorf("the page's URL is %q", loc)
	}
	csvHref := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("csv").getAttribute("href")`))
	if cu, err := url.Parse(csvHref); err != nil || cu.Path != "/api/v1/nat/lookup.csv" || cu.RawQuery != u.RawQuery {
		t.Errorf("the Save CSV link is %q, want the lookup's query %q", csvHref, u.RawQuery)
	}
	screenshot(t, ctx, art, "abuse-1-answer")

	// Print: no navigation, form or buttons; the printed line says when.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	hidden := must(t, ctx, chromedp.Evaluate[[]string](`["header.top", "#lookup", "#print", "#csv", "#who", "footer.attribution"].
		filter((s) => { const e = document.querySelector(s); return e && getComputedStyle(e).display !== "none"; })`))
	if len(hidden) != 0 {
		t.Errorf("printing shows %q", hidden)
	}
	if printed := must(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("printed")).display + " " + document.getElementById("printed").textContent`)); !strings.HasPrefix(printed, "block Looked up on ") ||
		!strings.Contains(printed, " by admin with flowbox: "+base+"/abuse?") {
		t.Errorf("the printed line is %q", printed)
	}
	screenshot(t, ctx, art, "abuse-2-print-media")
	for _, paper := range []struct {
		name string
		size chromedp.PaperSize
	}{{"a4", chromedp.PaperA4}, {"letter", chromedp.PaperLetter}} {
		pdf := must(t, ctx, chromedp.PrintToPDF(chromedp.PDFPaper(paper.size)))
		if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Fatalf("the %s print is not a PDF: %.20q", paper.name, pdf)
		}
		if err := os.WriteFile(filepath.Join(art, "abuse-print-"+paper.name+".pdf"), pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		if pages := len(pdfPage.FindAll(pdf, -1)); pages < 1 || pages > 2 {
			t.Errorf("the %s print has %d pages, want 1 or 2", paper.name, pages)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: ""})
		return err
	})); err != nil {
		t.Fatal(err)
	}

	// Save CSV downloads the answer.
	if err := chromedp.Do(ctx, browsertest.ClickJS(`#csv`)); err != nil {
		t.Fatal(err)
	}
	csvFile := filepath.Join(dl, "abuse-203.0.113.7-51234-20260303T140211Z.csv")
	testutil.WaitFor(t, 10*time.Second, "the CSV to download", func() (bool, string) {
		if _, err := os.Stat(csvFile); err == nil {
			return true, ""
		}
		m, _ := filepath.Glob(filepath.Join(dl, "*"))
		return false, fmt.Sprintf("the download directory holds %q", m)
	})
	b, err := os.ReadFile(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "# query: address=203.0.113.7 port=51234 proto=tcp at=2026-03-03T14:02:11Z (2026-03-03T11:02:11-03:00 America/Sao_Paulo)") ||
		!strings.Contains(string(b), "\ngw1,tcp,203.0.113.7,51234,100.64.1.10,40000,192.0.2.80,443,2026-03-03T14:01:50Z,2026-03-03T14:02:40Z,alice,C-1001\n") {
		t.Errorf("the downloaded CSV is\n%s", b)
	}
	if err := os.WriteFile(filepath.Join(art, "abuse-lookup.csv"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	// The URL alone answers again (a shared link).
	lookups, _ := nat.count()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(loc),
		waitLoaded(),
		chromedp.WaitVisible(`#answer`),
	); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if n, _ := nat.count(); n != lookups+1 || !nat.lastQuery(t).At.Equal(complaintAt) {
		t.Errorf("the shared link looked up %d times, at %v", n-lookups, nat.lastQuery(t).At)
	}
	if got := must(t, ctx, chromedp.Evaluate[[]string](`["f-address", "f-port", "f-proto", "f-at", "f-tz", "f-window"].map((id) => document.getElementById(id).value)`)); !slices.Equal(got, []string{"203.0.113.7", "51234", "tcp", "2026-03-03 11:02:11", "America/Sao_Paulo", "2m"}) {
		t.Errorf("the shared link fills the form with %q", got)
	}
	if s := must(t, ctx, chromedp.TextContent(`#matches tbody tr td.subscriber`)); s != "alice" {
		t.Errorf("the shared link names %q", s)
	}

	// An old complaint, pasted with its offset: the same public port was
	// bob's in December, and raw flows of that time are gone.
	if err := chromedp.Do(ctx,
		setValue(`#f-at`, "2025-12-01T05:00:30-03:00"),
		browsertest.ClickJS(`#lookup-go`),
		waitLoaded(),
	); err != nil {
		t.Fatal(err)
	}
	if s := must(t, ctx, chromedp.TextContent(`#matches tbody tr td.subscriber`)); s != "bob" {
		t.Errorf("December's complaint names %q, want bob", s)
	}
	if note := must(t, ctx, chromedp.TextContent(`#flows-note`)); !strings.HasPrefix(note, "Raw flows of that time are no longer kept") {
		t.Errorf("the evidence says %q", note)
	}
	if n := must(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#evidence tbody tr").length`)); n != 0 {
		t.Errorf("%d evidence flows for December", n)
	}
	screenshot(t, ctx, art, "abuse-3-old-no-flows")

	// No mapping then: the message says so, and "who had it" asks about
	// the address itself (nobody).
	if err := chromedp.Do(ctx,
		setValue(`#f-at`, "2026-03-03T18:00:00Z"),
		browsertest.ClickJS(`#lookup-go`),
		waitLoaded(),
	); err != nil {
		t.Fatal(err)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#nat-message`)); msg != "No NAT mapping of 203.0.113.7 within ±2m0s of 2026-03-03T18:00:00Z: nobody behind this router used it then." {
		t.Errorf("without a mapping the page says %q", msg)
	}
	if rows := must(t, ctx, rowsText(`#matches`)); !slices.Equal(rows, []string{"No NAT mapping in the window."}) {
		t.Errorf("without a mapping the table shows %q", rows)
	}
	if h := must(t, ctx, chromedp.TextContent(`#who-facts td.holder`)); h != "nobody" {
		t.Errorf("who had 203.0.113.7: %q", h)
	}

	// A public address without NAT: carol's.
	if err := chromedp.Do(ctx,
		setValue(`#who-address`, "198.51.100.20"),
		browsertest.ClickJS(`#who-go`),
		waitLoaded(),
	); err != nil {
		t.Fatal(err)
	}
	if h := must(t, ctx, chromedp.TextContent(`#who-facts td.holder`)); h != "carol" {
		t.Errorf("who had 198.51.100.20: %q", h)
	}
	if w := must(t, ctx, chromedp.Evaluate[string](`new URLSearchParams(location.search).get("who")`)); w != "198.51.100.20" {
		t.Errorf("the URL keeps who=%q", w)
	}
	// A bad time says which parameter is wrong.
	if err := chromedp.Do(ctx,
		setValue(`#f-at`, "2026-03-03 11:02:11 BRT"),
		browsertest.ClickJS(`#lookup-go`),
		waitLoaded(),
		chromedp.WaitVisible(`#lookup-error`),
	); err != nil {
		t.Fatal(err)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#lookup-error`)); !strings.HasPrefix(msg, `Cannot look up: at: "2026-03-03 11:02:11 BRT" is not a time`) {
		t.Errorf("a bad time says %q", msg)
	}
	screenshot(t, ctx, art, "abuse-4-who-and-error")

	// A phone shows the page without horizontal scrolling.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(loc),
		waitLoaded(),
		chromedp.WaitVisible(`#answer`),
	); err != nil {
		t.Fatalf("phone layout: %v", err)
	}
	if w := must(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the Abuse lookup page is %d px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, art, "abuse-5-phone")
	t.Logf("screenshots in %s", art)
}
