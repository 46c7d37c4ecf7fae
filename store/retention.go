package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// maintain runs once a minute in the writer: it flushes the minute
// rollups, rebuilds finished hours, indexes closed partitions and applies
// retention. Errors are logged and reflected in Health; the next run retries.
func (s *Store) maintain(ctx context.Context) {
	now := s.now()
	if err := s.flushRollups(ctx); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.rebuildHours(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.indexClosedPartitions(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.applyRetention(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
}

// indexClosedPartitions builds the address indexes of partitions that ended
// more than indexDelay ago. While a partition is open it has no index, so
// inserts stay fast; searches scan it.
func (s *Store) indexClosedPartitions(ctx context.Context, now time.Time) error {
	w := s.wr
	var todo []*partition
	for _, p := range w.parts {
		if !p.indexed && p.start+partitionSpan.Milliseconds()+indexDelay.Milliseconds() <= now.UnixMilli() {
			todo = append(todo, p)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].start < todo[j].start })
	for _, p := range todo {
		start := time.Now()
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("cannot index partition %s: %w", p.name, describeWriteError(err))
		}
		for _, q := range []string{
			"CREATE INDEX IF NOT EXISTS " + p.name + "_a ON " + p.name + " (a)",
			"CREATE INDEX IF NOT EXISTS " + p.name + "_b ON " + p.name + " (b)",
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				tx.Rollback()
				return fmt.Errorf("cannot index partition %s: %w", p.name, describeWriteError(err))
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE partitions SET indexed = 1 WHERE start = ?", p.start/1000); err != nil {
			tx.Rollback()
			return fmt.Errorf("cannot index partition %s: %w", p.name, describeWriteError(err))
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("cannot index partition %s: %w", p.name, describeWriteError(err))
		}
		p.indexed = true
		p.closeStatements()
		s.metrics.indexSeconds.Observe(time.Since(start).Seconds())
	}
	return nil
}

// applyRetention drops raw partitions that ended before the raw window and
// deletes rollups older than their retention.
func (s *Store) applyRetention(ctx context.Context, now time.Time) error {
	w := s.wr
	rawCut := now.Add(-s.cfg.RawRetention).UnixMilli()
	for start, p := range w.parts {
		if start+partitionSpan.Milliseconds() > rawCut {
			continue
		}
		p.closeStatements()
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("cannot drop partition %s: %w", p.name, describeWriteError(err))
		}
		if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+p.name); err != nil {
			tx.Rollback()
			return fmt.Errorf("cannot drop partition %s: %w", p.name, describeWriteError(err))
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM partitions WHERE start = ?", start/1000); err != nil {
			tx.Rollback()
			return fmt.Errorf("cannot drop partition %s: %w", p.name, describeWriteError(err))
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("cannot drop partition %s: %w", p.name, describeWriteError(err))
		}
		delete(w.parts, start)
		s.logger.Debug("dropped raw partition", "partition", p.name)
	}
	s.metrics.partitions.Set(float64(len(w.parts)))
	minCut := now.Add(-s.cfg.MinuteRetention).Unix()
	hourCut := now.Add(-s.cfg.HourRetention).Unix()
	qs := []struct {
		q   string
		arg []any
	}{
		{"DELETE FROM tot_m WHERE t < ?", []any{minCut}},
		{"DELETE FROM if_m WHERE t < ?", []any{minCut}},
		{"DELETE FROM tot_h WHERE t < ?", []any{hourCut}},
		{"DELETE FROM if_h WHERE t < ?", []any{hourCut}},
		{"DELETE FROM rollup_pending WHERE hour < ?", []any{minCut - 3600}},
	}
	for d := DimLocalHost; d < DimLocalHost+numRollupDims; d++ {
		qs = append(qs, struct {
			q   string
			arg []any
		}{"DELETE FROM top_m WHERE dim = ? AND t < ?", []any{d, minCut}},
			struct {
				q   string
				arg []any
			}{"DELETE FROM top_h WHERE dim = ? AND t < ?", []any{d, hourCut}})
	}
	for _, q := range qs {
		if _, err := s.w.ExecContext(ctx, q.q, q.arg...); err != nil {
			return fmt.Errorf("cannot apply rollup retention: %w", describeWriteError(err))
		}
	}
	return nil
}
