package web

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// TestBrowserDomains follows an operator looking at domains: the router
// page's Domains table ranks the remote domains, says when the router is
// not its customers' resolver, and a click filters the page by the domain;
// the remote-host table shows names (reverse DNS marked); the Flows page
// filters by domain and shows the Domain column with the full name on
// hover; a subscriber's card lists her domains.
func TestBrowserDomains(t *testing.T) {
	browsertest.Need(t)
	video, cdn, dns := netip.MustParseAddr("142.250.1.10"), netip.MustParseAddr("151.101.1.1"), netip.MustParseAddr("8.8.8.8")
	names := &fakeDomains{names: map[netip.Addr]string{video: "rr3---sn-a.googlevideo.com", cdn: "www.example-news.com"},
		reverse: map[netip.Addr]string{dns: "dns.google"}}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Domains = names })
	e.login()
	gw := e.addRouter(datasetRouter())
	names.status = []map[string]any{{"router_id": gw.ID, "router": "gw1", "polls": 3, "names": 120, "resolver": "no",
		"warning": "gw1 is not its customers' DNS resolver (remote requests are off): domains are missing for most traffic."}}
	exp := netip.MustParseAddrPort("127.0.0.2:4000")
	local := netip.MustParseAddr("10.0.1.7")
	end := e.now.Add(-3 * time.Minute).UnixMilli()
	var flows []store.Flow
	add := func(remote netip.Addr, domain string, b uint64) {
		flows = append(flows, store.Flow{Exporter: exp, Version: 9, Start: end - 2000, End: end, SrcAddr: remote, DstAddr: local, Proto: 6,
			SrcPort: 443, DstPort: 50000, Bytes: b, Packets: 10, Direction: store.DirDownload, RemoteDomain: domain, Subscriber: "Maria"})
	}
	add(video, "googlevideo.com", 9_000_000)
	add(cdn, "example-news.com", 2_000_000)
	add(dns, "", 10_000)
	e.ingest(flows)

	ctx := browsertest.Start(t, 90*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	base := e.ts.URL
	browserLogin(t, ctx, base)
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/routers/%d?range=1h", base, gw.ID)),
		chromedp.WaitVisible(`#top-domain tbody tr td.key`),
		waitLoaded(),
	); err != nil {
		t.Fatalf("router page: %v", err)
	}
	domains := must(t, ctx, rowsText(`#top-domain`))
	if len(domains) != 3 || !strings.HasPrefix(domains[0], "googlevideo.com") || !strings.HasPrefix(domains[1], "example-news.com") || !strings.HasPrefix(domains[2], "unknown") {
		t.Errorf("domains table %q", domains)
	}
	if note := must(t, ctx, chromedp.TextContent(`#domains-note`)); !strings.Contains(note, "is not its customers' DNS resolver") {
		t.Errorf("domains note %q", note)
	}
	remotes := strings.Join(must(t, ctx, rowsText(`#top-remote`)), "\n")
	if !strings.Contains(remotes, "rr3---sn-a.googlevideo.com 142.250.1.10") || !strings.Contains(remotes, "dns.google rDNS 8.8.8.8") {
		t.Errorf("remote hosts:\n%s", remotes)
	}
	screenshot(t, ctx, art, "domains-1-router")

	// A click on a domain filters the page.
	if err := chromedp.Do(ctx, browsertest.ClickJS(`#top-domain tbody tr:first-child`),
		pollJS(`new URLSearchParams(location.search).get("domain") === "googlevideo.com"`),
		waitLoaded(),
	); err != nil {
		t.Fatalf("click on a domain: %v", err)
	}
	if rows := must(t, ctx, rowsText(`#top-remote`)); len(rows) != 1 || !strings.Contains(rows[0], "142.250.1.10") {
		t.Errorf("remote hosts of googlevideo.com: %q", rows)
	}
	screenshot(t, ctx, art, "domains-2-filtered")

	// The Flows page: the domain filter and column.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/flows?range=1h&domain=example-news.com"),
		chromedp.WaitVisible(`#flows tbody tr td.domain`)); err != nil {
		t.Fatalf("flows page: %v", err)
	}
	cells := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#flows tbody td.domain")].map((c) => c.textContent + "|" + c.title)`))
	if len(cells) != 1 || cells[0] != "example-news.com|www.example-news.com" {
		t.Errorf("domain cells %q", cells)
	}
	if v := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("f-domain").value`)); v != "example-news.com" {
		t.Errorf("domain filter field %q", v)
	}
	screenshot(t, ctx, art, "domains-3-flows")

	// The subscriber's card.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/subscribers?range=24h"),
		chromedp.WaitVisible(`#usage tbody tr.click`), browsertest.ClickJS(`#usage tbody tr.click`),
		chromedp.WaitVisible(`#detail-domains tbody tr td.key`)); err != nil {
		t.Fatalf("subscriber card: %v", err)
	}
	rows := must(t, ctx, rowsText(`#detail-domains`))
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "googlevideo.com") || !strings.HasPrefix(rows[2], "unknown") {
		t.Errorf("subscriber domains %q", rows)
	}
	screenshot(t, ctx, art, "domains-4-subscriber")
}

// pollJS waits until a JavaScript expression is true.
func pollJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg); err != nil {
			return fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return nil
	})
}

// TestBrowserTopPartial: when a filtered view's raw scan runs out of its
// budget, the router page's tables show the newest part of the range with
// a note saying how much was scanned, not an error.
func TestBrowserTopPartial(t *testing.T) {
	sqliteOnly(t, "partial answers come from the time budget of its raw scans; ClickHouse answers the whole range")
	browsertest.Need(t)
	e := newEnv(t)
	e.login()
	gw := e.addRouter(datasetRouter())
	exp := netip.MustParseAddrPort("127.0.0.2:4000")
	local, remote := netip.MustParseAddr("10.0.1.7"), netip.MustParseAddr("198.51.100.9")
	var flows []store.Flow
	for i := range 12 {
		end := e.now.Add(-time.Duration(i)*5*time.Minute - time.Minute).UnixMilli()
		flows = append(flows, store.Flow{Exporter: exp, Version: 9, Start: end - 1000, End: end, SrcAddr: remote, DstAddr: local, Proto: 17,
			SrcPort: 53, DstPort: 40000, Bytes: 1000, Packets: 1, Direction: store.DirDownload})
	}
	e.ingest(flows)
	e.srv.rawBudget, e.srv.quickBudget = time.Nanosecond, time.Nanosecond // every raw scan stops after its newest partition
	ctx := browsertest.Start(t, 60*time.Second, nil)
	browserLogin(t, ctx, e.ts.URL)
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/routers/%d?range=1h&port=53", e.ts.URL, gw.ID)),
		waitLoaded(), chromedp.WaitVisible(`#top-remote tbody tr.partial`)); err != nil {
		t.Fatalf("router page: %v", err)
	}
	if note := must(t, ctx, chromedp.TextContent(`#top-remote tbody tr.partial`)); !strings.HasPrefix(note, "scanned the last ") || !strings.Contains(note, "of 1 h") {
		t.Errorf("partial note %q", note)
	}
	if rows := must(t, ctx, rowsText(`#top-remote`)); len(rows) < 2 || !strings.Contains(rows[0], "198.51.100.9") {
		t.Errorf("partial table %q", rows)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#top-remote[data-passes="partial partial"]`)); err != nil {
		t.Errorf("the table was not asked quickly, then whole: %v", err)
	}
	if note := must(t, ctx, chromedp.TextContent(`#chart-note.warning`)); !strings.Contains(note, "scanned the last ") || strings.Contains(note, "scanning the rest") {
		t.Errorf("chart note %q", note)
	}
}

// TestBrowserProgressive: a filtered view that scans raw flows is asked
// quickly first (its newest part, with the note and "scanning the
// rest"), then whole: the chart and the tables end complete, without the
// note, having drawn both answers.
func TestBrowserProgressive(t *testing.T) {
	sqliteOnly(t, "partial answers come from the time budget of its raw scans; ClickHouse answers the whole range")
	browsertest.Need(t)
	e := newEnv(t)
	e.login()
	gw := e.addRouter(datasetRouter())
	exp := netip.MustParseAddrPort("127.0.0.2:4000")
	local, remote := netip.MustParseAddr("10.0.1.7"), netip.MustParseAddr("198.51.100.9")
	var flows []store.Flow
	for i := range 12 {
		end := e.now.Add(-time.Duration(i)*5*time.Minute - time.Minute).UnixMilli()
		flows = append(flows, store.Flow{Exporter: exp, Version: 9, Start: end - 1000, End: end, SrcAddr: remote, DstAddr: local, Proto: 17,
			SrcPort: 53, DstPort: 40000, Bytes: 1000, Packets: 1, Direction: store.DirDownload})
	}
	e.ingest(flows)
	e.srv.quickBudget = time.Nanosecond // the quick answer: the newest partition only
	ctx := browsertest.Start(t, 60*time.Second, nil)
	browserLogin(t, ctx, e.ts.URL)
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/routers/%d?range=1h&port=53", e.ts.URL, gw.ID)),
		waitLoaded(), chromedp.WaitVisible(`#top-remote[data-passes="partial full"]`), chromedp.WaitVisible(`#chart[data-passes="partial full"]`)); err != nil {
		t.Fatalf("router page: %v", err)
	}
	if n := must(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("tr.partial").length`)); n != 0 {
		t.Errorf("%d partial notes left in the tables", n)
	}
	if rows := must(t, ctx, rowsText(`#top-remote`)); len(rows) < 1 || !strings.Contains(rows[0], "198.51.100.9") || !strings.Contains(rows[0], "12.0 kB") {
		t.Errorf("the whole table %q, want 12 flows of 1 kB", rows)
	}
	if note := must(t, ctx, chromedp.TextContent(`#chart-note`)); strings.Contains(note, "scanned the last") {
		t.Errorf("chart note %q after the whole answer", note)
	}
}
