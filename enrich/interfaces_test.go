package enrich

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// pppoeIndex is the ifIndex of routerostest's V7 <pppoe-alice> interface.
const pppoeIndex = 8388611

// reusedPPPoERouter is the V7 router after alice's PPPoE session ended
// and RouterOS gave its ifIndex to bob's new session.
func reusedPPPoERouter() routerostest.Personality {
	p := routerostest.V7("tower-1")
	for i := range p.Interfaces {
		if p.Interfaces[i].Index == pppoeIndex {
			p.Interfaces[i].Name = "<pppoe-bob>"
		}
	}
	p.PPP = nil
	return p
}

// TestInterfaceHistoryPersisted polls a router whose PPPoE ifIndex
// passes from alice to bob, with a real store: names are right on both
// sides of the change, in memory and in the store, after a restart, and
// ingest names the PPPoE user of a flow from the interface at the flow's
// time.
func TestInterfaceHistoryPersisted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storetest.Open(ctx, dir, store.DefaultConfig(), testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	before := testutil.StartRouter(t, routerostest.V7("tower-1"))
	after := testutil.StartRouter(t, reusedPPPoERouter())

	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	router := store.Router{ID: 3, Name: "tower-1", Address: before.Addr(), Username: "admin"}
	e, _, _ := newTestEnricher(t, DefaultConfig(), Deps{Dial: DialRouterOS, Interfaces: st, Now: clk.Now})
	e.PollRouter(ctx, router)
	clk.Set(t0.Add(5 * time.Minute))
	e.PollRouter(ctx, router) // unchanged: nothing written
	clk.Set(t0.Add(10 * time.Minute))
	router.Address = after.Addr()
	e.PollRouter(ctx, router)
	if n := promtestutil.ToFloat64(e.metrics.polls.WithLabelValues("ok")); n != 3 {
		t.Fatalf("%v polls ok", n)
	}

	want := map[time.Duration]string{-time.Hour: "<pppoe-alice>", 2 * time.Minute: "<pppoe-alice>",
		9 * time.Minute: "<pppoe-alice>", 10 * time.Minute: "<pppoe-bob>", 11 * time.Minute: "<pppoe-bob>"}
	for at, name := range want {
		if got := e.InterfaceName(3, pppoeIndex, t0.Add(at)); got != name {
			t.Errorf("memory at %v: %q, want %q", at, got, name)
		}
		got, err := st.InterfaceNameAt(ctx, 3, pppoeIndex, t0.Add(at))
		if err != nil || got != name {
			t.Errorf("store at %v: %q, %v; want %q", at, got, err, name)
		}
	}
	if got := e.InterfaceName(3, 7, t0.Add(11*time.Minute)); got != "bridge-lan" {
		t.Errorf("ifIndex 7: %q", got)
	}
	hist, err := st.InterfaceHistory(ctx, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var pppoe []string
	for _, h := range hist {
		if h.Index == pppoeIndex {
			pppoe = append(pppoe, h.Name)
			if h.Name == "<pppoe-alice>" && (!h.ValidFrom.IsZero() || !h.ValidTo.Equal(t0.Add(10*time.Minute))) {
				t.Errorf("alice's record %+v: want from the start to +10m", h)
			}
		}
	}
	if !slices.Equal(pppoe, []string{"<pppoe-alice>", "<pppoe-bob>"}) || len(hist) < 4 {
		t.Errorf("store history %+v", hist)
	}

	// A restart: Run loads the history, and ingest names alice for a flow
	// of her session from an address no subscriber record names.
	cfg := DefaultConfig()
	cfg.Prefixes = []string{"10.0.0.0/8"}
	synctest.Test(t, func(t *testing.T) {
		e2, sink, _ := newTestEnricher(t, cfg, Deps{Interfaces: st, Subscribers: st, Now: clk.Now})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- e2.Run(runCtx) }()
		synctest.Wait()
		flowAt := func(at time.Duration) store.Flow {
			return store.Flow{RouterID: 3, Start: ms(t0.Add(at)), SrcAddr: addr("10.0.0.99"), DstAddr: addr("1.1.1.1"),
				Proto: 6, SrcPort: 50000, DstPort: 443, InIf: pppoeIndex}
		}
		if err := e2.InsertFlows(ctx, []store.Flow{flowAt(2 * time.Minute), flowAt(11 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if sink.flows[0].Subscriber != "alice" || sink.flows[1].Subscriber != "bob" {
			t.Errorf("after restart: %q, %q; want alice then bob", sink.flows[0].Subscriber, sink.flows[1].Subscriber)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// Ended names leave the store after the retention.
	if n, err := e.ifaces.prune(ctx, t0.Add(interfaceRetention+11*time.Minute)); err != nil || n != 1 {
		t.Errorf("prune: %d, %v; want alice's record", n, err)
	}
	if _, err := st.InterfaceNameAt(ctx, 3, pppoeIndex, t0.Add(5*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice's record after pruning: %v", err)
	}

	// The store fails: the poll is partial and memory keeps the names the
	// store has, until a poll can save the change.
	st.Close()
	clk.Set(t0.Add(20 * time.Minute))
	router.Address = before.Addr()
	e.PollRouter(ctx, router)
	if n := promtestutil.ToFloat64(e.metrics.polls.WithLabelValues("partial")); n != 1 {
		t.Errorf("%v partial polls with a closed store", n)
	}
	if got := e.InterfaceName(3, pppoeIndex, t0.Add(21*time.Minute)); got != "<pppoe-bob>" {
		t.Errorf("unsaved change applied in memory: %q", got)
	}
}

// TestInterfaceHistoryMemory checks the history without a store: seeded
// names, renames, removed interfaces and the per-router bound.
func TestInterfaceHistoryMemory(t *testing.T) {
	e, _, _ := newTestEnricher(t, DefaultConfig(), Deps{})
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := e.ifaces
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.update(ctx, 1, map[uint32]string{1: "ether1", 2: "ether2"}, t0, true))
	must(h.update(ctx, 1, map[uint32]string{1: "wan", 2: "ignored"}, t0.Add(time.Minute), true)) // seeding never renames
	must(h.update(ctx, 1, map[uint32]string{1: "wan", 3: "<pppoe-x>"}, t0.Add(2*time.Minute), false))
	for _, tc := range []struct {
		index uint32
		at    time.Duration
		want  string
	}{
		{1, -time.Hour, "ether1"}, {1, time.Minute, "ether1"}, {1, 2 * time.Minute, "wan"},
		{2, time.Minute, "ether2"}, {2, 2 * time.Minute, ""}, // gone at the poll
		{3, -time.Hour, "<pppoe-x>"}, {3, 3 * time.Minute, "<pppoe-x>"},
	} {
		if got := e.InterfaceName(1, tc.index, t0.Add(tc.at)); got != tc.want {
			t.Errorf("ifIndex %d at %v: %q, want %q", tc.index, tc.at, got, tc.want)
		}
	}
	if got := e.InterfaceName(2, 1, t0); got != "" {
		t.Errorf("other router: %q", got)
	}
	// The bound: one more name than fits is dropped and counted.
	names := map[uint32]string{}
	for i := range uint32(maxInterfacesPerRouter) {
		names[100+i] = "if"
	}
	must(h.update(ctx, 2, names, t0, true))
	if v := promtestutil.ToFloat64(e.metrics.interfaceDrops); v != 0 {
		t.Fatalf("drops %v below the bound", v)
	}
	must(h.update(ctx, 2, map[uint32]string{1: "one-too-many"}, t0, true))
	if v := promtestutil.ToFloat64(e.metrics.interfaceDrops); v != 1 || e.InterfaceName(2, 1, t0) != "" {
		t.Errorf("drops %v, name %q beyond the bound", v, e.InterfaceName(2, 1, t0))
	}
	// Ended names are forgotten after the window.
	must(h.update(ctx, 1, map[uint32]string{1: "wan"}, t0.Add(3*time.Minute), false))
	if got := e.InterfaceName(1, 3, t0.Add(2*time.Minute)); got != "<pppoe-x>" {
		t.Errorf("ended name: %q", got)
	}
	must(h.update(ctx, 1, map[uint32]string{1: "wan"}, t0.Add(3*time.Minute+e.cfg.HistoryWindow+time.Second), false))
	if got := e.InterfaceName(1, 3, t0.Add(2*time.Minute)); got != "" {
		t.Errorf("ended name kept past the window: %q", got)
	}
	if got := e.InterfaceName(1, 1, t0.Add(e.cfg.HistoryWindow)); got != "wan" {
		t.Errorf("current name forgotten: %q", got)
	}
}
