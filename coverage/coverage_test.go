package coverage_test

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/coverage"
	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

func TestDelta(t *testing.T) {
	for _, c := range []struct {
		name      string
		old, cur  uint64
		rebooted  bool
		want      uint64
		wantDelta coverage.Change
	}{
		{"grew", 100, 150, false, 50, coverage.Grew},
		{"still", 100, 100, false, 0, coverage.Grew},
		{"wrapped at 2^32", 1<<32 - 100, 50, false, 150, coverage.Wrapped},
		{"reset-counters", 1 << 40, 1000, false, 1000, coverage.Reset},
		{"fell below 2^32 by more than a wrap", 3_000_000_000, 2_000_000_000, false, 2_000_000_000, coverage.Reset},
		{"reboot, even when the counter grew", 100, 5000, true, 5000, coverage.Reset},
	} {
		got, ch := coverage.Delta(c.old, c.cur, c.rebooted)
		if got != c.want || ch != c.wantDelta {
			t.Errorf("%s: Delta(%d, %d, %v) = %d, %v; want %d, %v", c.name, c.old, c.cur, c.rebooted, got, ch, c.want, c.wantDelta)
		}
	}
}

// clock is a settable clock shared by the poller and the fake routers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// recorder is the real storage, recording the deltas it is given.
type recorder struct {
	*storetest.Store
	mu     sync.Mutex
	deltas []store.CounterDelta
}

func (r *recorder) SaveCounterDeltas(ctx context.Context, ds []store.CounterDelta) error {
	r.mu.Lock()
	r.deltas = append(r.deltas, ds...)
	r.mu.Unlock()
	return r.Store.SaveCounterDeltas(ctx, ds)
}

func (r *recorder) take() []store.CounterDelta {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.deltas
	r.deltas = nil
	return d
}

type env struct {
	t   *testing.T
	st  *recorder
	clk *clock
	p   *coverage.Poller
}

func newEnv(t *testing.T, cfg coverage.Config) *env {
	t.Helper()
	st, err := storetest.Open(context.Background(), t.TempDir(), store.DefaultConfig(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: &recorder{Store: st}, clk: &clock{t: time.Now().Add(-3 * time.Hour).Truncate(time.Minute).Add(20 * time.Second)}}
	p, err := coverage.New(cfg, coverage.Deps{Logger: testutil.Logger(t), Routers: st, Dial: coverage.DialRouterOS,
		Store: e.st, Source: st, MinuteRetention: store.DefaultConfig().MinuteRetention, Now: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	return e
}

// addRouter starts a fake router on the env's clock and adds it to the
// inventory.
func (e *env) addRouter(p routerostest.Personality) (*routerostest.Server, store.Router) {
	e.t.Helper()
	srv := testutil.StartRouter(e.t, p)
	srv.SetClock(e.clk.now)
	r := store.Router{Name: p.Identity, Address: srv.Addr(), Username: "admin"}
	if err := e.st.AddRouter(context.Background(), &r); err != nil {
		e.t.Fatal(err)
	}
	return srv, r
}

func (e *env) advance(d time.Duration) { e.clk.set(e.clk.now().Add(d)) }

func deltaOf(t *testing.T, ds []store.CounterDelta, idx uint32) store.CounterDelta {
	t.Helper()
	for _, d := range ds {
		if d.Index == idx {
			return d
		}
	}
	t.Fatalf("no delta for ifIndex %d in %+v", idx, ds)
	return store.CounterDelta{}
}

// TestPollerWrapsAndReboots polls a RouterOS 7 and a RouterOS 6 router:
// deltas follow the counters, a 32-bit wrap is a wrap, a reboot starts the
// counters again (no negative traffic), and a router that stops answering
// is counted as a failure on it.
func TestPollerWrapsAndReboots(t *testing.T) {
	for _, p := range []routerostest.Personality{routerostest.V7("r7"), routerostest.V6("r6")} {
		t.Run(p.Identity, func(t *testing.T) {
			e := newEnv(t, coverage.DefaultConfig())
			srv, r := e.addRouter(p)
			ctx := context.Background()
			srv.AddInterfaceTraffic(1, routerostest.IfCounters{RxBytes: 1000, TxBytes: 500, RxPackets: 10, TxPackets: 5})
			e.p.PollRouter(ctx, r)
			if ds := e.st.take(); len(ds) != 0 {
				t.Fatalf("first poll gave deltas %+v", ds)
			}
			e.advance(time.Minute)
			srv.AddInterfaceTraffic(1, routerostest.IfCounters{RxBytes: 3000, TxBytes: 1000, RxPackets: 30, TxPackets: 10})
			e.p.PollRouter(ctx, r)
			d := deltaOf(t, e.st.take(), 1)
			if d.RxBytes != 3000 || d.TxBytes != 1000 || d.RxPackets != 30 || d.TxPackets != 10 || d.To.Sub(d.From) != time.Minute {
				t.Fatalf("delta %+v", d)
			}

			// A 32-bit counter wraps.
			srv.SetInterfaceCounters(2, routerostest.IfCounters{RxBytes: 1<<32 - 100})
			e.advance(time.Minute)
			e.p.PollRouter(ctx, r)
			e.st.take()
			srv.SetInterfaceCounters(2, routerostest.IfCounters{RxBytes: 400})
			e.advance(time.Minute)
			e.p.PollRouter(ctx, r)
			if d := deltaOf(t, e.st.take(), 2); d.RxBytes != 500 {
				t.Fatalf("after a wrap: rx %d, want 500", d.RxBytes)
			}

			// A reboot: counters and uptime start again.
			e.advance(30 * time.Second)
			srv.Reboot()
			e.advance(30 * time.Second)
			srv.AddInterfaceTraffic(1, routerostest.IfCounters{RxBytes: 700, TxBytes: 70, RxPackets: 7, TxPackets: 1})
			e.p.PollRouter(ctx, r)
			if d := deltaOf(t, e.st.take(), 1); d.RxBytes != 700 || d.TxBytes != 70 {
				t.Fatalf("after a reboot: %+v, want the traffic since the reboot", d)
			}
			states, err := e.st.CoverageStates(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(states) != 1 || states[0].Reboots != 1 || states[0].Wraps != 1 || states[0].Resets == 0 || states[0].Polls != 5 || states[0].Failures != 0 {
				t.Fatalf("state %+v", states)
			}

			// A router that stops answering: a failure, counted and shown.
			srv.SetSilent(true)
			cfg := coverage.DefaultConfig()
			cfg.Timeout = time.Second
			e2, err := coverage.New(cfg, coverage.Deps{Logger: testutil.Logger(t), Routers: e.st, Dial: coverage.DialRouterOS,
				Store: e.st, Now: e.clk.now})
			if err != nil {
				t.Fatal(err)
			}
			e2.PollRouter(ctx, r)
			states, _ = e.st.CoverageStates(ctx)
			if states[0].Failures != 1 || states[0].LastError == "" {
				t.Fatalf("after a silent poll: %+v", states[0])
			}
		})
	}
}

// TestDiagnosisFromRouterConfig reads the configuration checks from fake
// routers with RouterOS 6 and 7 menus.
func TestDiagnosisFromRouterConfig(t *testing.T) {
	ft := routerostest.FilterRule{Chain: "forward", Action: "fasttrack-connection", ConnectionState: "established,related"}
	v632 := routerostest.V6("v632")
	v632.Version = "6.32.4 (long-term)"
	v632.FilterRules = []routerostest.FilterRule{ft}
	v649 := routerostest.V6("v649")
	v649.Version = "6.49.7 (long-term)"
	v649.FilterRules = []routerostest.FilterRule{ft}
	v7hw := routerostest.V7("v7hw")
	hw := ft
	hw.HWOffload = true
	v7hw.FilterRules, v7hw.L3HWOffload = []routerostest.FilterRule{hw}, true
	v7list := routerostest.V7("v7list")
	tf := routerostest.DefaultTrafficFlow()
	tf.Enabled, tf.Interfaces, tf.ActiveFlowTimeout = true, "ether1,bridge-lan", time.Minute
	v7list.TrafficFlow = &tf
	v7sampled := routerostest.V6("v7sampled")
	v7sampled.Version = "7.16.2 (stable)"
	tfs := routerostest.DefaultTrafficFlow()
	tfs.Enabled, tfs.PacketSampling, tfs.SamplingInterval, tfs.SamplingSpace = true, true, 1, 9
	tfs.ActiveFlowTimeout = time.Minute
	v7sampled.TrafficFlow = &tfs

	for _, c := range []struct {
		p        routerostest.Personality
		want     string // in the diagnosis of ether2
		wantNot  string
		fastHits bool
	}{
		{v632, "FastTrack: RouterOS 6.32.4 does not export fast-tracked connections", "", true},
		{v649, "", "FastTrack", true},
		{v7hw, "hardware offload: l3-hw-offloading=yes on the switch chip with hw-offload=yes on the fasttrack rule", "FastTrack", false},
		{v7list, "ether2 is not in /ip traffic-flow interfaces (ether1,bridge-lan)", "", false},
		{v7sampled, "packet sampling is on (sampling-interval=1, sampling-space=9: 1 packet in 10)", "", false},
	} {
		if c.p.TrafficFlow == nil {
			tf := routerostest.DefaultTrafficFlow()
			tf.Enabled, tf.ActiveFlowTimeout = true, time.Minute
			c.p.TrafficFlow = &tf
		}
		t.Run(c.p.Identity, func(t *testing.T) {
			e := newEnv(t, coverage.DefaultConfig())
			srv, r := e.addRouter(c.p)
			ctx := context.Background()
			e.p.PollRouter(ctx, r)
			if c.fastHits {
				srv.AddFilterHits("fasttrack-connection", 0, 5_000_000, 5000)
			}
			e.advance(time.Minute)
			srv.AddInterfaceTraffic(2, routerostest.IfCounters{RxBytes: 10 << 20, RxPackets: 10000})
			e.p.PollRouter(ctx, r)
			states, err := e.st.CoverageStates(ctx)
			if err != nil || len(states) != 1 {
				t.Fatal(states, err)
			}
			st := states[0]
			if !st.ConfigRead || st.ConfigError != "" {
				t.Fatalf("config not read: %+v", st)
			}
			pct := 50.0
			ic := store.InterfaceCoverage{Interface: "ether2", CoverageIn: &pct}
			got := strings.Join(coverage.Diagnose(st, true, "ether2", ic, [2]uint64{}, time.Hour), " ")
			if c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("diagnosis %q\nwant it to contain %q", got, c.want)
			}
			if c.wantNot != "" && strings.Contains(got, c.wantNot) {
				t.Errorf("diagnosis %q\nshould not contain %q", got, c.wantNot)
			}
			if c.want == "" && !strings.Contains(got, "cause not found") {
				t.Errorf("diagnosis %q, want no cause found", got)
			}
		})
	}
}

func TestDiagnosisFlowLoss(t *testing.T) {
	st := store.CoverageState{ConfigRead: true, Version: "7.16.2", TrafficFlowEnabled: true, TrafficFlowInterfaces: "all"}
	got := strings.Join(coverage.Diagnose(st, true, "ether1", store.InterfaceCoverage{}, [2]uint64{50, 950}, time.Hour), " ")
	if !strings.Contains(got, "flow loss: 5.0% of this router's flow records were lost") {
		t.Fatalf("diagnosis %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := coverage.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Threshold, c.Interval, c.Lag = 0, time.Hour*2, 2*time.Hour
	err := c.Validate()
	for _, want := range []string{"interval: must be within 1s..1h", "threshold: must be within (0, 100] percent", "lag: must be within 0..window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}

func near(got *float64, want, tol float64) bool {
	return got != nil && math.Abs(*got-want) <= tol
}
