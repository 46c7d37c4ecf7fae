package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// The inventory records the runs of scheduled reports.
var _ store.ReportRunLog = (*Inventory)(nil)

const reportRunColumns = `id, schedule, period, period_from, period_to, started, finished, ok, catch_up, rows, deliveries, error`

// defaultReportRunLimit is the number of runs a limit <= 0 returns.
const defaultReportRunLimit = 100

// AddReportRun records a run that starts and sets its ID.
func (s *Inventory) AddReportRun(ctx context.Context, run *store.ReportRun) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO report_runs (schedule, period, period_from, period_to, started, catch_up)
		VALUES (?,?,?,?,?,?)`, run.Schedule, run.Period, milli(run.From), milli(run.To), milli(run.Started), run.CatchUp)
	if err != nil {
		return fmt.Errorf("cannot record the report run of %s %s: %w", run.Schedule, run.Period, store.DescribeWriteError(err))
	}
	if run.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("cannot record the report run of %s %s: %w", run.Schedule, run.Period, err)
	}
	return nil
}

// FinishReportRun records the outcome of a run. A second successful run
// of a schedule's period is refused by the database (report_runs_ok).
func (s *Inventory) FinishReportRun(ctx context.Context, run *store.ReportRun) error {
	if err := s.writable(); err != nil {
		return err
	}
	deliveries := run.Deliveries
	if deliveries == nil {
		deliveries = []store.ReportDelivery{}
	}
	d, err := json.Marshal(deliveries)
	if err != nil {
		return fmt.Errorf("cannot encode the deliveries of report run %d: %w", run.ID, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE report_runs SET finished=?, ok=?, rows=?, deliveries=?, error=? WHERE id=?`,
		milli(run.Finished), run.OK, run.Rows, string(d), run.Error, run.ID)
	if err != nil {
		return fmt.Errorf("cannot finish report run %d: %w", run.ID, store.DescribeWriteError(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("cannot finish report run %d: %w", run.ID, store.ErrNotFound)
	}
	return nil
}

// ReportRuns returns the latest runs, newest first.
func (s *Inventory) ReportRuns(ctx context.Context, limit int) ([]store.ReportRun, error) {
	if limit <= 0 {
		limit = defaultReportRunLimit
	}
	return s.queryReportRuns(ctx, `SELECT `+reportRunColumns+` FROM report_runs ORDER BY started DESC, id DESC LIMIT ?`, limit)
}

// ScheduleRuns returns the runs of one schedule, the latest period first.
func (s *Inventory) ScheduleRuns(ctx context.Context, schedule string, limit int) ([]store.ReportRun, error) {
	if limit <= 0 {
		limit = defaultReportRunLimit
	}
	return s.queryReportRuns(ctx, `SELECT `+reportRunColumns+` FROM report_runs WHERE schedule = ?
		ORDER BY period_from DESC, id DESC LIMIT ?`, schedule, limit)
}

// LastReportRuns returns each schedule's latest successful run.
func (s *Inventory) LastReportRuns(ctx context.Context) ([]store.ReportRun, error) {
	return s.queryReportRuns(ctx, `SELECT `+reportRunColumns+` FROM report_runs r WHERE ok = 1
		AND period_from = (SELECT MAX(period_from) FROM report_runs WHERE schedule = r.schedule AND ok = 1)
		ORDER BY schedule`)
}

func (s *Inventory) queryReportRuns(ctx context.Context, query string, args ...any) ([]store.ReportRun, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read report runs: %w", err)
	}
	defer rows.Close()
	var out []store.ReportRun
	for rows.Next() {
		var (
			r                 store.ReportRun
			from, to, started int64
			finished          sql.NullInt64
			deliveries        string
		)
		if err := rows.Scan(&r.ID, &r.Schedule, &r.Period, &from, &to, &started, &finished, &r.OK, &r.CatchUp,
			&r.Rows, &deliveries, &r.Error); err != nil {
			return nil, fmt.Errorf("cannot read report runs: %w", err)
		}
		r.From, r.To, r.Started = time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC(), time.UnixMilli(started).UTC()
		if finished.Valid {
			r.Finished = time.UnixMilli(finished.Int64).UTC()
		}
		if err := json.Unmarshal([]byte(deliveries), &r.Deliveries); err != nil {
			return nil, fmt.Errorf("cannot read the deliveries of report run %d: %w", r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read report runs: %w", err)
	}
	return out, nil
}
