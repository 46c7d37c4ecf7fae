package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
	"github.com/flowbox/flowbox/store/clickhouse/chtest"
	"github.com/flowbox/flowbox/store/storetest/flowmodel"
)

// The dashboard benchmarks of the ClickHouse store read the month that
// store/flowdb's dashboard benchmarks read (flowmodel.Month: every flow of
// the last hour, at 5,000 flows/s at the peak; 1 in 50 back to 14 days, 1
// in 500 before), all of it as raw flows (ClickHouse keeps raw flows for its
// raw-ttl, and its views fill the totals at insert), and the top-N steps
// the writer rolled up (every hour, and the minutes of the last 25
// hours). The chDB data directory is kept in
// $TMPDIR/flowbox-bench-dashboard-ch-v<dashCHVersion> for the next runs
// (generating takes about 22 minutes on 2 cores); the TTLs are years,
// since the month ends on 2026-01-14.
const dashCHVersion = 1

// dashNow is the end of the month (flowmodel.MonthEnd).
var dashNow = flowmodel.MonthEnd

// dashboardReader starts chDB on the cached dataset, generating it first
// if needed, and returns its reader at dashNow.
func dashboardReader(b *testing.B) *Reader {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("flowbox-bench-dashboard-ch-v%d", dashCHVersion))
	complete := filepath.Join(dir, "complete")
	_, err := os.Stat(complete)
	if err != nil && testing.Short() {
		b.Skip("the dashboard dataset is not generated yet and -short is set")
	}
	if err != nil {
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
	}
	srv := chtest.StartIn(b, filepath.Join(dir, "chdb"))
	cfg := DefaultConfig()
	cfg.Addresses, cfg.User, cfg.Database, cfg.Site = []string{srv.Addr}, srv.User, "bench", "bench"
	years := 5 * 365 * 24 * time.Hour
	cfg.RawTTL, cfg.MinuteTTL, cfg.HourTTL, cfg.UsageHourTTL, cfg.NATTTL = years, years, years, years, years
	cfg.Timeout = 10 * time.Minute
	c := clientWith(b, cfg, srv.Password)
	r := NewReader(c, cfg.Site, func() time.Time { return dashNow })
	if err == nil {
		// What the writer rolls up at dashNow (once: then nothing is due).
		if _, err := Migrate(context.Background(), c); err != nil {
			b.Fatal(err)
		}
		if _, err := r.RollupTop(context.Background(), dashNow); err != nil {
			b.Fatal(err)
		}
		rollDay(b, r)
		return r
	}
	b.Logf("generating the dashboard dataset in %s (about 22 minutes, once)", dir)
	start := time.Now()
	if _, err := Migrate(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	w, err := NewFlowWriter(c, cfg.Site, nil)
	if err != nil {
		b.Fatal(err)
	}
	total := generateDashboard(b, w)
	t0 := time.Now()
	hours := 0
	for {
		n, err := r.RollupTop(context.Background(), dashNow)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		hours += n
	}
	rollDay(b, r)
	b.Logf("generated %d flows in %s; rolled up %d hours and the minutes of a day in %s", total, time.Since(start).Round(time.Second), hours, time.Since(t0).Round(time.Second))
	if err := os.WriteFile(complete, []byte(fmt.Sprintf("flows %d\n", total)), 0o644); err != nil {
		b.Fatal(err)
	}
	return r
}

// rollDay rolls up the minutes of the day and hour before dashNow that are
// not yet (a writer that runs does so as they end; RollupTop goes back 2
// hours at most), once: then the 24 h dashboard reads them, as it does on
// a flowbox that ran the day, rather than half an hour of raw flows at
// its start.
func rollDay(b *testing.B, r *Reader) {
	ctx := context.Background()
	from, _, ok, err := r.topDone(ctx, topMinutes)
	if err != nil || !ok {
		b.Fatalf("minutes done: %v %v", ok, err)
	}
	t0 := time.Now()
	n := 0
	for t := dashNow.Add(-25 * time.Hour).Truncate(time.Minute); t.Before(from); t = t.Add(time.Minute) {
		if err := r.rollupStep(ctx, topMinutes, t); err != nil {
			b.Fatal(err)
		}
		n++
	}
	r.forgetDone()
	if n > 0 {
		b.Logf("rolled up the %d minutes before %s in %s", n, from.Format(time.RFC3339), time.Since(t0).Round(time.Second))
	}
}

// generateDashboard writes the month (flowmodel.Month) through w and
// returns its flows.
func generateDashboard(b *testing.B, w *FlowWriter) int {
	ctx := context.Background()
	var pending []store.Flow
	total, err := flowmodel.Month(1, func(buf []store.Flow, end time.Time, _ time.Duration) error {
		pending = append(pending, buf...)
		if len(pending) < maxInsertFlows && end.Before(dashNow) {
			return nil
		}
		err := w.Insert(ctx, pending)
		pending = pending[:0]
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}

// dashboard runs flowmodel.Dashboard.
func dashboard(b *testing.B, r *Reader, from, to time.Time) {
	if err := flowmodel.Dashboard(context.Background(), r, from, to); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDashboard24h measures the dashboard of the last 24 hours:
// minute totals, and the top-N lists of 22 rolled-up hours, the rolled-up
// minutes of the rest (the last, busiest hour and a half, and the first
// half hour: minutes roll up from 2 hours back only) and the raw flows
// of what is left.
func BenchmarkDashboard24h(b *testing.B) {
	r := dashboardReader(b)
	for b.Loop() {
		dashboard(b, r, dashNow.Add(-24*time.Hour), dashNow)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dashboard")
}

// BenchmarkDashboard30d measures the dashboard of the last 30 days.
func BenchmarkDashboard30d(b *testing.B) {
	r := dashboardReader(b)
	for b.Loop() {
		dashboard(b, r, dashNow.Add(-30*24*time.Hour), dashNow)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/dashboard")
}

// BenchmarkSearchIP1h measures the first page (100 flows, newest first) of
// a search for the busiest subscriber's address over the last hour.
func BenchmarkSearchIP1h(b *testing.B) {
	r := dashboardReader(b)
	ctx := context.Background()
	hour := store.SearchQuery{From: dashNow.Add(-time.Hour), To: dashNow, Limit: 100}
	top, err := r.Top(ctx, store.TopQuery{From: hour.From, To: hour.To, Dimension: store.DimLocalHost, N: 1})
	if err != nil || len(top.Entries) != 1 {
		b.Fatalf("top local host: %v", err)
	}
	q := hour
	q.Filter.Hosts = []netip.Prefix{netip.PrefixFrom(top.Entries[0].Addr, top.Entries[0].Addr.BitLen())}
	for b.Loop() {
		page, err := r.SearchFlows(ctx, q)
		if err != nil || len(page.Flows) != 100 {
			b.Fatalf("search: %v", err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/search")
}
