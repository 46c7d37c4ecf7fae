package clickhouse

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestRatesMatchSQLite wants the same 5-minute rate summaries from both
// stores: routers (with a source asked for that has no traffic),
// interfaces, subscribers with their applications, the fleet.
func TestRatesMatchSQLite(t *testing.T) {
	sq, ch, _, end := bothStores(t)
	ctx := context.Background()
	to := end.Truncate(5 * time.Minute) // a finished period on both clocks
	from := to.Add(-3 * time.Hour)
	for i, q := range []store.RateQuery{
		{Kind: store.ReportByRouter, From: from, To: to, Percentile: 95},
		{Kind: store.ReportByRouter, From: from, To: to, Percentile: 50, Sources: []int64{2, 7}},
		{Kind: store.ReportByInterface, From: from, To: to, Percentile: 95},
		{Kind: store.ReportBySubscriber, From: from, To: to, Percentile: 90, Apps: 3},
		{Kind: store.ReportBySubscriber, From: from, To: to, Percentile: 100, Sources: []int64{1}},
		{Kind: store.ReportByFleet, From: from, To: to, Percentile: 95},
		{Kind: store.ReportByFleet, From: from, To: to, Percentile: 95, Sources: []int64{3}},
		{Kind: store.ReportByRouter, From: to.Add(-48 * time.Hour), To: to.Add(-24 * time.Hour), Percentile: 95},
	} {
		want, err := sq.RateSummaries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ch.RateSummaries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("query %d %+v: clickhouse\n%+v\nsqlite\n%+v", i, q, got, want)
		}
		if i == 3 && (len(want) < 4 || len(want[0].Apps) == 0 || want[0].Samples == 0) {
			t.Fatalf("rates of %d subscribers: the test data has too few", len(want))
		}
	}
	for _, q := range []store.RateQuery{
		{Kind: "tower", From: from, To: to, Percentile: 95},
		{Kind: store.ReportByRouter, From: from.Add(time.Minute), To: to, Percentile: 95},
		{Kind: store.ReportByRouter, From: from, To: to, Percentile: 0},
		{Kind: store.ReportBySubscriber, From: from, To: to, Percentile: 95, Apps: 11},
	} {
		_, err := ch.RateSummaries(ctx, q)
		var qe *store.QueryError
		if !errors.As(err, &qe) {
			t.Fatalf("%+v: %v, want a query error", q, err)
		}
	}
}

// TestNATMatchesSQLite wants the same abuse lookups from both stores: an
// address over a window, a port (whose mapping is followed past the
// window), a protocol, and a time with no mapping.
func TestNATMatchesSQLite(t *testing.T) {
	sq, ch, flows, _ := bothStores(t)
	ctx := context.Background()
	pub := netip.MustParseAddr("203.0.113.9")
	var qs []store.NATQuery
	for i := 0; i < len(flows) && len(qs) < 12; i += 7 * 37 {
		f := &flows[i]
		at := time.UnixMilli(f.End).Add(time.Minute)
		qs = append(qs,
			store.NATQuery{Public: pub, Port: f.PostNATSrcPort, At: at},
			store.NATQuery{Public: pub, Port: f.PostNATSrcPort, Proto: f.Proto, At: at, Window: time.Second})
	}
	at := time.UnixMilli(flows[0].End)
	qs = append(qs,
		store.NATQuery{Public: pub, At: at, Window: 10 * time.Minute},
		store.NATQuery{Public: pub, At: at, Window: 10 * time.Minute, Limit: 5},
		store.NATQuery{Public: netip.MustParseAddr("10.0.0.5"), At: at, Window: time.Hour},
		store.NATQuery{Public: pub, At: at.Add(-48 * time.Hour)})
	matched := 0
	for i, q := range qs {
		want, err := sq.LookupNAT(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ch.LookupNAT(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			for j := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[j], want[j]) {
					t.Fatalf("lookup %d %+v: %d and %d matches; the %dth: clickhouse\n%+v\nsqlite\n%+v", i, q, len(got), len(want), j, got[j], want[j])
				}
			}
			t.Fatalf("lookup %d %+v: clickhouse %d matches, sqlite %d", i, q, len(got), len(want))
		}
		if len(want) > 0 {
			matched++
		}
	}
	if matched < 8 {
		t.Fatalf("%d lookups of %d matched: the test data has too few mappings", matched, len(qs))
	}
	want, err := sq.NATKeptSince(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ch.NATKeptSince(ctx)
	if err != nil || !got.Equal(want) || got.IsZero() {
		t.Fatalf("kept since %v, %v; sqlite %v", got, err, want)
	}
	if _, err := ch.LookupNAT(ctx, store.NATQuery{Public: netip.IPv4Unspecified(), At: at}); err == nil {
		t.Fatal("a lookup of 0.0.0.0: no error")
	}
}
