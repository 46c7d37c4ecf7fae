package provision

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/store"
)

type fakeCollector struct{ stats []store.ExporterStats }

func (c *fakeCollector) Exporters() []store.ExporterStats { return c.stats }

// verifyFixture stores one router (API at 127.0.0.5, /ip/address
// 10.9.0.1/24) without talking to it: Verify only reads the store.
func verifyFixture(t *testing.T, coll Collector) (*Provisioner, *memInventory, *store.Router) {
	t.Helper()
	inv := newMemInventory()
	var deps Deps
	deps.Store, deps.Logger, deps.Registerer = inv, slog.New(slog.DiscardHandler), prometheus.NewRegistry()
	if coll != nil {
		deps.Collector = coll
	}
	p, err := New(DefaultConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Router{Name: "r", Address: "127.0.0.5:8728", Username: "admin", State: store.StateConfigured,
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")}}
	if err := inv.AddRouter(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return p, inv, r
}

func TestVerifyFlowsArrive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, inv, r := verifyFixture(t, nil)
		go func() {
			time.Sleep(20 * time.Second) // the bubble's fake clock: flows arrive 20 s into the wait
			inv.mu.Lock()
			inv.seen[netip.MustParseAddr("10.9.0.1")] = time.Now()
			inv.lastFlow[r.ID] = time.Now()
			inv.mu.Unlock()
		}()
		res, err := p.Verify(context.Background(), "r", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || res.Exporter != netip.MustParseAddr("10.9.0.1") || res.Waited < 20*time.Second || res.Waited > 22*time.Second {
			t.Fatalf("result = %+v", res)
		}
		runs, _ := inv.ProvisionRuns(context.Background(), r.ID, 1)
		if len(runs) != 1 || runs[0].Action != "verify" || !runs[0].OK {
			t.Errorf("history = %+v", runs)
		}
	})
}

func TestVerifyDiagnosis(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(inv *memInventory, coll *fakeCollector, now time.Time)
		want  string
	}{
		{"no packets", func(inv *memInventory, coll *fakeCollector, now time.Time) {
			// An old flow does not count.
			inv.lastFlow[1] = now.Add(-time.Hour)
		}, "no packets at all from 10.9.0.1, 127.0.0.5 within 1m30s"},
		{"packets but no template", func(inv *memInventory, coll *fakeCollector, now time.Time) {
			inv.seen[netip.MustParseAddr("10.9.0.1")] = now
			coll.stats = []store.ExporterStats{{Exporter: netip.MustParseAddr("10.9.0.1"), RouterID: 1, Packets: 10, LastSeen: now}}
		}, "packets arrive from 10.9.0.1 but no template yet"},
		{"packets without collector details", func(inv *memInventory, coll *fakeCollector, now time.Time) {
			inv.seen[netip.MustParseAddr("127.0.0.5")] = now
		}, "packets arrive from 127.0.0.5 but no flow was decoded yet"},
		{"unmatched exporter", func(inv *memInventory, coll *fakeCollector, now time.Time) {
			coll.stats = []store.ExporterStats{{Exporter: netip.MustParseAddr("203.0.113.9"), Packets: 10, Templates: 2,
				LastTemplate: now, LastSeen: now}}
		}, "flows arrive from 203.0.113.9, which match no router"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				coll := &fakeCollector{}
				p, inv, _ := verifyFixture(t, coll)
				inv.mu.Lock()
				tc.setup(inv, coll, time.Now())
				inv.mu.Unlock()
				res, err := p.Verify(context.Background(), "r", 0)
				if err != nil {
					t.Fatal(err)
				}
				if res.OK || !strings.Contains(res.Diagnosis, tc.want) {
					t.Fatalf("diagnosis = %q, want it to contain %q", res.Diagnosis, tc.want)
				}
				if res.Waited != 90*time.Second {
					t.Errorf("waited %v, want the default 90s", res.Waited)
				}
			})
		})
	}
}

func TestRunChecksDriftPeriodically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inv := newMemInventory()
		cfg := DefaultConfig()
		reg := prometheus.NewRegistry()
		p, err := New(cfg, Deps{Store: inv, Logger: slog.New(slog.DiscardHandler), Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		// A configured router that is unreachable: each drift check
		// records a failed run in its history.
		r := &store.Router{Name: "gone", Address: "127.0.0.1:1", Username: "admin", State: store.StateConfigured}
		if err := inv.AddRouter(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		p.dial = func(ctx context.Context, _ routerosOptions) (*routerosConn, error) { return nil, errUnreachable }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		time.Sleep(25 * time.Minute) // the bubble's fake clock: two drift periods
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		runs := inv.allRuns()
		if len(runs) != 2 {
			t.Fatalf("%d drift runs in 25 minutes, want 2", len(runs))
		}
		for _, run := range runs {
			if run.Action != "drift" || run.OK || !strings.Contains(run.Error, "unreachable") {
				t.Errorf("run = %+v", run)
			}
		}
		if got, _ := inv.GetRouter(context.Background(), "gone"); got.State != store.StateConfigured {
			t.Errorf("a failed drift check changed the state to %s", got.State)
		}
	})
}
