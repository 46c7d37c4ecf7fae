package clickhouse

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
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

// readerWith returns a reader of r's site on a client of its server
// whose configuration change alters, with the clock now.
func readerWith(t *testing.T, r *Reader, now time.Time, change func(*Config)) *Reader {
	t.Helper()
	cfg := r.c.cfg
	change(&cfg)
	c, err := NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewReader(c, r.site, func() time.Time { return now })
}

// TestTopRollupsMatchRaw wants the same top-N lists from the hours rolled
// up (with the raw flows of the rest of the range) as from the raw flows
// alone when the rollups keep every key, for every dimension they keep,
// with and without filters on sources, directions and interfaces; past
// the raw TTL, whole hours from the rollups, or a refusal for what needs
// raw flows.
func TestTopRollupsMatchRaw(t *testing.T) {
	sq, ch, _, end := bothStores(t)
	ctx := context.Background()
	later := end.Add(2 * time.Hour)
	all := readerWith(t, ch, later, func(c *Config) { c.TopK = 10000 })
	// Before the rollup, a long range reads raw flows.
	q := store.TopQuery{From: end.Add(-6 * time.Hour), To: end, Dimension: store.DimCountry, N: 5, Metric: store.MetricBytes}
	if res, err := all.Top(ctx, q); err != nil || res.Resolution != store.ResRaw || res.Total.Flows == 0 {
		t.Fatalf("before the rollup: %+v, %v", res, err)
	}
	n, err := all.RollupTop(ctx, later)
	if err != nil || n < 2 || n > 3 {
		t.Fatalf("rolled up %d hours, %v; want the 2 or 3 hours of the flows and the one after", n, err)
	}
	if n, err := all.RollupTop(ctx, later); err != nil || n != 0 {
		t.Fatalf("a second round rolled up %d hours, %v", n, err)
	}
	from := end.Add(-6*time.Hour + 17*time.Minute)
	dims := []store.Dimension{store.DimRouter, store.DimDirection, store.DimInInterface, store.DimOutInterface}
	for d := store.DimLocalHost; d < store.DimLocalHost+store.NumRollupDims; d++ {
		dims = append(dims, d)
	}
	for _, d := range dims {
		filters := []store.Filter{{}, {Sources: []int64{2}, Directions: []store.Direction{store.DirDownload, store.DirUpload}}}
		if d == store.DimInInterface || d == store.DimOutInterface {
			// (a direction filter on interfaces needs raw flows)
			filters = []store.Filter{{}, {Sources: []int64{2}}, {Interfaces: []uint32{1, 2}}}
		}
		for fi, flt := range filters {
			q := store.TopQuery{From: from, To: end, Dimension: d, N: 5, Metric: store.MetricBytes, Filter: flt}
			got, err := all.Top(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			q.Resolution = store.ResRaw
			want, err := all.Top(ctx, q)
			if len(flt.Interfaces) > 0 {
				// An interface ranking filtered on interfaces ranks those
				// interfaces: the rollups' meaning, not the raw flows' (a
				// flow in or out of one), as in flowdb, whose answer is
				// the reference then.
				q.Resolution = ""
				if want, err = sq.Top(ctx, q); err == nil {
					want.Resolution, want.From, want.To = store.ResRaw, got.From, got.To // flowdb's minutes
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Resolution != store.ResHour || want.Resolution != store.ResRaw {
				t.Fatalf("%s: resolutions %s and %s", d, got.Resolution, want.Resolution)
			}
			got.Resolution = want.Resolution
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s, filter %d: rollups\n%+v\nraw\n%+v", d, fi, got, want)
			}
			if fi == 0 && (len(want.Entries) == 0 || want.Total.Flows == 0) {
				t.Fatalf("%s: empty", d)
			}
		}
	}
	// Raw flows kept 3 hours: a 5-hour range reads whole hours.
	short := readerWith(t, ch, end, func(c *Config) { c.RawTTL = 3 * time.Hour })
	q = store.TopQuery{From: end.Add(-5*time.Hour + 10*time.Minute), To: end, Dimension: store.DimCountry, N: 5, Metric: store.MetricBytes}
	got, err := short.Top(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := ch.Top(ctx, store.TopQuery{From: end.Add(-2 * time.Hour), To: end, Dimension: store.DimCountry, N: 5, Metric: store.MetricBytes})
	if err != nil {
		t.Fatal(err)
	}
	if !got.From.Equal(q.From.Truncate(time.Hour)) || got.Total != whole.Total || got.Resolution != store.ResHour {
		t.Fatalf("past the raw TTL: from %v, total %+v (%s); want from %v, total %+v", got.From, got.Total, got.Resolution, q.From.Truncate(time.Hour), whole.Total)
	}
	q.Filter = store.Filter{Ports: []uint16{443}}
	var qe *store.QueryError
	if _, err := short.Top(ctx, q); !errors.As(err, &qe) {
		t.Fatalf("a port filter past the raw TTL: %v, want a query error", err)
	}
}

// TestTopRollupsFold: the rollups keep the top-k keys of each hour,
// source and direction, and the rest as one "other" row: totals stay
// exact, the entries are the rollups' view (never more than the raw
// flows hold), as SQLite's top-K rollups answer.
func TestTopRollupsFold(t *testing.T) {
	c, w := migratedWriter(t, "fold", nil)
	ctx := context.Background()
	end := time.Now().Truncate(time.Minute)
	flows := testFlows(3000, end)
	for i := range flows {
		flows[i].Bytes %= 1 << 40 // sums that do not wrap
	}
	if err := w.Insert(ctx, flows); err != nil {
		t.Fatal(err)
	}
	later := end.Add(2 * time.Hour)
	r := readerWith(t, NewReader(c, "fold", nil), later, func(c *Config) { c.TopK = 3 })
	if _, err := r.RollupTop(ctx, later); err != nil {
		t.Fatal(err)
	}
	out, err := c.Query(ctx, "SELECT max(c) FROM (SELECT count() AS c FROM "+c.Database()+".top_h WHERE site = 'fold' AND other = 0 GROUP BY dim, t, src, dir) FORMAT TabSeparated")
	if err != nil || strings.TrimSpace(string(out)) != "3" {
		t.Fatalf("keys kept a cell: %q, %v; want 3", out, err)
	}
	q := store.TopQuery{From: end.Add(-6 * time.Hour), To: end, Dimension: store.DimRemoteHost, N: 10, Metric: store.MetricBytes}
	got, err := r.Top(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	q.Resolution = store.ResRaw
	raw, err := r.Top(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	// Entries can only lose bytes to "other" (raw ranks the true totals).
	if got.Resolution != store.ResHour || got.Total != raw.Total || got.Other.Bytes < raw.Other.Bytes {
		t.Fatalf("folded: %s, total %+v, other %d; raw total %+v, other %d", got.Resolution, got.Total, got.Other.Bytes, raw.Total, raw.Other.Bytes)
	}
	rawBytes := map[string]uint64{}
	for _, e := range raw.Entries {
		rawBytes[e.Label] = e.Bytes
	}
	for _, e := range got.Entries {
		if b, ok := rawBytes[e.Label]; ok && e.Bytes > b {
			t.Errorf("%s: %d bytes in the rollups, %d in the raw flows", e.Label, e.Bytes, b)
		}
	}
}

// TestTopMinuteRollups: the minutes rolled up answer the partial hours
// and the short ranges (Resolution minute, or hour with whole hours), as
// the raw flows do when the rollups keep every key.
func TestTopMinuteRollups(t *testing.T) {
	_, ch, _, end := bothStores(t)
	ctx := context.Background()
	soon := end.Add(3 * time.Minute)
	all := readerWith(t, ch, soon, func(c *Config) { c.TopK = 10000 })
	if _, err := all.RollupTop(ctx, soon); err != nil {
		t.Fatal(err)
	}
	if _, to, ok, err := all.topDone(ctx, topMinutes); err != nil || !ok || to.Before(end) {
		t.Fatalf("minutes done up to %v (%v, %v); want %v", to, ok, err, end)
	}
	for _, rng := range []time.Duration{50 * time.Minute, 3 * time.Hour} {
		for _, d := range []store.Dimension{store.DimRemoteHost, store.DimConversation, store.DimApplication, store.DimRouter, store.DimOutInterface} {
			q := store.TopQuery{From: end.Add(-rng), To: end, Dimension: d, N: 5, Metric: store.MetricBytes}
			got, err := all.Top(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			q.Resolution = store.ResRaw
			want, err := all.Top(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			// The coarsest rollup read, as flowdb says: the minutes alone
			// under an hour, with whole hours over 3.
			if want := map[time.Duration]store.Resolution{50 * time.Minute: store.ResMinute, 3 * time.Hour: store.ResHour}[rng]; got.Resolution != want {
				t.Fatalf("%s over %s: resolution %s, want %s", d, rng, got.Resolution, want)
			}
			got.Resolution = want.Resolution
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s over %s: rollups\n%+v\nraw\n%+v", d, rng, got, want)
			}
		}
	}
}

// TestTopDayRollups: once every hour of a UTC day is rolled up, the day
// is made from its hours (top_d); a list over days reads them (Resolution
// day) and answers as the raw flows do when the rollups keep every key;
// with few keys kept, a day keeps its top-k keys and folds the rest, its
// totals exact.
func TestTopDayRollups(t *testing.T) {
	c, w := migratedWriter(t, "days", nil)
	ctx := context.Background()
	now := time.Now()
	// An hour of flows at noon on each of 4 days, the last ending 12 h
	// before today's UTC midnight, whatever the time of day.
	base := now.Truncate(24 * time.Hour).Add(-4*24*time.Hour + 12*time.Hour)
	var flows []store.Flow
	for d := range 4 {
		flows = append(flows, testFlows(500, base.Add(time.Duration(d)*24*time.Hour))...)
	}
	for i := range flows {
		flows[i].Bytes %= 1 << 40 // sums that do not wrap
	}
	if err := w.Insert(ctx, flows); err != nil {
		t.Fatal(err)
	}
	fw, err := NewFlowWriter(c, "days-fold", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Insert(ctx, flows); err != nil {
		t.Fatal(err)
	}
	all := readerWith(t, NewReader(c, "days", nil), now, func(c *Config) { c.TopK = 10000 })
	fold := readerWith(t, NewReader(c, "days-fold", nil), now, func(c *Config) { c.TopK = 3 })
	for _, r := range []*Reader{all, fold} {
		for round := 0; ; round++ {
			n, err := r.RollupTop(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if round > 20 {
				t.Fatal("rollups do not end")
			}
		}
	}
	day0 := base.Truncate(24 * time.Hour)
	if from, to, ok, err := all.topDone(ctx, topDays); err != nil || !ok || !from.Equal(day0.Add(24*time.Hour)) || to.Before(day0.Add(4*24*time.Hour)) {
		t.Fatalf("days done %v to %v (%v, %v); want from %v (the first whole day of the hours) to at least %v", from, to, ok, err, day0.Add(24*time.Hour), day0.Add(4*24*time.Hour))
	}
	from, to := base.Add(-2*time.Hour+17*time.Minute), day0.Add(4*24*time.Hour-30*time.Minute)
	for _, d := range []store.Dimension{store.DimRemoteHost, store.DimConversation, store.DimApplication, store.DimRouter, store.DimOutInterface, store.DimDirection} {
		q := store.TopQuery{From: from, To: to, Dimension: d, N: 5, Metric: store.MetricBytes}
		got, err := all.Top(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.Resolution = store.ResRaw
		want, err := all.Top(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got.Resolution != store.ResDay || want.Total.Flows != uint64(len(flows)) {
			t.Fatalf("%s: resolution %s, %d flows", d, got.Resolution, want.Total.Flows)
		}
		got.Resolution = want.Resolution
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: rollups\n%+v\nraw\n%+v", d, got, want)
		}
		folded, err := fold.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 5, Metric: store.MetricBytes})
		if err != nil || folded.Total != want.Total || folded.Resolution != store.ResDay {
			t.Fatalf("%s folded: total %+v (%s, %v), want %+v", d, folded.Total, folded.Resolution, err, want.Total)
		}
	}
	out, err := c.Query(ctx, "SELECT max(c), countIf(c > 3) FROM (SELECT count() AS c FROM "+c.Database()+".top_d WHERE site = 'days-fold' AND other = 0 GROUP BY dim, t, src, dir) FORMAT TabSeparated")
	if err != nil || strings.TrimSpace(string(out)) != "3\t0" {
		t.Fatalf("keys kept a day: %q, %v; want at most 3", out, err)
	}
}
