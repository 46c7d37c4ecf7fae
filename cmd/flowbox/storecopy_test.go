package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse/chtest"
	storagepkg "github.com/flowbox/flowbox/store/storage"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestStoreCopyToClickHouse fills a SQLite store with translated flows of
// the last half hour and of 2.5 hours ago, copies it with `flowbox store
// copy --to clickhouse` under a 2-hour raw retention (raw flows copied
// from the first whole hour of it, which is always before the recent
// ones and after the old ones), and reads both: the raw flows of the last
// hour (and the NAT mappings ClickHouse made of them), and the older NAT
// mappings copied as they are, answer the same searches and abuse
// lookups; a second copy is refused.
func TestStoreCopyToClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ch := chtest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	st, err := storetest.Open(ctx, dataDir, store.DefaultConfig(), testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Router{Name: "cgnat", Address: "127.0.0.2:8728"}
	if err := st.AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var flows []store.Flow
	for i := range 400 {
		age := 30 * time.Minute
		if i%2 == 1 {
			age = 150 * time.Minute
		}
		end := now.Add(-age + time.Duration(i)*time.Second).UnixMilli()
		flows = append(flows, store.Flow{Exporter: netip.MustParseAddrPort("127.0.0.2:2055"), Version: 9, RouterID: r.ID,
			Start: end - 2000, End: end, Proto: 6, Direction: store.DirUpload,
			SrcAddr: netip.AddrFrom4([4]byte{100, 64, 0, byte(i)}), SrcPort: uint16(40000 + i),
			DstAddr: netip.MustParseAddr("198.51.100.7"), DstPort: 443,
			PostNATSrcAddr: netip.MustParseAddr("203.0.113.1"), PostNATSrcPort: uint16(10000 + i),
			Bytes: uint64(1000 + i), Packets: 3, Subscriber: fmt.Sprintf("cust-%d", i%7)})
	}
	runStoreOnce(t, st, flows)
	st.Close()

	cfgPath := copyConfig(t, ch, dir, "  raw-retention: 2h\n", "    database: copied\n")
	out, err := runWithEnv(nil, "store", "copy", "--to", "clickhouse", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "copied 200 raw flows since") || !strings.Contains(out, ", 200 older NAT mappings") {
		t.Fatalf("store copy: %v\n%s", err, out)
	}

	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	sqCfg, chCfg := cfg.Store, cfg.Store
	chCfg.Backend = storagepkg.BackendClickHouse
	sq, err := storagepkg.Open(ctx, dataDir, sqCfg, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	cs, err := storagepkg.Open(ctx, dataDir, chCfg, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	q := store.SearchQuery{From: now.Add(-time.Hour), To: now.Add(time.Minute), Limit: 1000, Filter: store.Filter{Hosts: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/24")}}}
	want, err := sq.SearchFlows(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs.SearchFlows(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Flows) != 200 || len(got.Flows) != 200 {
		t.Fatalf("the last hour's flows: %d in sqlite, %d in clickhouse; want 200", len(want.Flows), len(got.Flows))
	}
	for i := range want.Flows {
		if w, g := want.Flows[i], got.Flows[i]; w.End != g.End || w.SrcAddr != g.SrcAddr || w.Bytes != g.Bytes || w.Subscriber != g.Subscriber || g.RouterID != r.ID {
			t.Fatalf("flow %d: clickhouse %+v, sqlite %+v", i, g, w)
		}
	}
	for _, i := range []int{0, 1, 198, 399} { // recent and old mappings
		f := flows[i]
		nq := store.NATQuery{Public: f.PostNATSrcAddr, Port: f.PostNATSrcPort, At: time.UnixMilli(f.End)}
		want, err := sq.LookupNAT(ctx, nq)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cs.LookupNAT(ctx, nq)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 1 || !reflect.DeepEqual(got, want) {
			t.Errorf("mapping of flow %d: clickhouse %+v, sqlite %+v", i, got, want)
		}
	}
	if out, err := runWithEnv(nil, "store", "copy", "--to", "clickhouse", "--config", cfgPath); err == nil || !strings.Contains(out+err.Error(), "already holds 200 flows") {
		t.Fatalf("a second copy: %v\n%s", err, out)
	}
}

// TestStoreCopyRollupsToClickHouse fills a SQLite store with 4.5 days of
// flows of two routers (subscribers, domains, applications, interfaces,
// sampled flows; the older ones with 25 rare domains and 12 rare
// applications, which SQLite folds into the rest of their day), lets it
// build its hours and days, copies it under a 30-hour raw retention, and
// asks both stores the console's questions over whole days before the
// raw flows copied, over hours before them, and over periods across the
// boundary: the time series (by router, direction and interface), top-N
// lists, subscriber usage and domains, and rate reports must be the
// same, every counter (a rollup row copied twice or missing changes a
// total).
func TestStoreCopyRollupsToClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	ch := chtest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	scfg := store.DefaultConfig()
	scfg.RawRetention = 8 * 24 * time.Hour // old flows accepted
	st, err := storetest.Open(ctx, dataDir, scfg, testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var routers []*store.Router
	for i := range 2 {
		r := &store.Router{Name: fmt.Sprintf("tower-%d", i), Address: fmt.Sprintf("127.0.0.%d:8728", i+2)}
		if err := st.AddRouter(ctx, r); err != nil {
			t.Fatal(err)
		}
		routers = append(routers, r)
	}
	now := time.Now()
	first := now.Add(-108 * time.Hour)
	rareBefore := now.Add(-32 * time.Hour) // before any start of the raw flows copied
	var flows []store.Flow
	const n = 3000
	step := now.Add(-2*time.Minute).Sub(first) / n
	for i := range n {
		at := first.Add(time.Duration(i/4*4) * step) // 4 flows a minute: fewer minutes to roll up
		r := routers[i%2]
		f := store.Flow{Exporter: netip.MustParseAddrPort(fmt.Sprintf("127.0.0.%d:2055", i%2+2)), Version: 9, RouterID: r.ID,
			Start: at.UnixMilli() - 1500, End: at.UnixMilli(), Proto: 6, Direction: store.DirDownload,
			Bytes: uint64(1000 + i*7919%5000), Packets: uint64(2 + i%5), InIf: uint32(1 + i%3), OutIf: uint32(10 + i%2),
			Subscriber: fmt.Sprintf("cust-%d", i%4), RemoteDomain: fmt.Sprintf("pop-%d.example", i%5)}
		local := netip.AddrFrom4([4]byte{100, 64, 0, byte(1 + i%7)})
		remote := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%11)})
		localPort, remotePort := uint16(40000+i%1000), uint16(443)
		switch i % 6 {
		case 0:
			f.Application = "https"
		case 1:
			f.Proto, remotePort, f.Application = 17, 53, "dns"
		case 2:
			remotePort = 8080 // no application: protocol and port
		}
		if i%9 == 0 {
			f.Subscriber = ""
		}
		if i%5 == 0 {
			f.SamplingRate = 4
		}
		if at.Before(rareBefore) && i%2 == 0 {
			f.RemoteDomain, f.Application, f.Bytes = fmt.Sprintf("rare-%d.example", i%25), fmt.Sprintf("app-%d", i%12), uint64(100+i%50)
		}
		country, as := []string{"FR", "DE", "BR"}[i%3], uint32(64500+i%4)
		if i%3 == 2 {
			f.Direction = store.DirUpload
			f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort, f.DstCountry, f.DstAS = local, localPort, remote, remotePort, country, as
		} else {
			f.SrcAddr, f.SrcPort, f.DstAddr, f.DstPort, f.SrcCountry, f.SrcAS = remote, remotePort, local, localPort, country, as
		}
		flows = append(flows, f)
	}
	// The first run writes the flows and their minutes; the second's
	// first maintenance (the store opened again) builds the hours and days
	// that are over (tops, folded domains and applications, packed rates).
	for round := range 2 {
		if round == 1 {
			// Minutes kept 2 days and hourly usage 3, as the copy's
			// configuration says: the older ones are deleted, their hours
			// and days stay.
			st.Close()
			scfg.RawRetention, scfg.MinuteRetention, scfg.UsageHourRetention = 30*time.Hour, 48*time.Hour, 72*time.Hour
			if st, err = storetest.Open(ctx, dataDir, scfg, testutil.Logger(t), nil); err != nil {
				t.Fatal(err)
			}
		}
		if round == 0 {
			runStoreOnce(t, st, flows)
		} else {
			runStoreOnce(t, st, nil)
		}
	}
	st.Close()

	cfgPath := copyConfig(t, ch, dir, "  raw-retention: 30h\n  minute-retention: 48h\n  usage-hour-retention: 72h\n",
		"    database: rollups\n    minute-ttl: 48h\n    usage-hour-ttl: 72h\n")
	began := time.Now()
	out, err := runWithEnv(nil, "store", "copy", "--to", "clickhouse", "--config", cfgPath)
	if err != nil {
		t.Fatalf("store copy: %v\n%s", err, out)
	}
	t.Logf("copied in %s", time.Since(began))
	for _, table := range []string{"tot_h", "tot_m", "if_h", "if_m", "usage_h", "usage_d", "rate5", "top_h", "top_m", "subdom_d", "subapp_d"} {
		if !strings.Contains(out, " "+table+" rows\n") || strings.Contains(out, "copied 0 "+table+" rows") {
			t.Errorf("store copy: no %s rows copied:\n%s", table, out)
		}
	}
	if !strings.Contains(out, "not copied: the raw flows of ") {
		t.Errorf("store copy: no word of the raw flows before the first whole hour:\n%s", out)
	}
	t.Log(out)

	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	chCfg := cfg.Store
	chCfg.Backend = storagepkg.BackendClickHouse
	sq, err := storagepkg.Open(ctx, dataDir, cfg.Store, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	cs, err := storagepkg.Open(ctx, dataDir, chCfg, storagepkg.ReadOnly, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	// start is where the copy's raw flows begin, day0 its UTC day.
	start := now.Add(-30 * time.Hour).Truncate(time.Hour).Add(time.Hour)
	day0 := start.UTC().Truncate(24 * time.Hour)
	toMinute := now.Truncate(time.Minute)
	to5 := now.Truncate(5 * time.Minute).Add(-10 * time.Minute) // before the last sample both count
	periods := []struct {
		name     string
		from, to time.Time
	}{
		{"two days before the raw flows", day0.Add(-48 * time.Hour), day0},
		{"the hours before the raw flows", start.Add(-5 * time.Hour), start},
		{"across the first raw hour", start.Add(-2 * time.Hour), start.Add(3 * time.Hour)},
		{"the boundary day on", day0.Add(-24 * time.Hour), toMinute},
	}
	same := func(what string, got, want any) {
		t.Helper()
		if diff := cmp.Diff(got, want, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("%s: clickhouse differs from sqlite (-got +want):\n%s", what, diff)
		}
	}
	for _, p := range periods {
		for _, g := range []store.Dimension{store.DimRouter, store.DimDirection, store.DimInInterface, store.DimOutInterface} {
			q := store.SeriesQuery{From: p.from, To: p.to, GroupBy: g}
			want, err := sq.TimeSeries(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cs.TimeSeries(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Lines) == 0 {
				t.Fatalf("%s: series by %s: sqlite has no line", p.name, g)
			}
			got.Resolution = want.Resolution // the stores name their grains differently
			same(fmt.Sprintf("%s: series by %s", p.name, g), got, want)
		}
		for _, d := range []store.Dimension{store.DimLocalHost, store.DimRemoteHost, store.DimConversation, store.DimRemoteAS, store.DimApplication,
			store.DimCountry, store.DimSubscriber, store.DimProtocol, store.DimDomain, store.DimRouter, store.DimDirection, store.DimInInterface, store.DimOutInterface} {
			q := store.TopQuery{From: p.from, To: p.to, Dimension: d, N: 5}
			want, err := sq.Top(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cs.Top(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Entries) == 0 {
				t.Fatalf("%s: top %s: sqlite has no entry", p.name, d)
			}
			got.Resolution = want.Resolution
			same(fmt.Sprintf("%s: top %s", p.name, d), got, want)
		}
		uq := store.UsageQuery{From: p.from, To: p.to}
		wantU, err := sq.SubscriberUsage(ctx, uq)
		if err != nil {
			t.Fatal(err)
		}
		gotU, err := cs.SubscriberUsage(ctx, uq)
		if err != nil {
			t.Fatal(err)
		}
		if len(wantU.Rows) == 0 {
			t.Fatalf("%s: sqlite has no usage", p.name)
		}
		same(p.name+": usage", gotU, wantU)
		for s := range 4 {
			dq := store.SubscriberDomainsQuery{From: p.from, To: p.to, Subscriber: fmt.Sprintf("cust-%d", s), N: 8}
			want, err := sq.SubscriberDomains(ctx, dq)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cs.SubscriberDomains(ctx, dq)
			if err != nil {
				t.Fatal(err)
			}
			same(fmt.Sprintf("%s: domains of %s", p.name, dq.Subscriber), got, want)
		}
		rto := p.to
		if rto.After(to5) {
			rto = to5
		}
		for _, kind := range []string{store.ReportBySubscriber, store.ReportByRouter, store.ReportByInterface, store.ReportByFleet} {
			rq := store.RateQuery{Kind: kind, From: p.from.Truncate(5 * time.Minute), To: rto, Percentile: 95}
			if kind == store.ReportBySubscriber {
				rq.Apps = 5
			}
			want, err := sq.RateSummaries(ctx, rq)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cs.RateSummaries(ctx, rq)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatalf("%s: sqlite has no %s rates", p.name, kind)
			}
			same(fmt.Sprintf("%s: rates by %s", p.name, kind), got, want)
		}
	}
	// The rare domains and applications folded into SQLite's rest are
	// counted in Other, never listed.
	dq := store.SubscriberDomainsQuery{From: day0.Add(-72 * time.Hour), To: day0, Subscriber: "cust-0", N: 100}
	got, err := cs.SubscriberDomains(ctx, dq)
	if err != nil {
		t.Fatal(err)
	}
	if got.Other.Flows == 0 || len(got.Rows) > 2*subDomainsKept {
		t.Errorf("domains of cust-0 over 3 days on clickhouse: %d rows, other %+v; want at most %d and the rest in other", len(got.Rows), got.Other, 2*subDomainsKept)
	}
}

// subDomainsKept is how many domains of a subscriber's day SQLite keeps
// (flowdb's subDomainsPerDay).
const subDomainsKept = 20

// runStoreOnce runs st's writer: it writes flows (if any) and stops.
// Run's first maintenance (hours and days over, retention) is done before
// it looks at its context, so a run with no flow does it.
func runStoreOnce(t *testing.T, st *storetest.Store, flows []store.Flow) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	if len(flows) > 0 {
		if err := st.InsertFlows(context.Background(), flows); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// copyConfig writes, in dir, the configuration of a store copy from the
// data directory dir/data into ch: the store section's keys in store, the
// clickhouse section's beyond its address and credentials in clickhouse
// (each line indented, ending with a newline). It returns its path.
func copyConfig(t *testing.T, ch *chtest.Server, dir, store, clickhouse string) string {
	t.Helper()
	pw := filepath.Join(dir, "ch.pw")
	if err := os.WriteFile(pw, []byte(ch.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "flowbox.yaml")
	text := fmt.Sprintf("data-dir: %s\nstore:\n%s  clickhouse:\n    addresses: [%q]\n    user: %s\n    password-file: %s\n%s",
		filepath.Join(dir, "data"), store, ch.Addr, ch.User, pw, clickhouse)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
