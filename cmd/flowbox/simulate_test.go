package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/enrich"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// simDecoded is what flowbox's decoder makes of the datagrams a sink
// received.
type simDecoded struct {
	pkts, flows, errs int
	// froms counts the datagrams by source address.
	froms map[netip.Addr]int
}

// decodeSink decodes, in order, everything s received so far.
func decodeSink(s *testutil.UDPSink) simDecoded {
	d := simDecoded{froms: map[netip.Addr]int{}}
	dec := netflow.New(netflow.DefaultConfig())
	var flows []store.Flow
	for _, g := range s.Datagrams() {
		d.pkts++
		d.froms[g.From.Addr()]++
		var err error
		if flows, err = dec.Decode(flows, g.From, g.Data, time.Now()); err != nil {
			d.errs++
		}
	}
	d.flows = len(flows)
	return d
}

// Load mode reports exactly what a collector receives.
func TestSimulateLoad(t *testing.T) {
	s := testutil.NewUDPSink(t)
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	err := runSimulate(context.Background(), e, []string{"--target", s.Addr().String(), "--rate", "20000",
		"--duration", "300ms", "--version", "ipfix", "--json", "--log-level", "warn"})
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, errOut.String())
	}
	var r loadReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if r.Flows == 0 || r.Version != 10 || r.Routers != 2 || r.SendErrors != 0 {
		t.Fatalf("report %+v", r)
	}
	s.Wait(t, int(r.Packets))
	d := decodeSink(s)
	if uint64(d.pkts) != r.Packets || uint64(d.flows) != r.Flows || d.errs != 0 {
		t.Fatalf("decoded %d datagrams, %d flows (%d errors), simulate reported %d and %d", d.pkts, d.flows, d.errs, r.Packets, r.Flows)
	}
	// Two exporters, two source addresses (or ports where 127/8 is not all
	// loopback).
	if n := len(d.froms); n != 2 && n != 1 {
		t.Fatalf("datagrams from %d addresses", len(d.froms))
	}
}

// outputLines returns the lines written to b so far.
func outputLines(b *testutil.SyncBuffer) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Fleet mode: the printed logins work, and a router exports once its
// traffic-flow is set up through the API.
func TestSimulateFleet(t *testing.T) {
	s := testutil.NewUDPSink(t)
	out := &testutil.SyncBuffer{}
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: io.Discard, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		// The daily curve runs on a simulated clock at the evening peak,
		// whatever the hour of the test.
		errc <- runSimulate(ctx, e, []string{"--routers", "2", "--api-port-base", "0", "--rate", "2000",
			"--subscribers", "40", "--seed", "5", "--json", "--log-level", "warn",
			"--daily-curve", "--sim-start", "2026-03-14T20:00:00-03:00", "--sim-tz", "America/Sao_Paulo"})
	}()
	testutil.WaitFor(t, 10*time.Second, "the router list", func() (bool, string) {
		return len(outputLines(out)) >= 1, fmt.Sprintf("output %q", out.String())
	})
	var start struct {
		Routers []routerInfo `json:"routers"`
	}
	if err := json.Unmarshal([]byte(outputLines(out)[0]), &start); err != nil {
		t.Fatal(err)
	}
	if len(start.Routers) != 2 || !strings.HasPrefix(start.Routers[0].Version, "6.") || !strings.HasPrefix(start.Routers[1].Version, "7.") {
		t.Fatalf("routers %+v", start.Routers)
	}
	r := start.Routers[1]
	c, err := routeros.DialTimeout(r.API, r.Username, r.Password, 5*time.Second)
	if err != nil {
		t.Fatalf("login with the printed credentials: %v", err)
	}
	defer c.Close()
	_, port, _ := net.SplitHostPort(s.Addr().String())
	if _, err := c.Run("/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port="+port, "=version=9"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run("/ip/traffic-flow/set", "=enabled=yes"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "500 decoded flows", func() (bool, string) {
		d := decodeSink(s)
		return d.flows >= 500, fmt.Sprintf("%d datagrams, %d flows decoded", d.pkts, d.flows)
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	lines := outputLines(out)
	var end struct {
		Stats []routerStats `json:"stats"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &end); err != nil {
		t.Fatal(err)
	}
	if end.Stats[0].Flows != 0 || end.Stats[1].Flows == 0 {
		t.Fatalf("stats %+v: only the provisioned router must export", end.Stats)
	}
	s.Wait(t, int(end.Stats[1].Packets))
	d := decodeSink(s)
	if uint64(d.pkts) != end.Stats[1].Packets || uint64(d.flows) != end.Stats[1].Flows || d.errs != 0 {
		t.Fatalf("decoded %d datagrams, %d flows (%d errors), simulate reported %d and %d", d.pkts, d.flows, d.errs,
			end.Stats[1].Packets, end.Stats[1].Flows)
	}
	if len(d.froms) != 1 {
		t.Fatalf("datagrams from %v", d.froms)
	}
	for a := range d.froms {
		if a.String() != r.ExportFrom {
			t.Fatalf("datagrams from %s, simulate said %s", a, r.ExportFrom)
		}
	}
}

func TestSimulateUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "127.0.0.1:9", "--version", "7"}, `simulate: --version "7" is not one of 1, 5, 9, 10 (ipfix) with --target`},
		{[]string{"--target", "127.0.0.1", "--duration", "1ms"}, "simulate: --target: "},
		{[]string{"--version", "9", "--api-port-base", "0"}, `simulate: invalid fleet config: version: "9" is not one of 6, 7, mixed`},
		{[]string{"--routers", "65", "--api-port-base", "0"}, "routers: 65 is outside 1..64"},
		{[]string{"--scenario", "flood", "--api-port-base", "0"}, `simulate: --scenario "flood" is not one of none, ddos, synflood, portscan, spam, export-stop, fasttrack, unexported-interface`},
		{[]string{"--scenario", "ddos", "--scenario-start", "-1s"}, "simulate: --scenario-start must not be negative"},
		{[]string{"--scenario", "ddos", "--scenario-duration", "-90s"}, "simulate: --scenario-duration must not be negative"},
		{[]string{"--scenario", "ddos", "--scenario-router", "-1"}, "simulate: --scenario-router must not be negative"},
		{[]string{"--scenario", "ddos", "--scenario-rate", "-5"}, "simulate: --scenario-rate -5 is outside 0..100000"},
		{[]string{"--scenario", "ddos", "--scenario-duration", "soon"}, `invalid value "soon" for flag -scenario-duration`},
		{[]string{"--scenario-start", "1m"}, "simulate: --scenario-start needs a --scenario"},
		{[]string{"--scenario", "none", "--scenario-router", "1"}, "simulate: --scenario-router needs a --scenario"},
		{[]string{"--scenario", "spam", "--scenario-router", "3", "--api-port-base", "0"}, "simulate: --scenario-router 3 is outside 0..2 (the fleet's routers)"},
		{[]string{"--target", "127.0.0.1:9", "--scenario", "ddos", "--scenario-duration", "1m"},
			"simulate: --scenario-duration is for fleet mode (without --target): load mode mixes the scenario into its flow pool"},
		{[]string{"--target", "127.0.0.1:9", "--scenario", "export-stop"}, "simulate: --scenario export-stop is for fleet mode (without --target)"},
		{[]string{"--log-level", "loud"}, `simulate: --log-level "loud" is not one of debug, info, warn, error`},
		{[]string{"extra"}, `simulate: unexpected argument "extra"`},
		{[]string{"--sim-start", "20:00", "--api-port-base", "0"}, `simulate: --sim-start "20:00" is not an RFC 3339 time (e.g. 2026-03-14T20:00:00-03:00)`},
		{[]string{"--sim-tz", "Mars/Base", "--api-port-base", "0"}, "simulate: --sim-tz: unknown time zone Mars/Base (want an IANA name such as America/Sao_Paulo)"},
		{[]string{"--target", "127.0.0.1:9", "--sim-start", "2026-03-14T20:00:00Z"}, "simulate: --sim-start and --sim-tz are for fleet mode (without --target)"},
	} {
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
		err := runSimulate(context.Background(), e, c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.args, err, c.want)
			continue
		}
		if exitCode(err) != 2 {
			t.Errorf("%v: exit code %d, want 2 (usage)", c.args, exitCode(err))
		}
	}
}

// The demo refuses a bad simulated clock before it starts anything.
func TestDemoClockUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sim-start", "2026-03-14 20:00"}, `demo: --sim-start "2026-03-14 20:00" is not an RFC 3339 time (e.g. 2026-03-14T20:00:00-03:00)`},
		{[]string{"--sim-tz", "Sao Paulo"}, "demo: --sim-tz: unknown time zone Sao Paulo (want an IANA name such as America/Sao_Paulo)"},
	} {
		dataDir := t.TempDir() + "/demo-data"
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
		err := run(context.Background(), e, append([]string{"demo", "--data-dir", dataDir}, c.args...))
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: got %v, want %q", c.args, err, c.want)
			continue
		}
		if exitCode(err) != 2 {
			t.Errorf("%v: exit code %d, want 2 (usage)", c.args, exitCode(err))
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: the data directory was created (%v)", c.args, err)
		}
	}
}

// The demo refuses bad scenario flags before it starts anything.
func TestDemoScenarioUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "flood"}, `demo: --scenario "flood" is not one of none, ddos, synflood, portscan, spam, export-stop, fasttrack, unexported-interface`},
		{[]string{"--scenario-start", "-1m"}, "demo: --scenario-start must not be negative"},
		{[]string{"--scenario-duration", "-1s"}, "demo: --scenario-duration must not be negative"},
		{[]string{"--scenario", "none", "--scenario-duration", "1m"}, "demo: --scenario-duration needs a --scenario"},
		{[]string{"--scenario-router", "3"}, "demo: --scenario-router 3 is outside 0..2 (the fleet's routers)"},
		{[]string{"--routers", "0"}, "demo: --routers 0 is outside 1..64"},
	} {
		dataDir := t.TempDir() + "/demo-data"
		e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
		err := run(context.Background(), e, append([]string{"demo", "--data-dir", dataDir}, c.args...))
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: got %v, want %q", c.args, err, c.want)
			continue
		}
		if exitCode(err) != 2 {
			t.Errorf("%v: exit code %d, want 2 (usage)", c.args, exitCode(err))
		}
		if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: the data directory was created (%v)", c.args, err)
		}
	}
}

// scenarioLine is a scenario event line of `flowbox simulate --json`.
type scenarioLine struct {
	Event    string       `json:"event"`
	Reason   string       `json:"reason"`
	Scenario scenarioJSON `json:"scenario"`
}

// TestSimulateScenario: fleet mode runs a ddos on the chosen router only,
// names its target in the plan and in the start and end lines, and the
// collector receives the attack's flows, aimed at that subscriber, inside
// the window the lines give.
func TestSimulateScenario(t *testing.T) {
	s := testutil.NewUDPSink(t)
	out := &testutil.SyncBuffer{}
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: io.Discard, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- runSimulate(ctx, e, []string{"--routers", "2", "--api-port-base", "0", "--rate", "500",
			"--subscribers", "40", "--seed", "5", "--json", "--log-level", "warn",
			"--scenario", "ddos", "--scenario-router", "1", "--scenario-start", "1s", "--scenario-duration", "2s"})
	}()
	testutil.WaitFor(t, 10*time.Second, "the router list", func() (bool, string) {
		return len(outputLines(out)) >= 1, fmt.Sprintf("output %q", out.String())
	})
	var plan struct {
		Routers  []routerInfo `json:"routers"`
		Scenario scenarioJSON `json:"scenario"`
	}
	if err := json.Unmarshal([]byte(outputLines(out)[0]), &plan); err != nil {
		t.Fatal(err)
	}
	sc := plan.Scenario
	victim, err := netip.ParseAddr(sc.Address)
	if err != nil || sc.Scenario != "ddos" || sc.Router != "wisp-2" || sc.RouterIndex != 1 || sc.Subscriber == "" ||
		sc.ExportFrom != plan.Routers[1].ExportFrom || sc.End == nil || sc.End.Sub(sc.Start) != 2*time.Second {
		t.Fatalf("scenario %+v", sc)
	}
	r := plan.Routers[1]
	c, err := routeros.DialTimeout(r.API, r.Username, r.Password, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The victim is a subscriber of that router, under the name printed
	// (the lease comment may carry a customer id beside the name).
	leases, err := c.Run("/ip/dhcp-server/lease/print", "?address="+sc.Address)
	idPattern, _ := enrich.CompileCustomerIDPattern(enrich.DefaultCustomerIDPattern)
	if err != nil || len(leases.Re) != 1 {
		t.Fatalf("lease of %s: %v %v, want one", sc.Address, leases, err)
	}
	if name, _ := enrich.SplitCustomerID(idPattern, leases.Re[0].Map["comment"]); name != sc.Subscriber {
		t.Fatalf("lease of %s: %v %v, want one named %q", sc.Address, leases, err, sc.Subscriber)
	}
	_, port, _ := net.SplitHostPort(s.Addr().String())
	for _, cmd := range [][]string{{"/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port=" + port, "=version=9"},
		{"/ip/traffic-flow/set", "=enabled=yes"}} {
		if _, err := c.Run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	var events []scenarioLine
	testutil.WaitFor(t, 20*time.Second, "the scenario's start and end lines", func() (bool, string) {
		events = nil
		for _, l := range outputLines(out)[1:] {
			var ev scenarioLine
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				return false, err.Error()
			}
			events = append(events, ev)
		}
		return len(events) == 2, out.String()
	})
	if events[0].Event != "scenario-start" || events[1].Event != "scenario-end" || events[1].Reason != "ended" {
		t.Fatalf("events %+v, want the start and the end", events)
	}
	for _, ev := range events {
		got := ev.Scenario
		if got.Router != sc.Router || got.Address != sc.Address || got.Subscriber != sc.Subscriber ||
			!got.Start.Equal(sc.Start) || got.End == nil || !got.End.Equal(*sc.End) {
			t.Fatalf("%s names %+v, want %+v", ev.Event, got, sc)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	dec := netflow.New(netflow.DefaultConfig())
	var flows []store.Flow
	for _, g := range s.Datagrams() {
		if flows, err = dec.Decode(flows, g.From, g.Data, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	attack := 0
	lo, hi := sc.Start.Add(-time.Second).UnixMilli(), sc.End.Add(time.Second).UnixMilli() // v9 times: 1 s resolution
	for _, f := range flows {
		if f.Proto == 17 && f.Bytes >= 1e6 && f.InIf == 1 && f.DstPort == 27015 && strings.Contains(" 19 53 123 389 1900 11211 ", fmt.Sprintf(" %d ", f.SrcPort)) {
			attack++
			if f.PostNATDstAddr != victim || f.Start < lo || f.End > hi {
				t.Fatalf("attack flow %+v: want it to %s within %v..%v", f, victim, sc.Start, *sc.End)
			}
		}
	}
	if attack < 10 {
		t.Fatalf("%d attack flows of %d", attack, len(flows))
	}
}

// Load mode mixes the scenario into the first exporter's flows.
func TestSimulateLoadScenario(t *testing.T) {
	s := testutil.NewUDPSink(t)
	var out bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: io.Discard, getenv: func(string) string { return "" }}
	if err := runSimulate(context.Background(), e, []string{"--target", s.Addr().String(), "--rate", "5000",
		"--duration", "300ms", "--routers", "1", "--scenario", "synflood", "--json", "--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	var r loadReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	s.Wait(t, int(r.Packets))
	dec := netflow.New(netflow.DefaultConfig())
	var flows []store.Flow
	for _, g := range s.Datagrams() {
		var err error
		if flows, err = dec.Decode(flows, g.From, g.Data, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	syn := 0
	for _, f := range flows {
		if f.TCPFlags == 0x02 && f.Packets == 1 && f.DstPort == 443 {
			syn++
		}
	}
	if len(flows) == 0 || syn < len(flows)/10 {
		t.Fatalf("%d SYN flood flows of %d", syn, len(flows))
	}
}

// A scenario still on when the simulator stops ends with it: the end line
// (reason "stopped") comes before the statistics, naming the router as the
// plan did.
func TestSimulateScenarioStopped(t *testing.T) {
	out := &testutil.SyncBuffer{}
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: io.Discard, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- runSimulate(ctx, e, []string{"--routers", "2", "--api-port-base", "0", "--subscribers", "20", "--json",
			"--log-level", "warn", "--scenario", "export-stop", "--scenario-router", "1"})
	}()
	testutil.WaitFor(t, 10*time.Second, "the scenario's start line", func() (bool, string) {
		return strings.Contains(out.String(), `"event":"scenario-start"`), out.String()
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	lines := outputLines(out)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want the plan, the start, the end and the statistics:\n%s", len(lines), out.String())
	}
	var plan struct {
		Scenario scenarioJSON `json:"scenario"`
	}
	var start, end scenarioLine
	for i, v := range []any{&plan, &start, &end} {
		if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
			t.Fatal(err)
		}
	}
	p := plan.Scenario
	if p.Scenario != "export-stop" || p.Router != "wisp-2" || p.ExportFrom == "" || p.Address != "" || p.End != nil {
		t.Fatalf("plan %+v", p)
	}
	if start.Event != "scenario-start" || end.Event != "scenario-end" || end.Reason != "stopped" ||
		end.Scenario.ExportFrom != p.ExportFrom || end.Scenario.Router != p.Router {
		t.Fatalf("start %+v, end %+v, want both to name %+v", start, end, p)
	}
	if !strings.Contains(lines[3], `"stats"`) {
		t.Fatalf("last line %s, want the statistics", lines[3])
	}
}
