package flowdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// BenchmarkReport12Months: the store's side of a 12-month report of 1 000
// subscribers (on 10 routers), a year of 5-minute samples each (365 000
// packed days, about 2 KB each) and their daily applications. Each
// sub-benchmark reads the 12 calendar months as a report does (one
// RateSummaries per month, kept, with each subscriber's 3 largest
// applications):
//   - cold: no month kept yet (each iteration drops the kept summaries);
//   - kept: the 11 months that are over kept (the steady state: a month is
//     kept the first time a report reads it once it is over), the 12th,
//     the month so far (20 days), read from the samples.
//
// It writes about 1 GB: it runs only with FLOWBOX_BENCH_REPORT=1.
func BenchmarkReport12Months(b *testing.B) {
	if os.Getenv("FLOWBOX_BENCH_REPORT") != "1" {
		b.Skip("set FLOWBOX_BENCH_REPORT=1 to build a year of 5-minute samples for 1 000 subscribers (about 1 GB, minutes)")
	}
	ctx := context.Background()
	dir := os.Getenv("FLOWBOX_BENCH_REPORT_DIR") // reuse a dataset built before
	if dir == "" {
		dir = b.TempDir()
	}
	s := openTest(b, dir)
	end := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	start := end.AddDate(-1, 0, 0)
	now := end.AddDate(0, 0, -10) // November 2026 is the month so far, 20 days

	s.now = func() time.Time { return now }
	const subs, routers = 1000, 10
	var built int
	s.r.QueryRow("SELECT count(*) FROM rate5_d").Scan(&built)
	if built == 0 {
		buildReportYear(b, s, start, end, subs, routers)
	}
	var pages, pageSize int64
	s.r.QueryRow("PRAGMA page_count").Scan(&pages)
	s.r.QueryRow("PRAGMA page_size").Scan(&pageSize)
	b.Logf("database: %.0f MB for %d subscriber-days", float64(pages*pageSize)/1e6, subs*365)
	months := func(fn func(from, to time.Time)) {
		for m := start; m.Before(end); m = m.AddDate(0, 1, 0) {
			fn(m, m.AddDate(0, 1, 0))
		}
	}
	report := func(b *testing.B) {
		rows := 0
		months(func(from, to time.Time) {
			res, err := s.RateSummaries(ctx, store.RateQuery{Kind: store.ReportBySubscriber, From: from, To: to, Percentile: 95, Keep: true, Apps: 3})
			if err != nil {
				b.Fatal(err)
			}
			rows += len(res)
			if len(res[0].Apps) != 3 {
				b.Fatalf("apps: %+v", res[0])
			}
		})
		if rows != 12*subs {
			b.Fatalf("%d rows, want %d", rows, 12*subs)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if _, err := s.w.Exec("DELETE FROM rate_done"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			report(b)
		}
	})
	b.Run("kept", func(b *testing.B) {
		report(b)
		for b.Loop() {
			report(b)
		}
	})
}

// buildReportYear writes a year of 5-minute samples and daily
// applications for subs subscribers.
func buildReportYear(b *testing.B, s *FlowDB, start, end time.Time, subs, routers int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	var day [slotsPerDay]rateAB
	var buf []byte
	apps := []string{"ANetflix", "AYouTube", "AWhatsApp", "AInstagram", "ATikTok", "AGoogle", "\x50\x06\x01\xbb", "\x50\x11\x00\x35", "ASteam", "AZoom"}
	for d := start; d.Before(end); d = d.AddDate(0, 0, 1) {
		for i := range subs {
			mean := uint64(1+i%50) * 375_000 // 0.01-0.5 Mb/s... to 25 Mb/s
			for j := range day {
				day[j] = rateAB{mean/2 + rng.Uint64N(mean), mean/20 + rng.Uint64N(mean/10)}
			}
			buf = encodeRateDay(buf[:0], &day)
			src := int64(1 + i%routers)
			sub := fmt.Sprintf("subscriber-%04d", i)
			if _, err := tx.ExecContext(ctx, "INSERT INTO rate5_d (kind, src, k, d, x) VALUES (?,?,?,?,?)", rateSubscriber, src, sub, d.Unix(), buf); err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO rate5_keys (kind, src, k, first, last) VALUES (?1,?2,?3,?4,?4) ON CONFLICT DO UPDATE SET last = excluded.last",
				rateSubscriber, src, sub, d.Unix()); err != nil {
				b.Fatal(err)
			}
			shares := make([]store.AppShare, len(apps))
			for k, app := range apps {
				shares[k] = store.AppShare{App: app, Bytes: mean * uint64(100-k*9)}
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO subapp_day (t, src, sub, x) VALUES (?,?,?,?)", d.Unix(), src, sub, encodeApps(shares)); err != nil {
				b.Fatal(err)
			}
		}
		if d.Day() == 1 {
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if tx, err = s.w.BeginTx(ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
