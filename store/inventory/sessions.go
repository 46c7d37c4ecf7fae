package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// SaveSession stores a console session.
func (s *Inventory) SaveSession(ctx context.Context, ss store.Session) error {
	if err := s.writable(); err != nil {
		return err
	}
	if ss.Hash == "" || ss.User == "" {
		return errors.New("cannot save session: hash and user are required")
	}
	_, err := s.w.ExecContext(ctx, "INSERT OR REPLACE INTO console_sessions (hash, user_name, created_at, expires_at) VALUES (?,?,?,?)",
		ss.Hash, ss.User, ss.CreatedAt.UTC().UnixMilli(), ss.ExpiresAt.UTC().UnixMilli())
	if err != nil {
		return fmt.Errorf("cannot save session: %w", store.DescribeWriteError(err))
	}
	return nil
}

// LiveSessions returns the sessions that have not expired at now, of users
// that still exist, oldest first, at most limit of them (the newest).
func (s *Inventory) LiveSessions(ctx context.Context, now time.Time, limit int) ([]store.Session, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT hash, user_name, created_at, expires_at FROM (
			SELECT * FROM console_sessions WHERE expires_at > ? AND user_name IN (SELECT name FROM users)
			ORDER BY created_at DESC, hash LIMIT ?)
		ORDER BY created_at, hash`, now.UTC().UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("cannot list sessions: %w", err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		var ss store.Session
		var created, expires int64
		if err := rows.Scan(&ss.Hash, &ss.User, &created, &expires); err != nil {
			return nil, fmt.Errorf("cannot list sessions: %w", err)
		}
		ss.CreatedAt, ss.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
		out = append(out, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot list sessions: %w", err)
	}
	return out, nil
}

// DeleteSessions ends the sessions with the given hashes (unknown ones are
// ignored).
func (s *Inventory) DeleteSessions(ctx context.Context, hashes ...string) error {
	if len(hashes) == 0 {
		return nil
	}
	if err := s.writable(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot delete sessions: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, "DELETE FROM console_sessions WHERE hash = ?", h); err != nil {
			return fmt.Errorf("cannot delete sessions: %w", store.DescribeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot delete sessions: %w", store.DescribeWriteError(err))
	}
	return nil
}

// DeleteUserSessions ends every session of user except the one whose hash
// is except (empty for none).
func (s *Inventory) DeleteUserSessions(ctx context.Context, user, except string) error {
	if err := s.writable(); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM console_sessions WHERE user_name = ? AND hash != ?", user, except); err != nil {
		return fmt.Errorf("cannot delete the sessions of %q: %w", user, store.DescribeWriteError(err))
	}
	return nil
}

// DeleteExpiredSessions removes the sessions expired at now and returns
// how many.
func (s *Inventory) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM console_sessions WHERE expires_at <= ?", now.UTC().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("cannot delete expired sessions: %w", store.DescribeWriteError(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}
