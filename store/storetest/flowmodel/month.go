package flowmodel

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/collector/netflowtest"
	"github.com/flowbox/flowbox/store"
)

// The month of the dashboard benchmarks (store/flowdb and
// store/clickhouse): one MikroTik router with 1,000 subscribers, 5,000
// flows/s at the evening peak following the model's daily curve, ending
// at MonthEnd, at the peak. Every flow of the last hour; 1 in
// MonthRawSampling from then to 14 days back, 1 in MonthOldSampling
// before (the flows carry their sampling rate, so every counter is scaled
// back to the full traffic).
const (
	MonthPeak        = 5000
	MonthDays        = 30
	MonthSubscribers = 1000
	MonthRawSampling = 50
	MonthOldSampling = 500
)

// MonthEnd is when the month ends.
var MonthEnd = time.Date(2026, 1, 14, 21, 30, 0, 0, time.UTC)

// Month generates the month, oldest first, in chunks (every second of the
// last hour, 10 seconds before): fn gets each chunk's flows (a buffer
// reused by the next call), enriched as router routerID's from
// 127.0.0.2:2055, its end, and its age at MonthEnd. It returns the flows
// generated, or fn's first error.
func Month(routerID int64, fn func(flows []store.Flow, end time.Time, age time.Duration) error) (int, error) {
	m, err := netflowtest.NewModel(netflowtest.ModelConfig{Seed: 42, Subscribers: MonthSubscribers})
	if err != nil {
		return 0, err
	}
	enr := NewEnricher(m)
	exp := netip.MustParseAddrPort("127.0.0.2:2055")
	var buf []store.Flow
	total := 0
	now := MonthEnd.Add(-MonthDays * 24 * time.Hour)
	for now.Before(MonthEnd) {
		age := MonthEnd.Sub(now)
		step, rate := 10*time.Second, MonthRawSampling
		switch {
		case age <= time.Hour:
			step, rate = time.Second, 1
		case age > 14*24*time.Hour:
			rate = MonthOldSampling
		}
		n := int(float64(MonthPeak) * m.Activity(now) * step.Seconds() / float64(rate))
		now = now.Add(step)
		buf = m.AppendFlows(buf[:0], n, now)
		enr.Enrich(buf, exp, routerID)
		if rate > 1 {
			for i := range buf {
				buf[i].SamplingRate = uint32(rate)
			}
		}
		total += n
		if err := fn(buf, now, age); err != nil {
			return total, err
		}
	}
	return total, nil
}

// DashboardStore is what a dashboard reads.
type DashboardStore interface {
	TimeSeries(ctx context.Context, q store.SeriesQuery) (*store.Series, error)
	Top(ctx context.Context, q store.TopQuery) (*store.TopResult, error)
}

// Dashboard runs what the console's dashboard asks for a range: the
// traffic by direction and seven top-10 lists.
func Dashboard(ctx context.Context, s DashboardStore, from, to time.Time) error {
	ser, err := s.TimeSeries(ctx, store.SeriesQuery{From: from, To: to, GroupBy: store.DimDirection})
	if err != nil {
		return fmt.Errorf("series: %w", err)
	}
	if len(ser.Lines) == 0 {
		return fmt.Errorf("series: no line")
	}
	for _, d := range []store.Dimension{store.DimLocalHost, store.DimRemoteHost, store.DimRemoteAS, store.DimApplication, store.DimCountry,
		store.DimConversation, store.DimProtocol} {
		top, err := s.Top(ctx, store.TopQuery{From: from, To: to, Dimension: d, N: 10})
		if err != nil {
			return fmt.Errorf("top %s: %w", d, err)
		}
		if len(top.Entries) == 0 {
			return fmt.Errorf("top %s: no entry", d)
		}
	}
	return nil
}
