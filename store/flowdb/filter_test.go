package flowdb

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowbox/flowbox/store"
)

func TestFilterMatch(t *testing.T) {
	sub, wan, srv := netip.MustParseAddr("100.64.0.9"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("142.250.1.1")
	down := store.Flow{Direction: store.DirDownload, SrcAddr: srv, DstAddr: wan, PostNATDstAddr: sub, SrcPort: 443, DstPort: 40000,
		Proto: 6, SrcAS: 15169, Application: "youtube", SrcCountry: "US", DstCountry: "private", InIf: 1, OutIf: 7}
	up := store.Flow{Direction: store.DirUpload, SrcAddr: sub, DstAddr: srv, SrcPort: 40000, DstPort: 443, Proto: 6, DstAS: 15169,
		SrcCountry: "private", DstCountry: "US", InIf: 7, OutIf: 1}
	p := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	cases := []struct {
		name     string
		flt      store.Filter
		down, up bool
	}{
		{"empty", store.Filter{}, true, true},
		{"host local side (post-NAT)", store.Filter{Hosts: p("100.64.0.9/32")}, true, true},
		{"host public address is neither side", store.Filter{Hosts: p("203.0.113.2/32")}, false, false},
		{"host remote", store.Filter{Hosts: p("142.250.0.0/16")}, true, true},
		{"local hosts", store.Filter{LocalHosts: p("100.64.0.0/24")}, true, true},
		{"local hosts is not remote", store.Filter{LocalHosts: p("142.250.1.1/32")}, false, false},
		{"remote hosts", store.Filter{RemoteHosts: p("142.250.1.1/32")}, true, true},
		{"remote hosts is not local", store.Filter{RemoteHosts: p("100.64.0.9/32")}, false, false},
		{"conversation", store.Filter{LocalHosts: p("100.64.0.9/32"), RemoteHosts: p("142.250.1.1/32")}, true, true},
		{"other conversation", store.Filter{LocalHosts: p("100.64.0.9/32"), RemoteHosts: p("142.250.1.2/32")}, false, false},
		{"application", store.Filter{Applications: []string{"youtube"}}, true, false},
		{"no application", store.Filter{Applications: []string{""}}, false, true},
		{"remote country", store.Filter{Countries: []string{"US"}}, true, true},
		{"local country is not remote", store.Filter{Countries: []string{"private"}}, false, false},
		{"AS either side", store.Filter{AS: []uint32{15169}}, true, true},
		{"port and protocol", store.Filter{Ports: []uint16{443}, Protocols: []uint8{6}}, true, true},
		{"protocol", store.Filter{Protocols: []uint8{17}}, false, false},
		{"direction", store.Filter{Directions: []store.Direction{store.DirUpload}}, false, true},
		{"interface", store.Filter{Interfaces: []uint32{7}}, true, true},
		{"source", store.Filter{Sources: []int64{2}}, false, false},
		{"fields are ANDed", store.Filter{Applications: []string{"youtube"}, Directions: []store.Direction{store.DirUpload}}, false, false},
	}
	for _, c := range cases {
		for _, x := range []struct {
			f    store.Flow
			want bool
		}{{down, c.down}, {up, c.up}} {
			l, r := x.f.LocalRemote()
			if got := c.flt.Match(&x.f, 1, l, r); got != x.want {
				t.Errorf("%s on %s: %v, want %v", c.name, x.f.Direction, got, x.want)
			}
		}
	}
}

func TestFilterBeyondRawWindow(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	ctx := context.Background()
	from, to := testNow.Add(-72*time.Hour), testNow
	ok := store.Filter{Sources: []int64{1}, Directions: []store.Direction{store.DirDownload}}
	if _, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimLocalHost, Filter: ok}); err != nil {
		t.Fatalf("rollup filter beyond the raw window: %v", err)
	}
	p := []netip.Prefix{netip.MustParsePrefix("100.64.0.9/32")}
	for name, q := range map[string]func() error{
		"top local-hosts": func() error {
			_, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimRemoteAS, Filter: store.Filter{LocalHosts: p}})
			return err
		},
		"series applications, countries": func() error {
			_, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, Filter: store.Filter{Applications: []string{"x"}, Countries: []string{"FR"}}})
			return err
		},
		"top src-port": func() error {
			_, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimSrcPort})
			return err
		},
	} {
		err := q()
		var qe *store.QueryError
		if !errors.As(err, &qe) || !errors.Is(err, store.ErrBadQuery) || qe.Field != "filter" {
			t.Fatalf("%s: %v, want a *QueryError on filter", name, err)
		}
		msg := err.Error()
		for _, want := range []string{strings.SplitN(name, " ", 2)[1], "kept for 48h0m0s", "since 2025-03-08T10:30:00Z", "top 100", "within the last 48h0m0s"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q does not say %q", name, msg, want)
			}
		}
	}
	// Within the raw window the same filters are answered.
	if _, err := s.Top(ctx, store.TopQuery{From: testNow.Add(-time.Hour), To: to, Dimension: store.DimRemoteAS, Filter: store.Filter{LocalHosts: p}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SearchFlows(ctx, store.SearchQuery{From: from, To: testNow.Add(-50 * time.Hour)}); err == nil ||
		!strings.Contains(err.Error(), "within the last 48h0m0s") {
		t.Fatalf("search before the raw window: %v", err)
	}
}

// TestRollupsMatchRaw checks, for every dimension, that the rollups (keys
// made by the aggregator) and raw flows (keys made by dimKeyOf) give the
// same top lists when no key was folded into "other".
func TestRollupsMatchRaw(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	flows := indexFlows(4, 3000, testNow, 20*time.Minute)
	writeDirect(t, s, flows)
	if err := s.flushRollups(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	from, to := testNow.Add(-30*time.Minute), testNow.Add(time.Minute)
	for _, d := range store.Dimensions() {
		if d >= store.DimSrcPort {
			continue
		}
		var res [2]*store.TopResult
		for i, r := range []store.Resolution{store.ResAuto, store.ResRaw} {
			top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 20, Resolution: r})
			if err != nil {
				t.Fatalf("%s %s: %v", d, r, err)
			}
			res[i] = top
		}
		if res[0].Resolution != store.ResMinute || res[1].Resolution != store.ResRaw {
			t.Fatalf("%s: resolutions %s %s", d, res[0].Resolution, res[1].Resolution)
		}
		if len(res[0].Entries) == 0 || len(res[0].Entries) != len(res[1].Entries) || res[0].Total != res[1].Total {
			t.Fatalf("%s: %d entries total %+v from rollups, %d total %+v from raw", d, len(res[0].Entries), res[0].Total,
				len(res[1].Entries), res[1].Total)
		}
		for i := range res[0].Entries {
			if res[0].Entries[i] != res[1].Entries[i] {
				t.Fatalf("%s entry %d: rollups %+v, raw %+v", d, i, res[0].Entries[i], res[1].Entries[i])
			}
		}
	}
}

// TestAggregatorPrune checks that folding keys into "other" keeps every
// total and the largest keys.
func TestAggregatorPrune(t *testing.T) {
	a := newAggregator(5, newUnregisteredMetrics())
	a.maxKeys = 40
	flows := indexFlows(5, 5000, testNow, 3*time.Minute)
	for i := range flows {
		flows[i].RouterID = 1
	}
	a.add(flows, nil)
	if testutil.ToFloat64(a.metrics.rollupPruned) == 0 {
		t.Fatal("nothing pruned")
	}
	if n := a.remote.n; n > a.maxKeys+len(a.buckets) {
		t.Fatalf("%d remote host keys, bound %d + %d buckets", n, a.maxKeys, len(a.buckets))
	}
	want := map[totKey]counters{}
	for i := range flows {
		f := &flows[i]
		k := totKey{f.End / 60000 * 60, 1, f.Direction}
		c := want[k]
		c.add(counters{f.Scale(f.Bytes), f.Scale(f.Packets), 1})
		want[k] = c
	}
	for _, d := range []store.Dimension{store.DimLocalHost, store.DimRemoteHost, store.DimConversation, store.DimSubscriber} {
		got := map[totKey]counters{}
		for _, r := range a.topRows(d) {
			c := got[a.buckets[r.bucket]]
			c.add(r.c)
			got[a.buckets[r.bucket]] = c
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d buckets, want %d", d, len(got), len(want))
		}
		for k, c := range want {
			if got[k] != c {
				t.Fatalf("%s: bucket %+v = %+v, want %+v", d, k, got[k], c)
			}
		}
	}
}

// TestDayRollups checks that tops over whole days are answered from the
// day rollups, rebuilt once a day and its hours are over, and agree with
// raw flows.
func TestDayRollups(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.RawRetention = 4 * 24 * time.Hour
	cfg.MinuteRetention = 14 * 24 * time.Hour
	s, err := Open(context.Background(), t.TempDir(), cfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(s)
	end := time.Date(2025, 3, 10, 6, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return end }
	flows := indexFlows(6, 3000, end, 54*time.Hour)
	writeDirect(t, s, flows)
	ctx := context.Background()
	s.maintain(ctx)
	var days int
	s.r.QueryRow("SELECT count(DISTINCT t) FROM top_d").Scan(&days)
	if days < 2 {
		t.Fatalf("%d days rolled up, want March 8 and 9 (and 7, of late flows)", days)
	}
	from, to := time.Date(2025, 3, 8, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 10, 0, 30, 0, 0, time.UTC)
	for _, d := range []store.Dimension{store.DimCountry, store.DimApplication, store.DimLocalHost} {
		day, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 3})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 3, Resolution: store.ResRaw})
		if err != nil {
			t.Fatal(err)
		}
		if day.Resolution != store.ResDay || day.Total != raw.Total || len(day.Entries) != 3 {
			t.Fatalf("%s: %s total %+v, raw total %+v", d, day.Resolution, day.Total, raw.Total)
		}
		if d != store.DimLocalHost { // few keys: nothing folded into "other"
			for i := range day.Entries {
				if day.Entries[i] != raw.Entries[i] {
					t.Fatalf("%s entry %d: %+v from day rollups, %+v from raw", d, i, day.Entries[i], raw.Entries[i])
				}
			}
		}
	}
	// A late flow makes its day pending: hours answer it until rebuilt.
	late := flows[0]
	late.End = from.Add(time.Hour).UnixMilli()
	late.Start = late.End - 1000
	late.Bytes = 1 << 40
	writeDirect(t, s, []store.Flow{late})
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimCountry})
	if err != nil || top.Resolution != store.ResDay || top.Total.Bytes < 1<<40 {
		t.Fatalf("with a pending hour: %v %s %d", err, top.Resolution, top.Total.Bytes)
	}
	s.maintain(ctx)
	top2, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimCountry})
	if err != nil || top2.Resolution != store.ResDay || top2.Total != top.Total || top2.Entries[0] != top.Entries[0] {
		t.Fatalf("after the rebuild: %v %s %+v, want %+v", err, top2.Resolution, top2.Total, top.Total)
	}
}
