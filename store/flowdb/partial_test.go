package flowdb

import (
	"context"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestRawScanBudget: a raw scan over its budget answers with its newest
// part: the newest partition at least, From (or ScannedFrom) saying where
// it stopped, and counters that are exactly those of the flows after it;
// without a budget, the whole range.
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
	// A budget spent at once: the newest partition only.
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
	if !part.Partial || !part.From.Equal(newest) || part.Total.Bytes != b || part.Total.Flows != n || n == 0 {
		t.Fatalf("budget spent: partial %v from %v (want %v), %d bytes %d flows, want %d, %d", part.Partial, part.From, newest, part.Total.Bytes, part.Total.Flows, b, n)
	}
	ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Filter: raw, Budget: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	var got uint64
	for _, l := range ser.Lines {
		for _, v := range l.Bytes {
			got += v
		}
	}
	if !ser.Partial || !ser.ScannedFrom.Equal(newest) || got != b {
		t.Fatalf("series: partial %v from %v, %d bytes, want %d", ser.Partial, ser.ScannedFrom, got, b)
	}
}
