package alerts

import (
	"context"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// BenchmarkObserve measures the detectors' cost per flow on the readers'
// hot path: enriched ordinary traffic of one router with 20000
// subscribers, in batches of 512, with an evaluation every 1M flows (10 s
// at 100k flows/s).
func BenchmarkObserve(b *testing.B) {
	cfg := DefaultConfig()
	d, err := New(cfg, Deps{Logger: testutil.Logger(b), Store: nopStore{}, Routers: fakeRouters{{ID: 1, Name: "wisp-1"}}})
	if err != nil {
		b.Fatal(err)
	}
	gen := ordinaryN(b, 41, 0, 1, 100000, cfg.Interval, 20000)
	now := t0
	flows := gen(now)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		d.Observe(flows[n : n+512])
		n += 512
		if n+512 > len(flows) {
			n = 0
			now = now.Add(cfg.Interval)
			d.Evaluate(context.Background(), now)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/flow")
}

// nopStore is an alert store that keeps nothing.
type nopStore struct{ store.Alerts }

func (nopStore) EndActiveAlerts(context.Context, time.Time) (int64, error) { return 0, nil }
func (nopStore) PruneAlerts(context.Context, time.Time) (int64, error)     { return 0, nil }
func (nopStore) OpenAlert(context.Context, *store.Alert) error             { return nil }
func (nopStore) UpdateAlert(context.Context, *store.Alert) error           { return nil }
