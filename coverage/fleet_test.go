package coverage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/coverage"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/simulator"
	"github.com/flowbox/flowbox/store"
)

// runFleet runs a simulated fleet for d on the env's clock: each second
// the routers' models make their traffic (the routers count it on their
// interfaces and keep what traffic-flow sees), each minute the poller
// polls them; the exported flows are then stored.
func (e *env) runFleet(fleets []*simulator.Fleet, d time.Duration, perSecond int) map[string]store.Router {
	e.t.Helper()
	ctx := context.Background()
	byName := map[string]store.Router{}
	for _, f := range fleets {
		for _, r := range f.Routers() {
			if err := r.Server.Listen("127.0.0.1:0"); err != nil {
				e.t.Fatal(err)
			}
			e.t.Cleanup(func() { _ = r.Server.Close() })
			r.Server.SetClock(e.clk.now)
			enableTrafficFlow(e.t, r)
			sr := store.Router{Name: r.Identity, Address: r.Server.Addr(), Username: r.Username, Password: r.Password}
			if err := e.st.AddRouter(ctx, &sr); err != nil {
				e.t.Fatal(err)
			}
			byName[r.Identity] = sr
		}
	}
	var stored []store.Flow
	start := e.clk.now()
	e.p.Round(ctx)
	for s := 1; s <= int(d/time.Second); s++ {
		now := start.Add(time.Duration(s) * time.Second)
		e.clk.set(now)
		for _, f := range fleets {
			for _, r := range f.Routers() {
				flows := r.Model.AppendFlows(nil, perSecond, now)
				for _, fl := range r.Account(now, flows) {
					fl.RouterID = byName[r.Identity].ID
					stored = append(stored, fl)
				}
			}
		}
		if s%60 == 0 {
			e.p.Round(ctx)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.st.Run(runCtx) }()
	for i := 0; i < len(stored); i += 2000 {
		if err := e.st.InsertFlows(runCtx, stored[i:min(i+2000, len(stored))]); err != nil {
			e.t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		e.t.Fatal(err)
	}
	return byName
}

// TestFleetCoverage runs the simulated fleet on a clock of its own: the
// healthy routers' coverage is within 2 % of 100 %; the router that
// fast-tracks 30 % of its traffic shows about 70 % with the FastTrack
// diagnosis; the interface left out of the export list is named.
func TestFleetCoverage(t *testing.T) {
	e := newEnv(t, coverage.DefaultConfig())
	logger := testutil.Logger(t)
	ft, err := simulator.New(simulator.Config{Routers: 2, Versions: "7", Subscribers: 60, Seed: 1, Password: "x",
		Scenario: netflowtest.ScenarioFastTrack, ScenarioRouter: 0}, logger)
	if err != nil {
		t.Fatal(err)
	}
	un, err := simulator.New(simulator.Config{Routers: 1, FirstIndex: 2, Subscribers: 60, Seed: 2, Password: "x",
		Scenario: netflowtest.ScenarioUnexportedInterface}, logger)
	if err != nil {
		t.Fatal(err)
	}
	const minutes = 40
	routers := e.runFleet([]*simulator.Fleet{ft, un}, minutes*time.Minute, 40)
	end := e.clk.now()
	rep, err := coverage.Report(context.Background(), e.st, store.CoverageQuery{From: end.Add(-minutes * time.Minute), To: end},
		e.p.Options(end))
	if err != nil {
		t.Fatal(err)
	}
	byRouter := map[string]store.RouterCoverage{}
	for _, r := range rep.Routers {
		byRouter[r.Router] = r
	}
	fastName, healthyName, unName := ft.Routers()[0].Identity, ft.Routers()[1].Identity, un.Routers()[0].Identity
	left := un.UnexportedInterface()
	if len(byRouter) != 3 || left == "" {
		t.Fatalf("report routers %v, left-out interface %q", byRouter, left)
	}

	healthy := byRouter[healthyName]
	if healthy.Health != store.CoverageOK || !near(healthy.CoverageIn, 100, 2) || !near(healthy.CoverageOut, 100, 2) {
		t.Errorf("healthy router: %+v (in %v, out %v), want ok within 2%% of 100%%", healthy, deref(healthy.CoverageIn), deref(healthy.CoverageOut))
	}
	fast := byRouter[fastName]
	if fast.Health != store.CoverageLow || !near(fast.CoverageIn, 70, 2) || !near(fast.CoverageOut, 70, 2) ||
		len(fast.Causes) == 0 || !strings.HasPrefix(fast.Causes[0], "FastTrack: RouterOS 6.32.4 does not export fast-tracked connections") {
		t.Errorf("fasttrack router: %+v (in %v, out %v), want low, about 70%% and the FastTrack diagnosis", fast, deref(fast.CoverageIn), deref(fast.CoverageOut))
	}
	uc := byRouter[unName]
	if uc.Health != store.CoverageLow || len(uc.Causes) == 0 || !strings.Contains(strings.Join(uc.Causes, " "), left+" is not in /ip traffic-flow interfaces") {
		t.Errorf("unexported-interface router: %+v, want low naming %s", uc, left)
	}
	var sawLeft bool
	for _, ic := range rep.Interfaces {
		judged := !strings.HasPrefix(ic.Diagnosis, "not judged")
		if ic.Router == healthyName && judged && (ic.CoverageIn != nil || ic.CoverageOut != nil) &&
			(!nearOrNil(ic.CoverageIn, 100, 3) || !nearOrNil(ic.CoverageOut, 100, 3)) {
			t.Errorf("healthy router's %s: in %v out %v", ic.Interface, deref(ic.CoverageIn), deref(ic.CoverageOut))
		}
		if ic.Router == unName && ic.Interface == left {
			sawLeft = true
			if !ic.Low || !near(ic.CoverageIn, 0, 1) || !strings.Contains(ic.Diagnosis, left+" is not in /ip traffic-flow interfaces") {
				t.Errorf("left-out interface: %+v (in %v)", ic, deref(ic.CoverageIn))
			}
		}
	}
	if !sawLeft {
		t.Errorf("no line for the left-out interface %s", left)
	}
	if rep.Resolution != "minute" || rep.To.Sub(rep.From) < (minutes-5)*time.Minute {
		t.Errorf("report span %s..%s at %s", rep.From, rep.To, rep.Resolution)
	}
	_ = routers
}

// enableTrafficFlow turns traffic-flow on with a 1-minute active timeout,
// as onboarding does.
func enableTrafficFlow(t *testing.T, r *simulator.Router) {
	t.Helper()
	c, err := routeros.Dial(context.Background(), routeros.Options{Address: r.Server.Addr(), Username: r.Username, Password: r.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Run(context.Background(), "/ip/traffic-flow/set", "=enabled=yes", "=active-flow-timeout=1m"); err != nil {
		t.Fatal(err)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func nearOrNil(p *float64, want, tol float64) bool { return p == nil || near(p, want, tol) }
