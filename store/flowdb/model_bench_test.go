package flowdb_test

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
	"github.com/flowbox/flowbox/store/storetest"
	"github.com/flowbox/flowbox/store/storetest/flowmodel"
)

type benchLog struct{ tb testing.TB }

func (w benchLog) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func benchLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(benchLog{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInsertModelFlows measures sustained ingest of realistic flows
// (the netflowtest model of a 1,000-subscriber WISP router, enriched) into
// raw partitions, their host index and the rollups, in batches of 4,096
// (the collector's batch size). It reports flows/s, the CPU time a flow
// of the whole process (cpu-ns/flow: ingest all-in, every goroutine: raw
// rows, host index, rollups, NAT mappings, garbage collection), allocations
// per flow, and the bytes on disk per raw flow of the raw partitions alone (rows and
// host index), of their host index, and of the whole database file; then
// the same once the partitions are packed into blocks (rawpack.go): the
// raw partitions, and the file's pages in use (the pages the rows left are
// free, and SQLite reuses them before the file grows), with the packer's
// time per flow (one goroutine).
func BenchmarkInsertModelFlows(b *testing.B) {
	ctx := context.Background()
	end := time.Date(2026, 1, 14, 21, 30, 0, 0, time.UTC)
	pool := flowmodel.ModelFlows(b, 7, 1<<19, 5000, end)
	s, err := storetest.Open(ctx, b.TempDir(), store.DefaultConfig(), benchLogger(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	flowdb.SetClock(s.SQL, func() time.Time { return end })
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	const batchSize = 4096
	n := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime(b)
	start := time.Now()
	for b.Loop() {
		i := (n * batchSize) % (len(pool) - batchSize)
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
	cpu := cpuTime(b) - cpu0
	runtime.ReadMemStats(&after)
	flows := float64(n * batchSize)
	b.ReportMetric(flows/elapsed.Seconds(), "flows/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/flows, "cpu-ns/flow")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/flows, "allocs/flow")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/flows, "B/flow")
	b.ReportMetric(0, "ns/op")
	if err := flowdb.CloseAllPartitions(ctx, s.SQL); err != nil {
		b.Fatal(err)
	}
	raw, index, file, stored, err := flowdb.DiskUsage(ctx, s.SQL)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(raw)/float64(stored), "raw-disk-B/flow")
	b.ReportMetric(float64(index)/float64(stored), "host-index-B/flow")
	b.ReportMetric(float64(file)/float64(stored), "file-B/flow")
	// The same flows once the packer has moved them into blocks.
	flowdb.SetClock(s.SQL, func() time.Time { return end.Add(48 * time.Hour) })
	packStart := time.Now()
	if _, err := flowdb.PackAll(ctx, s.SQL); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(packStart).Nanoseconds())/float64(stored), "pack-ns/flow")
	raw, _, _, _, err = flowdb.DiskUsage(ctx, s.SQL)
	if err != nil {
		b.Fatal(err)
	}
	used, err := flowdb.FileInUse(ctx, s.SQL)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(raw)/float64(stored), "packed-raw-disk-B/flow")
	b.ReportMetric(float64(used)/float64(stored), "packed-file-B/flow")
}
