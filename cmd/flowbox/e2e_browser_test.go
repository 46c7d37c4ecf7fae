package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/provision"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/web"
)

// TestBrowserEndToEnd drives the real product with headless Chromium: the
// whole app (collector, enrichment, store, provisioner, console) runs
// in-process on loopback next to two simulated MikroTik routers. One router
// is onboarded the way `flowbox demo` does; the other is added through the
// console's "Add router" form (connect, plan as a diff, apply, live
// verification). The test then waits for the first minute rollups, checks
// the router page (chart points, top talkers named after subscribers, AS
// names), filters the page with a click, downloads the flows as CSV, and
// checks the phone layout. Screenshots of every page go to
// $FLOWBOX_ARTIFACTS/e2e.
func TestBrowserEndToEnd(t *testing.T) {
	browsertest.Need(t)
	start := time.Now()
	art := browsertest.Artifacts(t, "e2e")
	logFile, err := os.Create(filepath.Join(art, "flowbox.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	a := startE2EApp(t, logFile)
	fl := startE2EFleet(t, 2, 300, slog.New(slog.NewTextHandler(logFile, nil)).With("component", "fleet"))
	api := a.apiClient(t)
	ctx := context.Background()

	// Router 0 (RouterOS v6) is onboarded the way `flowbox demo` does it.
	r0 := fl.Routers()[0]
	if _, _, err := a.prov.Add(ctx, provision.AddRequest{Name: r0.Identity, Address: r0.APIAddr(),
		Username: r0.Username, Password: r0.Password}); err != nil {
		t.Fatalf("cannot add %s: %v", r0.Identity, err)
	}
	if _, err := a.prov.Apply(ctx, r0.Identity); err != nil {
		t.Fatalf("cannot provision %s: %v", r0.Identity, err)
	}

	b := newE2EBrowser(t, 4*time.Minute, art)
	t.Cleanup(func() {
		if errs := b.jsErrors(); len(errs) > 0 {
			t.Errorf("JavaScript errors on the pages: %q", errs)
		}
	})

	// Log in.
	b.do(t, "login page",
		chromedp.Navigate(a.base+"/fleet"),
		chromedp.WaitVisible(`#login-form`),
		chromedp.SendKeys(`#username`, "admin"),
		chromedp.SendKeys(`#password`, e2eAdminPassword))
	b.screenshot(t, art, "01-login")
	b.do(t, "log in",
		chromedp.Submit(`#login-form`),
		chromedp.WaitVisible(`#fleet tbody a.router-link`))
	b.screenshot(t, art, "02-fleet")

	// Add router 1 (RouterOS v7) through the form, leaving the name empty
	// (it defaults to the router's identity).
	r1 := fl.Routers()[1]
	b.do(t, "add router: connect",
		chromedp.Click(`#add-open`),
		chromedp.WaitVisible(`#add-form`),
		chromedp.SendKeys(`#add-address`, r1.APIAddr()),
		chromedp.Clear(`#add-username`),
		chromedp.SendKeys(`#add-username`, r1.Username),
		chromedp.SendKeys(`#add-password`, r1.Password),
		// The simulated routers serve the plain API only (API-SSL is the
		// form's default); flowbox creates its own user on the router.
		chromedp.Click(`#add-api-plain`),
		chromedp.Click(`#add-connect`))
	b.waitJS(t, "add router: plan or error", `!document.getElementById("add-plan").classList.contains("hidden") ||
		!document.getElementById("add-error").classList.contains("hidden")`, 30*time.Second)
	if msg := e2eEval[string](t, b, `document.getElementById("add-error").classList.contains("hidden") ? "" : document.getElementById("add-error").textContent`); msg != "" {
		b.screenshot(t, art, "03-add-error")
		t.Fatalf("adding %s through the form failed: %s", r1.Identity, msg)
	}
	// The plan is a diff: each setting with its current and new value, and
	// the target points at the collector's real port.
	diff := e2eEval[[][]string](t, b, `[...document.querySelectorAll("#add-plan-table tbody tr")].map(r => [...r.cells].map(c => c.textContent))`)
	var targetRow bool
	for _, row := range diff {
		if len(row) != 3 {
			t.Fatalf("plan row %q: want setting, now, after", row)
		}
		if strings.Contains(row[2], fmt.Sprint(a.netflowPort)) {
			targetRow = true
		}
	}
	if len(diff) < 2 || !targetRow {
		t.Errorf("the plan %q does not point the router at port %d", diff, a.netflowPort)
	}
	if summary := e2eEval[string](t, b, `document.getElementById("add-plan-summary").textContent`); !strings.Contains(summary, r1.Identity) {
		t.Errorf("plan summary %q does not name %s", summary, r1.Identity)
	}
	b.screenshot(t, art, "03-add-plan")

	// Apply; the verification waits for the router's first flows and turns
	// into a success.
	b.do(t, "apply", chromedp.Click(`#add-apply`))
	b.waitJS(t, "verification result", `document.querySelector(".verify-result .badge") !== null &&
		!document.querySelector(".verify-result").textContent.includes("Verifying")`, 60*time.Second)
	if ok := e2eEval[bool](t, b, `document.querySelector(".apply-result .badge.ok") !== null && document.querySelector(".verify-result .badge.ok") !== null`); !ok {
		b.screenshot(t, art, "04-add-failed")
		t.Fatalf("apply/verify: %q", e2eEval[string](t, b, `document.getElementById("add-result").textContent`))
	}
	if v := e2eEval[string](t, b, `document.querySelector(".verify-result").textContent`); !strings.Contains(v, "flows arrive") {
		t.Errorf("verification result %q", v)
	}
	b.screenshot(t, art, "04-add-verified")

	var routers []web.RouterView
	if err := api.get("/routers", &routers); err != nil {
		t.Fatal(err)
	}
	var id1 int64
	for _, r := range routers {
		if r.Identity == r1.Identity {
			id1 = r.ID
			if r.Name != r1.Identity || r.State != store.StateConfigured {
				t.Errorf("added router: name %q state %q, want %q configured", r.Name, r.State, r1.Identity)
			}
		}
	}
	if len(routers) != 2 || id1 == 0 {
		t.Fatalf("the fleet holds %+v, want both routers", routers)
	}

	// The fleet shows both routers online.
	b.do(t, "close the add form", chromedp.Click(`#add-done`))
	b.waitJS(t, "both routers online",
		`document.querySelectorAll('#fleet tbody tr[data-status="online"]').length === 2`, 30*time.Second)
	b.screenshot(t, art, "05-fleet-online")

	// Wait until the minute rollups hold a closed minute of router 1's
	// traffic (the store writes them once a minute; the chart does not
	// draw the minute still open), so that the chart has data to draw.
	trafficPath := fmt.Sprintf("/traffic?router=%d&range=1h", id1)
	testutil.WaitFor(t, 150*time.Second, "a closed minute of traffic", func() (bool, string) {
		var s web.Series
		if err := api.get(trafficPath, &s); err != nil {
			t.Fatal(err)
		}
		// Buckets still open are not drawn: count the closed ones.
		n := 0
		for i := range s.Times {
			if s.BitsIn[i] > 0 && s.Times[i]+s.Step <= s.Now {
				n++
			}
		}
		return n >= 1, fmt.Sprintf("after %v the traffic series has %d non-zero points", time.Since(start).Round(time.Second), n)
	})

	// Now that the rollups hold its traffic, the fleet shows the router's
	// current rates.
	b.do(t, "reload the fleet", chromedp.Reload(), chromedp.WaitVisible(fmt.Sprintf(`#fleet tbody tr[data-id="%d"]`, id1)))
	rates := e2eEval[[]string](t, b, fmt.Sprintf(`[...document.querySelectorAll('#fleet tbody tr[data-id="%d"] td.num')].map(c => c.textContent)`, id1))
	var fps float64
	if len(rates) < 3 {
		t.Fatalf("fleet row cells %q", rates)
	}
	if _, err := fmt.Sscanf(rates[0], "%f", &fps); err != nil || fps <= 0 || !strings.HasSuffix(rates[1], "b/s") || strings.HasPrefix(rates[1], "0 ") {
		t.Errorf("the fleet shows flows/s %q, in %q for a router sending %d flows/s", rates[0], rates[1], 300)
	}
	b.screenshot(t, art, "05b-fleet-rates")

	// The router page, opened from the fleet.
	b.do(t, "open the router page",
		chromedp.Click(fmt.Sprintf(`#fleet tbody tr[data-id="%d"] a.router-link`, id1)),
		chromedp.WaitVisible(`#chart canvas`))
	b.do(t, "pick the last hour",
		chromedp.Click(`#ranges button[data-range="1h"]`),
		chromedp.WaitVisible(`#top-local tbody tr.click`),
		chromedp.WaitVisible(`#top-as tbody tr.click`))
	b.waitJS(t, "chart points", `Number(document.getElementById("chart").dataset.points) >= 1`, 20*time.Second)
	if n := e2eEval[int](t, b, `Number(document.getElementById("chart").dataset.length)`); n <= 1 {
		t.Errorf("the chart's data has %d points", n)
	}
	paint := e2eEval[float64](t, b, `(() => { const p = performance.getEntriesByName("first-contentful-paint")[0]; return p ? p.startTime : -1; })()`)
	t.Logf("router page: first contentful paint after %.0f ms", paint)

	// Top talkers are named after the subscribers the enrichment learned
	// from the router's API.
	// The router names PPPoE customers by their login, DHCP ones by the
	// lease comment (the customer's name).
	subs := map[string][2]string{}
	for _, s := range r1.Model.Subscribers() {
		subs[s.Addr.String()] = [2]string{s.Name, s.Login}
	}
	b.waitJS(t, "subscriber names", `document.querySelector("#top-local tbody tr.click .name") !== null`, 30*time.Second)
	talkers := e2eEval[[][]string](t, b, `[...document.querySelectorAll("#top-local tbody tr.click")].map(r => [r.dataset.key, (r.querySelector(".name")||{}).textContent||""])`)
	named := 0
	for _, tk := range talkers {
		if tk[1] == "" {
			continue
		}
		named++
		if want, ok := subs[tk[0]]; ok && tk[1] != want[0] && tk[1] != want[1] {
			t.Errorf("talker %s is named %q, want %q or %q", tk[0], tk[1], want[0], want[1])
		}
	}
	if named == 0 {
		t.Errorf("no top talker has a subscriber name: %q", talkers)
	}
	// Remote AS rows read "AS15169 Google LLC".
	asRows := e2eEval[[]string](t, b, `[...document.querySelectorAll("#top-as tbody tr.click td.key")].map(c => c.textContent)`)
	withName := 0
	for _, row := range asRows {
		if !strings.HasPrefix(row, "AS") {
			t.Errorf("AS row %q does not start with the AS number", row)
		}
		if asn, name, ok := strings.Cut(row, " "); ok && name != "" {
			withName++
			var n uint32
			fmt.Sscanf(asn, "AS%d", &n)
			want := a.enricher.ASName(n)
			if n == 0 {
				want = "private or unknown"
			}
			if want != name {
				t.Errorf("AS row %q, want the name %q", row, want)
			}
		}
	}
	if withName == 0 {
		t.Errorf("no remote AS row carries a name: %q", asRows)
	}
	// Protocols (from the rollups): the simulated subscribers use TCP and
	// UDP at least.
	b.waitJS(t, "protocols", `(() => { const k = [...document.querySelectorAll("#top-proto tbody tr.click td.key")].map(c => c.textContent);
		return k.includes("tcp") && k.includes("udp"); })()`, 20*time.Second)
	b.screenshot(t, art, "06-router")

	// A click on the first talker filters the whole page: the chip and the
	// URL change, and the conversations only involve that host.
	host := e2eEval[string](t, b, `document.querySelector("#top-local tbody tr.click").dataset.key`)
	if _, err := netip.ParseAddr(host); err != nil {
		t.Fatalf("top talker key %q is not an address", host)
	}
	b.do(t, "click a talker", // that row: the table may re-render between reading and clicking
		browsertest.ClickJS(`#top-local tbody tr.click[data-key="`+host+`"]`),
		chromedp.WaitVisible(`#filters .chip`))
	chip := e2eEval[string](t, b, `document.querySelector("#filters .chip").textContent`)
	loc := e2eEval[string](t, b, `location.search`)
	if !strings.Contains(chip, "host = "+host) || !strings.Contains(loc, "host="+host) {
		t.Errorf("after the click: chip %q, URL %q; want host = %s", chip, loc, host)
	}
	b.waitJS(t, "filtered conversations", `(() => { const k = [...document.querySelectorAll("#top-conversation tbody tr.click")].map(r => r.dataset.key);
		return k.length > 0 && k.every(x => x.split("|").includes("`+host+`")); })()`, 20*time.Second)
	b.waitJS(t, "filtered talkers", `(() => { const k = [...document.querySelectorAll("#top-local tbody tr.click")].map(r => r.dataset.key);
		return k.length > 0 && k[0] === "`+host+`"; })()`, 20*time.Second)
	b.screenshot(t, art, "07-router-filtered")

	// The flows of the filtered view, and their CSV export.
	dl := filepath.Join(art, "downloads")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dl, "*.csv"))
	for _, f := range old {
		os.Remove(f)
	}
	b.do(t, "open the flows",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl})
			return err
		}),
		chromedp.Click(`#flows-link`),
		chromedp.WaitVisible(`#flows tbody tr td.num`))
	if v := e2eEval[string](t, b, `document.getElementById("f-host").value`); v != host {
		t.Errorf("the flows page's host filter is %q, want %s", v, host)
	}
	// The flow table names the remote side's AS.
	asCells := e2eEval[[]string](t, b, `[...document.querySelectorAll("#flows tbody tr")].map(r => r.cells[r.cells.length - 1].textContent)`)
	if !slices.ContainsFunc(asCells, func(c string) bool {
		n, name, _ := strings.Cut(c, " ")
		return strings.HasPrefix(n, "AS") && name != ""
	}) {
		t.Errorf("no flow names its remote AS: %q", asCells)
	}
	b.screenshot(t, art, "08-flows")
	b.do(t, "export CSV", chromedp.Click(`#csv`))
	// Chromium writes the download to a .crdownload file, renamed when
	// complete.
	var file string
	testutil.WaitFor(t, 20*time.Second, "the CSV export to download", func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(dl, "*"))
		for _, f := range m {
			if strings.HasSuffix(f, ".csv") {
				file = f
				return true, ""
			}
		}
		return false, fmt.Sprintf("the download directory holds %q", m)
	})
	checkE2ECSV(t, file, host, id1)

	// The router's own traffic (its NTP and DNS from its WAN address) is
	// shown as the router's, never as an unnamed customer's.
	wan := r1.Model.PublicAddr().String()
	b.do(t, "the router's own flows",
		chromedp.Navigate(fmt.Sprintf("%s/flows?router=%d&host=%s&range=1h", a.base, id1, wan)))
	b.waitJS(t, "the router's own flows listed", `document.querySelectorAll("#flows tbody tr td.num").length > 0`, 60*time.Second)
	type ownRow struct {
		Src, Dst, Dir, Sub string
		Badge              bool
	}
	own := e2eEval[[]ownRow](t, b, `[...document.querySelectorAll("#flows tbody tr")].map(r => ({
		Src: r.cells[2].textContent, Dst: r.cells[3].textContent, Dir: r.cells[7].textContent,
		Sub: r.cells[8].textContent, Badge: !!r.cells[8].querySelector(".badge")}))`)
	routerFlows := 0
	for _, r := range own {
		fromWAN := strings.HasPrefix(r.Src, wan+":") || r.Src == wan
		toWAN := strings.HasPrefix(r.Dst, wan+":") || r.Dst == wan
		if (r.Dir == "download" || r.Dir == "upload") && strings.TrimSpace(r.Sub) == "" {
			t.Errorf("a customer flow without a name on the Flows page: %+v", r)
		}
		if r.Dir == "router-out" || r.Dir == "router-in" {
			routerFlows++
			if !r.Badge || !strings.Contains(r.Sub, r1.Identity) || !(fromWAN || toWAN) {
				t.Errorf("router flow shown as %+v, want the router %s with its badge", r, r1.Identity)
			}
		}
	}
	if routerFlows == 0 {
		t.Errorf("the Flows page shows none of the router's own flows from %s: %+v", wan, own)
	}
	b.screenshot(t, art, "08b-router-own-flows")

	// The settings show the running configuration.
	b.do(t, "settings", chromedp.Navigate(a.base+"/settings"), chromedp.WaitVisible(`#settings tbody tr`), chromedp.WaitVisible(`#users tbody tr`))
	settings := e2eEval[[]string](t, b, `[...document.querySelectorAll("#settings tbody td")].map(c => c.textContent)`)
	if want := []string{fmt.Sprintf("127.0.0.1:%d", a.netflowPort), "sqlite", "48 h", "14 d", "400 d"}; !slices.Equal(settings, want) {
		t.Errorf("settings show %q, want %q", settings, want)
	}
	b.screenshot(t, art, "09-settings")

	// The phone layout: no horizontal scrolling.
	b.do(t, "phone layout",
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(fmt.Sprintf("%s/routers/%d?range=1h", a.base, id1)),
		chromedp.WaitVisible(`#top-local tbody tr.click`),
		chromedp.WaitVisible(`#chart canvas`))
	if w := e2eEval[int](t, b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the router page is %d px wide on a 390 px phone", w)
	}
	b.screenshot(t, art, "10-router-phone")
	b.do(t, "phone fleet", chromedp.Navigate(a.base+"/fleet"), chromedp.WaitVisible(`#fleet tbody a.router-link`))
	if w := e2eEval[int](t, b, `document.querySelector("#fleet").scrollWidth`); w > 390 {
		t.Errorf("the fleet table is %d px wide on a 390 px phone", w)
	}
	b.screenshot(t, art, "11-fleet-phone")
	t.Logf("end-to-end browser test took %v; screenshots in %s", time.Since(start).Round(time.Second), art)
}

// checkE2ECSV checks a downloaded export: the header, at least one flow,
// every flow of the router and involving host.
func checkE2ECSV(t *testing.T, file, host string, routerID int64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("the CSV export is not CSV: %v", err)
	}
	if len(recs) < 2 || !slices.Equal(recs[0], store.CSVHeader) {
		t.Fatalf("the CSV export has %d records, header %q", len(recs), recs[0])
	}
	col := func(name string) int { return slices.Index(store.CSVHeader, name) }
	for _, r := range recs[1:] {
		if r[col("router_id")] != fmt.Sprint(routerID) ||
			(r[col("src_addr")] != host && r[col("dst_addr")] != host && r[col("post_nat_dst_addr")] != host) {
			t.Fatalf("CSV row %q is not a flow of router %d with %s", r, routerID, host)
		}
	}
	t.Logf("CSV export: %d flows", len(recs)-1)
}
