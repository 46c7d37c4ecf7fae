package store

import (
	"context"
	"time"
)

// ReportRunLog records the runs of scheduled reports (report/scheduler):
// a run is added when it starts and finished when its deliveries are done,
// so a run cut short by a crash stays visible, unfinished. A schedule's
// period succeeds at most once: finishing a second successful run of it is
// an error.
type ReportRunLog interface {
	// AddReportRun records a run that starts (Schedule, Period, From, To,
	// Started, CatchUp) and sets its ID.
	AddReportRun(ctx context.Context, run *ReportRun) error
	// FinishReportRun records the outcome of the run run.ID: Finished, OK,
	// Rows, Deliveries and Error.
	FinishReportRun(ctx context.Context, run *ReportRun) error
	// ReportRuns returns the latest runs of every schedule, newest first,
	// at most limit (limit <= 0: 100).
	ReportRuns(ctx context.Context, limit int) ([]ReportRun, error)
	// ScheduleRuns returns the runs of one schedule, the latest period
	// first (and, within a period, the latest run first), at most limit
	// (limit <= 0: 100).
	ScheduleRuns(ctx context.Context, schedule string, limit int) ([]ReportRun, error)
	// LastReportRuns returns, for each schedule that has runs, its latest
	// successful run (by period), in schedule name order.
	LastReportRuns(ctx context.Context) ([]ReportRun, error)
}

// ReportSchedule describes a configured report schedule: what it reports,
// where it delivers, when its next run is due, and its latest run.
type ReportSchedule struct {
	Name     string   `json:"name"`
	Every    string   `json:"every"`
	By       string   `json:"by"`
	TimeZone string   `json:"tz"`
	Targets  []string `json:"targets"`
	// NextPeriod is the next period to report and NextDue when its run is
	// due.
	NextPeriod string    `json:"next_period"`
	NextDue    time.Time `json:"next_due"`
	// LastRun is the schedule's latest run, nil before its first.
	LastRun *ReportRun `json:"last_run,omitempty"`
}
