package domains

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/simulator"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/inventory"
)

// TestPersistenceSQLite: the names saved in the database are there again
// after a restart (a new database handle and History), and label flows
// the same.
func TestPersistenceSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*History, func()) {
		db, err := store.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := inventory.New(ctx, db, testutil.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		h := newTestHistory(t, nil, inv)
		if err := h.Load(ctx); err != nil {
			t.Fatal(err)
		}
		return h, func() { db.Close() }
	}
	h, closeDB := open()
	a := netip.MustParseAddr("2a04:4e42::81")
	mustAdd(t, h, Sighting{Addr: a, Name: "www.bbc.co.uk", RouterID: 3, From: t0.Add(-time.Minute), Seen: t0, Until: t0.Add(5 * time.Minute)})
	mustAdd(t, h, Sighting{Addr: a, Name: "www.bbc.co.uk", RouterID: 3, Seen: t0.Add(time.Minute), Until: t0.Add(6 * time.Minute)})
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	closeDB()
	h2, closeDB2 := open()
	defer closeDB2()
	if l, ok := h2.Label(a, t0.Add(5*time.Minute+30*time.Second).UnixMilli()); !ok || l.Name != "www.bbc.co.uk" || l.Domain != "bbc.co.uk" {
		t.Errorf("label after restart = %+v, %v", l, ok)
	}
	if n := h2.Names(a); len(n) != 1 || n[0].RouterID != 3 || !n[0].From.Equal(t0.Add(-time.Minute)) {
		t.Errorf("history after restart %+v", n)
	}
}

// TestSimulatedFleet: polling the simulated routers (RouterOS 6 and 7)
// names the remote hosts of the flows they export.
func TestSimulatedFleet(t *testing.T) {
	fl, err := simulator.New(simulator.Config{Routers: 2, Seed: 11, Password: "x", Subscribers: 50}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Stop)
	clk := &clock{t: time.Date(2026, 1, 2, 20, 0, 0, 0, time.UTC)}
	var routers routerList
	var flows [][]store.Flow
	for i, r := range fl.Routers() {
		r.Server.SetClock(clk.now)
		routers = append(routers, store.Router{ID: int64(i + 1), Name: r.Identity, Address: r.APIAddr(), Username: r.Username, Password: r.Password})
		flows = append(flows, r.Model.AppendFlows(nil, 2000, clk.now()))
	}
	cfg := DefaultConfig()
	h, err := NewHistory(cfg, nil, testutil.Logger(t), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Deps{Logger: testutil.Logger(t), Routers: routers, Dial: DialRouterOS, History: h, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(20 * time.Second)
	p.Round(context.Background())
	for i, r := range fl.Routers() {
		web, named, video := 0, 0, 0
		for _, f := range flows[i] {
			if f.DstPort != 443 || f.InIf == r.Model.Interfaces()[0].Index {
				continue
			}
			web++
			if l, ok := h.LabelRange(f.DstAddr, f.Start, f.End); ok {
				named++
				if l.Domain == "googlevideo.com" {
					video++
				}
			}
		}
		if web == 0 || named*10 < web*9 || video == 0 {
			t.Errorf("router %s (v%d): %d of %d web flows named, %d googlevideo.com", r.Identity, r.Major, named, web, video)
		}
	}
	for _, st := range p.Status() {
		if st.Failures != 0 || st.Entries == 0 || st.Resolver == ResolverNo {
			t.Errorf("status %+v", st)
		}
	}
}
