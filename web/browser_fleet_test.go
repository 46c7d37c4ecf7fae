package web

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// untrusted is the collector's counters of a source that is neither an
// onboarded router nor allowed: its flows are counted, not stored.
func untrusted(addr string, packets, flows uint64, first, last time.Time) store.ExporterStats {
	return store.ExporterStats{Exporter: netip.MustParseAddr(addr), Packets: packets, FlowsReceived: flows,
		FlowsDropped: map[string]uint64{store.DropUntrusted: flows}, FirstSeen: first, LastSeen: last}
}

// TestBrowserFleetTrust opens the Fleet page while the store cannot write
// and three unknown sources send flows: the banner says why flows are not
// stored, the router row shows its dropped flows by reason, and the
// Unknown exporters card lists the sources. The auto-refresh clears the
// banner once the store writes again and lists a new source; Accept
// allows a source's /32 or /128 and removes its row; Onboard opens the Add
// router form with the source's address.
func TestBrowserFleetTrust(t *testing.T) {
	browsertest.Need(t)
	health := &fakeHealth{}
	trust := &fakeTrust{}
	e := newEnv(t, func(_ *Config, d *Deps) {
		d.Health, d.Trust = health, trust
		trust.coll = d.Collector.(*fakeCollector)
	})
	e.login()
	gw1 := e.addRouter(datasetRouter())
	now := time.Now()
	health.set(store.Health{OK: false, Error: "cannot write flows: database or disk is full", Since: now.Add(-7 * time.Minute),
		DroppedFlows: 512, DroppedBatches: 2, QueueLength: 64, QueueCapacity: 64})
	gwStats := store.ExporterStats{Exporter: netip.MustParseAddr("127.0.0.2"), RouterID: gw1.ID, Trusted: true,
		Packets: 900, FlowsReceived: 9000, FlowsStored: 8960, Templates: 2, FirstSeen: now.Add(-time.Hour), LastSeen: now,
		FlowsDropped: map[string]uint64{store.DropQueueFull: 0, store.DropWriteError: 40, store.DropUntrusted: 0}}
	unknown := []store.ExporterStats{
		gwStats,
		untrusted("198.51.100.9", 12, 340, now.Add(-time.Hour), now.Add(-5*time.Second)),
		untrusted("203.0.113.4", 3, 90, now.Add(-30*time.Minute), now.Add(-time.Minute)),
		untrusted("2001:db8::7", 1, 20, now.Add(-2*time.Hour), now.Add(-10*time.Minute)),
	}
	e.coll.set(unknown)

	ctx := browsertest.Start(t, 90*time.Second, nil)
	art := browsertest.Artifacts(t, "web")
	base := e.ts.URL
	browserLogin(t, ctx, base)
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`#store-alert`),
		chromedp.WaitVisible(`#unknown tbody tr[data-exporter]`),
		chromedp.WaitVisible(`#fleet tbody tr[data-id]`),
	); err != nil {
		t.Fatalf("the fleet page shows no banner or no unknown exporter: %v", err)
	}
	banner := must(t, ctx, chromedp.TextContent(`#store-alert`))
	if !strings.HasPrefix(banner, "Flows are not being stored: cannot write flows: database or disk is full since ") ||
		!strings.Contains(banner, "(7 min ago); 512 flows dropped.") || !strings.Contains(banner, "Write queue: 64 of 64 batches.") {
		t.Errorf("the banner says %q", banner)
	}
	rows := `[...document.querySelectorAll("#unknown tbody tr[data-exporter]")]`
	// Address, packets, flows received, first and last seen (its time on
	// hover), the most recently heard first.
	got := must(t, ctx, chromedp.Evaluate[[]string](rows+`.map(r => [r.cells[0].firstChild.textContent, r.cells[1].textContent, r.cells[2].textContent,
		r.cells[3].title === "" ? "" : "first", r.cells[4].textContent.endsWith(" ago") ? "ago" : r.cells[4].textContent].join(" | "))`))
	want := []string{
		"198.51.100.9 | 12 | 340 | first | ago",
		"203.0.113.4 | 3 | 90 | first | ago",
		"2001:db8::7 | 1 | 20 | first | ago",
	}
	if !slices.Equal(got, want) {
		t.Errorf("the unknown exporters are\n%q\nwant\n%q", got, want)
	}
	if why := must(t, ctx, chromedp.TextContent(`#unknown-card p.muted`)); why != "Flows from sources that are neither an onboarded router nor allowed are counted, not stored." {
		t.Errorf("the card explains %q", why)
	}
	drop := must(t, ctx, chromedp.Evaluate[[]string](`(() => { const c = document.querySelector("#fleet tbody tr[data-id] td[data-dropped]"); return [c.textContent, c.title, c.className]; })()`))
	if !slices.Equal(drop, []string{"40", "write error 40", "num opt bad"}) {
		t.Errorf("gw1's dropped flows cell is %q", drop)
	}
	screenshot(t, ctx, art, "fleet-1-store-unknown")

	// A phone shows the banner and the card without horizontal scrolling.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Reload(),
		chromedp.WaitVisible(`#store-alert`),
		chromedp.WaitVisible(`#unknown tbody tr[data-exporter]`),
	); err != nil {
		t.Fatalf("phone layout: %v", err)
	}
	if w := must(t, ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the fleet page is %d px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, art, "fleet-2-phone")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1000), chromedp.Reload(), chromedp.WaitVisible(`#unknown tbody tr[data-exporter]`)); err != nil {
		t.Fatal(err)
	}

	// The store writes again, but cannot pack closed partitions into
	// blocks, and a fourth source appears: the next auto-refresh (every
	// 10 s) shows both, the banner saying what packing does not do.
	health.set(store.Health{OK: true, Since: time.Now(), DroppedFlows: 512, DroppedBatches: 2, QueueCapacity: 64,
		PackErrors: 3, PackError: "cannot pack raw flows of raw_202612061010: damaged raw flow row"})
	e.coll.set(append(unknown, untrusted("192.0.2.77", 1, 5, time.Now(), time.Now())))
	poll := `!document.getElementById("store-alert").classList.contains("hidden") && document.getElementById("store-alert").textContent.startsWith("Raw flows") && ` +
		rows + `.length === 4`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](poll, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the auto-refresh does not replace the banner or list the new source: %v", err)
	}
	if banner := must(t, ctx, chromedp.TextContent(`#store-alert`)); banner != "Raw flows are not being packed: cannot pack raw flows of raw_202612061010: damaged raw flow row (3 failed attempts). They stay readable, but take more disk and scan slower." {
		t.Errorf("the packing banner says %q", banner)
	}

	// Accept: the /32 (and an IPv6 source's /128) is allowed, the row goes
	// and the page says that its flows are stored from now on.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#unknown tbody tr[data-exporter="198.51.100.9"] button.accept`),
		chromedp.WaitNotPresent(`#unknown tbody tr[data-exporter="198.51.100.9"]`),
		chromedp.WaitVisible(`#fleet-notice`),
	); err != nil {
		t.Fatalf("accept 198.51.100.9: %v", err)
	}
	if msg := must(t, ctx, chromedp.TextContent(`#fleet-notice`)); msg != "Accepted 198.51.100.9/32: flows from it are stored from now on." {
		t.Errorf("after Accept the page says %q", msg)
	}
	screenshot(t, ctx, art, "fleet-3-accepted")
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#unknown tbody tr[data-exporter="2001:db8::7"] button.accept`),
		chromedp.WaitNotPresent(`#unknown tbody tr[data-exporter="2001:db8::7"]`),
	); err != nil {
		t.Fatalf("accept 2001:db8::7: %v", err)
	}
	if p := trust.prefixes(); !slices.Equal(p, []string{"198.51.100.9/32", "2001:db8::7/128"}) {
		t.Errorf("the accepted prefixes are %q", p)
	}
	if left := must(t, ctx, chromedp.Evaluate[[]string](rows+`.map(r => r.dataset.exporter)`)); !slices.Equal(left, []string{"192.0.2.77", "203.0.113.4"}) {
		t.Errorf("after two accepts the card lists %q", left)
	}

	// Onboard: the Add router form opens with the source's address, and
	// connects to it.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#unknown tbody tr[data-exporter="203.0.113.4"] button.onboard`),
		chromedp.WaitVisible(`#add-form`),
	); err != nil {
		t.Fatalf("onboard 203.0.113.4: %v", err)
	}
	form := must(t, ctx, chromedp.Evaluate[[]string](`[document.getElementById("add-address").value, document.activeElement.id]`))
	if !slices.Equal(form, []string{"203.0.113.4", "add-password"}) {
		t.Errorf("the form has the address and focus %q, want 203.0.113.4 and the password", form)
	}
	screenshot(t, ctx, art, "fleet-4-onboard")
	// API-SSL and a least-privilege router user are the defaults; the
	// plain API is an explicit choice that shows a warning.
	defaults := `[document.getElementById("add-api-ssl").checked, document.getElementById("add-create-user").checked,
		!document.getElementById("add-plain-warning").classList.contains("hidden")]`
	if got := must(t, ctx, chromedp.Evaluate[[]bool](defaults)); !slices.Equal(got, []bool{true, true, false}) {
		t.Errorf("form defaults (API-SSL, create user, plain warning shown) = %v, want [true true false]", got)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`#add-api-plain`), chromedp.WaitVisible(`#add-plain-warning`)); err != nil {
		t.Fatalf("choose the plain API: %v", err)
	}
	if w := must(t, ctx, chromedp.TextContent(`#add-plain-warning`)); !strings.Contains(w, "unencrypted") {
		t.Errorf("the plain API warning says %q", w)
	}
	pin := strings.Repeat("ab", 32)
	e.prov.setPresented(pin)
	if err := chromedp.Do(ctx,
		chromedp.Click(`#add-api-ssl`),
		chromedp.WaitNotVisible(`#add-plain-warning`),
		chromedp.SendKeys(`#add-password`, "router-secret"),
		chromedp.Click(`#add-connect`),
		chromedp.WaitVisible(`#add-plan-table tbody tr`),
		chromedp.WaitVisible(`#add-fingerprint`),
	); err != nil {
		t.Fatalf("connect to the onboarded source: %v", err)
	}
	if fp := must(t, ctx, chromedp.TextContent(`#add-fingerprint`)); !strings.Contains(fp, pin) {
		t.Errorf("after connecting the form shows %q, want the pinned fingerprint", fp)
	}
	if sp := e.prov.spec(); !sp.TLS || !sp.CreateUser {
		t.Errorf("the form sent %+v, want tls and create_user", sp)
	}
	routers, err := e.st.ListRouters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(routers, func(r store.Router) bool { return r.Address == "203.0.113.4:8729" }) {
		t.Errorf("no router at 203.0.113.4:8729 (API-SSL) after Onboard: %+v", routers)
	}
	t.Logf("screenshots in %s", art)
}
