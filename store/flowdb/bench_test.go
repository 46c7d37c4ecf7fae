package flowdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// benchFlows returns n realistic WISP flows ending at end: 1,000
// subscribers behind one router, remote hosts from a large pool, a few
// applications.
func benchFlows(rng *rand.Rand, n int, end time.Time, spread time.Duration) []store.Flow {
	out := make([]store.Flow, n)
	apps := []string{"", "", "", "youtube", "netflix", "dns"}
	ccs := []string{"US", "FR", "DE", "BR", "private"}
	subs := make([]string, 1000)
	for i := range subs {
		subs[i] = fmt.Sprintf("customer-%04d", i)
	}
	for i := range out {
		sub := int(rng.ExpFloat64()*150) % 1000
		local := netip.AddrFrom4([4]byte{100, 64, byte(sub >> 8), byte(sub)})
		r := rng.IntN(200000)
		remote := netip.AddrFrom4([4]byte{byte(1 + r%200), byte(r >> 8), byte(r), 7})
		dir := store.DirDownload
		if rng.IntN(3) == 0 {
			dir = store.DirUpload
		}
		t := end.Add(-time.Duration(rng.Int64N(int64(spread)))).UnixMilli()
		f := store.Flow{
			Exporter: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 2055), Version: 10,
			Start: t - rng.Int64N(60000), End: t, Proto: 6, SrcPort: 443, DstPort: uint16(32768 + rng.IntN(28000)),
			InIf: 1, OutIf: 2, SrcAS: uint32(rng.IntN(500)), Bytes: uint64(rng.IntN(1 << 20)), Packets: uint64(1 + rng.IntN(900)),
			Direction: dir, Subscriber: subs[sub], Application: apps[rng.IntN(len(apps))],
			SrcCountry: ccs[rng.IntN(len(ccs))], DstCountry: "private",
		}
		f.SrcAddr, f.DstAddr = remote, local
		if dir == store.DirUpload {
			f.SrcAddr, f.DstAddr = local, remote
			f.SrcPort, f.DstPort = f.DstPort, f.SrcPort
			f.SrcCountry, f.DstCountry = f.DstCountry, f.SrcCountry
		}
		out[i] = f
	}
	return out
}

// BenchmarkInsertFlows measures sustained ingest through InsertFlows and
// the writer (raw partitions, host index, rollups), in batches of 1,000
// synthetic flows, and reports flows/s, allocations per flow and bytes on
// disk per raw flow (raw partitions alone, and the whole file).
// BenchmarkInsertModelFlows (model_bench_test.go) does the same with
// realistic flows.
func BenchmarkInsertFlows(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(context.Background(), dir, store.DefaultConfig(), testLogger(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer closeAll(s)
	now := time.Now()
	s.now = func() time.Time { return now }
	pool := benchFlows(rand.New(rand.NewPCG(1, 2)), 100000, now, 4*time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	const batchSize = 1000
	n := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for b.Loop() {
		i := (n * batchSize) % len(pool)
		if err := s.InsertFlows(ctx, pool[i:i+batchSize]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	flows := float64(n * batchSize)
	b.ReportMetric(flows/elapsed.Seconds(), "flows/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/flows, "allocs/flow")
	b.ReportMetric(0, "ns/op")
	s.running.Store(false)
	if err := s.closePartitions(context.Background(), now.Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	raw, file, stored, err := s.diskUsage(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(raw)/float64(stored), "raw-disk-B/flow")
	b.ReportMetric(float64(file)/float64(stored), "file-B/flow")
}
