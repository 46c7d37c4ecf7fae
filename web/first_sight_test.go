package web

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// firstMinutes is a router's first three minutes: a download of 1 MB and
// an upload of 100 kB every 10 seconds, from 170 to 10 seconds before now.
type firstMinutes struct {
	first          time.Time // the first flow's end
	bytesIn, bytes uint64    // downloads, everything
	flows          []store.Flow
}

func newFirstMinutes(now time.Time, routerID int64, exporter string) firstMinutes {
	var fm firstMinutes
	exp := netip.MustParseAddrPort(exporter + ":40000")
	local, remote := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("93.184.216.34")
	for s := 170; s >= 10; s -= 10 {
		end := now.Add(-time.Duration(s) * time.Second).UnixMilli()
		fm.flows = append(fm.flows,
			store.Flow{Exporter: exp, Version: 9, RouterID: routerID, Start: end - 1000, End: end, SrcAddr: remote, DstAddr: local,
				SrcPort: 443, DstPort: 50000, Proto: 6, Bytes: 1_000_000, Packets: 700, Direction: store.DirDownload, SrcAS: 15133},
			store.Flow{Exporter: exp, Version: 9, RouterID: routerID, Start: end - 1000, End: end, SrcAddr: local, DstAddr: remote,
				SrcPort: 50000, DstPort: 443, Proto: 6, Bytes: 100_000, Packets: 300, Direction: store.DirUpload, DstAS: 15133})
		fm.bytesIn += 1_000_000
		fm.bytes += 1_100_000
	}
	fm.first = now.Add(-170 * time.Second)
	return fm
}

// firstMinutesEnv is a console with one router added a moment ago that
// sent its first three minutes of flows.
func firstMinutesEnv(t testing.TB) (*env, store.Router, firstMinutes) {
	e := newEnv(t)
	e.login()
	gw := e.addRouter(datasetRouter())
	fm := newFirstMinutes(e.now, gw.ID, "127.0.0.2")
	e.ingest(fm.flows)
	return e, gw, fm
}

// TestFirstMinutesAPI checks what the console answers in a router's first
// minutes: every range's series starts at the first minute with traffic
// (since) in 1-minute buckets and holds every byte; the top lists' and
// the fleet's rates divide by the time with data, not by the range.
func TestFirstMinutesAPI(t *testing.T) {
	t.Parallel()
	e, gw, fm := firstMinutesEnv(t)
	firstMinute := fm.first.Truncate(time.Minute)
	for _, rng := range []string{"1h", "24h", "7d", "30d"} {
		var s Series
		e.getJSON(fmt.Sprintf("/api/v1/traffic?router=%d&range=%s", gw.ID, rng), &s)
		if s.Since != firstMinute.Unix() || s.Step != 60 || len(s.Times) == 0 || s.Times[0] != s.Since {
			t.Errorf("range %s: since %d, step %d, first bucket %v; want since %d (%s) in 1-minute buckets", rng, s.Since, s.Step, s.Times, firstMinute.Unix(), firstMinute)
		}
		var in float64
		for _, v := range s.BitsIn {
			in += v * float64(s.Step) / 8
		}
		if uint64(in+0.5) != fm.bytesIn {
			t.Errorf("range %s: %v bytes in, want %d", rng, in, fm.bytesIn)
		}
		// Rates over the time with data: 1 MB every 10 s.
		var top TopResult
		e.getJSON(fmt.Sprintf("/api/v1/top/local?router=%d&range=%s&limit=5", gw.ID, rng), &top)
		if want := e.now.Sub(firstMinute).Seconds(); top.Seconds != want {
			t.Errorf("range %s: top seconds %v, want %v (since the first minute)", rng, top.Seconds, want)
		}
		if len(top.Rows) != 1 || top.Rows[0].Bytes != fm.bytes {
			t.Errorf("range %s: top talkers %+v", rng, top.Rows)
		}
	}
	// A custom range is drawn as asked.
	var s Series
	from, to := e.now.Add(-2*time.Hour).UTC().Format(time.RFC3339), e.now.UTC().Format(time.RFC3339)
	e.getJSON(fmt.Sprintf("/api/v1/traffic?router=%d&from=%s&to=%s", gw.ID, from, to), &s)
	if s.Since != 0 || s.Times[0] > e.now.Add(-2*time.Hour).Unix() {
		t.Errorf("custom range: since %d, first bucket %d", s.Since, s.Times[0])
	}
	// The fleet's current rates: over the minutes since the first, not
	// over 5 minutes.
	var fleet []RouterView
	e.getJSON("/api/v1/routers", &fleet)
	secs := e.now.Sub(firstMinute).Seconds()
	if len(fleet) != 1 || fleet[0].BitsInPerSec != float64(fm.bytesIn)*8/secs {
		t.Errorf("fleet rates %+v, want in %v b/s", fleet, float64(fm.bytesIn)*8/secs)
	}
}

// TestRangeStartsWithData checks that a router with traffic from the
// range's start keeps the whole range and its rates divide by it.
func TestRangeStartsWithData(t *testing.T) {
	t.Parallel()
	e, gw1, _ := datasetEnv(t)
	var s Series
	e.getJSON(fmt.Sprintf("/api/v1/traffic?router=%d&range=1h", gw1.ID), &s)
	if s.Since != 0 || s.Times[0] > e.now.Add(-time.Hour).Unix() {
		t.Errorf("1h: since %d, first bucket %d, want the range's start %d", s.Since, s.Times[0], e.now.Add(-time.Hour).Unix())
	}
	var top TopResult
	e.getJSON(fmt.Sprintf("/api/v1/top/local?router=%d&range=1h", gw1.ID), &top)
	if top.Seconds != 3600 {
		t.Errorf("1h: top seconds %v, want 3600", top.Seconds)
	}
}

// TestBrowserFirstMinutes opens the router page of a router added three
// minutes ago, as a new user does: the 24 h, 7 d and 30 d charts draw its
// first minutes (no flat line), say since when, label the y-axis without
// repeated ticks, and the top tables name their columns.
func TestBrowserFirstMinutes(t *testing.T) {
	browsertest.Need(t)
	e := newEnv(t)
	e.login()
	gw := e.addRouter(datasetRouter())
	fm := newFirstMinutes(e.now, gw.ID, "127.0.0.2")
	// The subscriber of 10.0.0.5 also has 2001:db8::5, with less traffic:
	// two top-talker rows with one name.
	v6 := fm.flows[0]
	v6.DstAddr, v6.SrcAddr, v6.Bytes = netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("2606:2800:220:1::1"), 500_000
	if _, err := e.st.ApplySubscriberChanges(context.Background(), nil, []store.Subscriber{
		{Prefix: netip.MustParsePrefix("10.0.0.5/32"), Name: "Maria Garcia", Source: store.SourceCSV, ValidFrom: e.now.Add(-time.Hour)},
		{Prefix: netip.MustParsePrefix("2001:db8::5/128"), Name: "Maria Garcia", Source: store.SourceCSV, ValidFrom: e.now.Add(-time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	// A download through the router's NAT: the public destination before,
	// the customer's address after.
	nat := fm.flows[2]
	nat.DstAddr, nat.PostNATDstAddr, nat.PostNATDstPort = netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("10.0.0.5"), 50001
	nat.SrcPort = 8443
	e.ingest(append(fm.flows, v6, nat))
	ctx := browsertest.Start(t, 60*time.Second, nil)
	art := browsertest.Artifacts(t, "web-first-minutes")
	browserLogin(t, ctx, e.ts.URL)
	for i, rng := range []string{"24h", "7d", "30d"} {
		if err := chromedp.Do(ctx,
			chromedp.Navigate(fmt.Sprintf("%s/routers/%d?range=%s", e.ts.URL, gw.ID, rng)),
			chromedp.WaitReady(`#main[data-loaded-ms]`),
		); err != nil {
			t.Fatalf("router page %s: %v", rng, err)
		}
		// Three minutes of flows: at least two finished minutes drawn.
		if points := must(t, ctx, chromedp.Evaluate[int](`Number(document.getElementById("chart").dataset.points)`)); points < 2 {
			t.Errorf("%s: the chart drew %d points, want the first minutes", rng, points)
		}
		if n := must(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart canvas").length`)); n == 0 {
			t.Errorf("%s: no chart", rng)
		}
		note := must(t, ctx, chromedp.Text(`#chart-note`))
		if !strings.Contains(note, "collecting since ") || !strings.Contains(note, "average per 1 min") {
			t.Errorf("%s: chart note %q, want collecting since and 1-minute buckets", rng, note)
		}
		if since := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("chart").dataset.since`)); since != fmt.Sprint(fm.first.Truncate(time.Minute).Unix()) {
			t.Errorf("%s: since %q", rng, since)
		}
		if head := must(t, ctx, chromedp.Text(`#top-local thead`)); !strings.Contains(head, "Avg rate") || !strings.Contains(head, "Volume") {
			t.Errorf("%s: top talkers columns %q", rng, head)
		}
		screenshot(t, ctx, art, fmt.Sprintf("%d-router-%s", i, rng))
	}
	// The subscriber's IPv4 and IPv6 rows are told apart by their family,
	// before the address (which a narrow table cuts off).
	rows := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#top-local tbody tr[data-key] td.key")].map(td => td.textContent)`))
	if want := []string{"Maria Garcia v4 10.0.0.5", "Maria Garcia v6 2001:db8::5"}; !slices.Equal(rows, want) {
		t.Errorf("top talkers %q, want %q", rows, want)
	}
	// The y-axis labels of small and large scales never repeat.
	for _, splits := range []string{"[0, 0.2, 0.4, 0.6, 0.8, 1]", "[0, 500, 1000, 1500]", "[0, 2000000, 4000000]", "[0, 250000000, 500000000, 750000000]"} {
		labels := must(t, ctx, chromedp.Evaluate[[]string](`window.fbChart.axisBits(null, `+splits+`)`))
		seen := map[string]bool{}
		for _, l := range labels {
			if seen[l] {
				t.Errorf("y-axis for %s: %q repeats a label", splits, labels)
			}
			seen[l] = true
		}
	}
	if got := must(t, ctx, chromedp.Evaluate[[]string](`window.fbChart.axisBits(null, [0, 0.5, 1])`)); strings.Join(got, ",") != "0.0 b/s,0.5 b/s,1.0 b/s" {
		t.Errorf("y-axis labels %q", got)
	}
	// The flow search shows the inside address of the NATed download (the
	// one searched for), and keeps the search in the URL across a reload.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.ts.URL+"/flows"),
		chromedp.WaitVisible(`#flows tbody tr td.num`),
		chromedp.SetValue(`#f-range`, "1h"),
		chromedp.SendKeys(`#f-local`, "10.0.0.5"),
		chromedp.SendKeys(`#f-port`, "8443"),
		browsertest.ClickJS(`#search button[type="submit"]`),
	); err != nil {
		t.Fatalf("flow search: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#flows tbody tr td.dst").length === 1 && location.search.includes("port=8443")`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("flow search: %v", err)
	}
	if q := must(t, ctx, chromedp.Evaluate[string](`location.search`)); q != "?range=1h&local=10.0.0.5&port=8443" {
		t.Errorf("the search's URL is %q", q)
	}
	dst := func() (string, string) {
		return must(t, ctx, chromedp.Text(`#flows tbody tr td.dst`)), must(t, ctx, chromedp.Evaluate[string](`document.querySelector("#flows tbody tr td.dst").title`))
	}
	if text, title := dst(); text != "10.0.0.5:50001 NAT" || title != "before NAT: 203.0.113.1:50000" {
		t.Errorf("NATed download's destination %q (%q), want the inside address", text, title)
	}
	screenshot(t, ctx, art, "3-flows-nat")
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(`#flows tbody tr td.dst`)); err != nil {
		t.Fatalf("reload the search: %v", err)
	}
	if port, text := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("f-port").value`)), must(t, ctx, chromedp.Text(`#flows tbody tr td.dst`)); port != "8443" || text != "10.0.0.5:50001 NAT" {
		t.Errorf("after a reload: port field %q, row %q", port, text)
	}
}
