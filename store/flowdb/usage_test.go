package flowdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// usageWant sums the download and upload flows of the known subscribers
// by (router or not, subscriber).
func usageWant(flows []store.Flow, keep func(*store.Flow) bool) map[string]*store.SubscriberUsage {
	want := map[string]*store.SubscriberUsage{}
	for i := range flows {
		f := &flows[i]
		if f.Subscriber == "" || (f.Direction != store.DirDownload && f.Direction != store.DirUpload) || !keep(f) {
			continue
		}
		k := fmt.Sprintf("%v/%s", f.Exporter.Addr() == netip.MustParseAddr("127.0.0.2"), f.Subscriber)
		u := want[k]
		if u == nil {
			u = &store.SubscriberUsage{Subscriber: f.Subscriber}
			want[k] = u
		}
		if f.Direction == store.DirDownload {
			u.DownloadBytes += f.Scale(f.Bytes)
			u.DownloadPackets += f.Scale(f.Packets)
		} else {
			u.UploadBytes += f.Scale(f.Bytes)
			u.UploadPackets += f.Scale(f.Packets)
		}
		u.Flows++
	}
	return want
}

func TestSubscriberUsage(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, testNow)
	ctx := context.Background()
	r := &store.Router{Name: "r1", Address: "127.0.0.2:8728"}
	if err := inv(s).AddRouter(ctx, r); err != nil {
		t.Fatal(err)
	}
	flows := genFlows(6000, testNow)
	ingest(t, s, flows)

	from, to := testNow.Add(-4*time.Hour), testNow.Add(time.Minute)
	want := usageWant(flows, func(*store.Flow) bool { return true })
	res, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resolution != store.ResHour || res.Count != len(want) || len(res.Rows) != len(want) || len(want) != 10 {
		t.Fatalf("%s: %d rows (count %d), want %d", res.Resolution, len(res.Rows), res.Count, len(want))
	}
	var sum store.SubscriberUsage
	for i, u := range res.Rows {
		k := fmt.Sprintf("%v/%s", u.Source == r.ID, u.Subscriber)
		w := want[k]
		if w == nil || u.DownloadBytes != w.DownloadBytes || u.UploadBytes != w.UploadBytes ||
			u.DownloadPackets != w.DownloadPackets || u.UploadPackets != w.UploadPackets || u.Flows != w.Flows {
			t.Fatalf("row %s = %+v, want %+v", k, u, w)
		}
		if u.Source != r.ID && u.Source >= 0 {
			t.Fatalf("row %s: source %d", k, u.Source)
		}
		if i > 0 && res.Rows[i-1].DownloadBytes+res.Rows[i-1].UploadBytes < u.DownloadBytes+u.UploadBytes {
			t.Fatal("rows not sorted by total")
		}
		if !u.LastSeen.After(testNow.Add(-time.Hour)) || u.LastSeen.After(testNow.Add(time.Hour)) {
			t.Fatalf("last seen %v", u.LastSeen)
		}
		sum.DownloadBytes += u.DownloadBytes
		sum.UploadBytes += u.UploadBytes
		sum.Flows += u.Flows
	}
	if res.Total.DownloadBytes != sum.DownloadBytes || res.Total.UploadBytes != sum.UploadBytes || res.Total.Flows != sum.Flows {
		t.Fatalf("total %+v, rows sum %+v", res.Total, sum)
	}

	// Router filter, search, sorts and paging.
	one, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Sources: []int64{r.ID}, Search: "SUB-3", Sort: store.UsageByDownload})
	if err != nil || len(one.Rows) != 1 || one.Rows[0].Subscriber != "sub-3" || one.Rows[0].Source != r.ID {
		t.Fatalf("router and search: %+v %v", one, err)
	}
	byName, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Sort: store.UsageByName, Limit: 3, Offset: 2})
	if err != nil || len(byName.Rows) != 3 || byName.Count != 10 || byName.Rows[0].Subscriber != "sub-1" || byName.Total != res.Total {
		t.Fatalf("by name, page 2: %+v %v", byName, err)
	}
	for _, sort := range []string{store.UsageByDownload, store.UsageByUpload} {
		p, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Sort: sort})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(p.Rows, func(a, b store.SubscriberUsage) int {
			if sort == store.UsageByDownload {
				return -cmp.Compare(a.DownloadBytes, b.DownloadBytes)
			}
			return -cmp.Compare(a.UploadBytes, b.UploadBytes)
		}) {
			t.Fatalf("not sorted by %s", sort)
		}
	}

	// The series of a subscriber adds up to its row, per hour and per day.
	var sub3 store.SubscriberUsage
	for _, u := range res.Rows {
		if u.Subscriber == "sub-3" {
			sub3.DownloadBytes += u.DownloadBytes
			sub3.UploadBytes += u.UploadBytes
		}
	}
	for _, step := range []time.Duration{0, time.Hour, 24 * time.Hour} {
		ser, err := s.SubscriberUsageSeries(ctx, store.UsageSeriesQuery{From: from, To: to, Subscriber: "sub-3", Step: step})
		if err != nil {
			t.Fatal(err)
		}
		var d, u uint64
		for i := range ser.Times {
			d += ser.DownloadBytes[i]
			u += ser.UploadBytes[i]
		}
		wantSteps := 5
		if step == 24*time.Hour {
			wantSteps = 1
			if testNow.Add(-4*time.Hour).Day() != testNow.Day() {
				wantSteps = 2
			}
		}
		if d != sub3.DownloadBytes || u != sub3.UploadBytes || len(ser.Times) != wantSteps {
			t.Fatalf("step %v: series %d steps, %d/%d bytes, want %d steps, %d/%d", step, len(ser.Times), d, u, wantSteps, sub3.DownloadBytes, sub3.UploadBytes)
		}
	}

	// Bad queries.
	for name, q := range map[string]func() error{
		"sort": func() error {
			_, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Sort: "size"})
			return err
		},
		"limit": func() error {
			_, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Limit: 10001})
			return err
		},
		"to": func() error { _, err := s.SubscriberUsage(ctx, store.UsageQuery{From: to, To: from}); return err },
		"subscriber": func() error {
			_, err := s.SubscriberUsageSeries(ctx, store.UsageSeriesQuery{From: from, To: to})
			return err
		},
		"step": func() error {
			_, err := s.SubscriberUsageSeries(ctx, store.UsageSeriesQuery{From: from, To: to, Subscriber: "x", Step: time.Minute})
			return err
		},
	} {
		var qe *store.QueryError
		if err := q(); !errors.As(err, &qe) || qe.Field != name {
			t.Errorf("%s: %v, want a *QueryError on %s", name, err, name)
		}
	}

	// A late flow flushed again adds up; the usage survives a restart.
	late := flows[:1]
	late[0].Subscriber = "sub-late"
	late[0].Direction = store.DirDownload
	ingest(t, s, late)
	ingest(t, s, late)
	closeAll(s)
	s = openAt(t, dir, testNow)
	lr, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Search: "late"})
	if err != nil || len(lr.Rows) != 1 || lr.Rows[0].Flows != 2 || lr.Rows[0].DownloadBytes != 2*late[0].Scale(late[0].Bytes) {
		t.Fatalf("late flows: %+v %v", lr, err)
	}

	// Retention: hours go after usage-hour-retention, days stay; older
	// ranges are answered by day.
	later := testNow.Add(s.cfg.UsageHourRetention + 2*time.Hour)
	if err := s.applyRetention(ctx, later); err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return later }
	old, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to})
	if err != nil || old.Resolution != store.ResDay || old.Count != 11 || old.Total.DownloadBytes != res.Total.DownloadBytes+lr.Rows[0].DownloadBytes {
		t.Fatalf("after the hourly retention: %+v %v", old, err)
	}
	var hours int
	if err := s.r.QueryRow("SELECT count(*) FROM usage_h").Scan(&hours); err != nil || hours != 0 {
		t.Fatalf("%d hourly rows left (%v)", hours, err)
	}
	if _, err := s.SubscriberUsageSeries(ctx, store.UsageSeriesQuery{From: from, To: to, Subscriber: "sub-1", Step: time.Hour}); err == nil {
		t.Fatal("an hourly series beyond the hourly retention")
	}
}

// TestSubscriberUsageBeyondTopK: the rollups keep the top 2 subscribers of
// a minute, the usage tables keep all 50.
func TestSubscriberUsageBeyondTopK(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	s.cfg.TopK, s.wr.agg.topK = 2, 2
	ctx := context.Background()
	var flows []store.Flow
	end := testNow.Add(-10 * time.Minute).Truncate(time.Minute).Add(30 * time.Second).UnixMilli()
	for i := range 50 {
		flows = append(flows, store.Flow{Exporter: netip.MustParseAddrPort("127.0.0.2:2055"), Start: end - 1000, End: end,
			SrcAddr: netip.MustParseAddr("198.51.100.1"), DstAddr: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}),
			Proto: 6, SrcPort: 443, DstPort: 50000, Bytes: uint64(1000 + i), Packets: 1, Direction: store.DirDownload,
			Subscriber: fmt.Sprintf("customer-%02d", i)})
	}
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	from, to := testNow.Add(-time.Hour), testNow
	top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: store.DimSubscriber, N: 100})
	if err != nil || len(top.Entries) != 2 || top.Other.Flows != 48 {
		t.Fatalf("top-2 rollups: %d entries, other %+v (%v)", len(top.Entries), top.Other, err)
	}
	res, err := s.SubscriberUsage(ctx, store.UsageQuery{From: from, To: to, Sort: store.UsageByName})
	if err != nil || res.Count != 50 || len(res.Rows) != 50 {
		t.Fatalf("usage: %+v %v", res, err)
	}
	for i, u := range res.Rows {
		if u.Subscriber != fmt.Sprintf("customer-%02d", i) || u.DownloadBytes != uint64(1000+i) || u.UploadBytes != 0 || u.Flows != 1 {
			t.Fatalf("row %d: %+v", i, u)
		}
	}
}

// TestSubscriberUsageAcrossDays reads ranges over several days: whole UTC
// days come from usage_d and the hours at both ends from usage_h; every
// range, aligned or not, equals the sum of its flows.
func TestSubscriberUsageAcrossDays(t *testing.T) {
	s := openAt(t, t.TempDir(), testNow)
	ctx := context.Background()
	var flows []store.Flow
	start := testNow.Add(-5 * 24 * time.Hour).Truncate(time.Hour)
	for i := 0; start.Add(time.Duration(i) * 37 * time.Minute).Before(testNow); i++ {
		end := start.Add(time.Duration(i) * 37 * time.Minute).UnixMilli()
		dir := store.DirDownload
		if i%3 == 0 {
			dir = store.DirUpload
		}
		flows = append(flows, store.Flow{Exporter: netip.MustParseAddrPort("127.0.0.2:2055"), RouterID: 1, Start: end - 1000, End: end,
			SrcAddr: netip.MustParseAddr("198.51.100.1"), DstAddr: netip.MustParseAddr("10.0.0.1"), Proto: 6,
			Bytes: uint64(1000 + i), Packets: 1, Direction: dir, Subscriber: fmt.Sprintf("s%d", i%3)})
	}
	s.wr.agg.add(flows, s.wr.exporters)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to time.Time }{
		{testNow.Add(-4*24*time.Hour - 5*time.Hour), testNow},                                         // head hours, 3 whole days, tail hours
		{testNow.Add(-4 * 24 * time.Hour).Truncate(24 * time.Hour), testNow.Truncate(24 * time.Hour)}, // whole days only
		{testNow.Add(-30 * time.Hour), testNow.Add(-2 * time.Hour)},                                   // one whole day at most
		{testNow.Add(-3 * time.Hour), testNow},                                                        // hours only
	} {
		res, err := s.SubscriberUsage(ctx, store.UsageQuery{From: c.from, To: c.to, Sort: store.UsageByName})
		if err != nil {
			t.Fatal(err)
		}
		f, to := c.from.Truncate(time.Hour), c.to.Add(time.Hour-1).Truncate(time.Hour)
		want := usageWant(flows, func(fl *store.Flow) bool { return fl.End >= f.UnixMilli() && fl.End < to.UnixMilli() })
		if res.Resolution != store.ResHour || !res.From.Equal(f) || !res.To.Equal(to) || len(res.Rows) != len(want) {
			t.Fatalf("%v-%v: %s %v-%v %d rows, want %d", c.from, c.to, res.Resolution, res.From, res.To, len(res.Rows), len(want))
		}
		var last time.Time
		for _, fl := range flows {
			if e := time.UnixMilli(fl.End); !e.Before(f) && e.Before(to) {
				last = e.Truncate(time.Hour).Add(time.Hour)
			}
		}
		for _, u := range res.Rows {
			w := want["true/"+u.Subscriber]
			if w == nil || u.DownloadBytes != w.DownloadBytes || u.UploadBytes != w.UploadBytes || u.Flows != w.Flows {
				t.Fatalf("%v-%v: %+v, want %+v", c.from, c.to, u, w)
			}
			if u.LastSeen.After(to.Add(24 * time.Hour)) {
				t.Fatalf("last seen %v after %v", u.LastSeen, to)
			}
		}
		if c.to.Equal(testNow) && !res.Rows[0].LastSeen.Equal(last) && !res.Rows[1].LastSeen.Equal(last) && !res.Rows[2].LastSeen.Equal(last) {
			t.Fatalf("no row last seen at %v: %+v", last, res.Rows)
		}
	}
}
