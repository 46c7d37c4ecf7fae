package web

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// lastedMinutes is the duration of an alert that started 40 minutes
// before the test looked, however long the test took to look.
var lastedMinutes = regexp.MustCompile(`^(4\d|5\d) min$`)

// TestBrowserAlerts follows an operator through an attack: the Fleet page
// shows no banner, then, without a reload, the banner of the new attack;
// the router page shows it too (the other router's does not); the Alerts
// page lists it first with its peak, and acknowledging it says by whom;
// the channels' "Send test" says whether the message was delivered; the
// alert's page shows the evidence, the target's traffic and the link to
// its flows.
func TestBrowserAlerts(t *testing.T) {
	browsertest.Need(t)
	status := newFakeAlertStatus()
	e := newEnv(t, withAlerts(status))
	e.login()
	gw1 := e.addRouter(datasetRouter()) // id 1, the exporter of dataset's flows
	gw2 := e.addRouter(store.Router{Name: "gw2", Address: "127.0.0.3:8728", State: store.StateConfigured})
	e.ingest(dataset(e.now))
	ended := e.now.Add(-2 * time.Hour)
	e.openAlert(store.Alert{Kind: store.AlertPortScan, Severity: store.SeverityWarning, RouterID: gw2.ID, Router: "gw2",
		Target: "10.9.0.1", Direction: "out", Started: e.now.Add(-3 * time.Hour), Ended: &ended, PeakPps: 900, PeakFlowsPerS: 850,
		Summary: "port scan by 10.9.0.1: 3100 hosts on tcp/22"})

	ctx := browsertest.Start(t, 120*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	base := e.ts.URL
	browserLogin(t, ctx, base)
	// The banner's first poll found no active alert.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("alerts-banner").dataset.count === "0"`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the fleet page's banner does not poll: %v", err)
	}
	if vis := must(t, ctx, chromedp.Evaluate[bool](`!document.getElementById("alerts-banner").classList.contains("hidden")`)); vis {
		t.Errorf("the banner shows without an active alert")
	}

	// An attack starts: the banner appears without a reload (it polls
	// every 15 s).
	attack := e.openAlert(attackAlert(gw1.ID, time.Now().Add(-40*time.Minute).Truncate(time.Second)))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.getElementById("alerts-banner").classList.contains("hidden")`,
		chromedp.WithPollingTimeout(40*time.Second))); err != nil {
		t.Fatalf("no banner within 40 s of the attack: %v", err)
	}
	// Its mitigation (a dry run) and notifications.
	mitAt := attack.Started.Add(20 * time.Second)
	if err := e.st.AddMitigationAction(t.Context(), &store.MitigationAction{At: mitAt, AlertID: attack.ID, Router: "gw1", Action: "add",
		Kind: "address-list", List: "flowbox-attacked", Address: "10.0.0.6", Timeout: time.Hour, DryRun: true, Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []store.NotificationAttempt{
		{At: mitAt, AlertID: attack.ID, Channel: "mail", Event: "opened", Attempt: 1, Error: "535 5.7.8 authentication failed"},
		{At: mitAt, AlertID: attack.ID, Channel: "ops", Event: "opened", Attempt: 1, OK: true},
	} {
		if err := e.st.AddNotificationAttempt(t.Context(), &n); err != nil {
			t.Fatal(err)
		}
	}
	banner := must(t, ctx, chromedp.TextContent(`#alerts-banner`))
	if banner != "1 active alert: udp-amplification on 10.0.0.6 (bob) · Open Alerts" {
		t.Errorf("the banner says %q", banner)
	}
	screenshot(t, ctx, art, "alerts-1-fleet-banner")

	// The router's page shows it; the other router's does not.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/routers/%d", base, gw1.ID)),
		chromedp.WaitVisible(`#alerts-banner a[data-id]`),
	); err != nil {
		t.Fatalf("router page banner: %v", err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/routers/%d", base, gw2.ID)),
		chromedp.WaitReady(`#alerts-banner[data-count="0"]`),
	); err != nil {
		t.Fatalf("gw2's page: %v", err)
	}

	// The Alerts page: the attack first, the past scan below.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/fleet"),
		browsertest.ClickJS(`#alerts-banner a.all`),
		chromedp.WaitVisible(fmt.Sprintf(`#active-alerts tbody tr[data-id="%d"]`, attack.ID)),
		chromedp.WaitVisible(`#past-alerts tbody tr[data-id]`),
		chromedp.WaitVisible(`#channels tbody tr[data-channel]`),
	); err != nil {
		t.Fatalf("alerts page: %v", err)
	}
	cells := `(sel) => [...document.querySelector(sel).cells].map((c) => c.textContent)`
	row := must(t, ctx, chromedp.Evaluate[[]string](`(`+cells+`)("#active-alerts tbody tr[data-id]")`))
	if len(row) != 9 || row[0] != "critical" || row[1] != "udp-amplification" || row[2] != "gw1" || row[3] != "10.0.0.6 bob" ||
		row[4] != "inbound" || !lastedMinutes.MatchString(row[6]) || row[7] != "1.25 Gb/s" || row[8] != "Acknowledge" {
		t.Errorf("the active alert's row is %q", row)
	}
	past := must(t, ctx, chromedp.Evaluate[[]string](`(`+cells+`)("#past-alerts tbody tr[data-id]")`))
	if len(past) != 9 || past[1] != "port-scan" || past[4] != "outbound" || past[6] != "1 h" || past[7] != "900 pkt/s" || past[8] != "—" {
		t.Errorf("the past alert's row is %q", past)
	}
	screenshot(t, ctx, art, "alerts-2-list")

	// Acknowledge.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#active-alerts tbody tr[data-id] button.ack`),
		chromedp.WaitVisible(`#active-alerts tbody tr[data-id] td.acked`),
	); err != nil {
		t.Fatalf("acknowledge: %v", err)
	}
	if ack := must(t, ctx, chromedp.TextContent(`#active-alerts tbody tr[data-id] td.acked`)); ack != "acknowledged by admin" {
		t.Errorf("after Acknowledge the row says %q", ack)
	}
	a, err := e.st.GetAlert(t.Context(), attack.ID)
	if err != nil || a.AckedBy != "admin" {
		t.Errorf("stored acknowledgement: %q %v", a.AckedBy, err)
	}

	// Send test: delivered to ops, refused by mail's server.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#channels button.send-test[data-channel="ops"]`),
		chromedp.WaitVisible(`#test-result.ok`),
	); err != nil {
		t.Fatalf("send test to ops: %v", err)
	}
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#channels button.send-test[data-channel="mail"]`),
		chromedp.WaitVisible(`#test-result.error`),
	); err != nil {
		t.Fatalf("send test to mail: %v", err)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#test-result`)); msg != "Test message to mail failed: cannot deliver to mail: cannot send mail: 535 5.7.8 authentication failed" {
		t.Errorf("the failed test says %q", msg)
	}
	if got := status.sends(); !slices.Equal(got, []string{"ops", "mail"}) {
		t.Errorf("test messages sent to %q", got)
	}
	screenshot(t, ctx, art, "alerts-3-acked-tested")

	// The filters narrow the list and stay in the URL.
	must(t, ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById("f-kind"); s.value = "port-scan";
		return s.dispatchEvent(new Event("change", {bubbles: true})); })()`))
	if err := chromedp.Do(ctx, chromedp.WaitNotPresent(`#active-alerts tbody tr[data-id]`)); err != nil {
		t.Fatalf("filter by kind: %v", err)
	}
	if loc := must(t, ctx, chromedp.Evaluate[string](`location.search`)); loc != "?kind=port-scan" {
		t.Errorf("the filtered page's URL has %q", loc)
	}

	// The alert's page: facts, evidence, chart, flows link.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/alerts/%d", base, attack.ID)),
		chromedp.WaitVisible(`#top-sources tbody tr[data-key]`),
		chromedp.WaitVisible(`#chart canvas`),
	); err != nil {
		t.Fatalf("alert page: %v", err)
	}
	sources := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#top-sources tbody tr, #top-ports tbody tr")].map((r) => [...r.cells].map((c) => c.textContent).join(" | "))`))
	want := []string{"198.51.100.23 | 6.00 GB | 5.00 M | 1.20 k", "203.0.113.77 | 3.00 GB | 2.00 M | 800",
		"udp/123 | 8.00 GB | 6.00 M | 1.80 k", "udp/53 | 1.00 GB | 1.00 M | 200"}
	if !slices.Equal(sources, want) {
		t.Errorf("the evidence is\n%q\nwant\n%q", sources, want)
	}
	measures := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#measures tbody tr")].map((r) => r.textContent)`))
	if !slices.Equal(measures, []string{"baseline bps2.40 Mb/s", "sources2", "udp share97.0 %"}) {
		t.Errorf("the measures are %q", measures)
	}
	if s := must(t, ctx, chromedp.TextContent(`#alert-summary`)); s != attack.Summary {
		t.Errorf("the summary is %q", s)
	}
	logs := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#mitigation-log tbody tr, #notification-log tbody tr")].map((r) => [...r.cells].slice(1).map((c) => c.textContent).join(" | "))`))
	if want := []string{"gw1 | add dry run | 10.0.0.6 | address-list flowbox-attacked | 1 h | ok",
		"ops | opened | 1 | ok", "mail | opened | 1 | error 535 5.7.8 authentication failed"}; !slices.Equal(logs, want) {
		t.Errorf("the mitigation and notification logs are\n%q\nwant\n%q", logs, want)
	}
	if acked := must(t, ctx, chromedp.TextContent(`#acked`)); !strings.HasPrefix(acked, "acknowledged by admin") {
		t.Errorf("the alert page says %q about the acknowledgement", acked)
	}
	if points := must(t, ctx, chromedp.Evaluate[int](`Number(document.getElementById("chart").dataset.points)`)); points < 3 {
		t.Errorf("the chart of 10.0.0.6 drew %d non-zero points, want its traffic every 10 min over 55 min", points)
	}
	href := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("flows-link").getAttribute("href")`))
	u, err := url.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/flows" || q.Get("host") != "10.0.0.6" || q.Get("router") != fmt.Sprint(gw1.ID) ||
		q.Get("from") != attack.Started.UTC().Format(time.RFC3339) || q.Get("to") == "" {
		t.Errorf("the flows link is %q", href)
	}
	screenshot(t, ctx, art, "alerts-4-detail")

	// The link opens the Flows page filtered by the target.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#flows-link`),
		chromedp.WaitVisible(`#flows tbody tr`),
	); err != nil {
		t.Fatalf("flows link: %v", err)
	}
	if host := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("f-host").value`)); host != "10.0.0.6" {
		t.Errorf("the Flows page's host is %q", host)
	}

	// A phone shows the Alerts page without horizontal scrolling.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/alerts"),
		chromedp.WaitVisible(`#active-alerts tbody tr[data-id]`),
	); err != nil {
		t.Fatalf("phone layout: %v", err)
	}
	if w := must(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the Alerts page is %d px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, art, "alerts-5-phone")
	t.Logf("screenshots in %s", art)
}
