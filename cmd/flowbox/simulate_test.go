package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/store"
)

// simSink receives datagrams on loopback and decodes them with flowbox's
// decoder.
type simSink struct {
	conn  *net.UDPConn
	mu    sync.Mutex
	pkts  int
	flows []store.Flow
	errs  int
	done  chan struct{}
	froms map[netip.Addr]int
}

func newSimSink(t *testing.T) *simSink {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadBuffer(8 << 20)
	s := &simSink{conn: conn, done: make(chan struct{}), froms: map[netip.Addr]int{}}
	dec := netflow.New(netflow.DefaultConfig())
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.pkts++
			s.froms[from.Addr()]++
			if s.flows, err = dec.Decode(s.flows, from, buf[:n], time.Now()); err != nil {
				s.errs++
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-s.done })
	return s
}

func (s *simSink) addr() string { return s.conn.LocalAddr().String() }

func (s *simSink) counts() (pkts, flows, errs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pkts, len(s.flows), s.errs
}

func simWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Load mode reports exactly what a collector receives.
func TestSimulateLoad(t *testing.T) {
	s := newSimSink(t)
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	err := runSimulate(context.Background(), e, []string{"--target", s.addr(), "--rate", "20000",
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
	simWait(t, "every datagram", func() bool { p, _, _ := s.counts(); return uint64(p) == r.Packets })
	if _, flows, errs := s.counts(); uint64(flows) != r.Flows || errs != 0 {
		t.Fatalf("decoded %d flows (%d errors), simulate reported %d", flows, errs, r.Flows)
	}
	// Two exporters, two source addresses (or ports where 127/8 is not all
	// loopback).
	s.mu.Lock()
	n := len(s.froms)
	s.mu.Unlock()
	if n != 2 && n != 1 {
		t.Fatalf("datagrams from %d addresses", n)
	}
}

// simLines is a concurrency-safe writer that hands out complete lines.
type simLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *simLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *simLines) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// Fleet mode: the printed logins work, and a router exports once its
// traffic-flow is set up through the API.
func TestSimulateFleet(t *testing.T) {
	s := newSimSink(t)
	out := &simLines{}
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
	simWait(t, "the router list", func() bool { return len(out.lines()) >= 1 })
	var start struct {
		Routers []routerInfo `json:"routers"`
	}
	if err := json.Unmarshal([]byte(out.lines()[0]), &start); err != nil {
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
	_, port, _ := net.SplitHostPort(s.addr())
	if _, err := c.Run("/ip/traffic-flow/target/add", "=dst-address=127.0.0.1", "=port="+port, "=version=9"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run("/ip/traffic-flow/set", "=enabled=yes"); err != nil {
		t.Fatal(err)
	}
	simWait(t, "decoded flows", func() bool { _, f, _ := s.counts(); return f >= 500 })
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	lines := out.lines()
	var end struct {
		Stats []routerStats `json:"stats"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &end); err != nil {
		t.Fatal(err)
	}
	if end.Stats[0].Flows != 0 || end.Stats[1].Flows == 0 {
		t.Fatalf("stats %+v: only the provisioned router must export", end.Stats)
	}
	simWait(t, "every datagram", func() bool { p, _, _ := s.counts(); return uint64(p) == end.Stats[1].Packets })
	if _, flows, errs := s.counts(); uint64(flows) != end.Stats[1].Flows || errs != 0 {
		t.Fatalf("decoded %d flows (%d errors), simulate reported %d", flows, errs, end.Stats[1].Flows)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.froms) != 1 {
		t.Fatalf("datagrams from %v", s.froms)
	}
	for a := range s.froms {
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
		{[]string{"--scenario", "flood", "--api-port-base", "0"}, `scenario: "flood" is not one of ddos, portscan, spam`},
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
