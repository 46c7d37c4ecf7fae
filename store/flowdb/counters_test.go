package flowdb_test

import (
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
)

// TestSpreadDelta: a delta is split over the minutes it spans in
// proportion to time, and the parts add up to it exactly.
func TestSpreadDelta(t *testing.T) {
	from := time.Date(2026, 3, 3, 10, 0, 40, 0, time.UTC)
	d := store.CounterDelta{RouterID: 1, Index: 2, From: from, To: from.Add(90 * time.Second),
		RxBytes: 9_000_001, TxBytes: 90, RxPackets: 3, TxPackets: 0}
	got := flowdb.SpreadDelta(d)
	if len(got) != 3 {
		t.Fatalf("shares %+v, want 3 minutes", got)
	}
	var rx, tx, rp uint64
	var span int64
	for _, s := range got {
		rx, tx, rp, span = rx+s.RxBytes, tx+s.TxBytes, rp+s.RxPackets, span+s.SpanMs
	}
	if rx != d.RxBytes || tx != d.TxBytes || rp != d.RxPackets || span != 90_000 {
		t.Fatalf("sums rx %d tx %d packets %d span %d, want the delta's", rx, tx, rp, span)
	}
	// 20 s, 60 s and 10 s of the 90.
	if got[0].T != from.Truncate(time.Minute).Unix() || got[0].SpanMs != 20_000 || got[1].SpanMs != 60_000 || got[2].SpanMs != 10_000 ||
		got[1].RxBytes != 6_000_000 || got[0].RxBytes != 2_000_000 {
		t.Fatalf("shares %+v", got)
	}
	// A gap of days is kept whole in its last minute, never compared.
	long := flowdb.SpreadDelta(store.CounterDelta{From: from, To: from.Add(72 * time.Hour), RxBytes: 5})
	if len(long) != 1 || long[0].SpanMs != 0 || long[0].RxBytes != 5 {
		t.Fatalf("long gap: %+v", long)
	}
}
