package simulator

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startFleet(t *testing.T, cfg Config) *Fleet {
	t.Helper()
	f, err := New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

func dial(t *testing.T, r *Router) *routeros.Client {
	t.Helper()
	c, err := routeros.DialTimeout(r.APIAddr(), r.Username, r.Password, 5*time.Second)
	if err != nil {
		t.Fatalf("cannot log in to %s (v%d): %v", r.Identity, r.Major, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *routeros.Client, words ...string) *routeros.Reply {
	t.Helper()
	rep, err := c.Run(words...)
	if err != nil {
		t.Fatalf("%v: %v", words, err)
	}
	return rep
}

// versionsFrom returns the NetFlow versions of the datagrams from src.
func versionsFrom(pkts []testutil.Datagram, src netip.Addr) map[uint16]int {
	out := map[uint16]int{}
	for _, p := range pkts {
		if p.From.Addr() == src {
			out[binary.BigEndian.Uint16(p.Data)]++
		}
	}
	return out
}

// The fleet wiring: a router exports only while its traffic-flow is enabled
// and has a target, with the target's version, from its own address; the
// API state matches the model.
func TestFleetExportsFollowTrafficFlow(t *testing.T) {
	f := startFleet(t, Config{Routers: 2, Rate: 4000, Seed: 1, Password: "demo", Subscribers: 120})
	s := testutil.NewUDPSink(t)
	port := strconv.Itoa(int(s.Addr().Port()))
	v6, v7 := f.Routers()[0], f.Routers()[1]
	if v6.Major != 6 || v7.Major != 7 {
		t.Fatalf("mixed fleet majors %d, %d", v6.Major, v7.Major)
	}

	c := dial(t, v7)
	rep := run(t, c, "/system/identity/print")
	if got := rep.Re[0].Map["name"]; got != v7.Identity {
		t.Fatalf("identity %q, want %q", got, v7.Identity)
	}
	leases := run(t, c, "/ip/dhcp-server/lease/print")
	ppp := run(t, c, "/ppp/active/print")
	var dhcp, pppoe int
	for _, s := range v7.Model.Subscribers() {
		if s.Kind == netflowtest.KindDHCP {
			dhcp++
		} else {
			pppoe++
		}
	}
	if len(leases.Re) != dhcp || len(ppp.Re) != pppoe {
		t.Fatalf("%d leases and %d PPP sessions, want %d and %d", len(leases.Re), len(ppp.Re), dhcp, pppoe)
	}
	// Wrong password: RouterOS's error.
	if _, err := routeros.DialTimeout(v7.APIAddr(), "admin", "nope", 5*time.Second); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}

	// Nothing is exported before provisioning.
	if st := f.Stats()[1]; len(st.Targets) != 0 || st.Generated != 0 {
		t.Fatalf("exporting before any target: %+v", st)
	}
	// A target alone (traffic-flow disabled) exports nothing.
	add := run(t, c, "/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port="+port, "=version=9",
		"=v9-template-refresh=20", "=v9-template-timeout=1m")
	id := add.Done.Map["ret"]
	if len(f.Stats()[1].Targets) != 0 {
		t.Fatal("exporting while traffic-flow is disabled")
	}
	run(t, c, "/ip/traffic-flow/set", "=enabled=yes")
	src := v7.ExportAddr().Addr()
	if src.String() != "127.0.0.3" {
		t.Fatalf("router 1 exports from %s, want its own 127.0.0.3", src)
	}
	testutil.WaitFor(t, 10*time.Second, "v9 exports", func() (bool, string) {
		n := versionsFrom(s.Datagrams(), src)[9]
		return n >= 3, fmt.Sprintf("%d v9 datagrams from %s", n, src)
	})

	// Switching the target to IPFIX switches the exports.
	run(t, c, "/ip/traffic-flow/target/set", "=.id="+id, "=version=ipfix")
	testutil.WaitFor(t, 10*time.Second, "IPFIX exports", func() (bool, string) {
		n := versionsFrom(s.Datagrams(), src)[10]
		return n >= 3, fmt.Sprintf("%d IPFIX datagrams from %s", n, src)
	})

	// Removing the target stops the exports: after the reply, the exporter
	// has no target, and what it counted is exactly what arrived.
	run(t, c, "/ip/traffic-flow/target/remove", "=.id="+id)
	st := f.Stats()[1]
	if len(st.Targets) != 0 {
		t.Fatalf("targets after remove: %+v", st.Targets)
	}
	fromV7 := func() int {
		n := 0
		for _, v := range versionsFrom(s.Datagrams(), src) {
			n += v
		}
		return n
	}
	testutil.WaitFor(t, 10*time.Second, "the last datagrams", func() (bool, string) {
		n := fromV7()
		return uint64(n) == st.Packets, fmt.Sprintf("%d of %d datagrams arrived", n, st.Packets)
	})
	// The exporter goes on ticking (a second collector, added now, gets
	// datagrams) and sends nothing more to the removed target.
	s2 := testutil.NewUDPSink(t)
	add2 := run(t, c, "/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port="+strconv.Itoa(int(s2.Addr().Port())),
		"=version=9")
	testutil.WaitFor(t, 10*time.Second, "exports to a second collector", func() (bool, string) {
		n := versionsFrom(s2.Datagrams(), src)[9]
		return n >= 3, fmt.Sprintf("%d v9 datagrams from %s", n, src)
	})
	after := f.Stats()[1]
	if len(after.Targets) != 1 || after.Targets[0].Target.Addr != s2.Addr() || after.Packets-after.Targets[0].Packets != st.Packets {
		t.Fatalf("after removing the target: %+v, want only %s and %d packets to the removed one", after, s2.Addr(), st.Packets)
	}
	if got := fromV7(); uint64(got) != st.Packets {
		t.Fatalf("%d datagrams after removing the target, exporter counted %d", got, st.Packets)
	}
	run(t, c, "/ip/traffic-flow/target/remove", "=.id="+add2.Done.Map["ret"])

	// The v6 router: challenge login, legacy target syntax; disabling
	// traffic-flow stops it.
	c6 := dial(t, v6)
	run(t, c6, "/ip/traffic-flow/target/add", "=address=127.0.0.1:"+port, "=version=5")
	run(t, c6, "/ip/traffic-flow/set", "=enabled=yes")
	src6 := v6.ExportAddr().Addr()
	testutil.WaitFor(t, 10*time.Second, "v5 exports from the v6 router", func() (bool, string) {
		n := versionsFrom(s.Datagrams(), src6)[5]
		return n >= 3, fmt.Sprintf("%d v5 datagrams from %s", n, src6)
	})
	if src6 != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("router 0 exports from %s, want its own 127.0.0.2", src6)
	}
	run(t, c6, "/ip/traffic-flow/set", "=enabled=no")
	if st := f.Stats()[0]; len(st.Targets) != 0 {
		t.Fatalf("v6 router still exporting after disable: %+v", st.Targets)
	}
	// A collector that is not on this host is not exported to.
	run(t, c6, "/ip/traffic-flow/target/add", "=address=192.0.2.1:2055", "=version=9")
	run(t, c6, "/ip/traffic-flow/set", "=enabled=yes")
	if st := f.Stats()[0]; len(st.Targets) != 1 || st.Targets[0].Target.Addr.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("targets %+v, want only the loopback one", st.Targets)
	}
	run(t, c6, "/ip/traffic-flow/set", "=enabled=no")
	// A bad command gets RouterOS's trap, and the session goes on.
	_, err := c6.Run("/ip/traffic-flow/target/remove", "=.id=*99")
	var de *routeros.DeviceError
	if !errors.As(err, &de) {
		t.Fatalf("removing a missing target: %v, want a device error", err)
	}
	run(t, c6, "/system/identity/print")
}

func TestFleetSameSeedSameState(t *testing.T) {
	build := func(seed uint64) *Fleet {
		f, err := New(Config{Routers: 3, Seed: seed, Password: "x", Subscribers: 50}, discard())
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b, c := build(7), build(7), build(8)
	for i := range 3 {
		ma, mb, mc := a.Routers()[i].Model, b.Routers()[i].Model, c.Routers()[i].Model
		if !reflect.DeepEqual(ma.Subscribers(), mb.Subscribers()) {
			t.Fatalf("router %d: same seed, different subscribers", i)
		}
		if reflect.DeepEqual(ma.Subscribers(), mc.Subscribers()) {
			t.Fatalf("router %d: different seeds, same subscribers", i)
		}
		now := time.Date(2026, 1, 2, 20, 0, 0, 0, time.UTC)
		if !reflect.DeepEqual(ma.AppendFlows(nil, 500, now), mb.AppendFlows(nil, 500, now)) {
			t.Fatalf("router %d: same seed, different flows", i)
		}
	}
	if reflect.DeepEqual(a.Routers()[0].Model.Subscribers(), a.Routers()[1].Model.Subscribers()) {
		t.Fatal("two routers of a fleet have the same subscribers")
	}
}

// TestFleetClock: the fleet's clock and time zone drive every router's
// daily curve.
func TestFleetClock(t *testing.T) {
	loc := time.FixedZone("UTC-3", -3*3600)
	sim := time.Date(2026, 3, 14, 3, 0, 0, 0, loc)
	f, err := New(Config{Routers: 2, Password: "x", Subscribers: 20, Location: loc,
		Clock: func() time.Time { return sim }}, discard())
	if err != nil {
		t.Fatal(err)
	}
	exported := time.Date(2026, 3, 14, 23, 0, 0, 0, time.UTC) // 20:00 in loc
	for _, r := range f.Routers() {
		if got, want := r.Model.ActivityAt(exported), r.Model.Activity(sim); !r.Model.CurveTime(exported).Equal(sim) || got != want || got > 0.15 {
			t.Errorf("router %d: activity %g at curve time %v, want the night's %g at %v", r.Index, got, r.Model.CurveTime(exported), want, sim)
		}
		if cfg := r.Model.Config(); cfg.Location != loc {
			t.Errorf("router %d: daily curve in %v, want %v", r.Index, cfg.Location, loc)
		}
	}
}

func TestFleetConfigErrors(t *testing.T) {
	_, err := New(Config{Routers: 0, Versions: "8", Rate: -1, Scenario: "x", APIPortBase: 70000}, discard())
	want := "invalid fleet config: routers: 0 is outside 1..64\napi-port-base: 70000 leaves no room for 0 routers\n" +
		"version: \"8\" is not one of 6, 7, mixed\nrate: -1 is negative\nscenario: \"x\" is not one of ddos, synflood, portscan, spam, export-stop, fasttrack, unexported-interface"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	_, err = New(Config{Routers: 2, Scenario: netflowtest.ScenarioDDoS, ScenarioRouter: 2, ScenarioStart: -time.Second,
		ScenarioDuration: -time.Minute, ScenarioRate: -1}, discard())
	want = "invalid fleet config: scenario-router: 2 is outside 0..1\nscenario-start: -1s is negative\n" +
		"scenario-duration: -1m0s is negative\nscenario-rate: -1 is outside 0..100000"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// A taken port is reported and nothing stays open.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	f, err := New(Config{Routers: 1, APIPortBase: taken, Password: "x"}, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err == nil {
		f.Stop()
		t.Fatal("started on a taken port")
	}
}

func TestFleetTLS(t *testing.T) {
	f := startFleet(t, Config{Routers: 1, Versions: "7", TLS: true, Password: "demo", Subscribers: 10})
	r := f.Routers()[0]
	if len(r.Fingerprint) != 64 {
		t.Fatalf("fingerprint %q", r.Fingerprint)
	}
	// Pin the self-signed certificate by fingerprint, as flowbox does.
	conn, err := tls.Dial("tcp", r.APIAddr(), &tls.Config{InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if sum := sha256.Sum256(raw[0]); hex.EncodeToString(sum[:]) != r.Fingerprint {
				return errors.New("fingerprint mismatch")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := routeros.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("admin", "demo"); err != nil {
		t.Fatalf("API-SSL login: %v", err)
	}
	if rep := run(t, c, "/system/identity/print"); rep.Re[0].Map["name"] != r.Identity {
		t.Fatalf("identity over API-SSL: %v", rep.Re[0].Map)
	}
}

// TestFleetExportAddresses: no two routers export from one address, each
// exports from an address of its /ip/address list, a target's src-address
// moves a router's exports (as on RouterOS), and a fleet that cannot give
// every router its own address does not start.
func TestFleetExportAddresses(t *testing.T) {
	f := startFleet(t, Config{Routers: 3, Versions: "7", Rate: 4000, Seed: 2, Password: "demo", Subscribers: 20})
	seen := map[netip.Addr]string{}
	for _, r := range f.Routers() {
		a := r.ExportAddr().Addr()
		if other, dup := seen[a]; dup {
			t.Fatalf("%s and %s both export from %s", other, r.Identity, a)
		}
		seen[a] = r.Identity
		rep := run(t, dial(t, r), "/ip/address/print", "?address="+a.String()+"/32")
		if len(rep.Re) != 1 {
			t.Errorf("%s exports from %s, which is not in its /ip/address list", r.Identity, a)
		}
	}

	s := testutil.NewUDPSink(t)
	r := f.Routers()[1]
	c := dial(t, r)
	add := run(t, c, "/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port="+strconv.Itoa(int(s.Addr().Port())),
		"=src-address=127.0.0.99", "=version=9")
	run(t, c, "/ip/traffic-flow/set", "=enabled=yes")
	moved := netip.MustParseAddr("127.0.0.99")
	testutil.WaitFor(t, 10*time.Second, "exports from the src-address", func() (bool, string) {
		n := versionsFrom(s.Datagrams(), moved)[9]
		return n >= 3 && r.ExportAddr().Addr() == moved, fmt.Sprintf("%d datagrams from %s, exporting from %s", n, moved, r.ExportAddr())
	})
	// Back to 0.0.0.0: the router's own address again.
	run(t, c, "/ip/traffic-flow/target/set", "=.id="+add.Done.Map["ret"], "=src-address=0.0.0.0")
	own := netip.MustParseAddr("127.0.0.3")
	testutil.WaitFor(t, 10*time.Second, "exports from the router's own address", func() (bool, string) {
		n := versionsFrom(s.Datagrams(), own)[9]
		return n >= 3, fmt.Sprintf("%d datagrams from %s", n, own)
	})
	// A src-address this host cannot send from: nothing is exported
	// rather than from another address.
	run(t, c, "/ip/traffic-flow/target/set", "=.id="+add.Done.Map["ret"], "=src-address=192.0.2.1")
	if st := f.Stats()[1]; len(st.Targets) != 0 {
		t.Errorf("exporting from elsewhere than the unreachable src-address: %+v", st.Targets)
	}

	// A platform without 127.0.0.3 on loopback, simulated with an
	// address this host does not have: Start fails and says why.
	bad, err := New(Config{Routers: 1, Password: "x", Subscribers: 10, ExportFrom: netip.MustParseAddr("192.0.2.1")}, discard())
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Start()
	if err == nil {
		bad.Stop()
		t.Fatal("a router that cannot bind its own address started")
	}
	if !strings.Contains(err.Error(), "each simulated router exports from a loopback address of its own") {
		t.Errorf("Start: %v", err)
	}
	if a := bad.Routers()[0].APIAddr(); a != "" && !strings.HasSuffix(a, ":0") {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("the API of a fleet that failed to start still listens on %s", a)
		}
	}
}

// fakeClock is a clock that tests move.
type fakeClock struct {
	base  time.Time
	off   atomic.Int64
	reads atomic.Int64 // how often the clock was read
}

func (c *fakeClock) now() time.Time {
	c.reads.Add(1)
	return c.base.Add(time.Duration(c.off.Load()))
}
func (c *fakeClock) set(elapsed time.Duration) { c.off.Store(int64(elapsed)) }

// TestFleetScenario: only the chosen router runs the scenario; its window
// starts at Start plus the delay on the fleet's clock, its target is the
// model's, and WatchScenario reports the start and the end as the clock
// passes them.
func TestFleetScenario(t *testing.T) {
	clock := &fakeClock{base: time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC)}
	f, err := New(Config{Routers: 3, Password: "x", Subscribers: 40, Seed: 3, Clock: clock.now,
		Scenario: netflowtest.ScenarioSynflood, ScenarioRouter: 2, ScenarioStart: time.Minute,
		ScenarioDuration: 90 * time.Second, ScenarioRate: 10}, discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Routers() {
		cfg := r.Model.Config()
		if want := map[bool]string{true: netflowtest.ScenarioSynflood}[r.Index == 2]; cfg.Scenario != want {
			t.Errorf("router %d runs scenario %q, want %q", r.Index, cfg.Scenario, want)
		}
	}
	if info, ok := f.Scenario(); !ok || !info.Start.IsZero() || info.Identity != "wisp-3" {
		t.Fatalf("before Start: %+v %v", info, ok)
	}
	clock.set(5 * time.Second)
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	info, _ := f.Scenario()
	addr, sub := f.Routers()[2].Model.ScenarioTarget()
	want := ScenarioInfo{Scenario: "synflood", Router: 2, Identity: "wisp-3", Addr: addr, Subscriber: sub,
		Start: clock.base.Add(65 * time.Second), End: clock.base.Add(155 * time.Second)}
	if info != want || !addr.IsValid() || sub == "" {
		t.Fatalf("scenario %+v\nwant %+v", info, want)
	}

	type event struct {
		name string
		at   time.Duration
	}
	var mu sync.Mutex
	var events []event
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.WatchScenario(context.Background(), func(e string, got ScenarioInfo) {
			if got != want {
				t.Errorf("event %s: %+v", e, got)
			}
			mu.Lock()
			events = append(events, event{e, time.Duration(clock.off.Load())})
			mu.Unlock()
		})
	}()
	seen := func() []event {
		mu.Lock()
		defer mu.Unlock()
		return append([]event(nil), events...)
	}
	for _, step := range []struct {
		at   time.Duration
		want []event
	}{
		{64 * time.Second, nil},
		{65 * time.Second, []event{{ScenarioStarted, 65 * time.Second}}},
		{154 * time.Second, []event{{ScenarioStarted, 65 * time.Second}}},
		{156 * time.Second, []event{{ScenarioStarted, 65 * time.Second}, {ScenarioEnded, 156 * time.Second}}},
	} {
		clock.set(step.at)
		if step.want == nil || len(step.want) == len(seen()) {
			// Nothing is due: the watcher reads the clock a few times
			// and says nothing new.
			reads := clock.reads.Load()
			testutil.WaitFor(t, 10*time.Second, "the watcher's polls", func() (bool, string) {
				n := clock.reads.Load() - reads
				return n >= 3, fmt.Sprintf("%d clock reads", n)
			})
		}
		testutil.WaitFor(t, 10*time.Second, "scenario events", func() (bool, string) {
			got := seen()
			return reflect.DeepEqual(got, step.want), fmt.Sprintf("at +%s: events %v, want %v", step.at, got, step.want)
		})
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchScenario did not return after the end")
	}
}

// TestFleetExportStop: during export-stop, the chosen router sends nothing
// while another goes on and its API keeps answering; after it, its exports
// resume.
func TestFleetExportStop(t *testing.T) {
	clock := &fakeClock{base: time.Date(2026, 3, 14, 20, 0, 0, 0, time.UTC)}
	f := startFleet(t, Config{Routers: 2, Versions: "7", Rate: 4000, Seed: 4, Password: "demo", Subscribers: 40,
		Clock: clock.now, Scenario: netflowtest.ScenarioExportStop, ScenarioRouter: 1,
		ScenarioStart: 10 * time.Second, ScenarioDuration: 30 * time.Second})
	s := testutil.NewUDPSink(t)
	port := strconv.Itoa(int(s.Addr().Port()))
	var cs []*routeros.Client
	for _, r := range f.Routers() {
		c := dial(t, r)
		cs = append(cs, c)
		run(t, c, "/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port="+port, "=version=9")
		run(t, c, "/ip/traffic-flow/set", "=enabled=yes")
	}
	ordinary, stopped := f.Routers()[0].ExportAddr().Addr(), f.Routers()[1].ExportAddr().Addr()
	count := func(a netip.Addr) int {
		n := 0
		for _, v := range versionsFrom(s.Datagrams(), a) {
			n += v
		}
		return n
	}
	// more waits until the ordinary router sent n more datagrams: both
	// exporters ticked many times meanwhile.
	more := func(n int) {
		from := count(ordinary)
		testutil.WaitFor(t, 10*time.Second, "exports of the ordinary router", func() (bool, string) {
			got := count(ordinary)
			return got >= from+n, fmt.Sprintf("%d datagrams from %s, want %d", got, ordinary, from+n)
		})
	}
	testutil.WaitFor(t, 10*time.Second, "exports before the scenario", func() (bool, string) {
		return count(stopped) >= 3 && count(ordinary) >= 3, fmt.Sprintf("%d and %d datagrams", count(ordinary), count(stopped))
	})

	clock.set(15 * time.Second)
	more(20) // the exports in flight at the switch arrive
	before := count(stopped)
	more(40)
	if got := count(stopped); got != before {
		t.Fatalf("the stopped router sent %d datagrams during export-stop", got-before)
	}
	if rep := run(t, cs[1], "/system/identity/print"); rep.Re[0].Map["name"] != f.Routers()[1].Identity {
		t.Fatalf("identity during export-stop: %v", rep.Re[0].Map)
	}
	if st := f.Stats()[1]; len(st.Targets) != 1 {
		t.Fatalf("targets during export-stop: %+v, want the configured one", st.Targets)
	}

	clock.set(40 * time.Second)
	testutil.WaitFor(t, 10*time.Second, "exports after the scenario", func() (bool, string) {
		got := count(stopped)
		return got >= before+3, fmt.Sprintf("%d datagrams after export-stop", got-before)
	})
}
