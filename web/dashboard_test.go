package web

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/store"
)

// fleetEnv is a console with three routers: gw1 and gw2 with the known
// dataset, gw3 added a moment ago with its first three minutes.
func fleetEnv(t testing.TB) (*env, []store.Router, []store.Flow) {
	e := newEnv(t)
	e.login()
	gw1 := e.addRouter(datasetRouter())
	gw2 := e.addRouter(store.Router{Name: "gw2", Address: "127.0.0.3:8728", State: store.StateConfigured})
	gw3 := e.addRouter(store.Router{Name: "gw3", Address: "127.0.0.4:8728", State: store.StateConfigured})
	flows := append(dataset(e.now), newFirstMinutes(e.now, gw3.ID, "127.0.0.4").flows...)
	e.ingest(flows)
	return e, []store.Router{gw1, gw2, gw3}, flows
}

// TestFleetTrafficAPI checks the dashboard's fleet series: one line per
// router, largest first, each holding its router's bytes, and the whole
// range kept (the fleet is not newer than it); a router filter is refused.
func TestFleetTrafficAPI(t *testing.T) {
	t.Parallel()
	e, routers, flows := fleetEnv(t)
	var fs FleetSeries
	e.getJSON("/api/v1/fleet/traffic?range=24h", &fs)
	// Every router was added a moment ago and the fleet's first flows are
	// 23 h 50 min old: the series starts at their minute.
	first := flows[0].End
	for _, f := range flows {
		first = min(first, f.End)
	}
	if want := time.UnixMilli(first).Truncate(time.Minute).Unix(); fs.Since != want || fs.Step != 300 || len(fs.Times) == 0 {
		t.Errorf("since %d, step %d, %d buckets; want since %d in 5-minute buckets", fs.Since, fs.Step, len(fs.Times), want)
	}
	var names []string
	for _, l := range fs.Routers {
		names = append(names, l.Name)
		var in, out float64
		for i := range fs.Times {
			in += l.BitsIn[i] * float64(fs.Step) / 8
			out += l.BitsOut[i] * float64(fs.Step) / 8
		}
		wantIn, _ := sumFlows(flows, func(f *store.Flow) bool { return f.RouterID == l.ID && f.Direction == store.DirDownload })
		wantOut, _ := sumFlows(flows, func(f *store.Flow) bool { return f.RouterID == l.ID && f.Direction == store.DirUpload })
		if uint64(in+0.5) != wantIn || uint64(out+0.5) != wantOut || l.BytesIn != wantIn || l.BytesOut != wantOut {
			t.Errorf("%s: in %v (%d) out %v (%d), want %d and %d", l.Name, in, l.BytesIn, out, l.BytesOut, wantIn, wantOut)
		}
		if l.AvgBitsIn != float64(l.BytesIn)*8/fs.Seconds {
			t.Errorf("%s: average in %v over %v s", l.Name, l.AvgBitsIn, fs.Seconds)
		}
	}
	// gw3 (3 minutes of 1 MB every 10 s) has the most traffic, then gw1.
	if !slices.Equal(names, []string{routers[2].Name, routers[0].Name, routers[1].Name}) {
		t.Errorf("routers %q, want gw3, gw1, gw2 (largest first)", names)
	}
	if fs.Totals.BytesIn != fs.Routers[0].BytesIn+fs.Routers[1].BytesIn+fs.Routers[2].BytesIn {
		t.Errorf("totals %+v", fs.Totals)
	}
	// The fleet-wide top lists take no router: every router's hosts.
	var top TopResult
	e.getJSON("/api/v1/top/local?range=24h&limit=10", &top)
	wantAll, _ := sumFlows(flows, func(*store.Flow) bool { return true })
	if top.Total.Bytes != wantAll {
		t.Errorf("fleet top total %d bytes, want %d", top.Total.Bytes, wantAll)
	}
	code, body := e.do(http.MethodGet, fmt.Sprintf("/api/v1/fleet/traffic?range=24h&router=%d", routers[0].ID), nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "router") {
		t.Errorf("router filter: %d %s, want 400 naming router", code, body)
	}
	code, body = e.do(http.MethodGet, "/api/v1/fleet/traffic?range=2d", nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "range") {
		t.Errorf("bad range: %d %s, want 400 naming range", code, body)
	}
}

// TestFleetTrafficNewFleet checks that a fleet whose every router is new
// is drawn from its first minute.
func TestFleetTrafficNewFleet(t *testing.T) {
	t.Parallel()
	e, _, fm := firstMinutesEnv(t)
	var fs FleetSeries
	e.getJSON("/api/v1/fleet/traffic?range=7d", &fs)
	if fs.Since != fm.first.Truncate(time.Minute).Unix() || fs.Step != 60 || len(fs.Routers) != 1 || fs.Routers[0].BytesIn != fm.bytesIn {
		t.Errorf("since %d step %d routers %+v; want since %d, 1-minute buckets, %d bytes in", fs.Since, fs.Step, fs.Routers, fm.first.Truncate(time.Minute).Unix(), fm.bytesIn)
	}
}

// TestBrowserDashboard opens the console after login with three routers:
// the landing page is the dashboard with the fleet's traffic stacked by
// router, the routers by traffic (linking to their pages), fleet-wide top
// lists with named columns and the health summary; the Fleet list moved
// to /fleet.
func TestBrowserDashboard(t *testing.T) {
	browsertest.Need(t)
	e, routers, _ := fleetEnv(t)
	ctx := browsertest.Start(t, 60*time.Second, nil)
	art := browsertest.Artifacts(t, "web-dashboard")
	base := e.ts.URL
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(`#login-form`),
		chromedp.SendKeys(`#username`, "admin"),
		chromedp.SendKeys(`#password`, testPassword),
		chromedp.Submit(`#login-form`),
		chromedp.WaitVisible(`#dashboard`),
		chromedp.WaitReady(`#main[data-loaded-ms]`),
	); err != nil {
		t.Fatalf("log in to the dashboard: %v", err)
	}
	screenshot(t, ctx, art, "0-dashboard")
	if nav := must(t, ctx, chromedp.Text(`header.top nav a.active`)); nav != "Dashboard" {
		t.Errorf("active navigation %q", nav)
	}
	if lines := must(t, ctx, chromedp.Evaluate[string](`document.getElementById("chart").dataset.lines`)); lines != "3" {
		t.Errorf("the chart stacks %s routers, want 3", lines)
	}
	if points := must(t, ctx, chromedp.Evaluate[int](`Number(document.getElementById("chart").dataset.points)`)); points < 100 {
		t.Errorf("the chart drew %d points", points)
	}
	if n := must(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart canvas").length`)); n == 0 {
		t.Error("no chart")
	}
	rows := must(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#routers-by-traffic tbody tr")].map(r => r.dataset.id + " " + r.querySelector("a.router-link").textContent)`))
	want := []string{fmt.Sprintf("%d gw3", routers[2].ID), fmt.Sprintf("%d gw1", routers[0].ID), fmt.Sprintf("%d gw2", routers[1].ID)}
	if !slices.Equal(rows, want) {
		t.Errorf("routers by traffic %q, want %q", rows, want)
	}
	for _, id := range []string{"top-local", "top-as", "top-port", "top-country", "top-domain"} {
		if head := must(t, ctx, chromedp.Text("#"+id+" thead")); !strings.Contains(head, "Avg rate") || !strings.Contains(head, "Volume") {
			t.Errorf("%s columns %q", id, head)
		}
	}
	if n := must(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#top-local tbody tr[data-key]").length`)); n < 4 {
		t.Errorf("%d fleet top talkers, want the hosts of every router", n)
	}
	// Health: no alert engine in this console (n/a); the routers' status
	// from the fleet list.
	var fleet []RouterView
	e.getJSON("/api/v1/routers", &fleet)
	offline := 0
	for _, r := range fleet {
		if r.Status != StatusOnline {
			offline++
		}
	}
	if got, want := must(t, ctx, chromedp.Text(`#health-offline`)), fmt.Sprintf("Routers offline: %d of 3", offline); got != want {
		t.Errorf("health %q, want %q", got, want)
	}
	if got := must(t, ctx, chromedp.Text(`#health-alerts`)); got != "Active alerts: n/a" {
		t.Errorf("alerts %q", got)
	}
	// A router's link opens its page; the range goes along.
	if err := chromedp.Do(ctx,
		browsertest.ClickJS(`#ranges button[data-range="7d"]`),
		chromedp.WaitReady(`#main[data-loaded-ms]`),
		browsertest.ClickJS(fmt.Sprintf(`#routers-by-traffic tr[data-id="%d"] a.router-link`, routers[2].ID)),
		chromedp.WaitReady(`#main[data-router-id][data-loaded-ms]`),
	); err != nil {
		t.Fatalf("open a router from the dashboard: %v", err)
	}
	if loc := must(t, ctx, chromedp.Evaluate[string](`location.pathname + location.search`)); loc != fmt.Sprintf("/routers/%d?range=7d", routers[2].ID) {
		t.Errorf("router link went to %q", loc)
	}
	// The Fleet list is one click away.
	if err := chromedp.Do(ctx, browsertest.ClickJS(`header.top nav a[href="/fleet"]`), chromedp.WaitVisible(`#fleet tbody a.router-link`)); err != nil {
		t.Fatalf("fleet list: %v", err)
	}
	screenshot(t, ctx, art, "1-fleet")
}
