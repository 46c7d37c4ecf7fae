package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/browsertest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/simulator"
	"github.com/flowbox/flowbox/store"
)

// TestCoverageThroughServe runs `flowbox serve` with a 2-second counter
// poll and two simulated routers onboarded through the RouterOS API: a
// RouterOS 6.32 router fast-tracking 30 % of its traffic, and a healthy
// RouterOS 7 one. Quickly: the poller reads both (no failure), and
// `flowbox coverage --json` answers while serve runs. Then, with
// FLOWBOX_FUNCTIONAL_TESTS=1 only (complete minutes of counters and
// flows take about four minutes of real time): the healthy router is
// within 2 % of 100 %, the fasttrack router about 70 % with the FastTrack
// diagnosis, in the CLI, the API and, in Chromium, the router page's
// warning and the Fleet's coverage column.
func TestCoverageThroughServe(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	extra := "  batch-age: 50ms\ncoverage:\n  interval: 2s\n  timeout: 2s\n  window: 10m\n  lag: 2m\n"
	srv := startServeInProcess(t, extra)
	dir, cfgPath := filepath.Dir(srv.cfgPath), srv.cfgPath
	pwFile := filepath.Join(dir, "router.pw")
	if err := os.WriteFile(pwFile, []byte("router-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	type fleetRun struct {
		name     string
		scenario string
		index    int
	}
	runs := []fleetRun{{"ft1", netflowtest.ScenarioFastTrack, 0}, {"ok1", "", 1}}
	for _, r := range runs {
		fl, err := simulator.New(simulator.Config{Routers: 1, FirstIndex: 10 + r.index, Versions: "7", Password: "router-pw", Rate: 150,
			Seed: uint64(70 + r.index), Scenario: r.scenario, ExportFrom: netip.AddrFrom4([4]byte{127, 0, 0, byte(20 + r.index)})},
			slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := fl.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fl.Stop)
		rt := fl.Routers()[0]
		var out, errOut testutil.SyncBuffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
		if err := run(ctx, e, []string{"router", "add", "--tls=false", "--config", cfgPath, "--name", r.name,
			"--address", rt.APIAddr(), "--user", rt.Username, "--password-file", pwFile, "--timeout", "60s"}); err != nil {
			t.Fatalf("router add %s: %v\n%s\n%s", r.name, err, out.String(), errOut.String())
		}
	}
	c := login(t, srv.base, "admin", "e2e-admin-pw")
	byName := func(rep store.CoverageReport) map[string]store.RouterCoverage {
		m := map[string]store.RouterCoverage{}
		for _, r := range rep.Routers {
			m[r.Router] = r
		}
		return m
	}
	testutil.WaitFor(t, 60*time.Second, "counter polls of both routers", func() (bool, string) {
		var rep store.CoverageReport
		if code := c.get("/api/v1/coverage", &rep); code != 200 {
			return false, fmt.Sprint("status ", code)
		}
		m := byName(rep)
		return m["ft1"].Polls >= 2 && m["ok1"].Polls >= 2, fmt.Sprintf("%+v", rep.Routers)
	})
	cli := func() store.CoverageReport {
		var out, errOut testutil.SyncBuffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
		if err := run(ctx, e, []string{"coverage", "--json", "--since", "10m", "--config", cfgPath}); err != nil {
			t.Fatalf("flowbox coverage: %v\n%s", err, errOut.String())
		}
		var rep store.CoverageReport
		if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
			t.Fatalf("flowbox coverage --json: %v in %s", err, out.String())
		}
		return rep
	}
	for name, r := range byName(cli()) {
		if r.Failures != 0 || r.Polls == 0 {
			t.Errorf("%s: %d polls, %d failures (%s)", name, r.Polls, r.Failures, r.LastError)
		}
	}
	if os.Getenv("FLOWBOX_FUNCTIONAL_TESTS") != "1" {
		t.Log("the coverage numbers need about four minutes of complete minutes: they are checked with FLOWBOX_FUNCTIONAL_TESTS=1")
		return
	}

	var rep store.CoverageReport
	testutil.WaitFor(t, 6*time.Minute, "two complete minutes compared", func() (bool, string) {
		rep = cli()
		m := byName(rep)
		done := true
		for _, ic := range rep.Interfaces {
			if ic.Minutes < 2 {
				done = false
			}
		}
		return done && m["ft1"].Health != store.CoverageUnknown && m["ok1"].Health != store.CoverageUnknown, fmt.Sprintf("%+v", rep.Routers)
	})
	m := byName(rep)
	ok, ft := m["ok1"], m["ft1"]
	within := func(p *float64, want, tol float64) bool { return p != nil && math.Abs(*p-want) <= tol }
	if ok.Health != store.CoverageOK || !within(ok.CoverageIn, 100, 2) || !within(ok.CoverageOut, 100, 2) {
		t.Errorf("healthy router: %+v", ok)
	}
	if ft.Health != store.CoverageLow || !within(ft.CoverageIn, 70, 3) || !within(ft.CoverageOut, 70, 3) ||
		len(ft.Causes) == 0 || !strings.HasPrefix(ft.Causes[0], "FastTrack: RouterOS 6.32.4 does not export fast-tracked connections") {
		t.Errorf("fasttrack router: %+v", ft)
	}
	var ftID int64
	var routers []apiRouter
	c.get("/api/v1/routers", &routers)
	for _, r := range routers {
		if r.Name == "ft1" {
			ftID = r.ID
		}
	}

	// The console shows the same, in a browser.
	browsertest.Need(t)
	bctx := browsertest.Start(t, 60*time.Second, nil)
	base := srv.base
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/login?next=%2Ffleet"), chromedp.WaitVisible(`#login-form`),
		chromedp.SendKeys(`#username`, "admin"), chromedp.SendKeys(`#password`, "e2e-admin-pw"),
		chromedp.Submit(`#login-form`), chromedp.WaitVisible(`#fleet`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(fmt.Sprintf(`#fleet tbody tr[data-id="%d"] td.coverage[data-health="low"]`, ftID))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(fmt.Sprintf("%s/routers/%d", base, ftID)), chromedp.WaitVisible(`#coverage-causes li`)); err != nil {
		t.Fatal(err)
	}
	warn, err := chromedp.Run(bctx, chromedp.TextContent(`#coverage-warning`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn, "FastTrack: RouterOS 6.32.4") {
		t.Errorf("router page warning %q", warn)
	}
}
