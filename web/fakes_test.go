package web

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// fakeProv is a Provisioner that does to the real store what the real
// provisioner does, without a router: Add stores the router, Apply and Undo
// change its state, every operation records a run.
type fakeProv struct {
	st *storetest.Store
	// failAdd makes Add fail with this error.
	failAdd error
	// mu guards lastSpec and presented (a browser test reads and sets
	// them while the server runs).
	mu sync.Mutex
	// lastSpec is the last spec Add got.
	lastSpec RouterSpec
	// presented is the fingerprint of the certificate the routers present
	// (repin_test.go).
	presented string
}

func (f *fakeProv) plan() Plan {
	return Plan{Summary: "2 properties changed, target added", Changes: []Change{
		{Path: "traffic-flow/enabled", Old: "false", New: "true"},
		{Path: "traffic-flow/active-flow-timeout", Old: "30m", New: "1m"},
		{Path: "target", Old: "(none)", New: "127.0.0.1:2055 version=9"},
		{Path: "traffic-flow/cache-entries", Old: "4k", New: "4k", Skip: true},
	}}
}

func (f *fakeProv) Add(ctx context.Context, spec RouterSpec) (store.Router, Plan, error) {
	f.mu.Lock()
	f.lastSpec = spec
	presented := f.presented
	f.mu.Unlock()
	if f.failAdd != nil {
		return store.Router{}, Plan{}, f.failAdd
	}
	name := spec.Name
	if name == "" {
		name = "gw-" + strings.NewReplacer(".", "-", ":", "-").Replace(spec.Address)
	}
	rs, err := f.st.ListRouters(ctx)
	if err != nil {
		return store.Router{}, Plan{}, err
	}
	for _, r := range rs {
		if r.Address == spec.Address {
			return store.Router{}, Plan{}, fmt.Errorf("router at %s: %w", spec.Address, store.ErrExists)
		}
	}
	r := store.Router{Name: name, Address: spec.Address, TLS: spec.TLS, Username: spec.Username, Password: spec.Password,
		Identity: name, Model: "RB4011iGS+", Board: "RB4011iGS+", Version: "7.16.2 (stable)", State: store.StateNew,
		Interfaces: []store.Interface{{Index: 1, Name: "ether1"}, {Index: 2, Name: "ether2"}}}
	if spec.TLS {
		r.TLSFingerprint = presented // pinned on first use
	}
	if err := f.st.AddRouter(ctx, &r); err != nil {
		return store.Router{}, Plan{}, err
	}
	if _, err := f.record(ctx, r.ID, "plan", "2 properties changed, target added"); err != nil {
		return store.Router{}, Plan{}, err
	}
	return r, f.plan(), nil
}

func (f *fakeProv) record(ctx context.Context, id int64, action, summary string) (store.ProvisionRun, error) {
	run := store.ProvisionRun{RouterID: id, Time: time.Now(), Action: action, OK: true, Summary: summary,
		Changes: []string{"traffic-flow/enabled: false -> true"}, Transcript: []string{"/login =name=admin =password=<redacted>"}}
	err := f.st.AddProvisionRun(ctx, &run)
	return run, err
}

func (f *fakeProv) setState(ctx context.Context, id int64, state string) error {
	r, err := f.st.GetRouterByID(ctx, id)
	if err != nil {
		return err
	}
	r.State = state
	return f.st.UpdateRouter(ctx, r)
}

func (f *fakeProv) Plan(ctx context.Context, id int64) (Plan, error) {
	if _, err := f.st.GetRouterByID(ctx, id); err != nil {
		return Plan{}, err
	}
	return f.plan(), nil
}

func (f *fakeProv) Apply(ctx context.Context, id int64) (store.ProvisionRun, error) {
	if err := f.setState(ctx, id, store.StateConfigured); err != nil {
		return store.ProvisionRun{}, err
	}
	return f.record(ctx, id, "apply", "2 properties changed, target added")
}

func (f *fakeProv) Verify(ctx context.Context, id int64) (store.ProvisionRun, error) {
	if _, err := f.st.GetRouterByID(ctx, id); err != nil {
		return store.ProvisionRun{}, err
	}
	return f.record(ctx, id, "verify", "flows arriving")
}

func (f *fakeProv) Undo(ctx context.Context, id int64) (store.ProvisionRun, error) {
	if err := f.setState(ctx, id, store.StateUndone); err != nil {
		return store.ProvisionRun{}, err
	}
	return f.record(ctx, id, "undo", "settings restored")
}

func (f *fakeProv) Remove(ctx context.Context, id int64, undo bool) error {
	r, err := f.st.GetRouterByID(ctx, id)
	if err != nil {
		return err
	}
	return f.st.RemoveRouter(ctx, r.Name)
}

// fakeCollector returns fixed exporter counters.
type fakeCollector struct {
	mu    sync.Mutex
	stats []store.ExporterStats
}

func (c *fakeCollector) Exporters() []store.ExporterStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]store.ExporterStats(nil), c.stats...)
}

func (c *fakeCollector) set(s []store.ExporterStats) {
	c.mu.Lock()
	c.stats = s
	c.mu.Unlock()
}

// trust marks the exporters inside p trusted, as the collector does once
// an accepted prefix took effect.
func (c *fakeCollector) trust(p netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.stats {
		if p.Contains(c.stats[i].Exporter) {
			c.stats[i].Trusted = true
		}
	}
}

// fakeHealth is a HealthReporter whose answer the test sets.
type fakeHealth struct {
	mu sync.Mutex
	h  store.Health
}

func (f *fakeHealth) Health() store.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}

func (f *fakeHealth) set(h store.Health) {
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
}

// fakeTrust is an ExporterTrust that keeps the accepted prefixes in memory
// and, when coll is set, marks its exporters inside them trusted.
type fakeTrust struct {
	coll *fakeCollector
	mu   sync.Mutex
	list []AllowedPrefix
}

func (f *fakeTrust) AllowedExporters(ctx context.Context) ([]AllowedPrefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AllowedPrefix(nil), f.list...), nil
}

func (f *fakeTrust) AllowExporter(ctx context.Context, p netip.Prefix, by string) error {
	f.mu.Lock()
	now := time.Now().UTC()
	f.list = append(f.list, AllowedPrefix{Prefix: p.String(), Source: "console", AddedBy: by, AddedAt: &now})
	f.mu.Unlock()
	if f.coll != nil {
		f.coll.trust(p)
	}
	return nil
}

func (f *fakeTrust) DisallowExporter(ctx context.Context, p netip.Prefix) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.list {
		if a.Prefix == p.String() {
			f.list = append(f.list[:i], f.list[i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

// prefixes returns the accepted prefixes.
func (f *fakeTrust) prefixes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, a := range f.list {
		out = append(out, a.Prefix)
	}
	return out
}

// dataset returns a known set of flows for router 1 (and a few for router
// 2) over the 24 hours before now: download and upload flows between three
// subscribers and three remote hosts, one flow per minute per pair.
func dataset(now time.Time) []store.Flow {
	type host struct {
		addr    string
		sub     string
		as      uint32
		country string
	}
	locals := []host{{"10.0.0.5", "alice", 0, ""}, {"10.0.0.6", "bob", 0, ""}, {"10.0.1.7", "", 0, ""}}
	remotes := []host{{"1.1.1.1", "", 13335, "AU"}, {"8.8.8.8", "", 15169, "US"}, {"93.184.216.34", "", 15133, "US"}}
	var out []store.Flow
	exp := netip.MustParseAddrPort("127.0.0.2:40000")
	end := now.Truncate(time.Minute)
	for m := 0; m < 24*60; m += 10 {
		t := end.Add(-time.Duration(m)*time.Minute - 30*time.Second).UnixMilli()
		for li, l := range locals {
			for ri, r := range remotes {
				la, ra := netip.MustParseAddr(l.addr), netip.MustParseAddr(r.addr)
				down := uint64(1000 * (li + 1) * (ri + 1))
				out = append(out, store.Flow{
					Exporter: exp, Version: 9, RouterID: 1, Start: t - 5000, End: t,
					SrcAddr: ra, DstAddr: la, SrcPort: 443, DstPort: uint16(50000 + ri), Proto: 6,
					InIf: 1, OutIf: 2, SrcAS: r.as, Bytes: down, Packets: down / 100, SamplingRate: 1,
					Direction: store.DirDownload, Subscriber: l.sub, SrcCountry: r.country, Application: "https",
				}, store.Flow{
					Exporter: exp, Version: 9, RouterID: 1, Start: t - 5000, End: t,
					SrcAddr: la, DstAddr: ra, SrcPort: uint16(50000 + ri), DstPort: 53, Proto: 17,
					InIf: 2, OutIf: 1, DstAS: r.as, Bytes: 100, Packets: 1, SamplingRate: 2,
					Direction: store.DirUpload, Subscriber: l.sub, DstCountry: r.country,
				})
			}
		}
		out = append(out, store.Flow{
			Exporter: netip.MustParseAddrPort("127.0.0.3:40000"), Version: 5, RouterID: 2, Start: t - 1000, End: t,
			SrcAddr: netip.MustParseAddr("9.9.9.9"), DstAddr: netip.MustParseAddr("10.9.0.1"), SrcPort: 80, DstPort: 40000,
			Proto: 6, Bytes: 5000, Packets: 5, Direction: store.DirDownload,
		})
	}
	return out
}
