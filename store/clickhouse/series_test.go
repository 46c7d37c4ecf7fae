package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/flowdb"
)

// bothStores writes the same flows to the SQLite flow database and to
// ClickHouse, and returns both and the flows' end.
func bothStores(t *testing.T) (*flowdb.FlowDB, *Reader, []store.Flow, time.Time) {
	t.Helper()
	c, w := migratedWriter(t, "s", nil)
	ctx := context.Background()
	end := time.Now().Truncate(time.Minute)
	flows := testFlows(5000, end)
	for i := range flows {
		flows[i].RouterID = int64(1 + i%3) // sources: the exporters' ids differ between the stores
		// Counters of real flows: SQLite's rollups hold int64 sums.
		flows[i].Bytes %= 1 << 40
		flows[i].Packets %= 1 << 30
	}
	if err := w.Insert(ctx, flows); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sq, err := flowdb.New(ctx, db, store.DefaultConfig(), testutil.Logger(t), nil, nil)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close(); db.Close() })
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sq.Run(run) }()
	if err := sq.InsertFlows(ctx, flows); err != nil {
		t.Fatal(err)
	}
	cancel() // Run drains the queue before it returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return sq, NewReader(c, "s", nil), flows, end
}

// TestSeriesMatchesSQLite wants the same series from both stores, for
// every grouping and a set of filters, read from raw flows.
func TestSeriesMatchesSQLite(t *testing.T) {
	sq, ch, flows, end := bothStores(t)
	ctx := context.Background()
	pfx := netip.MustParsePrefix
	filters := []store.Filter{
		{},
		{Ports: []uint16{flows[1].SrcPort, flows[7].DstPort}},
		{Countries: []string{"US"}, Directions: []store.Direction{store.DirDownload, store.DirUpload}},
		{Hosts: []netip.Prefix{pfx("100.64.0.0/22")}, Protocols: []uint8{6}},
		{Sources: []int64{2}, Interfaces: []uint32{2}},
	}
	for _, g := range []store.Dimension{0, store.DimRouter, store.DimDirection, store.DimInInterface, store.DimOutInterface} {
		for fi, flt := range filters {
			for _, span := range []time.Duration{30 * time.Minute, 3 * time.Hour} {
				q := store.SeriesQuery{From: end.Add(-span), To: end.Add(-time.Minute), GroupBy: g, Filter: flt, Resolution: store.ResRaw}
				want, err := sq.TimeSeries(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ch.TimeSeries(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("group %s, filter %d, %s: clickhouse\n%+v\nsqlite\n%+v", g, fi, span, got, want)
				}
				if fi == 0 && g == 0 && sum(want.Lines[0].Flows) == 0 {
					t.Fatalf("%s: no flow in the series", span)
				}
			}
		}
	}
	// Bad queries are refused the same way.
	for _, q := range []store.SeriesQuery{
		{From: end, To: end.Add(-time.Hour)},
		{From: end.Add(-time.Hour), To: end, GroupBy: store.DimCountry},
		{From: end.Add(-time.Hour), To: end, Step: 90 * time.Second},
		{From: end.Add(-time.Hour), To: end, Resolution: "weekly"},
	} {
		_, want := sq.TimeSeries(ctx, q)
		_, got := ch.TimeSeries(ctx, q)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%+v: clickhouse %v, sqlite %v", q, got, want)
		}
	}
}

func sum(v []uint64) uint64 {
	var n uint64
	for _, x := range v {
		n += x
	}
	return n
}

// TestTopMatchesSQLite wants the same top-N lists from both stores, for
// every dimension and metric and a set of filters, read from raw flows.
func TestTopMatchesSQLite(t *testing.T) {
	sq, ch, flows, end := bothStores(t)
	ctx := context.Background()
	filters := []store.Filter{
		{},
		{Protocols: []uint8{17}},
		{Directions: []store.Direction{store.DirDownload}, Hosts: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/23")}},
		{Sources: []int64{3}, Ports: []uint16{flows[4].SrcPort, flows[9].DstPort, 443}},
	}
	dims := []store.Dimension{store.DimRouter, store.DimDirection, store.DimInInterface, store.DimOutInterface, store.DimSrcPort, store.DimDstPort}
	for d := store.DimLocalHost; d < store.DimLocalHost+store.NumRollupDims; d++ {
		dims = append(dims, d)
	}
	for _, d := range dims {
		for _, m := range []store.Metric{store.MetricBytes, store.MetricFlows} {
			for fi, flt := range filters {
				q := store.TopQuery{From: end.Add(-45 * time.Minute), To: end, Dimension: d, N: 7, Metric: m, Filter: flt, Resolution: store.ResRaw}
				want, err := sq.Top(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ch.Top(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s by %s, filter %d: clickhouse\n%+v\nsqlite\n%+v", d, m, fi, got, want)
				}
				if fi == 0 && len(want.Entries) == 0 {
					t.Fatalf("%s: no entry", d)
				}
			}
		}
	}
	for _, q := range []store.TopQuery{
		{From: end.Add(-time.Hour), To: end, Dimension: 99},
		{From: end.Add(-time.Hour), To: end, Dimension: store.DimCountry, N: 5000},
		{From: end.Add(-time.Hour), To: end, Dimension: store.DimCountry, Metric: "bits"},
		{From: end, To: end},
	} {
		_, want := sq.Top(ctx, q)
		_, got := ch.Top(ctx, q)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%+v: clickhouse %v, sqlite %v", q, got, want)
		}
	}
}

// TestSearchMatchesSQLite pages through searches in both stores, both
// orders, and wants the same flows in the same time order (flows of one
// millisecond may come in another order), and the same CSV export.
func TestSearchMatchesSQLite(t *testing.T) {
	sq, ch, flows, end := bothStores(t)
	ctx := context.Background()
	type searcher interface {
		SearchFlows(context.Context, store.SearchQuery) (*store.FlowPage, error)
	}
	all := func(s searcher, q store.SearchQuery) ([]store.Flow, int) {
		t.Helper()
		var out []store.Flow
		pages := 0
		for {
			p, err := s.SearchFlows(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			out = append(out, p.Flows...)
			if p.Next == "" {
				return out, pages
			}
			q.Cursor = p.Next
		}
	}
	byKey := func(fs []store.Flow) []string {
		var keys []string
		for _, f := range fs {
			keys = append(keys, fmt.Sprintf("%+v", f))
		}
		slices.Sort(keys)
		return keys
	}
	for fi, flt := range []store.Filter{
		{},
		{Protocols: []uint8{17}, Directions: []store.Direction{store.DirDownload, store.DirUpload}},
		{Hosts: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/24")}},
		{Subscribers: []string{`O'Brien \ Co`}},
	} {
		for _, asc := range []bool{false, true} {
			q := store.SearchQuery{From: end.Add(-50 * time.Minute), To: end.Add(-5 * time.Minute), Filter: flt, Limit: 97, Ascending: asc}
			want, wantPages := all(sq, q)
			got, gotPages := all(ch, q)
			if len(want) == 0 {
				t.Fatalf("filter %d: nothing found", fi)
			}
			if len(got) != len(want) || gotPages != wantPages {
				t.Fatalf("filter %d asc %v: clickhouse %d flows in %d pages, sqlite %d in %d", fi, asc, len(got), gotPages, len(want), wantPages)
			}
			for i := range want {
				if got[i].End != want[i].End {
					t.Fatalf("filter %d asc %v: flow %d ends at %d, sqlite's at %d", fi, asc, i, got[i].End, want[i].End)
				}
			}
			if !slices.Equal(byKey(got), byKey(want)) {
				t.Fatalf("filter %d asc %v: other flows than sqlite's", fi, asc)
			}
			var wantCSV, gotCSV strings.Builder
			if err := sq.ExportCSV(ctx, q, &wantCSV); err != nil {
				t.Fatal(err)
			}
			if err := ch.ExportCSV(ctx, q, &gotCSV); err != nil {
				t.Fatal(err)
			}
			wl, gl := strings.Split(wantCSV.String(), "\n"), strings.Split(gotCSV.String(), "\n")
			if wl[0] != gl[0] || len(wl) != len(want)+2 {
				t.Fatalf("filter %d: CSV header %q (sqlite %q), %d lines for %d flows", fi, gl[0], wl[0], len(wl), len(want))
			}
			slices.Sort(wl)
			slices.Sort(gl)
			if !slices.Equal(wl, gl) {
				t.Fatalf("filter %d asc %v: CSV differs from sqlite's", fi, asc)
			}
		}
	}
	_ = flows
	for _, q := range []store.SearchQuery{
		{From: end.Add(-time.Hour), To: end, Limit: 20000},
		{From: end.Add(-time.Hour), To: end, Cursor: "%%%"},
		{From: end.Add(-time.Hour), To: end, Filter: store.Filter{Hosts: []netip.Prefix{{}}}},
	} {
		_, want := sq.SearchFlows(ctx, q)
		_, got := ch.SearchFlows(ctx, q)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%+v: clickhouse %v, sqlite %v", q, got, want)
		}
	}
}

// TestSeriesFromTotals: series whose filter the totals answer come from
// the minute or hour totals, with the lines of the raw flows and of the
// SQLite store's rollups.
func TestSeriesFromTotals(t *testing.T) {
	sq, ch, _, end := bothStores(t)
	ctx := context.Background()
	for _, c := range []struct {
		group store.Dimension
		flt   store.Filter
		step  time.Duration
		res   store.Resolution
	}{
		{0, store.Filter{}, 0, store.ResMinute},
		{store.DimRouter, store.Filter{Sources: []int64{1, 3}}, 5 * time.Minute, store.ResMinute},
		{store.DimDirection, store.Filter{Directions: []store.Direction{store.DirUpload, store.DirRouterOut}}, 0, store.ResMinute},
		{store.DimInInterface, store.Filter{Interfaces: []uint32{0, 2}}, 0, store.ResMinute},
		{store.DimOutInterface, store.Filter{Sources: []int64{2}}, time.Hour, store.ResHour},
		{0, store.Filter{}, 2 * time.Hour, store.ResHour},
	} {
		q := store.SeriesQuery{From: end.Add(-90 * time.Minute), To: end, GroupBy: c.group, Filter: c.flt, Step: c.step}
		got, err := ch.TimeSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got.Resolution != c.res {
			t.Fatalf("%+v: resolution %s, want %s", c, got.Resolution, c.res)
		}
		want, err := sq.TimeSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.Resolution = store.ResRaw
		q.From, q.To = got.From, got.To // whole buckets, as the totals count them
		raw, err := ch.TimeSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Lines, want.Lines) || !reflect.DeepEqual(got.Times, want.Times) {
			t.Fatalf("%+v: clickhouse totals\n%+v\nsqlite (%s)\n%+v", c, got.Lines, want.Resolution, want.Lines)
		}
		// (A raw interface filter keeps a flow by either interface; the
		// totals keep the interface of the line: no comparison then.)
		if len(c.flt.Interfaces) == 0 && !reflect.DeepEqual(got.Lines, raw.Lines) {
			t.Fatalf("%+v: clickhouse totals\n%+v\nraw\n%+v", c, got.Lines, raw.Lines)
		}
	}
	// Older than the minute totals: an hourly step only.
	old := store.SeriesQuery{From: end.Add(-40 * 24 * time.Hour), To: end.Add(-39 * 24 * time.Hour), Step: time.Minute}
	if _, err := ch.TimeSeries(ctx, old); err == nil || !strings.Contains(err.Error(), "1-minute rollups are kept for 720h0m0s") {
		t.Fatalf("an old range by minute: %v", err)
	}
}

// TestUsageMatchesSQLite wants the same subscriber usage reports and
// usage series from both stores: every sort, a search, sources, pages
// (one past the end), by hour and by day.
func TestUsageMatchesSQLite(t *testing.T) {
	sq, ch, _, end := bothStores(t)
	ctx := context.Background()
	from := end.Add(-2 * time.Hour)
	for i, q := range []store.UsageQuery{
		{From: from, To: end},
		{From: from, To: end, Sort: store.UsageByDownload, Limit: 2},
		{From: from, To: end, Sort: store.UsageByUpload, Offset: 1},
		{From: from, To: end, Sort: store.UsageByName},
		{From: from, To: end, Search: "LUC"},
		{From: from, To: end, Search: `o'brien \`},
		{From: from, To: end, Sources: []int64{2, 3}, Sort: store.UsageByName},
		{From: from, To: end, Offset: 50},
		{From: end.Add(-3 * 24 * time.Hour), To: end.Add(time.Hour)},
		{From: end.Add(-90 * 24 * time.Hour), To: end.Add(time.Hour)},
	} {
		want, err := sq.SubscriberUsage(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ch.SubscriberUsage(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("query %d %+v: clickhouse\n%+v\nsqlite\n%+v", i, q, got, want)
		}
		if i == 0 && (want.Count < 4 || len(want.Rows) == 0) {
			t.Fatalf("usage of %d subscribers: the test data has too few", want.Count)
		}
	}
	for _, q := range []store.UsageSeriesQuery{
		{From: from, To: end, Subscriber: "Łukasz"},
		{From: from, To: end, Subscriber: "customer-0042", Sources: []int64{1}, Step: 24 * time.Hour},
		{From: end.Add(-80 * 24 * time.Hour), To: end, Subscriber: "Ana Lucía"},
	} {
		want, err := sq.SubscriberUsageSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ch.SubscriberUsageSeries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v: clickhouse\n%+v\nsqlite\n%+v", q, got, want)
		}
	}
	for _, q := range []store.UsageQuery{{From: end, To: end}, {From: from, To: end, Sort: "random"}, {From: from, To: end, Limit: -1}} {
		_, want := sq.SubscriberUsage(ctx, q)
		_, got := ch.SubscriberUsage(ctx, q)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%+v: clickhouse %v, sqlite %v", q, got, want)
		}
	}
}

// TestDomainsMatchSQLite wants the same domain reports of a subscriber
// from both stores.
func TestDomainsMatchSQLite(t *testing.T) {
	sq, ch, _, end := bothStores(t)
	ctx := context.Background()
	for _, q := range []store.SubscriberDomainsQuery{
		{From: end.Add(-time.Hour), To: end, Subscriber: "Łukasz"},
		{From: end.Add(-48 * time.Hour), To: end, Subscriber: `O'Brien \ Co`, N: 1},
		{From: end.Add(-time.Hour), To: end, Subscriber: "customer-0042", Sources: []int64{2}},
		{From: end.Add(-time.Hour), To: end, Subscriber: "nobody"},
	} {
		want, err := sq.SubscriberDomains(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ch.SubscriberDomains(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v: clickhouse\n%+v\nsqlite\n%+v", q, got, want)
		}
		if q.Subscriber == "Łukasz" && len(want.Rows) < 2 {
			t.Fatalf("%s: %d domains: the test data has too few", q.Subscriber, len(want.Rows))
		}
	}
	for _, q := range []store.SubscriberDomainsQuery{{From: end, To: end, Subscriber: "x"}, {From: end.Add(-time.Hour), To: end}, {From: end.Add(-time.Hour), To: end, Subscriber: "x", N: 500}} {
		_, want := sq.SubscriberDomains(ctx, q)
		_, got := ch.SubscriberDomains(ctx, q)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%+v: clickhouse %v, sqlite %v", q, got, want)
		}
	}
}
