//go:build linux

package collector

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
)

// discardSink counts the flows it is given and keeps nothing.
type discardSink struct{ flows atomic.Uint64 }

func (s *discardSink) InsertFlows(_ context.Context, flows []store.Flow) error {
	s.flows.Add(uint64(len(flows)))
	return nil
}

// cpuTime returns user+system CPU time of the process (who =
// unix.RUSAGE_SELF) or of the calling thread (unix.RUSAGE_THREAD).
func cpuTime(tb testing.TB, who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUDPPath measures the UDP path alone (receive + decode, the sink
// discarding) at a fixed offered rate: RouterOS-shaped NetFlow v9 packets
// (netflowtest.Encoder, 20 records of 70 bytes per 1420-byte packet) from 8
// exporters on 127.0.0.x are sent over loopback to a collector with 2
// workers and an 8 MiB receive buffer. One benchmark operation is one
// packet sent. It reports
//
//   - recv/sent: flows decoded / flows sent (1 = lossless),
//   - kernel-drops: datagrams the kernel dropped at the sockets,
//   - collector-cores: CPU time of the process minus the sender's thread
//     (the sender is pinned to its OS thread, and loopback delivery is
//     charged to it), divided by the wall time,
//   - flows/s: the rate actually offered.
//
// Run: go test -run '^$' -bench UDPPath -benchtime 5s ./collector
func BenchmarkUDPPath(b *testing.B) {
	for _, rate := range []int{250_000, 500_000, 1_000_000} {
		b.Run(fmt.Sprintf("flows=%dk/s", rate/1000), func(b *testing.B) { benchUDPPath(b, rate) })
	}
}

func benchUDPPath(b *testing.B, flowsPerSec int) {
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Workers = 2
	cfg.ReceiveBuffer = 8 << 20
	sink := &discardSink{}
	r := startCollector(b, cfg, sink)
	dst := r.addr(b, 0).AddrPort()

	const exporters = 8
	boot := time.Now().Add(-24 * time.Hour)
	encs := make([]*netflowtest.Encoder, exporters)
	conns := make([]*net.UDPConn, exporters)
	flows := make([][]store.Flow, exporters)
	for i := range exporters {
		enc, err := netflowtest.NewEncoder(netflowtest.EncoderConfig{Version: netflowtest.V9, BootTime: boot})
		if err != nil {
			b.Fatal(err)
		}
		encs[i] = enc
		conns[i] = newSender(b, fmt.Sprintf("127.0.0.%d:0", 10+i)).conn
		per := enc.RecordsPerPacket()
		now := time.Now()
		for j := range per {
			n := i*per + j
			flows[i] = append(flows[i], store.Flow{
				Start:   now.Add(-30 * time.Second).UnixMilli(),
				End:     now.UnixMilli(),
				SrcAddr: netip.AddrFrom4([4]byte{100, 64, byte(n >> 8), byte(n)}),
				DstAddr: netip.AddrFrom4([4]byte{203, 0, 113, byte(n)}),
				NextHop: netip.AddrFrom4([4]byte{192, 0, 2, 1}),
				// RouterOS fills the post-NAT fields on every record.
				PostNATSrcAddr: netip.AddrFrom4([4]byte{198, 51, 100, 7}),
				PostNATDstAddr: netip.AddrFrom4([4]byte{203, 0, 113, byte(n)}),
				SrcPort:        uint16(30000 + n), DstPort: 443, Proto: 6, TCPFlags: 0x1b,
				InIf: 3, OutIf: 1, Bytes: uint64(1500 * (1 + n%40)), Packets: uint64(1 + n%40),
			})
		}
	}
	perPacket := encs[0].RecordsPerPacket()
	interval := time.Second * time.Duration(perPacket) / time.Duration(flowsPerSec)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 0, netflowtest.MaxPacketSize)
	var sent, sentFlows uint64
	b.ReportAllocs()
	procStart := cpuTime(b, unix.RUSAGE_SELF)
	senderStart := cpuTime(b, unix.RUSAGE_THREAD)
	start := time.Now()
	for b.Loop() {
		due := start.Add(time.Duration(sent) * interval)
		now := time.Now()
		if d := due.Sub(now); d > 200*time.Microsecond {
			time.Sleep(d) // pacing the real UDP sender to the benchmark's flow rate
		}
		e := sent % exporters
		pkt, n := encs[e].AppendPacket(buf[:0], flows[e], now)
		if _, err := conns[e].WriteToUDPAddrPort(pkt, dst); err != nil {
			b.Fatalf("send: %v", err)
		}
		sent++
		sentFlows += uint64(n)
	}
	sendWall := time.Since(start)
	senderCPU := cpuTime(b, unix.RUSAGE_THREAD) - senderStart
	b.StopTimer()

	// Let the collector finish what the kernel holds: until every packet is
	// read or nothing moved for 200 ms.
	last, lastMove := uint64(0), time.Now()
	for {
		got := r.c.receivedPackets()
		if got+r.c.kernelDrops() >= sent {
			break
		}
		if got != last {
			last, lastMove = got, time.Now()
		} else if time.Since(lastMove) > 200*time.Millisecond {
			break
		}
		time.Sleep(time.Millisecond) // benchmark drain: waits for quiescence, which is no failure, so not testutil.WaitFor
	}
	wall := time.Since(start)
	collectorCPU := cpuTime(b, unix.RUSAGE_SELF) - procStart - senderCPU

	var decoded uint64
	for _, rd := range r.c.runningReaders() {
		decoded += rd.flows.Load()
	}
	b.ReportMetric(float64(decoded)/float64(max(sentFlows, 1)), "recv/sent")
	b.ReportMetric(float64(r.c.kernelDrops()), "kernel-drops")
	b.ReportMetric(collectorCPU.Seconds()/wall.Seconds(), "collector-cores")
	b.ReportMetric(float64(sentFlows)/sendWall.Seconds(), "flows/s")
}
