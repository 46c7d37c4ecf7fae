package poll

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestEach: every item is handled once, never more than n at a time.
func TestEach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, peak, sum atomic.Int64
		items := []int64{1, 2, 3, 4, 5, 6, 7}
		Each(items, 3, func(v int64) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Millisecond) // the bubble's clock: the calls overlap
			sum.Add(v)
			running.Add(-1)
		})
		if sum.Load() != 28 || peak.Load() != 3 {
			t.Fatalf("sum %d, peak %d: want 28 and 3", sum.Load(), peak.Load())
		}
	})
}

// TestEvery: a round at once, then one per interval, until ctx ends.
func TestEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
		defer cancel()
		rounds := 0
		Every(ctx, 10*time.Second, func(context.Context) { rounds++ })
		if rounds != 4 { // at 0, 10, 20 and 30 s
			t.Fatalf("%d rounds, want 4", rounds)
		}
	})
}
