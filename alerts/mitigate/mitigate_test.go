package mitigate

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// TestAttackedVictim lists the victims of inbound attacks (IPv4 and IPv6)
// with the configured timeout and comment, adds blackhole routes with each
// version's syntax, and removes both when the alerts resolve.
func TestAttackedVictim(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      routerostest.Personality
		routes []string
		audit  []string
		added  uint64
	}{{
		name: "v7",
		p:    routerostest.V7("wisp-1"),
		routes: []string{"100.64.1.23/32 blackhole=true type= flowbox alert 7: syn-flood",
			"2001:db8::7/128 blackhole=true type= flowbox alert 8: udp-amplification"},
		audit: []string{
			"7 add address-list flowbox-attacked 100.64.1.23 ok",
			"7 add blackhole  100.64.1.23 ok",
			"8 add address-list flowbox-attacked 2001:db8::7 ok",
			"8 add blackhole  2001:db8::7 ok",
			"7 remove blackhole  100.64.1.23 ok",
			"7 remove address-list flowbox-attacked 100.64.1.23 ok",
			"8 remove blackhole  2001:db8::7 ok",
			"8 remove address-list flowbox-attacked 2001:db8::7 ok",
		},
		added: 4,
	}, {
		name:   "v6",
		p:      routerostest.V6("wisp-1"),
		routes: []string{"100.64.1.23/32 blackhole=true type=blackhole flowbox alert 7: syn-flood"},
		audit: []string{
			"7 add address-list flowbox-attacked 100.64.1.23 ok",
			"7 add blackhole  100.64.1.23 ok",
			"8 add address-list flowbox-attacked 2001:db8::7 ok",
			"8 add blackhole  2001:db8::7 skipped: RouterOS 6 has no IPv6 blackhole route",
			"7 remove blackhole  100.64.1.23 ok",
			"7 remove address-list flowbox-attacked 100.64.1.23 ok",
			"8 remove address-list flowbox-attacked 2001:db8::7 ok",
		},
		added: 3,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy("blackhole")}))
			srv := e.router(t, "wisp-1", tc.p)
			ctx := t.Context()
			e.m.handle(ctx, ev(store.AlertOpened, 7, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
			e.m.handle(ctx, ev(store.AlertOpened, 8, store.AlertUDPAmplification, "in", "wisp-1", "2001:db8::7"))
			check(t, "address lists", lists(srv), []string{
				"flowbox-attacked 100.64.1.23 flowbox alert 7: syn-flood 1h0m0s",
				"flowbox-attacked 2001:db8::7/128 flowbox alert 8: udp-amplification 1h0m0s"})
			check(t, "routes", routes(srv), tc.routes)
			if st := e.status(t, "wisp-1"); st.Entries != 2 || st.MaxEntries != 50 || !st.Enabled || st.DryRun {
				t.Errorf("status while active = %+v", st)
			}

			// An update of a listed alert changes nothing on the router.
			before := srv.Commands()
			e.m.handle(ctx, ev(store.AlertUpdated, 7, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
			if n := srv.Commands(); n != before {
				t.Errorf("update ran %d commands", n-before)
			}

			e.m.handle(ctx, ev(store.AlertResolved, 7, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
			e.m.handle(ctx, ev(store.AlertResolved, 8, store.AlertUDPAmplification, "in", "wisp-1", "2001:db8::7"))
			check(t, "address lists after resolve", lists(srv), nil)
			check(t, "routes after resolve", routes(srv), nil)
			check(t, "audit log", e.audit.lines(), tc.audit)
			for _, a := range e.audit.all() {
				if a.Router != "wisp-1" || !a.At.Equal(e.clk.Now()) || a.DryRun {
					t.Errorf("audit entry %+v", a)
				}
				if wantTimeout := a.Kind == kindAddressList; (a.Timeout == time.Hour) != wantTimeout {
					t.Errorf("audit entry %+v: timeout", a)
				}
			}
			st := e.status(t, "wisp-1")
			if st.Entries != 0 || st.Added != tc.added || st.Removed != tc.added || st.Skipped != uint64(len(tc.audit))-2*tc.added || st.Errors != 0 {
				t.Errorf("status = %+v", st)
			}
		})
	}
}

// TestAbuse lists the sources of outbound abuse in the abuse list (here
// renamed, with its own timeout), never blackholes them, and leaves alone
// the kinds and directions mitigation is not for.
func TestAbuse(t *testing.T) {
	rc := policy("blackhole")
	rc.AbuseList, rc.Timeout = "limit-smtp", 30*time.Minute
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": rc}))
	srv := e.router(t, "wisp-1", routerostest.V7("wisp-1"))
	ctx := t.Context()
	e.m.handle(ctx, ev(store.AlertOpened, 3, store.AlertSMTPSpam, "out", "wisp-1", "10.0.1.5"))
	e.m.handle(ctx, ev(store.AlertOpened, 4, store.AlertPortScan, "out", "wisp-1", "10.0.0.20"))
	e.m.handle(ctx, ev(store.AlertOpened, 5, store.AlertFlowFlood, "out", "wisp-1", "10.0.0.30"))
	before := srv.Commands()
	for i, a := range []store.AlertEvent{
		ev(store.AlertOpened, 10, store.AlertPortScan, "in", "wisp-1", "10.0.0.40"),
		ev(store.AlertOpened, 11, store.AlertVolumetric, "out", "wisp-1", "10.0.0.41"),
		ev(store.AlertOpened, 12, store.AlertExportStopped, "", "wisp-1", "wisp-1"),
		ev(store.AlertOpened, 13, store.AlertTrafficCollapse, "in", "wisp-1", "wisp-1/ether1"),
	} {
		e.m.AlertChanged(a)
		if len(e.m.queue) != 0 {
			t.Errorf("event %d queued", i)
		}
		e.m.handle(ctx, a)
	}
	if n := srv.Commands(); n != before {
		t.Errorf("alerts mitigation is not for ran %d commands", n-before)
	}
	check(t, "address lists", lists(srv), []string{
		"limit-smtp 10.0.1.5 flowbox alert 3: smtp-spam 30m0s",
		"limit-smtp 10.0.0.20 flowbox alert 4: port-scan 30m0s",
		"limit-smtp 10.0.0.30 flowbox alert 5: flow-flood 30m0s"})
	check(t, "routes", routes(srv), nil)
	e.m.handle(ctx, ev(store.AlertResolved, 4, store.AlertPortScan, "out", "wisp-1", "10.0.0.20"))
	check(t, "address lists after resolve", lists(srv), []string{
		"limit-smtp 10.0.1.5 flowbox alert 3: smtp-spam 30m0s",
		"limit-smtp 10.0.0.30 flowbox alert 5: flow-flood 30m0s"})
	check(t, "audit log", e.audit.lines(), []string{
		"3 add address-list limit-smtp 10.0.1.5 ok",
		"4 add address-list limit-smtp 10.0.0.20 ok",
		"5 add address-list limit-smtp 10.0.0.30 ok",
		"4 remove address-list limit-smtp 10.0.0.20 ok"})
}

// TestOff: nothing at all happens on a router whose mitigation is off
// (explicitly, or by default when it is not listed).
func TestOff(t *testing.T) {
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy("blackhole", "off")}))
	srv1 := e.router(t, "wisp-1", routerostest.V7("wisp-1"))
	srv2 := e.router(t, "wisp-2", routerostest.V6("wisp-2"))
	ctx := t.Context()
	for _, r := range []string{"wisp-1", "wisp-2"} {
		for _, a := range []store.AlertEvent{
			ev(store.AlertOpened, 1, store.AlertSYNFlood, "in", r, "100.64.1.23"),
			ev(store.AlertOpened, 2, store.AlertSMTPSpam, "out", r, "10.0.1.5"),
			ev(store.AlertResolved, 1, store.AlertSYNFlood, "in", r, "100.64.1.23"),
		} {
			e.m.AlertChanged(a)
			e.m.handle(ctx, a)
		}
	}
	if n, err := e.m.Cleanup(ctx); n != 0 || err != nil {
		t.Errorf("cleanup = %d, %v", n, err)
	}
	e.m.maintain(ctx)
	if len(e.m.queue) != 0 || srv1.Commands() != 0 || srv2.Commands() != 0 || len(e.audit.all()) != 0 {
		t.Errorf("mitigation off: %d queued, %d and %d commands, audit %q", len(e.m.queue), srv1.Commands(),
			srv2.Commands(), e.audit.lines())
	}
	got := e.m.Status()
	want := []store.MitigationStatus{{Router: "wisp-1", MaxEntries: 50}}
	if !slices.Equal(got, want) {
		t.Errorf("status = %+v, want %+v", got, want)
	}
}

// TestDryRun audits what would be done, counts it as skipped, and never
// talks to the router.
func TestDryRun(t *testing.T) {
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy("dry-run", "blackhole")}))
	srv := e.router(t, "wisp-1", routerostest.V7("wisp-1"))
	ctx := t.Context()
	e.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.1.23"))
	e.m.handle(ctx, ev(store.AlertOpened, 2, store.AlertPortScan, "out", "wisp-1", "10.0.1.5"))
	if st := e.status(t, "wisp-1"); !st.DryRun || st.Entries != 2 || st.Skipped != 3 || st.Added != 0 {
		t.Errorf("status = %+v", st)
	}
	e.m.handle(ctx, ev(store.AlertResolved, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.1.23"))
	e.m.handle(ctx, ev(store.AlertResolved, 2, store.AlertPortScan, "out", "wisp-1", "10.0.1.5"))
	e.clk.Add(2 * time.Hour)
	e.m.maintain(ctx)
	if n := srv.Commands(); n != 0 {
		t.Errorf("dry run ran %d commands", n)
	}
	check(t, "audit log", e.audit.lines(), []string{
		"1 add address-list flowbox-attacked 100.64.1.23 skipped: dry run (dry run)",
		"1 add blackhole  100.64.1.23 skipped: dry run (dry run)",
		"2 add address-list flowbox-abuse 10.0.1.5 skipped: dry run (dry run)",
		"1 remove address-list flowbox-attacked 100.64.1.23 skipped: dry run (dry run)",
		"1 remove blackhole  100.64.1.23 skipped: dry run (dry run)",
		"2 remove address-list flowbox-abuse 10.0.1.5 skipped: dry run (dry run)"})
	if st := e.status(t, "wisp-1"); st.Entries != 0 || st.Skipped != 6 || st.Added != 0 || st.Removed != 0 {
		t.Errorf("status after resolve = %+v", st)
	}
}

// TestCap lists 50 addresses, skips and counts the 51st (once, however
// many updates it gets), and lists it when a resolution frees room.
func TestCap(t *testing.T) {
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy()}))
	srv := e.router(t, "wisp-1", routerostest.V7("wisp-1"))
	ctx := t.Context()
	target := func(i int) string { return netip.AddrFrom4([4]byte{100, 64, 0, byte(i)}).String() }
	for i := 1; i <= 51; i++ {
		e.m.handle(ctx, ev(store.AlertOpened, int64(i), store.AlertVolumetric, "in", "wisp-1", target(i)))
	}
	e.m.handle(ctx, ev(store.AlertUpdated, 51, store.AlertVolumetric, "in", "wisp-1", target(51)))
	if n := len(srv.AddressList(false)); n != 50 {
		t.Errorf("%d entries on the router, want 50", n)
	}
	lines := e.audit.lines()
	if len(lines) != 51 || lines[50] != "51 add address-list flowbox-attacked 100.64.0.51 skipped: cap of 50 entries reached" {
		t.Errorf("audit log has %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	if st := e.status(t, "wisp-1"); st.Entries != 50 || st.Added != 50 || st.Skipped != 1 {
		t.Errorf("status = %+v", st)
	}
	e.m.handle(ctx, ev(store.AlertResolved, 1, store.AlertVolumetric, "in", "wisp-1", target(1)))
	e.m.maintain(ctx)
	l := srv.AddressList(false)
	if len(l) != 50 || l[len(l)-1].Address != "100.64.0.51" {
		t.Errorf("after room freed: %d entries, last %+v", len(l), l[len(l)-1])
	}
	if st := e.status(t, "wisp-1"); st.Entries != 50 || st.Added != 51 || st.Removed != 1 || st.Skipped != 1 {
		t.Errorf("status after room freed = %+v", st)
	}
}

// TestSharedAndForeignEntries: an operator's own entry for the same
// address is neither adopted nor removed; two alerts on one address share
// one entry, removed with the last of them; a target that is no address,
// or the router's own, is skipped.
func TestSharedAndForeignEntries(t *testing.T) {
	p := routerostest.V7("wisp-1")
	p.AddressLists = []routerostest.AddressListEntry{{List: "flowbox-attacked", Address: "100.64.9.9", Comment: "operator"}}
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy()}))
	srv := e.router(t, "wisp-1", p)
	r, _ := e.inv.GetRouter(t.Context(), "wisp-1")
	r.Addresses = []netip.Prefix{netip.MustParsePrefix("100.64.0.1/24")}
	e.inv.set(*r)
	ctx := t.Context()
	e.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertVolumetric, "in", "wisp-1", "100.64.9.9"))
	e.m.handle(ctx, ev(store.AlertOpened, 2, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.1"))
	e.m.handle(ctx, ev(store.AlertOpened, 3, store.AlertVolumetric, "in", "wisp-1", "100.64.1.1"))
	e.m.handle(ctx, ev(store.AlertOpened, 4, store.AlertVolumetric, "in", "wisp-1", "wisp-1/ether1"))
	e.m.handle(ctx, ev(store.AlertOpened, 5, store.AlertVolumetric, "in", "wisp-1", "224.0.0.5"))
	e.m.handle(ctx, ev(store.AlertOpened, 6, store.AlertVolumetric, "in", "wisp-1", "100.64.0.1"))
	e.m.handle(ctx, ev(store.AlertOpened, 7, store.AlertVolumetric, "in", "wisp-1", "127.0.0.1"))
	check(t, "address lists", lists(srv), []string{
		"flowbox-attacked 100.64.9.9 operator 0s",
		"flowbox-attacked 100.64.1.1 flowbox alert 2: syn-flood 1h0m0s"})
	for _, id := range []int64{1, 2} {
		e.m.handle(ctx, ev(store.AlertResolved, id, store.AlertVolumetric, "in", "wisp-1", ""))
	}
	check(t, "address lists after resolving 1 and 2", lists(srv), []string{
		"flowbox-attacked 100.64.9.9 operator 0s",
		"flowbox-attacked 100.64.1.1 flowbox alert 2: syn-flood 1h0m0s"})
	e.m.handle(ctx, ev(store.AlertResolved, 3, store.AlertVolumetric, "in", "wisp-1", ""))
	check(t, "address lists after resolving 3", lists(srv), []string{"flowbox-attacked 100.64.9.9 operator 0s"})
	check(t, "audit log", e.audit.lines(), []string{
		"1 add address-list flowbox-attacked 100.64.9.9 skipped: 100.64.9.9 is already in list flowbox-attacked (not flowbox's entry)",
		"2 add address-list flowbox-attacked 100.64.1.1 ok",
		"3 add address-list flowbox-attacked 100.64.1.1 skipped: already listed for alert 2",
		`4 add address-list flowbox-attacked wisp-1/ether1 skipped: target "wisp-1/ether1" is not an IP address`,
		"5 add address-list flowbox-attacked 224.0.0.5 skipped: target 224.0.0.5 is not a unicast address",
		"6 add address-list flowbox-attacked 100.64.0.1 skipped: target is the router's own address",
		"7 add address-list flowbox-attacked 127.0.0.1 skipped: target 127.0.0.1 is not a unicast address",
		"2 remove address-list flowbox-attacked 100.64.1.1 ok"})
}

// TestUndo removes every flowbox entry and route from a router, and
// nothing of the operator's; the alerts active then are not mitigated
// again.
func TestUndo(t *testing.T) {
	p := routerostest.V7("wisp-1")
	p.AddressLists = []routerostest.AddressListEntry{{List: "flowbox-attacked", Address: "100.64.9.9", Comment: "operator"},
		{List: "blocked", Address: "2001:db8:bad::/48"}}
	p.Routes = []routerostest.Route{{DstAddress: netip.MustParsePrefix("0.0.0.0/0"), Gateway: "192.0.2.1"},
		{DstAddress: netip.MustParsePrefix("198.51.100.0/24"), Blackhole: true, Comment: "bogon"}}
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy("blackhole")}))
	srv := e.router(t, "wisp-1", p)
	ctx := t.Context()
	e.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	e.m.handle(ctx, ev(store.AlertOpened, 2, store.AlertSMTPSpam, "out", "wisp-1", "10.0.1.5"))
	e.m.handle(ctx, ev(store.AlertOpened, 3, store.AlertVolumetric, "in", "wisp-1", "2001:db8::7"))
	n, err := e.m.Undo(ctx, "wisp-1")
	if err != nil || n != 5 {
		t.Fatalf("undo = %d, %v; want 5 removed", n, err)
	}
	check(t, "address lists", lists(srv), []string{"flowbox-attacked 100.64.9.9 operator 0s", "blocked 2001:db8:bad::/48  0s"})
	check(t, "routes", routes(srv), []string{"0.0.0.0/0 blackhole=false type= ", "198.51.100.0/24 blackhole=true type= bogon"})
	before := srv.Commands()
	e.m.handle(ctx, ev(store.AlertUpdated, 1, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	e.clk.Add(time.Hour)
	e.m.maintain(ctx)
	e.m.handle(ctx, ev(store.AlertResolved, 1, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	if n := srv.Commands(); n != before {
		t.Errorf("%d commands after undo", n-before)
	}
	if st := e.status(t, "wisp-1"); st.Entries != 0 || st.Removed != 5 {
		t.Errorf("status = %+v", st)
	}
	lines := e.audit.lines()
	check(t, "undo's audit", lines[len(lines)-5:], []string{
		"1 remove blackhole  100.64.1.23 ok",
		"3 remove blackhole  2001:db8::7 ok",
		"1 remove address-list flowbox-attacked 100.64.1.23 ok",
		"2 remove address-list flowbox-abuse 10.0.1.5 ok",
		"3 remove address-list flowbox-attacked 2001:db8::7 ok"})
	if n, err := e.m.Undo(ctx, "wisp-1"); n != 0 || err != nil {
		t.Errorf("second undo = %d, %v", n, err)
	}
	if _, err := e.m.Undo(ctx, "nowhere"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("undo of an unknown router: %v", err)
	}
}

// TestNoIPv6: a router without the ipv6 package skips IPv6 targets for
// good, and Undo and Cleanup still work on its IPv4 menus.
func TestNoIPv6(t *testing.T) {
	p := routerostest.V7("wisp-1")
	p.NoIPv6 = true
	e := newEnv(t, config(map[string]RouterConfig{"wisp-1": policy("blackhole")}))
	srv := e.router(t, "wisp-1", p)
	ctx := t.Context()
	e.m.handle(ctx, ev(store.AlertOpened, 1, store.AlertSYNFlood, "in", "wisp-1", "2001:db8::7"))
	e.m.handle(ctx, ev(store.AlertOpened, 2, store.AlertSYNFlood, "in", "wisp-1", "100.64.1.23"))
	e.clk.Add(10 * time.Minute)
	e.m.handle(ctx, ev(store.AlertUpdated, 1, store.AlertSYNFlood, "in", "wisp-1", "2001:db8::7"))
	if n, err := e.m.Cleanup(ctx); n != 0 || err != nil {
		t.Errorf("cleanup = %d, %v", n, err)
	}
	if n, err := e.m.Undo(ctx, "wisp-1"); n != 2 || err != nil {
		t.Errorf("undo = %d, %v", n, err)
	}
	check(t, "audit log", e.audit.lines(), []string{
		"1 add address-list flowbox-attacked 2001:db8::7 skipped: the router has no IPv6 firewall (ipv6 package disabled?)",
		"2 add address-list flowbox-attacked 100.64.1.23 ok",
		"2 add blackhole  100.64.1.23 ok",
		"2 remove blackhole  100.64.1.23 ok",
		"2 remove address-list flowbox-attacked 100.64.1.23 ok"})
	check(t, "address lists", lists(srv), nil)
}
