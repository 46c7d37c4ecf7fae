package alerts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestCoverageLow: a router whose coverage health is low raises
// coverage-low naming the cause, a healthy one raises nothing, and the
// alert resolves once the router is within the threshold again.
func TestCoverageLow(t *testing.T) {
	cfg := DefaultConfig()
	st, err := storetest.Open(context.Background(), t.TempDir(), store.DefaultConfig(), testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	routers := fakeRouters{{ID: 1, Name: "wisp-1", State: store.StateConfigured}, {ID: 2, Name: "wisp-2", State: store.StateConfigured}}
	now := t0
	low := true
	pct := func(v float64) *float64 { return &v }
	d, err := New(cfg, Deps{Logger: testutil.Logger(t), Store: st, Routers: routers, Now: func() time.Time { return now },
		Coverage: func() []store.RouterCoverage {
			r1 := store.RouterCoverage{RouterID: 1, Router: "wisp-1", Health: store.CoverageOK, CoverageIn: pct(99.5), CoverageOut: pct(100.2)}
			if low {
				r1 = store.RouterCoverage{RouterID: 1, Router: "wisp-1", Health: store.CoverageLow, CoverageIn: pct(70.1), CoverageOut: pct(69.8),
					Causes: []string{"FastTrack: RouterOS 6.32.4 does not export fast-tracked connections (fixed in 6.33); the rule *1 has passed 3 GB. Fix: upgrade."}}
			}
			return []store.RouterCoverage{r1, {RouterID: 2, Router: "wisp-2", Health: store.CoverageOK, CoverageIn: pct(100), CoverageOut: pct(99)}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	step := func(n int) {
		for range n {
			now = now.Add(cfg.Interval)
			d.Evaluate(context.Background(), now)
		}
	}
	step(3)
	as, err := st.ListAlerts(context.Background(), store.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Kind != store.AlertCoverageLow || as[0].Router != "wisp-1" || as[0].Ended != nil ||
		!strings.Contains(as[0].Summary, "count 70% of what its interfaces count; likely cause: FastTrack: RouterOS 6.32.4 does not export fast-tracked connections") ||
		strings.Contains(as[0].Summary, "Fix:") {
		t.Fatalf("alerts %+v, want one active coverage-low on wisp-1 naming FastTrack", as)
	}
	low = false
	step(int(cfg.ResolveAfter/cfg.Interval) + 2)
	as, _ = st.ListAlerts(context.Background(), store.AlertFilter{})
	if len(as) != 1 || as[0].Ended == nil {
		t.Fatalf("alerts %+v, want the coverage-low resolved", as)
	}
}
