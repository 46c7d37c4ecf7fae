package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/report/scheduler"
	"github.com/flowbox/flowbox/store"
	storagepkg "github.com/flowbox/flowbox/store/storage"
)

// TestReportsConfig: the reports section is checked with the rest, its
// problems named by YAML path.
func TestReportsConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flowbox.yaml")
	yaml := `reports:
  time-zone: Mars/Olympus
  schedules:
    - name: billing
      every: day
      mail-to: [billing@example.net]
    - name: billing
      every: week
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	e := &env{stdout: &bytes.Buffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
	err := run(context.Background(), e, []string{"check", "--config", path, "--data-dir", t.TempDir()})
	want := "invalid config:\n" +
		`reports.time-zone: "Mars/Olympus" is not a known time zone (an IANA name such as Europe/Berlin, UTC or Local)` + "\n" +
		`reports.schedules[0] (billing).every: "day" is not one of month, week` + "\n" +
		"reports.schedules[0] (billing).mail-to: needs reports.smtp (host and from)\n" +
		`reports.schedules[1] (billing).name: "billing" is the name of another schedule` + "\n" +
		"reports.schedules[1] (billing): no delivery target: set folder (or reports.folder), mail-to or webhook.url"
	if err == nil || err.Error() != want {
		t.Errorf("flowbox check:\n got %v\nwant %s", err, want)
	}
}

// oneRowReporter makes a one-row report of every request.
type oneRowReporter struct{}

func (oneRowReporter) Report(_ context.Context, q store.ReportRequest) (*store.Report, error) {
	return &store.Report{Kind: q.Kind, Label: q.Label, From: q.From, To: q.To, Percentile: 95,
		Rows: []store.ReportRow{{Period: q.Label, From: q.From, To: q.To, Router: "tower-1", DownloadBytes: 10, TotalBytes: 10}}}, nil
}

// TestReportSchedulerOnStore runs the scheduler on the real inventory
// (synctest's clock starts on 2000-01-01 UTC): the last closed month at
// the first start, nothing more at a restart, January on February 1st;
// `flowbox stats` names a failed run.
func TestReportSchedulerOnStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		dataDir, folder := t.TempDir(), t.TempDir()
		st, err := storagepkg.Open(ctx, dataDir, storagepkg.DefaultConfig(), storagepkg.Shared, testutil.Logger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		cfg := scheduler.DefaultConfig()
		cfg.TimeZone = "UTC"
		cfg.Folder = folder
		cfg.Schedules = []scheduler.ScheduleConfig{{Name: "monthly", Every: scheduler.EveryMonth, By: store.ReportByRouter}}
		runFor := func(until time.Time) {
			s, err := newReportScheduler(cfg, oneRowReporter{}, st.Inventory, nil, testutil.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Run(rctx) }()
			time.Sleep(time.Until(until)) // fake clock (synctest)
			synctest.Wait()
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		runFor(time.Now())
		runFor(time.Now())
		runFor(time.Date(2000, 2, 1, 0, 15, 0, 0, time.UTC))
		runs, err := st.ReportRuns(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.Period+" "+r.Started.Format(time.RFC3339)+" "+map[bool]string{true: "ok", false: "failed"}[r.OK])
		}
		if diff := cmp.Diff(got, []string{"2000-01 2000-02-01T00:15:00Z ok", "1999-12 2000-01-01T00:15:00Z ok", "1999-11 2000-01-01T00:00:00Z ok"}); diff != "" {
			t.Errorf("runs (-got +want):\n%s", diff)
		}
		if _, err := os.Stat(filepath.Join(folder, "monthly-2000-01.csv")); err != nil {
			t.Error(err)
		}

		// A failed run, as `flowbox stats` shows it.
		bad := &store.ReportRun{Schedule: "weekly", Period: "2000-01-24..2000-01-30", Started: time.Date(2000, 1, 31, 0, 15, 0, 0, time.UTC)}
		if err := st.AddReportRun(ctx, bad); err != nil {
			t.Fatal(err)
		}
		bad.Finished = bad.Started.Add(time.Minute)
		bad.Deliveries = []store.ReportDelivery{{Target: "folder /x", OK: true}, {Target: "mail to a@b.example", Detail: "smtp down"}}
		if err := st.FinishReportRun(ctx, bad); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := printReportFailures(ctx, &out, st.Inventory); err != nil {
			t.Fatal(err)
		}
		want := "scheduled report runs: 4 latest, 1 failed\n" +
			"scheduled report weekly 2000-01-24..2000-01-30 failed at 2000-01-31T00:15:00Z: mail to a@b.example: smtp down\n"
		if diff := cmp.Diff(out.String(), want); diff != "" {
			t.Errorf("stats (-got +want):\n%s", diff)
		}
		out.Reset()
		if err := printReportFailures(ctx, &out, &emptyRuns{}); err != nil || out.Len() != 0 {
			t.Errorf("no runs: %q %v", out.String(), err)
		}
	})
}

// emptyRuns is a run log without runs.
type emptyRuns struct{ store.ReportRunLog }

func (emptyRuns) ReportRuns(context.Context, int) ([]store.ReportRun, error) { return nil, nil }
