package clickhouse

import (
	"context"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/storetest"
)

// TestSeriesMatchesSQLite writes the same flows to the SQLite flow
// database and to ClickHouse (chDB) and wants the same series from both,
// for every grouping and a set of filters, read from raw flows.
func TestSeriesMatchesSQLite(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, c); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Truncate(time.Minute)
	flows := testFlows(5000, end)
	for i := range flows {
		flows[i].RouterID = int64(1 + i%3) // sources: the exporters' ids differ between the stores
	}
	w, err := NewFlowWriter(c, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Insert(ctx, flows); err != nil {
		t.Fatal(err)
	}
	sq, err := storetest.Open(ctx, t.TempDir(), store.DefaultConfig(), testutil.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
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
	ch := NewReader(c, "s", nil)
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
