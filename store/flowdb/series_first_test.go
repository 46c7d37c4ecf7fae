package flowdb

import (
	"context"
	"testing"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TestSeriesFirstMinutes checks that a router's first minutes are in every
// range's series: the 24 h (5-minute buckets), 7 d (30-minute) and 30 d
// (3-hour and 1-hour) series the console asks for read the minute rollups
// for the part the hour rollups do not hold yet, before and after the
// hour that holds them is rebuilt, across an hour boundary.
func TestSeriesFirstMinutes(t *testing.T) {
	// 10:02:30: the flows span 09:59:30 to 10:02:20, across 10:00, and
	// hour 09 is not rebuilt yet (its grace runs to 10:02).
	now := time.Date(2025, 3, 10, 10, 2, 30, 0, time.UTC)
	s := openAt(t, t.TempDir(), now)
	flows := genFlows(600, now)
	for i := range flows {
		flows[i].End = now.Add(-10*time.Second - time.Duration(i%170)*time.Second).UnixMilli()
		flows[i].Start = flows[i].End - 1000
	}
	want := expected(flows, func(*store.Flow) bool { return true })
	ingest(t, s, flows)
	check := func(when string) {
		t.Helper()
		for _, c := range []struct{ span, step time.Duration }{
			{time.Hour, time.Minute}, {24 * time.Hour, 5 * time.Minute}, {7 * 24 * time.Hour, 30 * time.Minute},
			{30 * 24 * time.Hour, 3 * time.Hour}, {30 * 24 * time.Hour, 0},
		} {
			ser, err := s.TimeSeries(context.Background(), store.SeriesQuery{From: now.Add(-c.span), To: now, Step: c.step, GroupBy: store.DimDirection})
			if err != nil {
				t.Fatalf("%s: %s series: %v", when, c.span, err)
			}
			if got := seriesSum(ser); got != want {
				t.Errorf("%s: %s series (step %s, %s): %+v, want %+v", when, c.span, ser.Step, ser.Resolution, got, want)
			}
			// The data is in the last buckets, never past the answer's end.
			last := ser.Times[len(ser.Times)-1]
			if last.After(now) || !last.Add(ser.Step).After(now) {
				t.Errorf("%s: %s series ends with the bucket at %s, want the one holding %s", when, c.span, last, now)
			}
		}
	}
	check("before the hour rebuild")
	// Later the hours are rebuilt: the 1-hour series read hour 09 from the
	// hour rollups and 10:00 onwards from the minutes.
	s.now = func() time.Time { return now.Add(5 * time.Minute) }
	s.maintain(context.Background())
	check("after the hour rebuild")
}
