package mitigate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/routeros/routerostest"
	"github.com/flowbox/flowbox/store"
)

// inventory is an in-memory RouterSource and RouterLister.
type inventory struct {
	mu      sync.Mutex
	routers map[string]store.Router
}

func (i *inventory) GetRouter(_ context.Context, name string) (*store.Router, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	r, ok := i.routers[name]
	if !ok {
		return nil, fmt.Errorf("router %s: %w", name, store.ErrNotFound)
	}
	return &r, nil
}

func (i *inventory) ListRouters(context.Context) ([]store.Router, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []store.Router
	for _, r := range i.routers {
		out = append(out, r)
	}
	return out, nil
}

func (i *inventory) set(r store.Router) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.routers[r.Name] = r
}

// auditLog is an in-memory AuditLog.
type auditLog struct {
	mu   sync.Mutex
	acts []store.MitigationAction
}

func (a *auditLog) AddMitigationAction(_ context.Context, m *store.MitigationAction) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	m.ID = int64(len(a.acts) + 1)
	a.acts = append(a.acts, *m)
	return nil
}

// lines returns the audit log as "alert action kind list address result"
// lines, dry-run ones marked.
func (a *auditLog) lines() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, len(a.acts))
	for i, m := range a.acts {
		out[i] = fmt.Sprintf("%d %s %s %s %s %s", m.AlertID, m.Action, m.Kind, m.List, m.Address, m.Result)
		if m.DryRun {
			out[i] += " (dry run)"
		}
	}
	return out
}

func (a *auditLog) all() []store.MitigationAction {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.acts)
}

// clock is a settable clock shared by the mitigator and the fake routers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a mitigator with its inventory, audit log and clock.
type env struct {
	m     *Mitigator
	inv   *inventory
	audit *auditLog
	clk   *clock
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{inv: &inventory{routers: map[string]store.Router{}}, audit: &auditLog{},
		clk: &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}}
	m, err := New(cfg, Deps{Logger: testutil.Logger(t), Routers: e.inv, Audit: e.audit, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	return e
}

// router starts a fake router on the env's clock and registers it in the
// inventory under name.
func (e *env) router(t *testing.T, name string, p routerostest.Personality) *routerostest.Server {
	t.Helper()
	srv := testutil.StartRouter(t, p)
	srv.SetClock(e.clk.Now)
	e.inv.set(store.Router{ID: int64(len(e.inv.routers) + 1), Name: name, Address: srv.Addr(), Username: "admin",
		Version: p.Version})
	return srv
}

// policy returns a router policy; opts are "dry-run", "blackhole",
// "off".
func policy(opts ...string) RouterConfig {
	t, f := true, false
	rc := RouterConfig{Enabled: &t}
	for _, o := range opts {
		switch o {
		case "dry-run":
			rc.DryRun = &t
		case "blackhole":
			rc.Blackhole = &t
		case "off":
			rc.Enabled = &f
		}
	}
	return rc
}

// config enables mitigation on the routers named, with a policy each.
func config(routers map[string]RouterConfig) Config {
	cfg := DefaultConfig()
	cfg.Routers = routers
	return cfg
}

// ev builds an alert event.
func ev(typ store.AlertEventType, id int64, kind, dir, router, target string) store.AlertEvent {
	return store.AlertEvent{Type: typ, Alert: store.Alert{ID: id, Kind: kind, Direction: dir, Router: router, Target: target}}
}

// status returns one router's status.
func (e *env) status(t *testing.T, router string) store.MitigationStatus {
	t.Helper()
	for _, s := range e.m.Status() {
		if s.Router == router {
			return s
		}
	}
	t.Fatalf("no status for router %s in %+v", router, e.m.Status())
	return store.MitigationStatus{}
}

// lists renders a router's address lists (both families) as
// "list address comment timeout" lines.
func lists(srv *routerostest.Server) []string {
	var out []string
	for _, v6 := range []bool{false, true} {
		for _, l := range srv.AddressList(v6) {
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s %v", l.List, l.Address, l.Comment, l.Timeout)))
		}
	}
	return out
}

// routes renders a router's routes (both families) as "dst blackhole
// type comment" lines.
func routes(srv *routerostest.Server) []string {
	var out []string
	for _, v6 := range []bool{false, true} {
		for _, r := range srv.Routes(v6) {
			out = append(out, fmt.Sprintf("%s blackhole=%t type=%s %s", r.DstAddress, r.Blackhole, r.Type, r.Comment))
		}
	}
	return out
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}
