package netflowtest_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

var now = time.Date(2026, 3, 14, 20, 30, 0, 0, time.UTC)

type versionCase struct {
	name    string
	version int
	sysInit bool
}

var versions = []versionCase{
	{"v1", netflowtest.V1, false},
	{"v5", netflowtest.V5, false},
	{"v9", netflowtest.V9, false},
	{"ipfix", netflowtest.IPFIX, false},
	{"ipfix-v7", netflowtest.IPFIX, true},
}

// Every record the encoder writes decodes, with flowbox's own decoder, to
// the flow it came from.
func TestDecodeWhatWasEncoded(t *testing.T) {
	m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 21, Subscribers: 500, Scenario: netflowtest.ScenarioSpam})
	if err != nil {
		t.Fatal(err)
	}
	in := m.AppendFlows(nil, 6000, now)
	boot := now.Add(-40 * 24 * time.Hour)
	from := netip.MustParseAddrPort("127.0.0.2:40000")
	for _, c := range versions {
		t.Run(c.name, func(t *testing.T) {
			enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: c.version, BootTime: boot, SysInitTime: c.sysInit})
			if err != nil {
				t.Fatal(err)
			}
			dec := netflow.New(netflow.DefaultConfig())
			var out []store.Flow
			for rest := in; len(rest) > 0; {
				pkt, n := enc.AppendPacket(nil, rest, now)
				rest = rest[n:]
				if len(pkt) == 0 {
					continue
				}
				if out, err = dec.Decode(out, from, pkt, now); err != nil {
					t.Fatalf("decode: %v", err)
				}
			}
			var want []store.Flow
			for _, f := range in {
				if c.version >= netflowtest.V9 || f.SrcAddr.Is4() {
					want = append(want, f)
				}
			}
			st := enc.Stats()
			if len(out) != len(want) || uint64(len(out)) != st.Flows {
				t.Fatalf("decoded %d flows, encoded %d, want %d", len(out), st.Flows, len(want))
			}
			var octets, packets uint64
			for i := range out {
				g, w := &out[i], &want[i]
				octets += g.Bytes
				packets += g.Packets
				if g.Version != uint16(c.version) || g.Exporter != from {
					t.Fatalf("flow %d: version %d from %s", i, g.Version, g.Exporter)
				}
				if g.SrcAddr != w.SrcAddr || g.DstAddr != w.DstAddr || g.SrcPort != w.SrcPort || g.DstPort != w.DstPort ||
					g.Proto != w.Proto || g.TCPFlags != w.TCPFlags || g.Bytes != w.Bytes || g.Packets != w.Packets {
					t.Fatalf("flow %d:\ngot  %+v\nwant %+v", i, *g, *w)
				}
				inIf, outIf := w.InIf, w.OutIf
				if c.version < netflowtest.V9 { // 16-bit interfaces
					inIf, outIf = inIf&0xffff, outIf&0xffff
				}
				if g.InIf != inIf || g.OutIf != outIf {
					t.Fatalf("flow %d: interfaces %d->%d, want %d->%d", i, g.InIf, g.OutIf, inIf, outIf)
				}
				if c.version >= netflowtest.V9 && w.SrcAddr.Is4() &&
					(g.PostNATSrcAddr != orAddr(w.PostNATSrcAddr, w.SrcAddr) || g.PostNATDstAddr != orAddr(w.PostNATDstAddr, w.DstAddr)) {
					t.Fatalf("flow %d: post-NAT %s -> %s, want %s -> %s", i, g.PostNATSrcAddr, g.PostNATDstAddr, w.PostNATSrcAddr, w.PostNATDstAddr)
				}
				if c.version == netflowtest.V9 {
					if w.SrcAddr.Is4() && (g.PostNATSrcPort != orPort(w.PostNATSrcPort, w.SrcPort) || g.PostNATDstPort != orPort(w.PostNATDstPort, w.DstPort)) {
						t.Fatalf("flow %d: post-NAPT ports %d/%d, want %d/%d", i, g.PostNATSrcPort, g.PostNATDstPort, w.PostNATSrcPort, w.PostNATDstPort)
					}
					if g.SrcMask != w.SrcMask || g.DstMask != w.DstMask || g.ToS != w.ToS {
						t.Fatalf("flow %d: masks %d/%d tos %d, want %d/%d %d", i, g.SrcMask, g.DstMask, g.ToS, w.SrcMask, w.DstMask, w.ToS)
					}
				}
				// v1/v5/v9 carry sysUptime and unix seconds: absolute times
				// come back within the header's one-second resolution; IPFIX
				// from v7 carries IE 160 and is exact.
				tol := int64(1000)
				if c.sysInit {
					tol = 0
				}
				if c.version != netflowtest.IPFIX || c.sysInit {
					if d := g.Start - w.Start; d < -tol || d > tol {
						t.Fatalf("flow %d: start %d, want %d±%d", i, g.Start, w.Start, tol)
					}
					if d := g.End - w.End; d < -tol || d > tol {
						t.Fatalf("flow %d: end %d, want %d±%d", i, g.End, w.End, tol)
					}
				}
			}
			if octets != st.Octets || packets != st.FlowPackets {
				t.Fatalf("decoded %d octets %d packets, encoder counted %d and %d", octets, packets, st.Octets, st.FlowPackets)
			}
			if s := dec.Summary(); s.Errors != 0 || s.NoTemplateSets != 0 {
				t.Fatalf("decoder summary %+v", s)
			}
		})
	}
}

func orAddr(a, def netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return def
}

func orPort(p, def uint16) uint16 {
	if p != 0 {
		return p
	}
	return def
}

// A running exporter's datagrams, received over loopback UDP and decoded
// by flowbox's decoder, add up to what the exporter says it sent.
func TestExporterTotalsMatchDecoder(t *testing.T) {
	for _, c := range versions {
		t.Run(c.name, func(t *testing.T) {
			sink := testutil.NewUDPSink(t)
			m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 8})
			if err != nil {
				t.Fatal(err)
			}
			target := netflowtest.Target{Addr: sink.Addr(), Version: c.version,
				SysInitTime: c.sysInit, TemplateRefresh: 5}
			e, err := netflowtest.NewExporter(netflowtest.ExporterConfig{Rate: 50000,
				Source: netip.MustParseAddrPort("127.0.0.1:0"), Targets: []netflowtest.Target{target}},
				m, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, 10*time.Second, "5000 flows sent", func() (bool, string) {
				st := e.Stats()
				return st.Flows >= 5000, fmt.Sprintf("%d flows sent", st.Flows)
			})
			e.Stop()
			st := e.Stats()
			dgs := sink.Wait(t, int(st.Packets))
			dec := netflow.New(netflow.DefaultConfig())
			var got []store.Flow
			for _, d := range dgs {
				if got, err = dec.Decode(got, d.From, d.Data, time.Now()); err != nil {
					t.Errorf("decode: %v", err)
				}
			}
			pkts := len(dgs)
			var octets, packets uint64
			for _, f := range got {
				octets += f.Bytes
				packets += f.Packets
			}
			if st.Flows < 5000 || uint64(pkts) != st.Packets || uint64(len(got)) != st.Flows ||
				octets != st.Octets || packets != st.FlowPackets {
				t.Fatalf("exporter sent %d packets, %d flows, %d octets, %d packets; decoded %d, %d, %d, %d",
					st.Packets, st.Flows, st.Octets, st.FlowPackets, pkts, len(got), octets, packets)
			}
		})
	}
}
