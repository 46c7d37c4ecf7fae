package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowbox/flowbox/collector/netflow"
	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/internal/pcap"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// readPayloads returns the UDP payloads of a capture, copied.
func readPayloads(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][]byte
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, bytes.Clone(p.Payload))
	}
}

// memSink keeps copies of what it receives. When block is not nil,
// InsertFlows waits for it to be closed (or for ctx) before accepting.
type memSink struct {
	block chan struct{}

	mu      sync.Mutex
	flows   []store.Flow
	batches int
	calls   chan struct{} // receives a value when InsertFlows starts, if not nil
}

func (s *memSink) InsertFlows(ctx context.Context, flows []store.Flow) error {
	if s.calls != nil {
		select {
		case s.calls <- struct{}{}:
		default:
		}
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flows = append(s.flows, flows...)
	s.batches++
	return nil
}

func (s *memSink) snapshot() []store.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Flow(nil), s.flows...)
}

// sums are the totals that tests compare.
type sums struct {
	Flows, Bytes, Packets uint64
}

func sumFlows(flows []store.Flow) sums {
	var s sums
	for i := range flows {
		s.Flows++
		s.Bytes += flows[i].Bytes
		s.Packets += flows[i].Packets
	}
	return s
}

// sumsByExporter groups sums by exporter address and port.
func sumsByExporter(flows []store.Flow) map[netip.AddrPort]sums {
	out := make(map[netip.AddrPort]sums)
	for i := range flows {
		s := out[flows[i].Exporter]
		s.Flows++
		s.Bytes += flows[i].Bytes
		s.Packets += flows[i].Packets
		out[flows[i].Exporter] = s
	}
	return out
}

// testConfig is a collector configuration listening on 127.0.0.1:0.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Workers = 2
	cfg.FlushTimeout = 5 * time.Second
	return cfg
}

// running is a collector started by startCollector.
type running struct {
	c      *Collector
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned, valid once done is closed
	logs   *testutil.SyncBuffer
	sink   *pipeSink
}

// stop cancels the collector, waits for Run to return, then for the
// writer to drain the queue (as serve stops the store after the
// collector).
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.stopCollector(t)
	r.sink.stop()
}

// stopCollector cancels the collector and waits for Run to return.
func (r *running) stopCollector(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Run returned %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// addr returns the UDP address of listener i.
func (r *running) addr(t testing.TB, i int) *net.UDPAddr {
	t.Helper()
	addrs := r.c.Addrs()
	if len(addrs) <= i {
		t.Fatalf("collector has %d listeners, want more than %d", len(addrs), i)
	}
	return addrs[i].(*net.UDPAddr)
}

// startCollector runs a collector whose flows go through a pipeSink (a
// queue of cfg.QueueSize batches and one writer, as the store's) into ins.
func startCollector(t testing.TB, cfg Config, ins inserter) *running {
	t.Helper()
	return startCollectorTrust(t, cfg, ins, nil)
}

// startCollectorTrust is startCollector with an exporter trust (nil: every
// exporter is trusted).
func startCollectorTrust(t testing.TB, cfg Config, ins inserter, trust Trust) *running {
	t.Helper()
	return startCollectorWith(t, cfg, ins, Deps{Trust: trust})
}

// startCollectorWith is startCollector with the optional dependencies of
// deps (Trust, TemplateFile...); the sink, logger and registry are the
// test's.
func startCollectorWith(t testing.TB, cfg Config, ins inserter, deps Deps) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &testutil.SyncBuffer{}
	sink := newPipeSink(ins, cfg.QueueSize)
	deps.Sink = sink
	deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps.Registerer = reg
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	sink.obs = c.WriteObserver()
	sinkCtx, cancelSink := context.WithCancel(context.Background())
	go sink.run(sinkCtx)
	t.Cleanup(func() {
		cancelSink()
		sink.stop()
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, reg: reg, cancel: cancel, done: make(chan struct{}), logs: logs, sink: sink}
	go func() {
		defer close(r.done)
		r.err = c.Run(ctx)
	}()
	select {
	case <-c.Ready():
	case <-r.done:
		cancel()
		t.Fatalf("Run failed: %v", r.err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("collector not ready after 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

// metric returns the value of the metric name with the given labels (a
// label=value list), or 0 when it is absent.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// receivedPackets is the number of datagrams the readers handled.
func (c *Collector) receivedPackets() uint64 {
	var n uint64
	for _, r := range c.runningReaders() {
		n += r.packets.Load()
	}
	return n
}

// waitReceived waits until the collector's readers handled n datagrams.
func waitReceived(t testing.TB, r *running, n int) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d datagrams", n), func() (bool, string) {
		got := r.c.receivedPackets()
		return got == uint64(n), fmt.Sprintf("%d received, %d kernel drops", got, r.c.kernelDrops())
	})
}

// kernelDrops is the sum of the sockets' drop counters, after a fresh read
// of /proc/net/udp.
func (c *Collector) kernelDrops() uint64 {
	c.readKernelDrops()
	var n uint64
	for _, l := range c.runningListeners() {
		for _, s := range l.socks {
			n += s.kernelDrops.Load()
		}
	}
	return n
}

// sender is a UDP socket that plays one exporter.
type sender struct {
	conn *net.UDPConn
}

func newSender(t testing.TB, local string) *sender {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(local)))
	if err != nil {
		t.Fatalf("cannot open exporter socket on %s: %v", local, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &sender{conn: conn}
}

func (s *sender) addrPort() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// send sends the payloads to dst, pausing now and then so that the
// collector's socket buffer never overflows.
func (s *sender) send(t testing.TB, dst *net.UDPAddr, payloads [][]byte) {
	t.Helper()
	for i, p := range payloads {
		if _, err := s.conn.WriteToUDP(p, dst); err != nil {
			t.Fatalf("send: %v", err)
		}
		if i%16 == 15 {
			time.Sleep(time.Millisecond) // pacing a real UDP sender: the collector's socket buffer must not overflow
		}
	}
}

// offline decodes payloads as one exporter would be decoded by a reader.
func offline(cfg netflow.Config, from netip.AddrPort, payloads [][]byte, now time.Time) ([]store.Flow, netflow.Summary) {
	d := netflow.New(cfg)
	var flows []store.Flow
	for _, p := range payloads {
		flows, _ = d.Decode(flows, from, p, now)
	}
	return flows, d.Summary()
}

// replayCase is one capture replayed by one simulated exporter.
type replayCase struct {
	file  string
	local string // the exporter's source address
}

// TestReplayCaptures is the end-to-end test: real captures are replayed
// over UDP on loopback, each from its own exporter socket, to a collector
// listening on IPv4 and IPv6 loopback. The sink must receive exactly the
// flows that decoding the same payloads offline gives, and the counters
// must add up.
func TestReplayCaptures(t *testing.T) {
	dir := testutil.CapturesDir(t)
	cases := []replayCase{
		{"logstash-codec-netflow/ipfix-mikrotik-routeros-6-39-2.pcap", "127.0.0.2:0"},
		{"logstash-codec-netflow/netflow5-mikrotik.pcap", "127.0.0.3:0"},
		{"exporters/softflowd-v9.pcap", "127.0.0.4:0"},
		{"exporters/softflowd-ipfix.pcap", "127.0.0.5:0"},
		// Data sets before their template: kept pending, then decoded.
		{"logstash-codec-netflow/ipfix-netscaler-with-variable-length-fields-data-first.pcap", "127.0.0.6:0"},
		// Several exporters in one capture, all replayed from one socket.
		{"pmacct-test-automation/102-NFv9-CISCO-f2rd-pretag-sampling-reload__traffic-00.pcap", "127.0.0.7:0"},
		// Malformed: counted as errors, never a panic.
		{"libnetflow9/malformed_1.pcap", "127.0.0.8:0"},
		{"logstash-codec-netflow/netflow-5-invalid-01.pcap", "127.0.0.9:0"},
		// Over IPv6 loopback.
		{"logstash-codec-netflow/netflow-9-cisco-asa.pcap", "[::1]:0"},
	}
	cfg := testConfig()
	cfg.Listen = []string{"127.0.0.1:0", "[::1]:0"}
	cfg.BatchSize = 64 // many batches
	sink := &memSink{}
	r := startCollector(t, cfg, sink)

	// Readers of the statistics run concurrently with the traffic (for
	// the race detector).
	stopReading := make(chan struct{})
	readingDone := make(chan struct{})
	go func() {
		defer close(readingDone)
		for {
			select {
			case <-stopReading:
				return
			case <-time.After(time.Millisecond):
				_ = r.c.Exporters()
				if _, err := r.reg.Gather(); err != nil {
					t.Errorf("gather: %v", err)
					return
				}
			}
		}
	}()

	dc := netflow.DefaultConfig()
	dc.TemplateTTL = cfg.TemplateTTL
	dc.MaxTemplates = cfg.MaxTemplates
	dc.MaxPending = cfg.MaxPending
	dc.PendingTTL = cfg.PendingTTL
	dc.MaxExporters = cfg.MaxExporters

	type expectation struct {
		from    netip.AddrPort
		sums    sums
		summary netflow.Summary
		packets int
	}
	var exp []expectation
	var sent int
	var want sums
	for _, tc := range cases {
		payloads := readPayloads(t, filepath.Join(dir, tc.file))
		s := newSender(t, tc.local)
		dst := r.addr(t, 0)
		if strings.HasPrefix(tc.local, "[") {
			dst = r.addr(t, 1)
		}
		flows, summary := offline(dc, s.addrPort(), payloads, time.Now())
		if len(flows) == 0 && summaryErrors(summary) == 0 {
			t.Fatalf("%s: offline decode gave no flow and no error", tc.file)
		}
		s.send(t, dst, payloads)
		sent += len(payloads)
		e := expectation{from: s.addrPort(), sums: sumFlows(flows), summary: summary, packets: len(payloads)}
		exp = append(exp, e)
		want.Flows += e.sums.Flows
		want.Bytes += e.sums.Bytes
		want.Packets += e.sums.Packets
	}
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d datagrams", sent), func() (bool, string) {
		got := r.c.receivedPackets()
		return got == uint64(sent), fmt.Sprintf("%d received, %d kernel drops", got, r.c.kernelDrops())
	})
	r.stop(t)
	close(stopReading)
	<-readingDone

	got := sink.snapshot()
	if g := sumFlows(got); g != want {
		t.Errorf("sink received %+v, offline decode gives %+v", g, want)
	}
	byExp := sumsByExporter(got)
	for i, e := range exp {
		if g := byExp[e.from]; g != e.sums {
			t.Errorf("%s (from %s): sink got %+v, want %+v", cases[i].file, e.from, g, e.sums)
		}
	}

	// Counters: totals.
	var wantErrors, wantNoTemplate, wantOptions uint64
	for _, e := range exp {
		wantErrors += summaryErrors(e.summary)
		wantNoTemplate += e.summary.NoTemplateSets
		wantOptions += e.summary.OptionsRecords
	}
	if wantErrors == 0 {
		t.Error("the malformed captures gave no decode error offline")
	}
	if wantNoTemplate == 0 {
		t.Error("the data-first capture gave no record waiting for its template offline")
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"flowbox_collector_packets_total", nil, float64(sent)},
		{"flowbox_collector_flows_total", nil, float64(want.Flows)},
		{"flowbox_collector_stored_flows_total", nil, float64(want.Flows)},
		{"flowbox_collector_no_template_sets_total", nil, float64(wantNoTemplate)},
		{"flowbox_collector_options_records_total", nil, float64(wantOptions)},
		{"flowbox_collector_dropped_flows_total", []string{"reason", store.DropQueueFull}, 0},
		{"flowbox_collector_dropped_flows_total", []string{"reason", store.DropWriteError}, 0},
		{"flowbox_collector_dropped_flows_total", []string{"reason", store.DropShutdown}, 0},
		{"flowbox_collector_kernel_drops_total", []string{"listener", "127.0.0.1:0"}, 0},
		{"flowbox_collector_kernel_drops_total", []string{"listener", "[::1]:0"}, 0},
	}
	for _, c := range checks {
		if got := metric(t, r.reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	var gotErrors float64
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "flowbox_collector_decode_errors_total" {
			for _, m := range mf.GetMetric() {
				gotErrors += m.GetCounter().GetValue()
			}
		}
	}
	if gotErrors != float64(wantErrors) {
		t.Errorf("decode errors = %v, want %v", gotErrors, wantErrors)
	}
	if rb := metric(t, r.reg, "flowbox_collector_receive_buffer_bytes", "listener", "127.0.0.1:0"); rb <= 0 {
		t.Errorf("receive buffer metric = %v, want > 0", rb)
	}

	// Counters: per exporter.
	stats := map[netip.Addr]store.ExporterStats{}
	for _, s := range r.c.Exporters() {
		stats[s.Exporter] = s
	}
	for i, e := range exp {
		s, ok := stats[e.from.Addr()]
		if !ok {
			t.Errorf("%s: exporter %s missing from Exporters()", cases[i].file, e.from.Addr())
			continue
		}
		if s.Packets != uint64(e.packets) || s.FlowsReceived != e.sums.Flows || s.FlowsStored != e.sums.Flows {
			t.Errorf("%s: exporter stats packets/received/stored = %d/%d/%d, want %d/%d/%d",
				cases[i].file, s.Packets, s.FlowsReceived, s.FlowsStored, e.packets, e.sums.Flows, e.sums.Flows)
		}
		if n := summaryErrors(e.summary); mapSum(s.DecodeErrors) != n {
			t.Errorf("%s: exporter decode errors %v, want %d in total", cases[i].file, s.DecodeErrors, n)
		}
		if s.PendingNoTmpl != e.summary.NoTemplateSets {
			t.Errorf("%s: exporter sets without template %d, want %d", cases[i].file, s.PendingNoTmpl, e.summary.NoTemplateSets)
		}
		if mapSum(s.FlowsDropped) != 0 {
			t.Errorf("%s: exporter dropped %v, want none", cases[i].file, s.FlowsDropped)
		}
		if e.sums.Flows > 0 && (s.Bytes < e.sums.Bytes || s.PktsSeen < e.sums.Packets) {
			t.Errorf("%s: exporter scaled sums %d bytes/%d packets are below the raw %d/%d",
				cases[i].file, s.Bytes, s.PktsSeen, e.sums.Bytes, e.sums.Packets)
		}
		if s.LastSeen.IsZero() {
			t.Errorf("%s: exporter last seen not set", cases[i].file)
		}
	}
}

func summaryErrors(s netflow.Summary) uint64 { return s.Errors }

func mapSum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// encodeV5 builds count NetFlow v5 packets of 30 flows each with the
// RouterOS-like encoder, and returns them with the number of flows.
func encodeV5(t testing.TB, count int) ([][]byte, int) {
	t.Helper()
	enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: netflowtest.V5, BootTime: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return encodePackets(t, enc, count)
}

// encodePackets builds count data packets with enc from synthetic flows.
func encodePackets(t testing.TB, enc *netflowtest.Encoder, count int) ([][]byte, int) {
	t.Helper()
	now := time.Now()
	per := enc.RecordsPerPacket()
	flows := make([]store.Flow, per)
	var out [][]byte
	total := 0
	for len(out) < count {
		for i := range flows {
			n := len(out)*per + i
			flows[i] = store.Flow{
				Start:   now.Add(-time.Minute).UnixMilli(),
				End:     now.UnixMilli(),
				SrcAddr: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}),
				DstAddr: netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}),
				SrcPort: uint16(1024 + n%50000), DstPort: 443, Proto: 6,
				InIf: 1, OutIf: 2,
				Bytes: uint64(1000 + n), Packets: uint64(1 + n%7),
			}
		}
		rest := flows
		for len(rest) > 0 {
			pkt, n := enc.AppendPacket(nil, rest, now)
			if len(pkt) == 0 {
				t.Fatal("encoder produced an empty packet")
			}
			out = append(out, pkt)
			rest = rest[n:]
			total += n
		}
	}
	return out, total
}

// TestQueueFull blocks the sink: batches beyond the queue are dropped, and
// the drop counters account for every flow that did not reach the sink.
func TestQueueFull(t *testing.T) {
	cfg := testConfig()
	cfg.Workers = 1
	cfg.BatchSize = 30 // one packet, one batch
	cfg.BatchAge = time.Hour
	cfg.QueueSize = 2
	sink := &memSink{block: make(chan struct{}), calls: make(chan struct{}, 1)}
	r := startCollector(t, cfg, sink)

	packets, flows := encodeV5(t, 10)
	s := newSender(t, "127.0.0.2:0")
	s.send(t, r.addr(t, 0), packets)
	waitReceived(t, r, len(packets))

	dropped := metric(t, r.reg, "flowbox_collector_dropped_flows_total", "reason", store.DropQueueFull)
	if dropped == 0 {
		t.Fatal("no flow dropped with a blocked sink and a queue of 2")
	}
	close(sink.block)
	r.stop(t)

	got := sumFlows(sink.snapshot())
	if got.Flows+uint64(dropped) != uint64(flows) {
		t.Errorf("sink got %d flows and %v were dropped, want %d in total", got.Flows, dropped, flows)
	}
	// At most the batch in the sink and the queued ones got through.
	if maxDelivered := uint64(cfg.BatchSize * (cfg.QueueSize + 1)); got.Flows > maxDelivered {
		t.Errorf("sink got %d flows, more than the queue can hold (%d)", got.Flows, maxDelivered)
	}
	stats := r.c.Exporters()
	if len(stats) != 1 {
		t.Fatalf("Exporters() = %d exporters, want 1", len(stats))
	}
	if d := stats[0].FlowsDropped[store.DropQueueFull]; float64(d) != dropped {
		t.Errorf("exporter queue_full drops = %d, want %v", d, dropped)
	}
	if stats[0].FlowsStored != got.Flows {
		t.Errorf("exporter stored = %d, want %d", stats[0].FlowsStored, got.Flows)
	}
	if m := metric(t, r.reg, "flowbox_collector_stored_flows_total"); m != float64(got.Flows) {
		t.Errorf("stored metric = %v, want %d", m, got.Flows)
	}
}

// TestShutdownFlushes sends flows that sit in a partial batch (huge size,
// long age) and cancels: Run must hand every flow to the sink before it
// returns.
func TestShutdownFlushes(t *testing.T) {
	cfg := testConfig()
	cfg.BatchSize = 1 << 20
	cfg.BatchAge = time.Hour
	sink := &memSink{}
	r := startCollector(t, cfg, sink)

	packets, flows := encodeV5(t, 20)
	s := newSender(t, "127.0.0.2:0")
	s.send(t, r.addr(t, 0), packets)
	// Loopback delivery is not quite synchronous (a loaded machine defers
	// it to ksoftirqd, past the drain's idle time): wait until the readers
	// have the datagrams, which then sit in their partial batches.
	waitReceived(t, r, len(packets))
	r.stop(t)
	if got := sumFlows(sink.snapshot()); got.Flows != uint64(flows) {
		t.Errorf("sink got %d flows after shutdown, want %d", got.Flows, flows)
	}
	if sink.batches == 0 {
		t.Error("no batch reached the sink")
	}
}

// TestShutdownTimeout: a writer that never takes another batch cannot hold
// Run forever. With one batch in the writer and one in the queue (of 1),
// the last partial batch waits FlushTimeout for room, then its flows are
// counted as dropped at shutdown, per exporter.
func TestShutdownTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Workers = 1
	cfg.BatchSize = 60 // two packets
	cfg.BatchAge = time.Hour
	cfg.QueueSize = 1
	cfg.FlushTimeout = 200 * time.Millisecond
	sink := &memSink{block: make(chan struct{}), calls: make(chan struct{}, 1)} // never unblocked
	r := startCollector(t, cfg, sink)

	packets, flows := encodeV5(t, 5)
	s := newSender(t, "127.0.0.2:0")
	s.send(t, r.addr(t, 0), packets[:2])
	<-sink.calls // the writer holds the first batch
	s.send(t, r.addr(t, 0), packets[2:])
	waitReceived(t, r, len(packets))
	start := time.Now()
	r.stopCollector(t) // the writer stays stuck
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v to return with a stuck writer", d)
	}
	perPacket := flows / len(packets)
	if got := metric(t, r.reg, "flowbox_collector_dropped_flows_total", "reason", store.DropShutdown); got != float64(perPacket) {
		t.Errorf("dropped at shutdown = %v, want the last partial batch's %d flows", got, perPacket)
	}
	if got := metric(t, r.reg, "flowbox_collector_dropped_flows_total", "reason", store.DropQueueFull); got != 0 {
		t.Errorf("dropped as queue full = %v, want 0", got)
	}
	if st := r.c.Exporters(); len(st) != 1 || st[0].FlowsDropped[store.DropShutdown] != uint64(perPacket) {
		t.Errorf("exporters: %+v", st)
	}
}

// TestSinkError counts flows of batches the writer cannot write, per
// exporter.
func TestSinkError(t *testing.T) {
	cfg := testConfig()
	cfg.BatchSize = 30
	sink := sinkFunc(func(context.Context, []store.Flow) error { return errors.New("disk full") })
	r := startCollector(t, cfg, sink)
	packets, flows := encodeV5(t, 4)
	s := newSender(t, "127.0.0.2:0")
	s.send(t, r.addr(t, 0), packets)
	waitReceived(t, r, len(packets))
	r.stop(t)
	if got := metric(t, r.reg, "flowbox_collector_dropped_flows_total", "reason", store.DropWriteError); got != float64(flows) {
		t.Errorf("write_error drops = %v, want %d", got, flows)
	}
	// The writer's drops are counted per exporter with the collector's.
	stats := r.c.Exporters()
	if len(stats) != 1 || stats[0].FlowsDropped[store.DropWriteError] != uint64(flows) || stats[0].FlowsStored != 0 {
		t.Errorf("exporters: %+v", stats)
	}
}

type sinkFunc func(context.Context, []store.Flow) error

func (f sinkFunc) InsertFlows(ctx context.Context, flows []store.Flow) error { return f(ctx, flows) }

// TestBatchAge: a partial batch reaches the sink after BatchAge without
// more traffic and without shutdown.
func TestBatchAge(t *testing.T) {
	cfg := testConfig()
	cfg.BatchSize = 1 << 20
	cfg.BatchAge = 50 * time.Millisecond
	sink := &memSink{}
	r := startCollector(t, cfg, sink)
	packets, flows := encodeV5(t, 2)
	s := newSender(t, "127.0.0.2:0")
	s.send(t, r.addr(t, 0), packets)
	testutil.WaitFor(t, 10*time.Second, "the aged batch", func() (bool, string) {
		n := len(sink.snapshot())
		return n == flows, fmt.Sprintf("%d of %d flows in the sink", n, flows)
	})
}

// TestReceiveBufferWarning asks for more than net.core.rmem_max without
// SO_RCVBUFFORCE: the kernel caps the buffer, and the warning names the
// sysctl. With SO_RCVBUFFORCE (root here) the buffer is granted in full
// and there is no warning.
func TestReceiveBufferWarning(t *testing.T) {
	max := rmemMax()
	if max <= 0 {
		t.Skip("cannot read net.core.rmem_max")
	}
	cfg := testConfig()
	cfg.Workers = 1
	cfg.ReceiveBuffer = 2*max + 4096
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			logs := &testutil.SyncBuffer{}
			c, err := New(cfg, Deps{Sink: newPipeSink(&memSink{}, 1), Registerer: reg,
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			c.noForceRcvbuf = !force
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			<-c.Ready()
			granted := metric(t, reg, "flowbox_collector_receive_buffer_bytes", "listener", "127.0.0.1:0")
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(logs.String(), "net.core.rmem_max")
			full := granted >= 2*float64(cfg.ReceiveBuffer)
			switch {
			case !force && full:
				t.Errorf("granted %v bytes for %d requested beyond rmem_max %d without SO_RCVBUFFORCE", granted, cfg.ReceiveBuffer, max)
			case !full && !warned:
				t.Errorf("granted %v bytes for %d requested, but no warning naming net.core.rmem_max:\n%s",
					granted, cfg.ReceiveBuffer, logs.String())
			case full && warned:
				t.Errorf("granted %v bytes (all of it) but warned:\n%s", granted, logs.String())
			}
		})
	}
}

// TestNewErrors: bad configuration and missing dependencies are errors.
func TestNewErrors(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	good := Deps{Sink: newPipeSink(&memSink{}, 1), Logger: logger, Registerer: prometheus.NewRegistry()}
	bad := testConfig()
	bad.Listen = []string{"not an address"}
	bad.Workers = 0
	if _, err := New(bad, good); err == nil || !strings.Contains(err.Error(), "listen:") ||
		!strings.Contains(err.Error(), "workers:") {
		t.Errorf("New(bad config) = %v, want listen and workers errors", err)
	}
	for name, d := range map[string]Deps{
		"sink":       {Logger: logger, Registerer: prometheus.NewRegistry()},
		"logger":     {Sink: newPipeSink(&memSink{}, 1), Registerer: prometheus.NewRegistry()},
		"registerer": {Sink: newPipeSink(&memSink{}, 1), Logger: logger},
	} {
		if _, err := New(testConfig(), d); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("New without %s = %v, want an error naming it", name, err)
		}
	}
}

// TestRunErrors: an address in use is an error from Run, and Run cannot
// be called twice.
func TestRunErrors(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig()
	cfg.Listen = []string{"127.0.0.1:0", busy.LocalAddr().String()}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(cfg, Deps{Sink: newPipeSink(&memSink{}, 1), Logger: logger, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), busy.LocalAddr().String()) {
		t.Errorf("Run with a busy address = %v, want an error naming it", err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

// TestSoftflowd runs the real softflowd exporter on the shared input
// capture against the collector, for NetFlow v9 and IPFIX, and checks the
// totals nfcapd stored from the same export.
func TestSoftflowd(t *testing.T) {
	bin, err := exec.LookPath("softflowd")
	if err != nil {
		if os.Getenv("FLOWBOX_FUNCTIONAL_TESTS") == "1" {
			t.Fatal("softflowd is not in PATH (apt-get install softflowd)")
		}
		t.Skip("softflowd is not in PATH (apt-get install softflowd); skipping the real-exporter test")
	}
	input := filepath.Join(testutil.CapturesDir(t), "exporters", "exporters-input.pcap")
	for _, version := range []string{"9", "10"} {
		t.Run("v"+version, func(t *testing.T) {
			sink := &memSink{}
			r := startCollector(t, testConfig(), sink)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// No -c or -p after -r: softflowd would then wait forever on
			// its control socket (see SOURCES.md).
			cmd := exec.CommandContext(ctx, bin, "-d", "-r", input, "-n", r.addr(t, 0).String(), "-v", version)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("softflowd: %v\n%s", err, out)
			}
			const wantFlows = 58
			testutil.WaitFor(t, 10*time.Second, "58 flows", func() (bool, string) {
				n := metric(t, r.reg, "flowbox_collector_flows_total")
				return n >= wantFlows, fmt.Sprintf("%v flows decoded", n)
			})
			r.stop(t)
			want := sums{Flows: wantFlows, Packets: 3817, Bytes: 14146460}
			if got := sumFlows(sink.snapshot()); got != want {
				t.Errorf("softflowd -v %s: sink got %+v, want %+v\nsoftflowd said:\n%s", version, got, want, out)
			}
			if d := r.c.kernelDrops(); d != 0 {
				t.Errorf("kernel dropped %d datagrams", d)
			}
			if e := metric(t, r.reg, "flowbox_collector_options_records_total"); e == 0 {
				t.Errorf("softflowd's options record was not counted")
			}
		})
	}
}
