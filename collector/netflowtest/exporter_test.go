package netflowtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newExporter(t testing.TB, cfg ExporterConfig, mcfg ModelConfig) *Exporter {
	t.Helper()
	e, err := NewExporter(cfg, newModel(t, mcfg), discard())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Two exporters with the same seed, driven at the same instants, send
// byte-identical datagrams.
func TestExporterSameSeedSameBytes(t *testing.T) {
	var out [2][]testutil.Datagram
	for i := range out {
		s := testutil.NewUDPSink(t)
		e := newExporter(t, ExporterConfig{BootTime: t0.Add(-time.Hour),
			Targets: []Target{{Addr: s.Addr(), Version: V9}, {Addr: s.Addr(), Version: IPFIX}}},
			ModelConfig{Seed: 11, Subscribers: 300})
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		e.SetRate(0) // only the explicit steps below send
		for k := range 10 {
			e.step(t0.Add(time.Duration(k)*time.Second), 300)
		}
		st := e.Stats()
		e.Stop()
		out[i] = s.Wait(t, int(st.Packets))
	}
	if len(out[0]) != len(out[1]) || len(out[0]) == 0 {
		t.Fatalf("%d and %d datagrams", len(out[0]), len(out[1]))
	}
	// Datagrams to the two targets may interleave differently on the wire;
	// compare per version in order.
	for _, v := range []uint16{V9, IPFIX} {
		var a, b [][]byte
		for _, p := range out[0] {
			if binary.BigEndian.Uint16(p.Data) == v {
				a = append(a, p.Data)
			}
		}
		for _, p := range out[1] {
			if binary.BigEndian.Uint16(p.Data) == v {
				b = append(b, p.Data)
			}
		}
		if len(a) != len(b) {
			t.Fatalf("version %d: %d vs %d datagrams", v, len(a), len(b))
		}
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("version %d datagram %d differs", v, i)
			}
		}
	}
}

func TestExporterReconfigureAndSource(t *testing.T) {
	a, b := testutil.NewUDPSink(t), testutil.NewUDPSink(t)
	e := newExporter(t, ExporterConfig{Source: netip.MustParseAddrPort("127.0.0.2:0"), Rate: 0,
		Targets: []Target{{Addr: a.Addr(), Version: V9}}}, ModelConfig{Seed: 2})
	if err := e.Start(); err != nil {
		t.Fatalf("cannot bind 127.0.0.2 (Linux routes 127/8 to lo): %v", err)
	}
	defer e.Stop()
	if err := e.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	now := time.Now()
	e.step(now, 100)
	got := a.Wait(t, 5)
	if got[0].From.Addr() != netip.MustParseAddr("127.0.0.2") || got[0].From != e.LocalAddr() {
		t.Fatalf("datagram from %s, want the exporter's own address %s", got[0].From, e.LocalAddr())
	}
	if v := binary.BigEndian.Uint16(got[0].Data); v != V9 {
		t.Fatalf("version %d, want 9", v)
	}
	// Move the target to b with IPFIX.
	if err := e.SetTargets([]Target{{Addr: b.Addr(), Version: IPFIX, TemplateRefresh: 5}}); err != nil {
		t.Fatal(err)
	}
	e.step(now.Add(time.Second), 100)
	got = b.Wait(t, 2)
	if v := binary.BigEndian.Uint16(got[0].Data); v != IPFIX {
		t.Fatalf("version %d, want 10", v)
	}
	// No target: nothing is generated or sent.
	if err := e.SetTargets(nil); err != nil {
		t.Fatal(err)
	}
	// (The exporter's own counters say it: datagrams of the earlier steps
	// may still be on their way to the sinks.)
	st := e.Stats()
	e.step(now.Add(2*time.Second), 100)
	if after := e.Stats(); after.Generated != st.Generated || after.Packets != st.Packets || after.Flows != st.Flows {
		t.Fatalf("an exporter without targets sent flows: %+v, then %+v", st, after)
	}
	// Bad targets are refused and leave the old ones in place.
	if err := e.SetTargets([]Target{{Addr: netip.MustParseAddrPort("[::1]:2055"), Version: V9}}); err == nil ||
		!strings.Contains(err.Error(), "different families") {
		t.Fatalf("IPv6 target from an IPv4 source: %v", err)
	}
	if err := e.SetTargets([]Target{{Addr: a.Addr(), Version: 8}}); err == nil {
		t.Fatal("version 8 accepted")
	}
}

// A running exporter sends at its rate; stats add up to what arrived.
func TestExporterRuns(t *testing.T) {
	s := testutil.NewUDPSink(t)
	e := newExporter(t, ExporterConfig{Rate: 20000, Targets: []Target{{Addr: s.Addr(), Version: V5}}},
		ModelConfig{Seed: 4, IPv6Share: -1})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "2000 flows sent", func() (bool, string) {
		st := e.Stats()
		return st.Flows >= 2000, fmt.Sprintf("%d flows sent", st.Flows)
	})
	e.Stop()
	st := e.Stats()
	got := s.Wait(t, int(st.Packets))
	flows := 0
	for _, p := range got {
		flows += int(binary.BigEndian.Uint16(p.Data[2:]))
	}
	if st.Flows < 2000 || uint64(flows) != st.Flows || st.SendErrors != 0 {
		t.Fatalf("stats %+v; %d flows arrived", st, flows)
	}
	e.Stop() // a second Stop is a no-op
}

func TestExporterConfigErrors(t *testing.T) {
	m := newModel(t, ModelConfig{Seed: 1})
	for _, c := range []struct {
		cfg  ExporterConfig
		want string
	}{
		{ExporterConfig{Rate: -1}, "cannot build exporter: rate -1 is negative"},
		{ExporterConfig{Tick: time.Microsecond}, "cannot build exporter: tick 1µs is below 1ms"},
		{ExporterConfig{Targets: []Target{{Version: 9}}}, "cannot build exporter: cannot set targets: target invalid AddrPort: address and port are required"},
	} {
		if _, err := NewExporter(c.cfg, m, discard()); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	e, err := NewExporter(ExporterConfig{Source: netip.MustParseAddrPort("192.0.2.1:0")}, m, discard())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err == nil {
		e.Stop()
		t.Fatal("bound a non-local address")
	}
}

// tshark decodes the simulator's packets to the same totals it reports.
func TestTsharkAgrees(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("FLOWBOX_FUNCTIONAL_TESTS") == "1" {
			t.Fatal("tshark is required with FLOWBOX_FUNCTIONAL_TESTS=1")
		}
		t.Skip("tshark is not installed (apt-get install tshark)")
	}
	for _, c := range []struct {
		name string
		cfg  EncoderConfig
	}{
		{"v5", EncoderConfig{Version: V5}},
		{"v9", EncoderConfig{Version: V9, TemplateRefresh: 7}},
		{"ipfix", EncoderConfig{Version: IPFIX}},
		{"ipfix-v7", EncoderConfig{Version: IPFIX, SysInitTime: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.name+".pcap")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			w, err := NewPcapWriter(f)
			if err != nil {
				t.Fatal(err)
			}
			enc := newEnc(t, c.cfg)
			flows := testFlows(t, 3000, 0.1)
			src, dst := netip.MustParseAddrPort("127.0.0.2:40000"), netip.MustParseAddrPort("127.0.0.1:2055")
			for i := 0; len(flows) > 0; i++ {
				pkt, n := enc.AppendPacket(nil, flows, t0)
				flows = flows[n:]
				if len(pkt) == 0 {
					continue
				}
				if err := w.WritePacket(t0.Add(time.Duration(i)*time.Millisecond), src, dst, pkt); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(tshark, "-n", "-r", path, "-d", "udp.port==2055,cflow",
				"-T", "fields", "-e", "cflow.octets", "-e", "cflow.packets").CombinedOutput()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, out)
			}
			var octets, packets, records uint64
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				cols := strings.Split(line, "\t")
				if len(cols) != 2 {
					continue
				}
				for i, col := range cols {
					for _, v := range strings.Split(col, ",") {
						if v == "" {
							continue
						}
						n, err := strconv.ParseUint(v, 10, 64)
						if err != nil {
							t.Fatalf("tshark printed %q: %v", line, err)
						}
						if i == 0 {
							octets += n
							records++
						} else {
							packets += n
						}
					}
				}
			}
			st := enc.Stats()
			if records != st.Flows || octets != st.Octets || packets != st.FlowPackets {
				t.Fatalf("tshark: %d records, %d octets, %d packets; encoder: %d, %d, %d",
					records, octets, packets, st.Flows, st.Octets, st.FlowPackets)
			}
		})
	}
}

// BenchmarkExporterStep measures the load-generation path: pooled flows,
// encoding and one sendto per packet, to the discard port of loopback.
func BenchmarkExporterStep(b *testing.B) {
	for _, c := range []struct {
		name string
		v    int
	}{{"v5", V5}, {"v9", V9}, {"ipfix", IPFIX}} {
		b.Run(c.name, func(b *testing.B) {
			e := newExporter(b, ExporterConfig{Pool: 1 << 15, MaxBurst: 1 << 20,
				Targets: []Target{{Addr: netip.MustParseAddrPort("127.0.0.1:9"), Version: c.v}}},
				ModelConfig{Seed: 1})
			if err := e.Start(); err != nil {
				b.Fatal(err)
			}
			defer e.Stop()
			e.SetRate(0)
			b.ReportAllocs()
			now := time.Now()
			for b.Loop() {
				e.step(now, 10000)
			}
			st := e.Stats()
			b.ReportMetric(float64(st.Flows)/b.Elapsed().Seconds(), "flows/s")
			b.ReportMetric(float64(st.Packets)/b.Elapsed().Seconds(), "packets/s")
		})
	}
}
