package flowdb

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/flowbox/flowbox/store"
)

// maintain runs once a minute in the writer: it flushes the minute
// rollups, rebuilds finished hours, closes partitions (writing their host
// index) and applies retention. Errors are logged and reflected in Health;
// the next run retries.
func (s *FlowDB) maintain(ctx context.Context) {
	now := s.now()
	if err := s.natFlush(ctx, now, false); err != nil {
		s.setHealth(err)
	}
	if err := s.flushRollups(ctx); err != nil {
		s.setHealth(err)
		return
	}
	s.housekeep(ctx, now)
}

// housekeep is maintain without the rollup flush: Run does it at start,
// while the rollups of an unclean stop may still be being replayed.
func (s *FlowDB) housekeep(ctx context.Context, now time.Time) {
	if err := s.rebuildHours(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.rebuildDays(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.packRates(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.closePartitions(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.applyRetention(ctx, now); err != nil {
		s.setHealth(err)
		return
	}
	if err := s.natRetention(ctx, now); err != nil {
		s.setHealth(err)
	}
	s.wakePacker()
}

// closePartitions writes the host index tail of format 2 partitions that
// ended more than indexDelay ago as a segment (and, later, the tails of the
// late flows such a partition still receives), and builds the SQL address
// indexes of format 1 partitions left open by an older flowbox.
func (s *FlowDB) closePartitions(ctx context.Context, now time.Time) error {
	w := s.wr
	closedBefore := now.Add(-partitionSpan - indexDelay).UnixMilli()
	var todo []*partition
	for _, p := range w.parts {
		if p.start > closedBefore {
			continue
		}
		n := p.tail.postings
		late := n >= lateSpillPostings || (n > 0 && now.Sub(p.tail.since) >= lateSpillAge)
		if !p.closed || late {
			todo = append(todo, p)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].start < todo[j].start })
	for _, p := range todo {
		n := p.tail.postings
		if err := s.spill(ctx, p); err != nil {
			return err
		}
		w.postings -= n
		if !p.closed {
			if _, err := s.w.ExecContext(ctx, "UPDATE raw_partitions SET closed = 1 WHERE name = ?", p.name); err != nil {
				return fmt.Errorf("cannot close partition %s: %w", p.name, store.DescribeWriteError(err))
			}
			p.closed = true
			p.closeStatements()
		}
	}
	s.metrics.tailPostings.Set(float64(w.postings))
	return s.indexLegacyPartitions(ctx, now)
}

// indexLegacyPartitions builds the address indexes of format 1 partitions
// that ended more than indexDelay ago.
func (s *FlowDB) indexLegacyPartitions(ctx context.Context, now time.Time) error {
	w := s.wr
	var todo []*partition
	for _, p := range w.legacy {
		if !p.closed && p.start+partitionSpan.Milliseconds()+indexDelay.Milliseconds() <= now.UnixMilli() {
			todo = append(todo, p)
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].start < todo[j].start })
	for _, p := range todo {
		start := time.Now()
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("cannot index partition %s: %w", p.name, store.DescribeWriteError(err))
		}
		for _, q := range []stmt{
			{"CREATE INDEX IF NOT EXISTS " + p.name + "_a ON " + p.name + " (a)", nil},
			{"CREATE INDEX IF NOT EXISTS " + p.name + "_b ON " + p.name + " (b)", nil},
			{"UPDATE raw_partitions SET closed = 1 WHERE name = ?", []any{p.name}},
		} {
			if _, err := tx.ExecContext(ctx, q.q, q.args...); err != nil {
				tx.Rollback()
				return fmt.Errorf("cannot index partition %s: %w", p.name, store.DescribeWriteError(err))
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("cannot index partition %s: %w", p.name, store.DescribeWriteError(err))
		}
		p.closed = true
		s.metrics.indexSeconds.Observe(time.Since(start).Seconds())
	}
	return nil
}

// applyRetention drops raw partitions that ended before the raw window and
// deletes rollups older than their retention.
func (s *FlowDB) applyRetention(ctx context.Context, now time.Time) error {
	w := s.wr
	rawCut := now.Add(-s.cfg.RawRetention).UnixMilli()
	for _, m := range []map[int64]*partition{w.parts, w.legacy} {
		for start, p := range m {
			if start+partitionSpan.Milliseconds() > rawCut || p.replaying() {
				// A partition whose rows are being counted into the rollups
				// again leaves once that is done (the next maintenance).
				continue
			}
			if err := s.dropPartition(ctx, p); err != nil {
				return err
			}
			delete(m, start)
			s.logger.Debug("dropped raw partition", "partition", p.name)
		}
	}
	s.metrics.partitions.Set(float64(len(w.parts) + len(w.legacy)))
	s.metrics.tailPostings.Set(float64(w.postings))
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
		{"DELETE FROM usage_h WHERE t < ?", []any{now.Add(-s.cfg.UsageHourRetention).Unix()}},
		{"DELETE FROM usage_d WHERE t < ?", []any{hourCut}},
		{"DELETE FROM subdom_d WHERE t < ?", []any{hourCut}},
		{"DELETE FROM subapp_d WHERE t < ?", []any{hourCut}},
		{"DELETE FROM subapp_day WHERE t < ?", []any{hourCut}},
		{"DELETE FROM rate5 WHERE t < ?", []any{hourCut}},
		{"DELETE FROM rate5_d WHERE d < ?", []any{hourCut - 86400}},
		{"DELETE FROM rate5_keys WHERE last < ?", []any{hourCut - 86400}},
		{"DELETE FROM rate_sum WHERE f < ?", []any{hourCut}},
		{"DELETE FROM rate_done WHERE f < ?", []any{hourCut}},
		{"DELETE FROM rollup_pending WHERE hour < ?", []any{minCut - 3600}},
		{"DELETE FROM rollup_pending_day WHERE day < ?", []any{hourCut - 86400}},
	}
	for d := store.DimLocalHost; d < store.DimLocalHost+store.NumRollupDims; d++ {
		qs = append(qs, struct {
			q   string
			arg []any
		}{"DELETE FROM top_m WHERE dim = ? AND t < ?", []any{d, minCut}},
			struct {
				q   string
				arg []any
			}{"DELETE FROM top_h WHERE dim = ? AND t < ?", []any{d, hourCut}},
			struct {
				q   string
				arg []any
			}{"DELETE FROM top_d WHERE dim = ? AND t < ?", []any{d, hourCut}})
	}
	for _, q := range qs {
		if _, err := s.w.ExecContext(ctx, q.q, q.arg...); err != nil {
			return fmt.Errorf("cannot apply rollup retention: %w", store.DescribeWriteError(err))
		}
	}
	return nil
}

// dropPartition drops a raw partition's tables and metadata in one
// transaction.
func (s *FlowDB) dropPartition(ctx context.Context, p *partition) error {
	p.closeStatements()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot drop partition %s: %w", p.name, store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	qs := []stmt{{"DROP TABLE IF EXISTS " + p.name, nil}}
	if p.format == formatV2 {
		qs = append(qs, stmt{"DROP TABLE IF EXISTS " + indexTable(p.name), nil},
			stmt{"DROP TABLE IF EXISTS " + packTable(p.name), nil},
			stmt{"DELETE FROM raw_segments WHERE part = ?", []any{p.name}})
	}
	qs = append(qs, stmt{"DELETE FROM raw_partitions WHERE name = ?", []any{p.name}})
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q.q, q.args...); err != nil {
			return fmt.Errorf("cannot drop partition %s: %w", p.name, store.DescribeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot drop partition %s: %w", p.name, store.DescribeWriteError(err))
	}
	s.lists.drop(p.name)
	if p.tail != nil {
		s.wr.postings -= p.tail.postings
		p.tail.reset(0, &s.wr.chunks)
		s.setTail(p.name, nil)
	}
	return nil
}

// stmt is an SQL statement with its arguments.
type stmt struct {
	q    string
	args []any
}
