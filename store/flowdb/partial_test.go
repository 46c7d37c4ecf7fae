package flowdb

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestRawScanBudget: a raw scan over its budget answers with its newest
// part: the newest block at least, From (or ScannedFrom) saying where it
// stopped, inside a partition too, and counters that are exactly those of
// the flows after it; without a budget, the whole range.
func TestRawScanBudget(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	ctx := context.Background()
	flows := indexFlows(5, 3000, testNow, 40*time.Minute) // 8 or 9 five-minute partitions
	writeDirect(t, s, flows)
	from, to := testNow.Add(-time.Hour), testNow.Add(time.Minute)
	raw := store.Filter{Protocols: []uint8{6}} // every flow, from raw flows
	sum := func(since time.Time) (b uint64, n uint64) {
		for i := range flows {
			f := rowOf(flows[i])
			if f.End >= since.UnixMilli() && f.End >= from.UnixMilli() && f.End < to.UnixMilli() {
				b += f.Scale(f.Bytes)
				n++
			}
		}
		return b, n
	}
	full, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimProtocol, Filter: raw})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := sum(from); full.Partial || full.Total.Bytes != b {
		t.Fatalf("no budget: partial %v, %d bytes, want %d", full.Partial, full.Total.Bytes, b)
	}
	// A budget spent at once: the newest block of the newest partition
	// (the scan reads one at least), and of its rows those after the
	// newest row of the blocks left out.
	part, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimProtocol, Filter: raw, Budget: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range flows {
		last = max(last, rowOf(flows[i]).End)
	}
	newest := time.UnixMilli(partitionStart(last)).UTC()
	b, n := sum(part.From)
	if !part.Partial || !part.From.After(newest) || part.Total.Bytes != b || part.Total.Flows != n || n == 0 {
		t.Fatalf("budget spent: partial %v from %v (want within the partition of %v), %d bytes %d flows, want %d, %d", part.Partial, part.From, newest, part.Total.Bytes, part.Total.Flows, b, n)
	}
	ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Filter: raw, Budget: time.Nanosecond, Resolution: store.ResRaw})
	if err != nil {
		t.Fatal(err)
	}
	var got uint64
	for _, l := range ser.Lines {
		for _, v := range l.Bytes {
			got += v
		}
	}
	if !ser.Partial || !ser.ScannedFrom.Equal(part.From) || got != b {
		t.Fatalf("series: partial %v from %v, %d bytes, want %d", ser.Partial, ser.ScannedFrom, got, b)
	}
}

// TestNewestBlocks: the blocks kept hold every row at or after the cut
// (every block left out ends before it), one block at least, in id order;
// all are kept when they fit.
func TestNewestBlocks(t *testing.T) {
	mk := func() []rawBlock {
		return []rawBlock{
			{lo: 1, hi: 256, tlo: 0, thi: 1000, all: true},
			{lo: 257, hi: 512, tlo: 900, thi: 2000, all: true},
			{lo: 513, hi: 768, tlo: 1500, thi: 2600, all: true},
			{lo: 769, hi: 800, tlo: 100, thi: 3000, all: true}, // late rows
			{lo: 801, hi: 1056, tlo: 2500, thi: 2900, all: true},
		}
	}
	for _, c := range []struct {
		max   int64
		kept  []int64 // lo of the kept blocks
		cutAt int64
	}{
		{max: 0, kept: []int64{769}, cutAt: 2901},
		{max: 300, kept: []int64{769, 801}, cutAt: 2601},
		{max: 600, kept: []int64{513, 769, 801}, cutAt: 2001},
		{max: 10000, kept: []int64{1, 257, 513, 769, 801}, cutAt: math.MinInt64},
	} {
		kept, cut := newestBlocks(mk(), c.max)
		var los []int64
		for _, b := range kept {
			los = append(los, b.lo)
		}
		if !slices.Equal(los, c.kept) || cut != c.cutAt {
			t.Errorf("max %d: kept %v cut %d, want %v %d", c.max, los, cut, c.kept, c.cutAt)
		}
	}
}
