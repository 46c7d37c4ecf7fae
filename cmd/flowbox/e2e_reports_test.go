package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowbox/flowbox/internal/testutil"
	"github.com/flowbox/flowbox/store"
)

// TestE2EReports runs serve with a monthly schedule writing to a folder:
// the console's report API answers from the real builder (JSON and CSV,
// 400 for a bad period), the Reports page loads its script, and the
// scheduler's catch-up runs of the last closed months are listed by
// /api/v1/reports/runs and by `flowbox report runs` while serve runs.
func TestE2EReports(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "reports")
	a := startServeInProcess(t, "", fmt.Sprintf("reports:\n  time-zone: UTC\n  folder: %s\n  schedules:\n    - name: monthly-billing\n      every: month\n", folder))
	c := login(t, a.base, "admin", "e2e-admin-pw")

	month := time.Now().UTC().Format("2006-01")
	var rep store.Report
	if code := c.get("/api/v1/reports?period="+month+"&tz=UTC&by=router", &rep); code != http.StatusOK {
		t.Fatalf("GET /api/v1/reports: %d", code)
	}
	if rep.Label != month || rep.Kind != "router" || rep.TimeZone != "UTC" || rep.Percentile != 95 || rep.Rows == nil || rep.Generated.IsZero() {
		t.Errorf("the report: %+v", rep)
	}
	if code := c.get("/api/v1/reports?period=2026-13", nil); code != http.StatusBadRequest {
		t.Errorf("a bad period: %d, want 400", code)
	}
	resp, err := c.http.Get(a.base + "/api/v1/reports?period=" + month + "&tz=UTC&format=csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(recs) < 1 || recs[0][0] != "period" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="flowbox-report-subscriber-`+month+`.csv"` {
		t.Errorf("the CSV: %d %q %q %v", resp.StatusCode, resp.Header.Get("Content-Disposition"), recs, err)
	}
	resp, err = c.http.Get(a.base + "/reports")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "/static/reports.js") || strings.Contains(string(page), `id="reports-disabled"`) {
		t.Errorf("the Reports page: %d", resp.StatusCode)
	}

	// The schedule catches up on the last closed months at the start.
	var runs struct {
		Configured bool                   `json:"configured"`
		Schedules  []store.ReportSchedule `json:"schedules"`
		Runs       []store.ReportRun      `json:"runs"`
	}
	testutil.WaitFor(t, 60*time.Second, "the catch-up runs", func() (bool, string) {
		if code := c.get("/api/v1/reports/runs", &runs); code != http.StatusOK {
			return false, fmt.Sprint("status ", code)
		}
		done := 0
		for _, r := range runs.Runs {
			if !r.Finished.IsZero() {
				done++
			}
		}
		return runs.Configured && done > 0, fmt.Sprintf("%+v\n%s", runs, a.stderr.String())
	})
	if len(runs.Schedules) != 1 || runs.Schedules[0].Name != "monthly-billing" || !runs.Schedules[0].NextDue.After(time.Now().Add(-time.Hour)) ||
		len(runs.Schedules[0].Targets) != 1 || runs.Schedules[0].LastRun == nil {
		t.Errorf("the schedules: %+v", runs.Schedules)
	}
	r := runs.Runs[len(runs.Runs)-1]
	if r.Schedule != "monthly-billing" || !r.CatchUp || len(r.Deliveries) == 0 || !strings.HasPrefix(r.Deliveries[0].Target, "folder ") {
		t.Errorf("the oldest run: %+v", r)
	}
	out, err := runWithEnv(nil, "report", "runs", "--config", a.cfgPath)
	if err != nil || !strings.Contains(out, "monthly-billing") || !strings.Contains(out, "catch-up") {
		t.Errorf("flowbox report runs while serve runs: %v\n%s", err, out)
	}
	last := time.Now().UTC().AddDate(0, 0, -time.Now().UTC().Day()).Format("2006-01")
	out, err = runWithEnv(nil, "report", "--config", a.cfgPath, "--period", last, "--tz", "UTC", "--by", "fleet")
	if err != nil || !strings.Contains(out, "Report "+last) || !strings.Contains(out, "the whole fleet") {
		t.Errorf("flowbox report while serve runs: %v\n%s", err, out)
	}
}
