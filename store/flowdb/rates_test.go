package flowdb

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// feedAggregator counts flows into the rollups (rate5 among them) the way
// a flush does, one aggregator per chunk of a day.
func feedAggregator(t *testing.T, s *FlowDB, flows []store.Flow) {
	t.Helper()
	ctx := context.Background()
	slices.SortFunc(flows, func(a, b store.Flow) int { return int(a.End - b.End) })
	for len(flows) > 0 {
		n := 0
		for n < len(flows) && flows[n].End < flows[0].End+86400_000 {
			n++
		}
		a := newAggregator(s.cfg.TopK, s.metrics)
		a.add(flows[:n], nil)
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.write(ctx, tx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		flows = flows[n:]
	}
}

// TestRatePercentilesAcrossDST: March 2026 in Berlin has 743 hours (the
// clocks skip 02:00-03:00 on the 29th), so 8 916 samples. Maria's download
// takes each value 1..8916 once (times 10 b/s), so its 95th percentile is
// the 8 471st value (0.95 × 8 916 = 8 470.2, rounded up): 84 710 b/s, and
// its peak 89 160 b/s. A UTC month of 8 928 samples would give 84 820.
// Huge samples just outside the month must not count. Totals equal the
// usage tables; the fleet sums the routers; a router that started late
// counts its samples from its first flow; a kept summary answers the same
// and is dropped when a late flow changes the month.
func TestRatePercentilesAcrossDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, berlin)
	to := time.Date(2026, 4, 1, 0, 0, 0, 0, berlin)
	const n = 8916
	if got := int(to.Sub(from) / (5 * time.Minute)); got != n {
		t.Fatalf("March 2026 in Berlin has %d samples", got)
	}
	dir := t.TempDir()
	s := openTest(t, dir)
	now := to.Add(30 * time.Minute)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	local, remote := netip.MustParseAddr("100.64.0.9"), netip.MustParseAddr("142.250.1.1")
	flow := func(router int64, at time.Time, sub string, dir store.Direction, bytes uint64) store.Flow {
		f := store.Flow{Exporter: exp, RouterID: router, Start: at.UnixMilli() - 1000, End: at.UnixMilli(), Proto: 6,
			Bytes: bytes, Packets: 1, Direction: dir, Subscriber: sub, SrcAddr: remote, DstAddr: local, InIf: 3, OutIf: 5}
		if dir == store.DirUpload {
			f.SrcAddr, f.DstAddr, f.InIf, f.OutIf = local, remote, 5, 3
		}
		return f
	}
	var flows []store.Flow
	v := make([]uint64, n) // Maria's download per sample, in units of 10 b/s (375 bytes per 5 minutes)
	var wantDown uint64
	peakAt := -1
	for i := range n {
		v[i] = uint64(i*5%n) + 1 // 5 is prime to 8916: every value once
		if v[i] == n {
			peakAt = i
		}
		at := from.Add(time.Duration(i)*5*time.Minute + time.Minute)
		flows = append(flows, flow(1, at, "Maria", store.DirDownload, v[i]*375),
			flow(1, at, "Maria", store.DirUpload, 375),
			flow(2, at, "João", store.DirDownload, 100*375))
		wantDown += v[i] * 375
	}
	// Just outside the month: huge samples.
	for _, at := range []time.Time{from.Add(-2 * time.Minute), to.Add(2 * time.Minute)} {
		flows = append(flows, flow(1, at, "Maria", store.DirDownload, 1<<40))
	}
	// Router 3 starts on the 22nd (local): 10 days and 22 hours, counting
	// the hour the clocks skip.
	late := time.Date(2026, 3, 22, 0, 0, 0, 0, berlin)
	for at := late; at.Before(to); at = at.Add(time.Hour) {
		flows = append(flows, flow(3, at.Add(time.Minute), "Ana", store.DirDownload, 3750))
	}
	feedAggregator(t, s, flows)
	for range 20 {
		if err := s.packRates(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	var packed, open int
	s.r.QueryRow("SELECT count(*) FROM rate5_d").Scan(&packed)
	s.r.QueryRow("SELECT count(*) FROM rate5").Scan(&open)
	if packed == 0 || open == 0 {
		t.Fatalf("%d packed days, %d open samples: want both (the last UTC day is still open)", packed, open)
	}

	q := store.RateQuery{Kind: store.ReportBySubscriber, From: from, To: to, Percentile: 95}
	subs, err := s.RateSummaries(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]store.RateSummary{}
	for _, r := range subs {
		byKey[r.Key] = r
	}
	m := byKey["Maria"]
	if m.Samples != n || m.PctA != 84710 || m.A != wantDown || m.B != n*375 {
		t.Errorf("Maria: %d samples, 95th %g b/s, %d/%d bytes; want %d, 84710, %d/%d", m.Samples, m.PctA, m.A, m.B, n, wantDown, n*375)
	}
	if m.PeakA.BPS != n*10 || !m.PeakA.At.Equal(from.Add(time.Duration(peakAt)*5*time.Minute)) {
		t.Errorf("Maria's peak %+v, want %d b/s at %s", m.PeakA, n*10, from.Add(time.Duration(peakAt)*5*time.Minute))
	}
	if m.PctB != 10 || m.PeakB.BPS != 10 {
		t.Errorf("Maria's upload: 95th %g, peak %g; want 10", m.PctB, m.PeakB.BPS)
	}
	// The same by sorting (an independent computation).
	sorted := slices.Clone(v)
	slices.Sort(sorted)
	if want := float64(sorted[8470] * 10); m.PctA != want {
		t.Errorf("95th %g, sorted says %g", m.PctA, want)
	}
	// Other percentiles.
	for _, c := range []struct{ pct, want float64 }{{50, 44580}, {100, 89160}, {99.9, 89080}} {
		q2 := q
		q2.Percentile = c.pct
		res, err := s.RateSummaries(ctx, q2)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Key == "Maria" && r.PctA != c.want {
				t.Errorf("percentile %g: %g, want %g", c.pct, r.PctA, c.want)
			}
		}
	}
	ana := byKey["Ana"]
	wantAna := int(to.Sub(late) / (5 * time.Minute))
	if ana.Samples != wantAna || ana.Source != 3 {
		t.Errorf("Ana: %d samples from router %d, want %d from 3", ana.Samples, ana.Source, wantAna)
	}
	// Totals equal the usage tables.
	use, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range use.Rows {
		r := byKey[u.Subscriber]
		if r.A != u.DownloadBytes || r.B != u.UploadBytes {
			t.Errorf("%s: report %d/%d bytes, usage %d/%d", u.Subscriber, r.A, r.B, u.DownloadBytes, u.UploadBytes)
		}
	}
	// Interfaces: 3 received Maria's and João's downloads.
	ifs, err := s.RateSummaries(ctx, store.RateQuery{Kind: store.ReportByInterface, From: from, To: to, Percentile: 95, Sources: []int64{1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 2 || ifs[0].Key != "3" || ifs[0].A != wantDown || ifs[0].B != n*375 || ifs[1].Key != "5" || ifs[1].B != wantDown {
		t.Errorf("interfaces: %+v", ifs)
	}
	// The fleet: Maria's router plus João's constant 1 000 b/s, plus Ana's
	// router, whose samples are zero or 100 b/s.
	fleet, err := s.RateSummaries(ctx, store.RateQuery{Kind: store.ReportByFleet, From: from, To: to, Percentile: 95})
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet) != 1 || fleet[0].Samples != n || fleet[0].PeakA.BPS < n*10+1000 || fleet[0].PeakA.BPS > n*10+1100 ||
		fleet[0].A != wantDown+n*100*375+ana.A {
		t.Errorf("fleet: %+v", fleet)
	}
	// Routers, one filtered.
	rs, err := s.RateSummaries(ctx, store.RateQuery{Kind: store.ReportByRouter, From: from, To: to, Percentile: 95, Sources: []int64{2}})
	if err != nil || len(rs) != 1 || rs[0].Source != 2 || rs[0].PctA != 1000 || rs[0].A != n*100*375 {
		t.Errorf("router 2: %+v %v", rs, err)
	}

	// Kept once the month is settled, and the same.
	now = to.Add(2 * time.Hour)
	q.Keep = true
	first, err := s.RateSummaries(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var done int
	s.r.QueryRow("SELECT count(*) FROM rate_done").Scan(&done)
	if done != 1 {
		t.Fatalf("%d kept periods, want 1", done)
	}
	again, err := s.RateSummaries(ctx, q)
	if err != nil || !slices.EqualFunc(first, again, func(a, b store.RateSummary) bool {
		return a.Source == b.Source && a.Key == b.Key && a.A == b.A && a.B == b.B && a.PctA == b.PctA && a.PctB == b.PctB &&
			a.PeakA.BPS == b.PeakA.BPS && a.PeakA.At.Equal(b.PeakA.At) && a.Samples == b.Samples
	}) {
		t.Fatalf("kept answer differs:\n%+v\n%+v (%v)", first, again, err)
	}
	// A late flow in the middle of the month: the day is packed again and
	// the kept summary dropped.
	feedAggregator(t, s, []store.Flow{flow(1, time.Date(2026, 3, 15, 12, 1, 0, 0, berlin), "Maria", store.DirDownload, 375)})
	now = to.Add(26 * time.Hour)
	for range 3 {
		if err := s.packRates(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.RateSummaries(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Key == "Maria" && r.A != wantDown+375 {
			t.Errorf("after a late flow: %d bytes, want %d", r.A, wantDown+375)
		}
	}
	// A read-only store (flowbox report beside serve) reads the kept
	// summaries and computes the others, keeping nothing.
	ro, err := OpenReadOnly(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(ro)
	ro.now = s.now
	q99 := q
	q99.Percentile = 99
	for _, rq := range []store.RateQuery{q, q99} {
		res, err := ro.RateSummaries(ctx, rq)
		if err != nil || len(res) != 3 {
			t.Fatalf("read-only, percentile %g: %d rows, %v", rq.Percentile, len(res), err)
		}
	}
	s.r.QueryRow("SELECT count(*) FROM rate_done").Scan(&done)
	if done != 1 {
		t.Errorf("%d kept periods after the read-only reads, want 1", done)
	}
	// Bad queries.
	for _, bad := range []store.RateQuery{
		{Kind: "tower", From: from, To: to, Percentile: 95},
		{From: from, To: to, Percentile: 0},
		{From: from, To: to, Percentile: 101},
		{From: from.Add(time.Minute), To: to, Percentile: 95},
		{From: to, To: from, Percentile: 95},
		{From: from.AddDate(-2, 0, 0), To: to, Percentile: 95},
	} {
		if _, err := s.RateSummaries(ctx, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestRateDayCodec: a day's samples round-trip; damaged rows are errors.
func TestRateDayCodec(t *testing.T) {
	var day [slotsPerDay]rateAB
	day[0], day[100], day[287] = rateAB{1, 2}, rateAB{1 << 40, 0}, rateAB{0, 7}
	x := encodeRateDay(nil, &day)
	var got [slotsPerDay]rateAB
	if err := decodeRateDay(x, func(i int, a, b uint64) { got[i] = rateAB{a, b} }); err != nil || got != day {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range [][]byte{nil, {9}, x[:len(x)-1], append(slices.Clone(x), 0)} {
		if err := decodeRateDay(bad, func(int, uint64, uint64) {}); err == nil {
			t.Errorf("%d bytes: no error", len(bad))
		}
	}
}

// TestSubscriberApps: each subscriber's largest applications over whole
// days, from the flush, before and after the day's prune, and kept.
func TestSubscriberApps(t *testing.T) {
	s := openTest(t, t.TempDir())
	now := testNow
	s.now = func() time.Time { return now }
	ctx := context.Background()
	day0 := testNow.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	var flows []store.Flow
	for i := range 15 {
		flows = append(flows, store.Flow{Exporter: exp, RouterID: 1, Start: day0.Add(time.Hour).UnixMilli(), End: day0.Add(time.Hour).UnixMilli(),
			Proto: 6, SrcPort: uint16(1000 + i), DstPort: 40000, Bytes: uint64(100 * (i + 1)), Packets: 1, Direction: store.DirDownload,
			Subscriber: "Maria", SrcAddr: netip.MustParseAddr("142.250.1.1"), DstAddr: netip.MustParseAddr("100.64.0.9")})
	}
	flows = append(flows, store.Flow{Exporter: exp, RouterID: 1, Start: day0.Add(time.Hour).UnixMilli(), End: day0.Add(time.Hour).UnixMilli(),
		Proto: 6, Bytes: 5000, Packets: 1, Direction: store.DirUpload, Application: "Netflix", Subscriber: "Maria",
		SrcAddr: netip.MustParseAddr("100.64.0.9"), DstAddr: netip.MustParseAddr("142.250.1.1")})
	feedAggregator(t, s, flows)
	q := store.RateQuery{Kind: store.ReportBySubscriber, From: day0, To: day0.Add(24 * time.Hour), Percentile: 95, Apps: 3}
	netflix := uint64(5000)
	check := func(when string) {
		t.Helper()
		res, err := s.RateSummaries(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].Key != "Maria" || len(res[0].Apps) != 3 {
			t.Fatalf("%s: %+v", when, res)
		}
		want := []store.AppShare{{App: "Netflix", Bytes: netflix}, {App: "tcp/1014", Bytes: 1500}, {App: "tcp/1013", Bytes: 1400}}
		if !slices.Equal(res[0].Apps, want) {
			t.Errorf("%s: %+v, want %+v", when, res[0].Apps, want)
		}
	}
	check("open day")
	s.maintain(ctx)
	var rows, packed int
	s.r.QueryRow("SELECT count(*) FROM subapp_d").Scan(&rows)
	s.r.QueryRow("SELECT count(*) FROM subapp_day").Scan(&packed)
	if rows != 0 || packed != 1 {
		t.Errorf("%d rows and %d packed after the day closed, want 0 and 1", rows, packed)
	}
	check("pruned day")
	// A late flow of the packed day adds to it.
	late := flows[len(flows)-1]
	late.Bytes = 100
	feedAggregator(t, s, []store.Flow{late})
	s.maintain(ctx)
	netflix += 100
	check("late flow")
	// Kept with the applications, and the same.
	now = testNow.Add(48 * time.Hour)
	q.Keep = true
	check("kept")
	check("read from the kept summary")
	q.Apps = 11
	if _, err := s.RateSummaries(ctx, q); err == nil {
		t.Error("11 applications: no error")
	}
}
