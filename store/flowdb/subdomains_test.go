package flowdb

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestSubscriberDomains: a subscriber's traffic per remote domain over
// whole days, the largest first with the rest in Other; once a day is
// over only its largest domains per subscriber stay, the rest summed, so
// totals never change; other subscribers and routers stay apart.
func TestSubscriberDomains(t *testing.T) {
	now := testNow
	s := openTest(t, t.TempDir())
	s.now = func() time.Time { return now }
	ctx := context.Background()
	day0 := testNow.Truncate(24 * time.Hour).Add(-24 * time.Hour)
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	local, remote := netip.MustParseAddr("100.64.0.9"), netip.MustParseAddr("142.250.1.1")
	var flows []store.Flow
	want := map[string]uint64{}
	var total uint64
	add := func(at time.Time, sub, dom string, dir store.Direction, b uint64) {
		f := store.Flow{Exporter: exp, Start: at.UnixMilli() - 1000, End: at.UnixMilli(), Proto: 6, Bytes: b, Packets: 1,
			Direction: dir, Subscriber: sub, RemoteDomain: dom, SrcAddr: remote, DstAddr: local}
		if dir == store.DirUpload {
			f.SrcAddr, f.DstAddr = local, remote
		}
		flows = append(flows, f)
		if sub == "Maria" {
			want[dom] += b
			total += b
		}
	}
	// Day 0: 30 domains of decreasing size (10 are beyond the day's top
	// 20), and unknown traffic.
	for i := range 30 {
		add(day0.Add(time.Hour), "Maria", fmt.Sprintf("site%02d.com", i), store.DirDownload, uint64(1000*(40-i)))
	}
	add(day0.Add(2*time.Hour), "Maria", "", store.DirDownload, 500)
	add(day0.Add(3*time.Hour), "Maria", "site00.com", store.DirUpload, 7000)
	add(day0.Add(3*time.Hour), "João", "site00.com", store.DirDownload, 1<<30)
	// Today, before the clock: not yet pruned.
	add(testNow.Add(-time.Hour), "Maria", "site29.com", store.DirDownload, 100000)
	writeDirect(t, s, flows)
	if err := s.flushRollups(ctx); err != nil {
		t.Fatal(err)
	}
	q := store.SubscriberDomainsQuery{From: day0.Add(6 * time.Hour), To: testNow, Subscriber: "Maria", N: 5}
	check := func(when string, wantRows int) {
		t.Helper()
		res, err := s.SubscriberDomains(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !res.From.Equal(day0) || !res.To.Equal(day0.Add(48*time.Hour)) {
			t.Fatalf("%s: range %s - %s, want whole days", when, res.From, res.To)
		}
		if got := res.Total.DownloadBytes + res.Total.UploadBytes; got != total {
			t.Fatalf("%s: total %d, want %d", when, got, total)
		}
		if len(res.Rows) != wantRows {
			t.Fatalf("%s: %d rows: %+v", when, len(res.Rows), res.Rows)
		}
		// site29.com leads (100 kB today), then site00.com (47 kB).
		if r := res.Rows[0]; r.Domain != "site29.com" || r.DownloadBytes < 100000 {
			t.Errorf("%s: first %+v", when, r)
		}
		if r := res.Rows[1]; r.Domain != "site00.com" || r.DownloadBytes != 40000 || r.UploadBytes != 7000 {
			t.Errorf("%s: second %+v", when, r)
		}
		var sum uint64
		for _, r := range res.Rows {
			sum += r.DownloadBytes + r.UploadBytes
			if r.Domain != "site29.com" && r.DownloadBytes+r.UploadBytes != want[r.Domain] {
				t.Errorf("%s: %s: %d bytes, want %d", when, r.Domain, r.DownloadBytes+r.UploadBytes, want[r.Domain])
			}
		}
		if sum+res.Other.DownloadBytes+res.Other.UploadBytes != total {
			t.Errorf("%s: rows and other do not add up to the total", when)
		}
	}
	check("before the day closes", 5)
	var n int
	if err := s.r.QueryRow("SELECT count(*) FROM subdom_d WHERE sub = 'Maria' AND t = ?", day0.Unix()).Scan(&n); err != nil || n != 31 {
		t.Fatalf("day 0 rows before the prune: %d %v", n, err)
	}
	// The day closes: 20 domains and the rest stay.
	s.maintain(ctx)
	if err := s.r.QueryRow("SELECT count(*) FROM subdom_d WHERE sub = 'Maria' AND t = ?", day0.Unix()).Scan(&n); err != nil || n != subDomainsPerDay+1 {
		t.Fatalf("day 0 rows after the prune: %d %v", n, err)
	}
	check("after the day closed", 5)
	q.N = 100
	res, err := s.SubscriberDomains(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != subDomainsPerDay+1 { // 20 of day 0, site29.com of today (the unknown domain was below the cut)
		t.Errorf("all rows: %d: %+v", len(res.Rows), res.Rows)
	}
	for _, r := range res.Rows {
		if r.Domain == subDomainOther {
			t.Errorf("the stored other row is a row: %+v", r)
		}
	}
	// Another subscriber, and bad queries.
	q.Subscriber = "João"
	if res, err := s.SubscriberDomains(ctx, q); err != nil || len(res.Rows) != 1 || res.Rows[0].DownloadBytes != 1<<30 {
		t.Fatalf("João: %+v %v", res, err)
	}
	for _, bad := range []store.SubscriberDomainsQuery{{From: testNow, To: testNow.Add(time.Hour)}, {From: testNow, To: testNow, Subscriber: "x"},
		{From: testNow, To: testNow.Add(time.Hour), Subscriber: "x", N: 101}} {
		if _, err := s.SubscriberDomains(ctx, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
