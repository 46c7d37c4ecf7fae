package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowbox/flowbox/store"
)

func TestReportRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	oct := time.Date(2026, 10, 1, 3, 0, 0, 0, time.UTC)
	nov := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	dec := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	add := func(schedule, period string, from, to, started time.Time) *store.ReportRun {
		t.Helper()
		r := &store.ReportRun{Schedule: schedule, Period: period, From: from, To: to, Started: started, CatchUp: period == "2026-10"}
		if err := s.AddReportRun(ctx, r); err != nil {
			t.Fatalf("AddReportRun: %v", err)
		}
		return r
	}
	finish := func(r *store.ReportRun, ok bool, msg string) error {
		r.Finished, r.OK, r.Rows, r.Error = r.Started.Add(time.Minute), ok, 3, msg
		r.Deliveries = []store.ReportDelivery{{Target: "folder /tmp/x", OK: ok, Detail: msg}}
		return s.FinishReportRun(ctx, r)
	}
	a := add("monthly", "2026-10", oct, nov, nov.Add(time.Hour))
	if err := finish(a, true, ""); err != nil {
		t.Fatal(err)
	}
	b := add("monthly", "2026-11", nov, dec, dec.Add(time.Hour))
	if err := finish(b, false, "mail: refused"); err != nil {
		t.Fatal(err)
	}
	c := add("monthly", "2026-11", nov, dec, dec.Add(2*time.Hour))
	if err := finish(c, true, ""); err != nil {
		t.Fatal(err)
	}
	// A second success of one period is refused.
	d := add("monthly", "2026-11", nov, dec, dec.Add(3*time.Hour))
	if err := finish(d, true, ""); err == nil {
		t.Fatal("a second successful run of a period was accepted")
	}
	e := add("weekly", "2026-11-23..2026-11-29", nov.AddDate(0, 0, 22), nov.AddDate(0, 0, 29), dec.Add(-time.Hour))

	all, err := s.ReportRuns(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, r := range all {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff(ids, []int64{d.ID, c.ID, b.ID, e.ID, a.ID}); diff != "" {
		t.Errorf("ReportRuns ids (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(all[1], *c); diff != "" {
		t.Errorf("ReportRuns[1] (-got +want):\n%s", diff)
	}
	if !all[3].Finished.IsZero() || len(all[3].Deliveries) != 0 {
		t.Errorf("unfinished run: %+v", all[3])
	}
	runs, err := s.ScheduleRuns(ctx, "monthly", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != d.ID || runs[1].ID != c.ID {
		t.Errorf("ScheduleRuns: %+v", runs)
	}
	last, err := s.LastReportRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 1 || last[0].ID != c.ID {
		t.Errorf("LastReportRuns: %+v", last)
	}
	// Unknown run.
	if err := s.FinishReportRun(ctx, &store.ReportRun{ID: 999}); err == nil {
		t.Error("finishing an unknown run succeeded")
	}
}
