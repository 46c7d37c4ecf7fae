package mitigate

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// TestRunCleansUpThenMitigates: Run first removes what an earlier
// flowbox left on the router (its alerts did not survive the restart),
// keeps the operator's entries, then applies queued events; it returns
// when its context ends.
func TestRunCleansUpThenMitigates(t *testing.T) {
	p := routerostest.V7("wisp-1")
	p.AddressLists = []routerostest.AddressListEntry{{List: "flowbox-attacked", Address: "100.64.9.9", Comment: "operator"}}
	cfg := config(map[string]RouterConfig{"wisp-1": policy("blackhole")})
	before := newEnv(t, cfg)
	srv := before.router(t, "wisp-1", p)
	ctx := t.Context()
	before.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	before.m.handle(ctx, ev(store.AlertOpened, 2, store.AlertPortScan, "out", "wisp-1", "10.0.1.5"))

	// flowbox restarts.
	e := newEnv(t, cfg)
	e.inv.set(stored(t, before.inv, "wisp-1"))
	srv.SetClock(e.clk.Now)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.Run(rctx) }()
	testutil.WaitFor(t, 10*time.Second, "the start-up cleanup", func() (bool, string) {
		got := lists(srv)
		return len(got) == 1 && len(routes(srv)) == 0, strings.Join(append(got, routes(srv)...), "; ")
	})
	check(t, "cleanup's audit", e.audit.lines(), []string{
		"1 remove blackhole  100.64.1.23 ok",
		"1 remove address-list flowbox-attacked 100.64.1.23 ok",
		"2 remove address-list flowbox-abuse 10.0.1.5 ok"})
	e.m.AlertChanged(ev(store.AlertOpened, 3, store.AlertUDPAmplification, "in", "wisp-1", "100.64.1.24"))
	testutil.WaitFor(t, 10*time.Second, "alert 3's entry and route", func() (bool, string) {
		got := append(lists(srv), routes(srv)...)
		return len(got) == 3, strings.Join(got, "; ")
	})
	e.m.AlertChanged(ev(store.AlertResolved, 3, store.AlertUDPAmplification, "in", "wisp-1", "100.64.1.24"))
	testutil.WaitFor(t, 10*time.Second, "alert 3's removal", func() (bool, string) {
		got := append(lists(srv), routes(srv)...)
		return len(got) == 1, strings.Join(got, "; ")
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestCleanupKeepsHeld: Cleanup removes only the flowbox entries the
// mitigator does not hold.
func TestCleanupKeepsHeld(t *testing.T) {
	cfg := config(map[string]RouterConfig{"wisp-1": policy("blackhole"), "wisp-2": policy("dry-run")})
	e := newEnv(t, cfg)
	srv := e.router(t, "wisp-1", routerostest.V6("wisp-1"))
	srv2 := e.router(t, "wisp-2", routerostest.V7("wisp-2"))
	ctx := t.Context()
	e.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	e.m.handle(ctx, ev(store.AlertOpened, 2, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.24"))
	e.m.mu.Lock()
	rs := e.m.routers["wisp-1"]
	delete(rs.entries, entryKey{"flowbox-attacked", rs.alerts[2].addr}) // as if added by an earlier run
	delete(rs.alerts, 2)
	e.m.mu.Unlock()
	n, err := e.m.Cleanup(ctx)
	if n != 2 || err != nil {
		t.Errorf("cleanup = %d, %v; want 2", n, err)
	}
	check(t, "address lists", lists(srv), []string{"flowbox-attacked 100.64.1.23 flowbox alert 1: syn-flood 1h0m0s"})
	check(t, "routes", routes(srv), []string{"100.64.1.23/32 blackhole=true type=blackhole flowbox alert 1: syn-flood"})
	if srv2.Commands() != 0 {
		t.Errorf("cleanup talked to a dry-run router")
	}
}

// TestRouterFailures: an unreachable router, a wrong password and a
// silent router are logged, audited and counted as errors; the alert is
// retried with backoff and listed once the router is fixed.
func TestRouterFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()

	p := routerostest.V7("wisp-3")
	p.Users = []routerostest.User{{Name: "admin", Group: "full", Password: "right"}}
	cfg := config(map[string]RouterConfig{"wisp-1": policy(), "wisp-2": policy(), "wisp-3": policy()})
	cfg.CommandTimeout = 300 * time.Millisecond
	e := newEnv(t, cfg)
	e.inv.set(store.Router{Name: "wisp-1", Address: closed, Username: "admin", Version: "7.16.2"})
	silent := e.router(t, "wisp-2", routerostest.V7("wisp-2"))
	silent.SetSilent(true)
	srv3 := e.router(t, "wisp-3", p)
	r3 := stored(t, e.inv, "wisp-3")
	r3.Password = "wrong"
	e.inv.set(r3)

	ctx := t.Context()
	for i, r := range []string{"wisp-1", "wisp-2", "wisp-3"} {
		e.m.handle(ctx, ev(store.AlertOpened, int64(i+1), store.AlertVolumetric, "in", r, "100.64.1.23"))
	}
	wantErr := map[string]string{"wisp-1": "connection refused", "wisp-2": "did not answer in time", "wisp-3": "wrong username or password"}
	for _, a := range e.audit.all() {
		if !strings.HasPrefix(a.Result, "error: ") || !strings.Contains(a.Result, wantErr[a.Router]) {
			t.Errorf("%s: audit result %q, want an error with %q", a.Router, a.Result, wantErr[a.Router])
		}
		if st := e.status(t, a.Router); st.Errors != 1 || st.Entries != 0 || !strings.Contains(st.LastError, wantErr[a.Router]) {
			t.Errorf("status = %+v", st)
		}
	}
	if n := len(e.audit.all()); n != 3 {
		t.Errorf("%d audit entries, want 3", n)
	}

	// No retry before the backoff, a retry after it; fixed, the entry is
	// added.
	r3.Password = "right"
	e.inv.set(r3)
	e.clk.Add(30 * time.Second)
	e.m.handle(ctx, ev(store.AlertUpdated, 3, store.AlertVolumetric, "in", "wisp-3", "100.64.1.23"))
	e.m.maintain(ctx)
	if n := len(srv3.AddressList(false)); n != 0 {
		t.Errorf("retried before the backoff: %d entries", n)
	}
	silent.SetSilent(false)
	e.clk.Add(30 * time.Second)
	e.m.maintain(ctx)
	check(t, "wisp-3 after the fix", lists(srv3), []string{"flowbox-attacked 100.64.1.23 flowbox alert 3: volumetric 1h0m0s"})
	if st := e.status(t, "wisp-3"); st.Errors != 1 || st.Added != 1 || st.Entries != 1 {
		t.Errorf("wisp-3 status = %+v", st)
	}
	check(t, "wisp-2 once it answers", lists(silent), []string{"flowbox-attacked 100.64.1.23 flowbox alert 2: volumetric 1h0m0s"})
	if st := e.status(t, "wisp-1"); st.Errors != 2 {
		t.Errorf("wisp-1 status after the retry = %+v", st)
	}
}

// TestAlertChangedNeverBlocks: with no worker, a full queue drops
// events and counts them; resolutions are kept aside and applied after
// the queued events once the worker runs.
func TestAlertChangedNeverBlocks(t *testing.T) {
	cfg := config(map[string]RouterConfig{"wisp-1": policy()})
	cfg.QueueSize = 1
	e := newEnv(t, cfg)
	srv := e.router(t, "wisp-1", routerostest.V7("wisp-1"))
	e.m.AlertChanged(ev(store.AlertOpened, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.1.23"))
	for range 100 {
		e.m.AlertChanged(ev(store.AlertUpdated, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.1.23"))
	}
	e.m.AlertChanged(ev(store.AlertResolved, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.1.23"))
	if d := e.m.Dropped(); d != 100 {
		t.Errorf("dropped = %d, want 100", d)
	}
	if st := e.status(t, "wisp-1"); st.Errors != 100 || !strings.Contains(st.LastError, "queue full") {
		t.Errorf("status = %+v", st)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	testutil.WaitFor(t, 10*time.Second, "the entry added, then removed", func() (bool, string) {
		l := e.audit.lines()
		return len(l) == 2, strings.Join(l, "; ")
	})
	check(t, "audit log", e.audit.lines(), []string{
		"1 add address-list flowbox-attacked 100.64.1.23 ok",
		"1 remove address-list flowbox-attacked 100.64.1.23 ok"})
	check(t, "address lists", lists(srv), nil)
	cancel()
	<-done
}

// TestRenewal renews an entry once half its timeout has passed, and adds
// it again when it expired meanwhile (the router was unreachable, or
// rebooted).
func TestRenewal(t *testing.T) {
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy()}))
	srv := e.router(t, "wisp-1", routerostest.V7("wisp-1"))
	ctx := t.Context()
	e.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.1.23"))
	e.clk.Add(29 * time.Minute)
	e.m.maintain(ctx)
	check(t, "before half the timeout", lists(srv), []string{"flowbox-attacked 100.64.1.23 flowbox alert 1: volumetric 31m0s"})
	e.clk.Add(time.Minute)
	e.m.maintain(ctx)
	check(t, "renewed", lists(srv), []string{"flowbox-attacked 100.64.1.23 flowbox alert 1: volumetric 1h0m0s"})
	e.clk.Add(time.Hour)
	check(t, "expired", lists(srv), nil)
	e.m.maintain(ctx)
	check(t, "added again", lists(srv), []string{"flowbox-attacked 100.64.1.23 flowbox alert 1: volumetric 1h0m0s"})
	check(t, "audit log", e.audit.lines(), []string{
		"1 add address-list flowbox-attacked 100.64.1.23 ok",
		"1 add address-list flowbox-attacked 100.64.1.23 ok",
		"1 add address-list flowbox-attacked 100.64.1.23 ok"})
	e.m.handle(ctx, ev(store.AlertResolved, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.1.23"))
	check(t, "resolved", lists(srv), nil)
}

// TestRunTwice: a second Run fails instead of sharing the queue.
func TestRunTwice(t *testing.T) {
	e := newEnv(t, DefaultConfig())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	testutil.WaitFor(t, 10*time.Second, "the first Run", func() (bool, string) { return e.m.running.Load(), "" })
	if err := e.m.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// stored returns a router of the inventory.
func stored(t *testing.T, inv *inventory, name string) store.Router {
	t.Helper()
	r, err := inv.GetRouter(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return *r
}

// rosRun runs one command on a fake router, as an operator would.
func rosRun(t *testing.T, srv *routerostest.Server, words ...string) {
	t.Helper()
	c, err := routeros.Dial(t.Context(), routeros.Options{Address: srv.Addr(), Username: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Run(t.Context(), words...); err != nil {
		t.Fatalf("%v: %v", words, err)
	}
}

// TestAdoptAndForeign: a flowbox entry left by an earlier run is adopted
// by the new alert on its address; an entry the operator put in place of
// flowbox's is neither renewed nor removed.
func TestAdoptAndForeign(t *testing.T) {
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy()}))
	srv := e.router(t, "wisp-1", routerostest.V7("wisp-1"))
	ctx := t.Context()
	rosRun(t, srv, "/ip/firewall/address-list/add", "=list=flowbox-attacked", "=address=100.64.1.23", "=timeout=5m",
		"=comment=flowbox alert 99: volumetric")
	e.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	e.m.handle(ctx, ev(store.AlertOpened, 2, store.AlertSMTPSpam, "out", "wisp-1", "10.0.1.5"))
	check(t, "adopted", lists(srv), []string{"flowbox-attacked 100.64.1.23 flowbox alert 1: syn-flood 1h0m0s",
		"flowbox-abuse 10.0.1.5 flowbox alert 2: smtp-spam 1h0m0s"})

	rosRun(t, srv, "/ip/firewall/address-list/remove", "=.id=*2")
	rosRun(t, srv, "/ip/firewall/address-list/add", "=list=flowbox-abuse", "=address=10.0.1.5", "=comment=blocked by hand")
	e.clk.Add(30 * time.Minute)
	e.m.maintain(ctx)
	e.clk.Add(30 * time.Minute)
	e.m.maintain(ctx)
	e.m.handle(ctx, ev(store.AlertResolved, 1, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	e.m.handle(ctx, ev(store.AlertResolved, 2, store.AlertSMTPSpam, "out", "wisp-1", "10.0.1.5"))
	check(t, "after resolve", lists(srv), []string{"flowbox-abuse 10.0.1.5 blocked by hand 0s"})
	check(t, "audit log", e.audit.lines(), []string{
		"1 add address-list flowbox-attacked 100.64.1.23 ok",
		"2 add address-list flowbox-abuse 10.0.1.5 ok",
		"1 add address-list flowbox-attacked 100.64.1.23 ok",
		"2 add address-list flowbox-abuse 10.0.1.5 skipped: 10.0.1.5 is already in list flowbox-abuse (not flowbox's entry)",
		"1 add address-list flowbox-attacked 100.64.1.23 ok",
		"1 remove address-list flowbox-attacked 100.64.1.23 ok"})
}
