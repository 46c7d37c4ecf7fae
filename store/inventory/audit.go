package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// maxAuditPage bounds one page of the audit log.
const maxAuditPage = 1000

// AddAudit appends an entry to the audit log. A zero At becomes now.
func (s *Inventory) AddAudit(ctx context.Context, e store.AuditEntry) error {
	if err := s.writable(); err != nil {
		return err
	}
	if e.Action == "" {
		return errors.New("cannot write the audit log: an action is required")
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	ok := 0
	if e.OK {
		ok = 1
	}
	_, err := s.w.ExecContext(ctx, "INSERT INTO audit_log (at, actor, action, target, detail, client, ok) VALUES (?,?,?,?,?,?,?)",
		e.At.UTC().UnixMilli(), e.Actor, e.Action, e.Target, e.Detail, e.Client, ok)
	if err != nil {
		return fmt.Errorf("cannot write the audit log: %w", store.DescribeWriteError(err))
	}
	return nil
}

// AuditLog returns a page of the audit log, newest first: the entries
// before q.Before (0: from the newest), at most q.Limit (1 to 1000).
func (s *Inventory) AuditLog(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	if q.Limit <= 0 || q.Limit > maxAuditPage {
		return nil, fmt.Errorf("%w: limit must be 1 to %d", store.ErrBadQuery, maxAuditPage)
	}
	before := q.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, at, actor, action, target, detail, client, ok FROM audit_log
		WHERE id < ? ORDER BY id DESC LIMIT ?`, before, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("cannot read the audit log: %w", err)
	}
	defer rows.Close()
	out := []store.AuditEntry{}
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		var ok int
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Client, &ok); err != nil {
			return nil, fmt.Errorf("cannot read the audit log: %w", err)
		}
		e.At, e.OK = store.FromMilli(at), ok != 0
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the audit log: %w", err)
	}
	return out, nil
}

// PruneAudit removes the entries older than ret.MaxAge before now and
// those beyond the ret.MaxRows newest, and returns how many it removed.
func (s *Inventory) PruneAudit(ctx context.Context, now time.Time, ret store.AuditRetention) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	var n int64
	err := s.inTx(ctx, "cannot prune the audit log", func(tx *sql.Tx) error {
		if ret.MaxAge > 0 {
			res, err := tx.ExecContext(ctx, "DELETE FROM audit_log WHERE at < ?", now.Add(-ret.MaxAge).UTC().UnixMilli())
			if err != nil {
				return fmt.Errorf("cannot prune the audit log: %w", store.DescribeWriteError(err))
			}
			k, _ := res.RowsAffected()
			n += k
		}
		if ret.MaxRows > 0 {
			res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE id <= (
				SELECT id FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET ?)`, ret.MaxRows)
			if err != nil {
				return fmt.Errorf("cannot prune the audit log: %w", store.DescribeWriteError(err))
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
