package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// spillFiles returns the names of dir's files with suffix.
func spillFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestIngestSpill: while ClickHouse is down, the writer spills what it
// cannot insert to disk, so that the queue keeps draining and the
// producers drop nothing; the spill outlives a restart, keeps the top-N
// rollups waiting (Backlog), and is sent once ClickHouse answers, every
// flow once and counted as stored per exporter.
func TestIngestSpill(t *testing.T) {
	in, p, c, o := ingestRig(t, 4)
	dir := filepath.Join(t.TempDir(), "spill")
	if err := in.EnableSpill(dir, 64<<20); err != nil {
		t.Fatal(err)
	}
	p.mode.Store(1)
	ctx := context.Background()
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(run) }()
	end := time.Now().Truncate(time.Minute)
	flows := testFlows(3000, end)
	oldest := flows[0].End
	for i := range flows {
		oldest = min(oldest, flows[i].End)
	}
	// 30 batches through a queue of 4: without the spill, the queue
	// would stay full while ClickHouse is down (a guard, not a timing).
	guard, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	for i := 0; i < len(flows); i += 100 {
		b := in.GetBatch()
		b.Flows = append(b.Flows, flows[i:i+100]...)
		if err := in.SubmitWait(guard, b); err != nil {
			t.Fatalf("batch %d: %v", i/100, err)
		}
	}
	testutil.WaitFor(t, time.Minute, "every flow spilled", func() (bool, string) {
		h := in.Health()
		return h.SpilledFlows == uint64(len(flows)), fmt.Sprintf("%+v", h)
	})
	if h := in.Health(); h.OK || h.DroppedFlows != 0 || h.SpillCapacity != 64<<20 || h.SpilledBytes == 0 {
		t.Fatalf("health while ClickHouse is down: %+v", h)
	}
	if t0, ok := in.Backlog(); !ok || t0.UnixMilli() != oldest {
		t.Fatalf("backlog %v %v, want the oldest flow %v", t0, ok, time.UnixMilli(oldest))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stored, dropped := o.counts(); stored != 0 || len(dropped) != 0 {
		t.Fatalf("before ClickHouse is back: %d stored, dropped %v", stored, dropped)
	}

	// A new writer on the same spill (a restart) sends it once
	// ClickHouse answers.
	in2, err := NewIngest(in.w, 4, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	in2.backoff, in2.maxBackoff = time.Millisecond, 20*time.Millisecond
	o2 := &countObserver{}
	in2.SetWriteObserver(o2)
	if err := in2.EnableSpill(dir, 64<<20); err != nil {
		t.Fatal(err)
	}
	if h := in2.Health(); h.SpilledFlows != uint64(len(flows)) {
		t.Fatalf("after the restart: %+v", h)
	}
	p.mode.Store(0)
	run, cancel = context.WithCancel(ctx)
	go func() { done <- in2.Run(run) }()
	testutil.WaitFor(t, time.Minute, "the spill sent", func() (bool, string) {
		stored, _ := o2.counts()
		return stored == len(flows), fmt.Sprintf("%d of %d stored", stored, len(flows))
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := countFlows(t, c); n != len(flows) {
		t.Fatalf("%d flows in clickhouse, %d sent", n, len(flows))
	}
	if h := in2.Health(); !h.OK || h.SpilledFlows != 0 || h.SpilledBytes != 0 || h.DroppedFlows != 0 {
		t.Fatalf("health after the spill was sent: %+v", h)
	}
	if _, ok := in2.Backlog(); ok {
		t.Fatal("backlog after the spill was sent")
	}
	if f := spillFiles(t, dir, ".spill"); len(f) != 0 {
		t.Fatalf("spill files left: %v", f)
	}
}

// TestIngestSpillLimits: a spill without room leaves the writer as
// without one (the queue fills, and what it refuses is counted); spilled
// inserts ClickHouse refuses as bad are dropped and counted per exporter
// (write_error); a damaged file is set aside and counted.
func TestIngestSpillLimits(t *testing.T) {
	in, p, _, _ := ingestRig(t, 2)
	dir := filepath.Join(t.TempDir(), "spill")
	if err := in.EnableSpill(dir, 1); err != nil { // no room for one insert
		t.Fatal(err)
	}
	p.mode.Store(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	flows := testFlows(1000, time.Now().Truncate(time.Minute))
	refused := 0
	testutil.WaitFor(t, time.Minute, "the queue full", func() (bool, string) {
		b := in.GetBatch()
		b.Flows = append(b.Flows, flows[:100]...)
		if err := in.Submit(b); errors.Is(err, store.ErrQueueFull) {
			in.PutBatch(b)
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
		return refused > 0, "no refusal yet"
	})
	if h := in.Health(); h.SpilledFlows != 0 {
		t.Fatalf("spilled into a spill without room: %+v", h)
	}
	cancel()
	<-done

	// Spilled inserts that ClickHouse refuses, and a damaged file.
	in2, p2, c2, o2 := ingestRig(t, 4)
	dir2 := filepath.Join(t.TempDir(), "spill")
	if err := in2.EnableSpill(dir2, 64<<20); err != nil {
		t.Fatal(err)
	}
	p2.mode.Store(1)
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- in2.Run(ctx) }()
	if err := in2.InsertFlows(ctx, flows[:300]); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, time.Minute, "the flows spilled", func() (bool, string) {
		h := in2.Health()
		return h.SpilledFlows == 300, fmt.Sprintf("%+v", h)
	})
	p2.mode.Store(2)
	testutil.WaitFor(t, time.Minute, "the spilled flows dropped", func() (bool, string) {
		_, dropped := o2.counts()
		return dropped[store.DropWriteError] == 300, fmt.Sprintf("dropped %v", dropped)
	})
	if h := in2.Health(); h.DroppedFlows != 300 || h.DroppedBatches != 1 || h.SpilledFlows != 0 {
		t.Fatalf("health after the refusal: %+v", h)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := countFlows(t, c2); n != 0 {
		t.Fatalf("%d flows stored", n)
	}
	if err := os.WriteFile(filepath.Join(dir2, "00000000000000000007.spill"), []byte("FBSPILL1 not really"), 0o600); err != nil {
		t.Fatal(err)
	}
	in3, err := NewIngest(in2.w, 4, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := in3.EnableSpill(dir2, 64<<20); err != nil {
		t.Fatal(err)
	}
	if h := in3.Health(); h.DroppedBatches != 1 || h.SpilledFlows != 0 {
		t.Fatalf("health after a damaged file: %+v", h)
	}
	if bad := spillFiles(t, dir2, ".bad"); len(bad) != 1 {
		t.Fatalf("damaged files set aside: %v", bad)
	}
}
