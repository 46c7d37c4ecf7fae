package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchFlows returns n realistic WISP flows ending at end: 1,000
// subscribers behind one router, remote hosts from a large pool, a few
// applications.
func benchFlows(rng *rand.Rand, n int, end time.Time, spread time.Duration) []Flow {
	out := make([]Flow, n)
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
		dir := DirDownload
		if rng.IntN(3) == 0 {
			dir = DirUpload
		}
		t := end.Add(-time.Duration(rng.Int64N(int64(spread)))).UnixMilli()
		f := Flow{
			Exporter: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 2055), Version: 10,
			Start: t - rng.Int64N(60000), End: t, Proto: 6, SrcPort: 443, DstPort: uint16(32768 + rng.IntN(28000)),
			InIf: 1, OutIf: 2, SrcAS: uint32(rng.IntN(500)), Bytes: uint64(rng.IntN(1 << 20)), Packets: uint64(1 + rng.IntN(900)),
			Direction: dir, Subscriber: subs[sub], Application: apps[rng.IntN(len(apps))],
			SrcCountry: ccs[rng.IntN(len(ccs))], DstCountry: "private",
		}
		f.SrcAddr, f.DstAddr = remote, local
		if dir == DirUpload {
			f.SrcAddr, f.DstAddr = local, remote
			f.SrcPort, f.DstPort = f.DstPort, f.SrcPort
			f.SrcCountry, f.DstCountry = f.DstCountry, f.SrcCountry
		}
		out[i] = f
	}
	return out
}

// BenchmarkInsertFlows measures sustained ingest through InsertFlows and
// the writer (raw partitions plus rollups), in batches of 1,000 flows, and
// reports flows/s and bytes on disk per raw flow.
func BenchmarkInsertFlows(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(context.Background(), dir, DefaultConfig(), testLogger(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	s.now = func() time.Time { return now }
	pool := benchFlows(rand.New(rand.NewPCG(1, 2)), 100000, now, 4*time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	const batchSize = 1000
	n := 0
	b.ReportAllocs()
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
	b.ReportMetric(float64(n*batchSize)/elapsed.Seconds(), "flows/s")
	b.ReportMetric(0, "ns/op")
	// Bytes on disk per raw flow: the whole database file (raw partitions,
	// their address indexes, rollups) divided by the flows stored; indexes
	// are built as when the partitions close.
	if err := s.indexClosedPartitions(context.Background(), now.Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	var rawBytes, rows int64
	if err := s.r.QueryRow(`SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'flows_%'`).Scan(&rawBytes); err != nil {
		// dbstat is not compiled in: fall back to the file size.
		b.Logf("dbstat unavailable (%v): using the file size", err)
		st, _ := os.Stat(filepath.Join(dir, DBFile))
		rawBytes = st.Size()
	}
	s.r.QueryRow("SELECT sum(flows) FROM exporters").Scan(&rows)
	if rows > 0 {
		b.ReportMetric(float64(rawBytes)/float64(rows), "disk-B/flow")
	}
}
