package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

const adminPassword = "Adm1n-S3cret-pw"

var addrCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

type fixture struct {
	t    *testing.T
	inv  *memInventory
	prov *Provisioner
	logs *testutil.SyncBuffer
	reg  *prometheus.Registry
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.CommandTimeout = 2 * time.Second
	cfg.DialTimeout = 2 * time.Second
	cfg.RetryBackoff = 10 * time.Millisecond
	return cfg
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, inv: newMemInventory(), logs: &testutil.SyncBuffer{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(cfg, Deps{Store: f.inv, Logger: logger, Registerer: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	f.prov = p
	t.Cleanup(func() { f.assertNoSecret(adminPassword) })
	return f
}

// assertNoSecret greps the logs and the whole history for a secret.
func (f *fixture) assertNoSecret(secret string) {
	f.t.Helper()
	if strings.Contains(f.logs.String(), secret) {
		f.t.Errorf("password found in logs:\n%s", f.logs.String())
	}
	for _, run := range f.inv.allRuns() {
		text := strings.Join(run.Transcript, "\n") + run.Error + run.Summary + strings.Join(run.Changes, "\n")
		if strings.Contains(text, secret) {
			f.t.Errorf("password found in %s history: %s", run.Action, text)
		}
	}
}

// withUsers gives p the tests' users, admin (full) and viewer (read), both
// with adminPassword, unless it has users of its own.
func withUsers(p routerostest.Personality) routerostest.Personality {
	if len(p.Users) == 0 {
		p.Users = []routerostest.User{{Name: "admin", Group: "full", Password: adminPassword}, {Name: "viewer", Group: "read", Password: adminPassword}}
	}
	return p
}

func (f *fixture) add(name string, s *routerostest.Server, mod func(*AddRequest)) (*store.Router, *Plan, error) {
	req := AddRequest{Name: name, Address: s.Addr(), Username: "admin", Password: adminPassword, TLS: s.Personality().TLS}
	if mod != nil {
		mod(&req)
	}
	r, plan, err := f.prov.Add(context.Background(), req)
	if err != nil && strings.Contains(err.Error(), adminPassword) {
		f.t.Errorf("error leaks the password: %v", err)
	}
	return r, plan, err
}

func (f *fixture) mustAdd(name string, s *routerostest.Server) *store.Router {
	f.t.Helper()
	r, _, err := f.add(name, s, nil)
	if err != nil {
		f.t.Fatalf("Add: %v", err)
	}
	return r
}

// wantConfigured checks the fake router's traffic-flow against the plan.
func wantConfigured(t *testing.T, s *routerostest.Server, others int) {
	t.Helper()
	st := s.TrafficFlow()
	if !st.Enabled || st.Interfaces != "all" || st.ActiveFlowTimeout != time.Minute || st.InactiveFlowTimeout != 15*time.Second {
		t.Errorf("traffic-flow = %+v, want enabled, all, 1m, 15s", st)
	}
	var ours []routerostest.Target
	for _, tg := range st.Targets {
		if tg.DstAddress == netip.MustParseAddr("127.0.0.1") && tg.Port == 2055 {
			ours = append(ours, tg)
		}
	}
	if len(ours) != 1 {
		t.Fatalf("targets = %+v, want exactly one for 127.0.0.1:2055", st.Targets)
	}
	if tg := ours[0]; tg.Version != "9" || tg.TemplateRefresh != 20 || tg.TemplateTimeout != time.Minute || tg.Disabled {
		t.Errorf("our target = %+v, want v9, refresh 20, timeout 1m, enabled", tg)
	}
	if len(st.Targets)-1 != others {
		t.Errorf("got %d other targets, want %d", len(st.Targets)-1, others)
	}
}

func TestOnboardFromScratch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        routerostest.Personality
		wantPlan []string
	}{
		{"v7", routerostest.V7("core-7"), []string{
			"target: (none) -> dst-address=127.0.0.1 port=2055 version=9 v9-template-refresh=20 v9-template-timeout=1m",
			"traffic-flow/active-flow-timeout: 30m -> 1m",
			"traffic-flow/enabled: false -> true",
		}},
		{"v6", routerostest.V6("tower-6"), []string{
			"target: (none) -> dst-address=127.0.0.1 port=2055 version=9 v9-template-refresh=20 v9-template-timeout=1m",
			"traffic-flow/active-flow-timeout: 30m -> 1m",
			"traffic-flow/enabled: false -> true",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testConfig())
			s := testutil.StartRouter(t, withUsers(tc.p))
			before := s.TrafficFlow()
			ctx := context.Background()

			r, plan, err := f.add("r1", s, func(r *AddRequest) { r.DryRun = true })
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if diff := cmp.Diff(plan.Lines(), tc.wantPlan); diff != "" {
				t.Errorf("plan (-got +want):\n%s", diff)
			}
			if r.ID != 0 || len(f.inv.routers) != 0 || s.Commands() == 0 {
				t.Errorf("dry run stored the router (id %d) or did not talk to it", r.ID)
			}
			if diff := cmp.Diff(s.TrafficFlow(), before, addrCmp); diff != "" {
				t.Fatalf("dry run changed the router (-got +want):\n%s", diff)
			}

			r = f.mustAdd("r1", s)
			if r.Identity != tc.p.Identity || r.Version != tc.p.Version || r.Board != tc.p.BoardName || r.Model != tc.p.Model || r.Serial != tc.p.Serial {
				t.Errorf("learned %q %q %q %q %q", r.Identity, r.Version, r.Board, r.Model, r.Serial)
			}
			wantIfs := []store.Interface{{Index: 1, Name: "ether1", Type: "ether", Comment: "uplink"}, {Index: 2, Name: "ether2", Type: "ether"},
				{Index: 7, Name: "bridge-lan", Type: "bridge"}, {Index: 8388611, Name: "<pppoe-alice>", Type: "pppoe-in"}}
			if diff := cmp.Diff(r.Interfaces, wantIfs); diff != "" {
				t.Errorf("interfaces (-got +want):\n%s", diff)
			}
			wantAddrs := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("10.0.0.1/24")}
			if diff := cmp.Diff(r.Addresses, wantAddrs, addrCmp); diff != "" {
				t.Errorf("addresses (-got +want):\n%s", diff)
			}
			if r.State != store.StateNew {
				t.Errorf("state = %s, want new", r.State)
			}

			res, err := f.prov.Apply(ctx, "r1")
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if res.Summary != "2 properties changed, target added" {
				t.Errorf("summary = %q", res.Summary)
			}
			wantConfigured(t, s, 0)
			got, _ := f.inv.GetRouter(ctx, "r1")
			if got.State != store.StateConfigured || !got.TargetCreated || got.TargetID == "" {
				t.Errorf("router after apply: state %s created %v id %q", got.State, got.TargetCreated, got.TargetID)
			}

			// Second apply: nothing to do, and it says so.
			cmds := s.Commands()
			res, err = f.prov.Apply(ctx, "r1")
			if err != nil {
				t.Fatalf("second Apply: %v", err)
			}
			if len(res.Changes) != 0 || res.Skipped != 2 || res.Summary != "configuration already in place, nothing changed" {
				t.Errorf("second apply = %+v", res)
			}
			if s.Commands() == cmds {
				t.Error("second apply did not re-read the router")
			}
			plan, err = f.prov.Plan(ctx, "r1")
			if err != nil || !plan.InPlace() {
				t.Errorf("plan after apply = %v, %v", plan, err)
			}

			// Undo restores exactly the previous state.
			res, err = f.prov.Undo(ctx, "r1")
			if err != nil {
				t.Fatalf("Undo: %v", err)
			}
			if diff := cmp.Diff(s.TrafficFlow(), before, addrCmp); diff != "" {
				t.Errorf("after undo (-got +want):\n%s", diff)
			}
			if res.Summary != "2 properties changed, target removed" {
				t.Errorf("undo summary = %q", res.Summary)
			}
			res, err = f.prov.Undo(ctx, "r1")
			if err != nil || res.Summary != "nothing to undo" {
				t.Errorf("second undo = %+v, %v", res, err)
			}

			runs, err := f.prov.History(ctx, "r1", 100)
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, run := range runs {
				actions = append(actions, run.Action)
				if !run.OK || len(run.Transcript) == 0 {
					t.Errorf("run %s: ok=%v, %d transcript lines", run.Action, run.OK, len(run.Transcript))
				}
			}
			if diff := cmp.Diff(actions, []string{"undo", "undo", "plan", "apply", "apply", "detect"}); diff != "" {
				t.Errorf("history (-got +want):\n%s", diff)
			}
		})
	}
}

func TestForeignTargetsUntouchedAndExistingTargetUpdated(t *testing.T) {
	f := newFixture(t, testConfig())
	p := routerostest.V7("shared")
	tf := routerostest.DefaultTrafficFlow()
	tf.Enabled = true
	tf.ActiveFlowTimeout = 5 * time.Minute
	tf.Targets = []routerostest.Target{
		{DstAddress: netip.MustParseAddr("192.0.2.50"), Port: 2055, Version: "5", TemplateRefresh: 20, TemplateTimeout: 30 * time.Minute},
		{DstAddress: netip.MustParseAddr("127.0.0.1"), Port: 2055, Version: "ipfix", TemplateRefresh: 20, TemplateTimeout: 30 * time.Minute, Disabled: true},
		{DstAddress: netip.MustParseAddr("127.0.0.1"), Port: 9995, Version: "9", TemplateRefresh: 20, TemplateTimeout: 30 * time.Minute},
	}
	p.TrafficFlow = &tf
	s := testutil.StartRouter(t, withUsers(p))
	before := s.TrafficFlow()
	f.mustAdd("r", s)
	ctx := context.Background()
	res, err := f.prov.Apply(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"target/version: ipfix -> 9", "target/v9-template-timeout: 30m -> 1m", "target/disabled: true -> false",
		"traffic-flow/active-flow-timeout: 5m -> 1m"}
	if diff := cmp.Diff(changeLines(res.Changes), want); diff != "" {
		t.Errorf("changes (-got +want):\n%s", diff)
	}
	wantConfigured(t, s, 2)
	after := s.TrafficFlow()
	if diff := cmp.Diff(after.Targets[0], before.Targets[0], addrCmp); diff != "" {
		t.Errorf("foreign target changed:\n%s", diff)
	}
	if diff := cmp.Diff(after.Targets[2], before.Targets[2], addrCmp); diff != "" {
		t.Errorf("target on another port changed:\n%s", diff)
	}
	if after.Targets[1].ID != before.Targets[1].ID {
		t.Errorf("existing target was replaced instead of updated")
	}
	if _, err := f.prov.Undo(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.TrafficFlow(), before, addrCmp); diff != "" {
		t.Errorf("after undo (-got +want):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("wrong password", func(t *testing.T) {
		f := newFixture(t, testConfig())
		s := testutil.StartRouter(t, withUsers(routerostest.V6("r")))
		_, _, err := f.add("r", s, func(r *AddRequest) { r.Password = "not-" + adminPassword })
		if !errors.Is(err, routeros.ErrAuth) || !strings.Contains(err.Error(), "wrong username or password") {
			t.Fatalf("err = %v", err)
		}
		f.assertNoSecret("not-" + adminPassword)
	})
	t.Run("port closed", func(t *testing.T) {
		f := newFixture(t, testConfig())
		s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
		f.mustAdd("r", s)
		if err := s.SetAPIEnabled(false); err != nil {
			t.Fatal(err)
		}
		_, err := f.prov.Apply(ctx, "r")
		if !errors.Is(err, routeros.ErrRefused) || !strings.Contains(err.Error(), "API service disabled or port closed") {
			t.Fatalf("err = %v", err)
		}
		r, _ := f.inv.GetRouter(ctx, "r")
		if r.State != store.StateError || !strings.Contains(r.StateDetail, "refused") {
			t.Errorf("state = %s %q", r.State, r.StateDetail)
		}
	})
	t.Run("silent router times out", func(t *testing.T) {
		cfg := testConfig()
		cfg.CommandTimeout = 200 * time.Millisecond
		cfg.Attempts = 2
		f := newFixture(t, cfg)
		s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
		f.mustAdd("r", s)
		s.SetSilent(true)
		_, err := f.prov.Apply(ctx, "r")
		if !errors.Is(err, routeros.ErrTimeout) || !strings.Contains(err.Error(), "did not answer") {
			t.Fatalf("err = %v", err)
		}
		if got := testutilCounter(t, f.reg, "flowbox_provision_retries_total"); got != 1 {
			t.Errorf("retries = %v, want 1", got)
		}
	})
	t.Run("TLS fingerprint mismatch", func(t *testing.T) {
		f := newFixture(t, testConfig())
		p := routerostest.V7("r")
		p.TLS = true
		s := testutil.StartRouter(t, withUsers(p))
		r := f.mustAdd("r", s)
		if r.TLSFingerprint != s.Fingerprint() {
			t.Fatalf("pinned %q, want %q", r.TLSFingerprint, s.Fingerprint())
		}
		if _, err := f.prov.Apply(ctx, "r"); err != nil {
			t.Fatalf("apply with the pinned certificate: %v", err)
		}
		// The router now presents another certificate.
		r.TLSFingerprint = strings.Repeat("0f", 32)
		if err := f.inv.UpdateRouter(ctx, r); err != nil {
			t.Fatal(err)
		}
		_, err := f.prov.Apply(ctx, "r")
		if !errors.Is(err, routeros.ErrFingerprint) || !strings.Contains(err.Error(), s.Fingerprint()) || !strings.Contains(err.Error(), r.TLSFingerprint) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not enough permissions", func(t *testing.T) {
		f := newFixture(t, testConfig())
		s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
		before := s.TrafficFlow()
		if _, _, err := f.add("r", s, func(r *AddRequest) { r.Username = "viewer" }); err != nil {
			t.Fatalf("a read-only user can still be added: %v", err)
		}
		_, err := f.prov.Apply(ctx, "r")
		if !errors.Is(err, routeros.ErrPermission) || !strings.Contains(err.Error(), "not enough permissions") {
			t.Fatalf("err = %v", err)
		}
		if diff := cmp.Diff(s.TrafficFlow(), before, addrCmp); diff != "" {
			t.Errorf("router changed:\n%s", diff)
		}
	})
	t.Run("unknown property on old version", func(t *testing.T) {
		// 6.42 does not know dst-address: the empty target table is
		// probed with the modern syntax, then the legacy one is used.
		f := newFixture(t, testConfig())
		s := testutil.StartRouter(t, withUsers(routerostest.V6("r")))
		f.mustAdd("r", s)
		if _, err := f.prov.Apply(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		wantConfigured(t, s, 0)
		if !strings.Contains(f.logs.String(), "legacy target syntax") {
			t.Error("fallback to the legacy syntax was not logged")
		}
		runs, _ := f.prov.History(ctx, "r", 1)
		if !strings.Contains(strings.Join(runs[0].Transcript, "\n"), "unknown parameter dst-address") {
			t.Errorf("transcript misses the trap:\n%s", strings.Join(runs[0].Transcript, "\n"))
		}
	})
}

// TestDropMidApply drops the session after each possible command of an
// apply: the state must stay consistent, the next apply must complete the
// plan, and undo must restore the router exactly.
func TestDropMidApply(t *testing.T) {
	ctx := context.Background()
	for _, p := range []routerostest.Personality{routerostest.V7("r7"), routerostest.V6("r6")} {
		for n := 1; n <= 8; n++ {
			t.Run(fmt.Sprintf("%s/drop-at-%d", p.Identity, n), func(t *testing.T) {
				cfg := testConfig()
				cfg.Attempts = 1
				f := newFixture(t, cfg)
				s := testutil.StartRouter(t, withUsers(p))
				before := s.TrafficFlow()
				f.mustAdd("r", s)
				s.DropAfter(n)
				_, err := f.prov.Apply(ctx, "r")
				if err != nil && !errors.Is(err, routeros.ErrDropped) {
					t.Fatalf("first apply: %v", err)
				}
				if err != nil {
					r, _ := f.inv.GetRouter(ctx, "r")
					if r.State != store.StateError || !strings.Contains(r.StateDetail, "connection dropped") {
						t.Errorf("state after drop = %s %q", r.State, r.StateDetail)
					}
				}
				s.DropAfter(0)
				if _, err := f.prov.Apply(ctx, "r"); err != nil {
					t.Fatalf("apply after drop: %v", err)
				}
				wantConfigured(t, s, 0)
				res, err := f.prov.Apply(ctx, "r")
				if err != nil || len(res.Changes) != 0 {
					t.Fatalf("third apply = %+v, %v", res, err)
				}
				if _, err := f.prov.Undo(ctx, "r"); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(s.TrafficFlow(), before, addrCmp); diff != "" {
					t.Errorf("after undo (-got +want):\n%s", diff)
				}
			})
		}
	}
	t.Run("retried within one apply", func(t *testing.T) {
		f := newFixture(t, testConfig())
		s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
		f.mustAdd("r", s)
		s.DropAfter(2) // the target add: executed, reply lost
		if _, err := f.prov.Apply(ctx, "r"); err != nil {
			t.Fatalf("apply with retries: %v", err)
		}
		wantConfigured(t, s, 0)
		r, _ := f.inv.GetRouter(ctx, "r")
		if !r.TargetCreated {
			t.Error("the target flowbox added (reply lost) is not recorded as flowbox's")
		}
	})
}

func TestConcurrentProvisioning(t *testing.T) {
	f := newFixture(t, testConfig())
	const n = 20
	servers := make([]*routerostest.Server, n)
	for i := range servers {
		p := routerostest.V7(fmt.Sprintf("router-%02d", i))
		if i%2 == 1 {
			p = routerostest.V6(fmt.Sprintf("router-%02d", i))
		}
		p.Serial = fmt.Sprintf("SN%04d", i)
		// Each its own address (routers with the same addresses cannot
		// be told apart: see TestTwoRoutersBehindOneAddress).
		p.Addresses = []routerostest.Address{
			{Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)}), 8), Interface: "ether1"},
			{Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 24), Interface: "bridge-lan"},
		}
		servers[i] = testutil.StartRouter(t, withUsers(p))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, s := range servers {
		wg.Go(func() {
			name := fmt.Sprintf("r%02d", i)
			if _, _, err := f.add(name, s, nil); err != nil {
				errs <- err
				return
			}
			if _, err := f.prov.Apply(ctx, name); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, s := range servers {
		r, err := f.inv.GetRouter(ctx, fmt.Sprintf("r%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Identity != fmt.Sprintf("router-%02d", i) || r.Serial != fmt.Sprintf("SN%04d", i) || r.Version != s.Personality().Version {
			t.Errorf("r%02d learned %s %s %s: replies mixed up", i, r.Identity, r.Serial, r.Version)
		}
		wantConfigured(t, s, 0)
	}
}

func TestCreateUser(t *testing.T) {
	f := newFixture(t, testConfig())
	s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
	r, _, err := f.add("r", s, func(r *AddRequest) { r.CreateUser = true })
	if err != nil {
		t.Fatal(err)
	}
	if r.Username != "flowbox" || r.Password == adminPassword || len(r.Password) < 20 {
		t.Fatalf("stored login %q (password len %d)", r.Username, len(r.Password))
	}
	// The stored login is the new one, and it can provision.
	if _, err := f.prov.Apply(context.Background(), "r"); err != nil {
		t.Fatalf("apply as the flowbox user: %v", err)
	}
	wantConfigured(t, s, 0)
	f.assertNoSecret(r.Password)

	// The least-privilege user cannot manage users itself.
	_, err = f.prov.CreateUser(context.Background(), "r")
	if !errors.Is(err, routeros.ErrPermission) {
		t.Fatalf("CreateUser as the flowbox user: %v, want ErrPermission", err)
	}
	if got, _ := f.inv.GetRouter(context.Background(), "r"); got.Password != r.Password || got.State != store.StateConfigured {
		t.Errorf("failed CreateUser changed the router: state %s", got.State)
	}

	// With the admin login stored again, CreateUser resets the password
	// of the existing user.
	got, _ := f.inv.GetRouter(context.Background(), "r")
	got.Username, got.Password = "admin", adminPassword
	if err := f.inv.UpdateRouter(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	r2, err := f.prov.CreateUser(context.Background(), "r")
	if err != nil {
		t.Fatalf("CreateUser again: %v", err)
	}
	if r2.Username != "flowbox" || r2.Password == r.Password {
		t.Error("password not rotated")
	}
	if _, err := f.prov.Apply(context.Background(), "r"); err != nil {
		t.Fatalf("apply with the rotated password: %v", err)
	}
	f.assertNoSecret(r2.Password)
}

func TestNewValidates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CollectorPort = 0
	cfg.CollectorAddress = "nope"
	_, err := New(cfg, Deps{Store: newMemInventory(), Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "collector-port: must be within 1..65535") || !strings.Contains(err.Error(), `collector-address: "nope"`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(DefaultConfig(), Deps{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()}); err == nil {
		t.Error("nil store accepted")
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, testConfig())
	s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
	before := s.TrafficFlow()
	f.mustAdd("r", s)
	if _, err := f.prov.Apply(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAPIEnabled(false); err != nil {
		t.Fatal(err)
	}
	if err := f.prov.Remove(ctx, "r", false); err == nil || !strings.Contains(err.Error(), "keep-router-config") {
		t.Fatalf("remove of an unreachable router = %v, want a hint", err)
	}
	if err := s.SetAPIEnabled(true); err != nil {
		t.Fatal(err)
	}
	if err := f.prov.Remove(ctx, "r", false); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.TrafficFlow(), before, addrCmp); diff != "" {
		t.Errorf("remove did not undo (-got +want):\n%s", diff)
	}
	if _, err := f.prov.Router(ctx, "r"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("router still stored: %v", err)
	}
	// --keep-router-config leaves the router alone.
	f.mustAdd("r", s)
	if _, err := f.prov.Apply(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := f.prov.Remove(ctx, "r", true); err != nil {
		t.Fatal(err)
	}
	wantConfigured(t, s, 0)
}

func TestDrift(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig()
	f := newFixture(t, cfg)
	s := testutil.StartRouter(t, withUsers(routerostest.V7("r")))
	f.mustAdd("r", s)
	if _, err := f.prov.Apply(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if n := f.prov.CheckDrift(ctx); n != 0 {
		t.Fatalf("drift right after apply: %d", n)
	}
	// Someone disables traffic-flow on the router.
	c, err := routeros.Dial(ctx, routeros.Options{Address: s.Addr(), Username: "admin", Password: adminPassword})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Run(ctx, "/ip/traffic-flow/set", "=enabled=no"); err != nil {
		t.Fatal(err)
	}
	if n := f.prov.CheckDrift(ctx); n != 1 {
		t.Fatalf("drifted = %d, want 1", n)
	}
	r, _ := f.inv.GetRouter(ctx, "r")
	if r.State != store.StateDrift || r.StateDetail != "drift: traffic-flow/enabled: false -> true" {
		t.Errorf("state = %s %q", r.State, r.StateDetail)
	}
	if got := testutilGauge(t, f.reg, "flowbox_provision_drifted_routers"); got != 1 {
		t.Errorf("drift gauge = %v", got)
	}
	if s.TrafficFlow().Enabled {
		t.Error("drift check without reapply changed the router")
	}

	// With drift-reapply the plan is applied again.
	cfg.DriftReapply = true
	f2, err := New(cfg, Deps{Store: f.inv, Logger: slog.New(slog.NewTextHandler(f.logs, nil)), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if n := f2.CheckDrift(ctx); n != 1 {
		t.Fatalf("drifted = %d, want 1", n)
	}
	wantConfigured(t, s, 0)
	r, _ = f.inv.GetRouter(ctx, "r")
	if r.State != store.StateConfigured {
		t.Errorf("state after reapply = %s", r.State)
	}
	// Undo still restores the original (disabled) state recorded at the
	// first apply.
	if _, err := f2.Undo(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if s.TrafficFlow().Enabled {
		t.Error("undo after drift re-apply left traffic-flow enabled")
	}
}
