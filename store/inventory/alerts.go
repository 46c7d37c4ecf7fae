package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// The inventory is the SQLite alert store.
var _ store.Alerts = (*Inventory)(nil)

const alertColumns = `id, kind, severity, router_id, router, target, subscriber, direction, started, updated, ended,
	peak_bps, peak_pps, peak_fps, peak_at, summary, evidence, acked_by, acked_at`

func milli(t time.Time) int64 { return t.UTC().UnixMilli() }

func nullMilli(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: milli(*t), Valid: true}
}

func fromNull(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.UnixMilli(n.Int64).UTC()
	return &t
}

// OpenAlert stores a new alert and sets its ID.
func (s *Inventory) OpenAlert(ctx context.Context, a *store.Alert) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO alerts (kind, severity, router_id, router, target, subscriber, direction,
		started, updated, ended, peak_bps, peak_pps, peak_fps, peak_at, summary, evidence) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		a.Kind, a.Severity, a.RouterID, a.Router, a.Target, a.Subscriber, a.Direction, milli(a.Started), milli(a.Updated),
		nullMilli(a.Ended), a.PeakBps, a.PeakPps, a.PeakFlowsPerS, milli(a.PeakAt), a.Summary, store.MarshalEvidence(a.Evidence))
	if err != nil {
		return fmt.Errorf("cannot store alert: %w", store.DescribeWriteError(err))
	}
	if a.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("cannot store alert: %w", err)
	}
	return nil
}

// UpdateAlert stores an alert's kind, severity, subscriber, peaks,
// evidence, summary and times.
func (s *Inventory) UpdateAlert(ctx context.Context, a *store.Alert) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE alerts SET kind=?, severity=?, subscriber=?, updated=?, ended=?, peak_bps=?,
		peak_pps=?, peak_fps=?, peak_at=?, summary=?, evidence=? WHERE id=?`,
		a.Kind, a.Severity, a.Subscriber, milli(a.Updated), nullMilli(a.Ended), a.PeakBps, a.PeakPps, a.PeakFlowsPerS,
		milli(a.PeakAt), a.Summary, store.MarshalEvidence(a.Evidence), a.ID)
	if err != nil {
		return fmt.Errorf("cannot update alert %d: %w", a.ID, store.DescribeWriteError(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("cannot update alert %d: %w", a.ID, store.ErrNotFound)
	}
	return nil
}

// AckAlert acknowledges an alert; an acknowledged alert keeps its first
// acknowledgement.
func (s *Inventory) AckAlert(ctx context.Context, id int64, by string, at time.Time) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "UPDATE alerts SET acked_by=?, acked_at=? WHERE id=? AND acked_by=''", by, milli(at), id)
	if err != nil {
		return fmt.Errorf("cannot acknowledge alert %d: %w", id, store.DescribeWriteError(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetAlert(ctx, id); err != nil {
			return fmt.Errorf("cannot acknowledge alert %d: %w", id, err)
		}
	}
	return nil
}

func scanAlert(sc interface{ Scan(...any) error }) (store.Alert, error) {
	var (
		a                        store.Alert
		started, updated, peakAt int64
		ended, acked             sql.NullInt64
		evidence                 string
	)
	if err := sc.Scan(&a.ID, &a.Kind, &a.Severity, &a.RouterID, &a.Router, &a.Target, &a.Subscriber, &a.Direction,
		&started, &updated, &ended, &a.PeakBps, &a.PeakPps, &a.PeakFlowsPerS, &peakAt, &a.Summary, &evidence,
		&a.AckedBy, &acked); err != nil {
		return a, err
	}
	a.Started, a.Updated, a.PeakAt = time.UnixMilli(started).UTC(), time.UnixMilli(updated).UTC(), time.UnixMilli(peakAt).UTC()
	a.Ended, a.AckedAt = fromNull(ended), fromNull(acked)
	if err := json.Unmarshal([]byte(evidence), &a.Evidence); err != nil {
		return a, fmt.Errorf("alert %d: bad evidence: %w", a.ID, err)
	}
	return a, nil
}

// GetAlert returns one alert.
func (s *Inventory) GetAlert(ctx context.Context, id int64) (store.Alert, error) {
	a, err := scanAlert(s.r.QueryRowContext(ctx, "SELECT "+alertColumns+" FROM alerts WHERE id=?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("alert %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("cannot read alert %d: %w", id, err)
	}
	return a, nil
}

// ListAlerts returns the alerts of a filter, newest first.
func (s *Inventory) ListAlerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error) {
	var (
		where []string
		args  []any
	)
	if f.Active {
		where = append(where, "ended IS NULL")
	}
	if !f.Since.IsZero() {
		where = append(where, "(ended IS NULL OR ended >= ?)")
		args = append(args, milli(f.Since))
	}
	for col, v := range map[string]string{"kind": f.Kind, "router": f.Router, "target": f.Target} {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	q := "SELECT " + alertColumns + " FROM alerts"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	q += " ORDER BY started DESC, id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot list alerts: %w", err)
	}
	defer rows.Close()
	out := []store.Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot list alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list alerts: %w", err)
	}
	return out, nil
}

// EndActiveAlerts ends every active alert at at.
func (s *Inventory) EndActiveAlerts(ctx context.Context, at time.Time) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	res, err := s.w.ExecContext(ctx, "UPDATE alerts SET ended=?, updated=? WHERE ended IS NULL", milli(at), milli(at))
	if err != nil {
		return 0, fmt.Errorf("cannot end active alerts: %w", store.DescribeWriteError(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// PruneAlerts deletes the alerts that ended before before, with their logs.
func (s *Inventory) PruneAlerts(ctx context.Context, before time.Time) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("cannot prune alerts: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	b := milli(before)
	for _, q := range []string{
		"DELETE FROM mitigation_actions WHERE alert_id IN (SELECT id FROM alerts WHERE ended IS NOT NULL AND ended < ?)",
		"DELETE FROM notification_attempts WHERE alert_id IN (SELECT id FROM alerts WHERE ended IS NOT NULL AND ended < ?)",
		// Logs of no alert (test sends) age like the alerts.
		"DELETE FROM notification_attempts WHERE alert_id = 0 AND at < ?",
		"DELETE FROM mitigation_actions WHERE alert_id = 0 AND at < ?",
	} {
		if _, err := tx.ExecContext(ctx, q, b); err != nil {
			return 0, fmt.Errorf("cannot prune alerts: %w", store.DescribeWriteError(err))
		}
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM alerts WHERE ended IS NOT NULL AND ended < ?", b)
	if err != nil {
		return 0, fmt.Errorf("cannot prune alerts: %w", store.DescribeWriteError(err))
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("cannot prune alerts: %w", store.DescribeWriteError(err))
	}
	return n, nil
}

// AddMitigationAction appends to the mitigation audit log.
func (s *Inventory) AddMitigationAction(ctx context.Context, m *store.MitigationAction) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO mitigation_actions (at, alert_id, router, action, kind, list, address,
		timeout_ms, dry_run, result) VALUES (?,?,?,?,?,?,?,?,?,?)`, milli(m.At), m.AlertID, m.Router, m.Action, m.Kind,
		m.List, m.Address, m.Timeout.Milliseconds(), m.DryRun, m.Result)
	if err != nil {
		return fmt.Errorf("cannot log mitigation action: %w", store.DescribeWriteError(err))
	}
	m.ID, _ = res.LastInsertId()
	return nil
}

// MitigationActions returns the newest actions (of one alert when
// alertID > 0).
func (s *Inventory) MitigationActions(ctx context.Context, alertID int64, limit int) ([]store.MitigationAction, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, at, alert_id, router, action, kind, list, address, timeout_ms, dry_run, result
		FROM mitigation_actions WHERE ? = 0 OR alert_id = ? ORDER BY id DESC LIMIT ?`, alertID, alertID, limit)
	if err != nil {
		return nil, fmt.Errorf("cannot read the mitigation log: %w", err)
	}
	defer rows.Close()
	out := []store.MitigationAction{}
	for rows.Next() {
		var (
			m         store.MitigationAction
			at, tmout int64
		)
		if err := rows.Scan(&m.ID, &at, &m.AlertID, &m.Router, &m.Action, &m.Kind, &m.List, &m.Address, &tmout, &m.DryRun, &m.Result); err != nil {
			return nil, fmt.Errorf("cannot read the mitigation log: %w", err)
		}
		m.At, m.Timeout = time.UnixMilli(at).UTC(), time.Duration(tmout)*time.Millisecond
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the mitigation log: %w", err)
	}
	return out, nil
}

// AddNotificationAttempt appends to the notification log.
func (s *Inventory) AddNotificationAttempt(ctx context.Context, n *store.NotificationAttempt) error {
	if err := s.writable(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO notification_attempts (at, alert_id, channel, event, attempt, ok, error)
		VALUES (?,?,?,?,?,?,?)`, milli(n.At), n.AlertID, n.Channel, n.Event, n.Attempt, n.OK, n.Error)
	if err != nil {
		return fmt.Errorf("cannot log notification: %w", store.DescribeWriteError(err))
	}
	n.ID, _ = res.LastInsertId()
	return nil
}

// NotificationAttempts returns the newest attempts (of one alert when
// alertID > 0).
func (s *Inventory) NotificationAttempts(ctx context.Context, alertID int64, limit int) ([]store.NotificationAttempt, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, at, alert_id, channel, event, attempt, ok, error
		FROM notification_attempts WHERE ? = 0 OR alert_id = ? ORDER BY id DESC LIMIT ?`, alertID, alertID, limit)
	if err != nil {
		return nil, fmt.Errorf("cannot read the notification log: %w", err)
	}
	defer rows.Close()
	out := []store.NotificationAttempt{}
	for rows.Next() {
		var (
			n  store.NotificationAttempt
			at int64
		)
		if err := rows.Scan(&n.ID, &at, &n.AlertID, &n.Channel, &n.Event, &n.Attempt, &n.OK, &n.Error); err != nil {
			return nil, fmt.Errorf("cannot read the notification log: %w", err)
		}
		n.At = time.UnixMilli(at).UTC()
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the notification log: %w", err)
	}
	return out, nil
}
