package flowdb

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Rollup keys are byte strings. The "other" row has the empty key, so every
// real key is non-empty: an unknown string value is "\x00".
const otherKey = ""

func strKey(s string) string {
	if s == "" {
		return "\x00"
	}
	return s
}

func addrKey(a netip.Addr) string {
	if !a.IsValid() {
		return "\x00"
	}
	return string(a.Unmap().AsSlice())
}

// dimKeyOf returns the rollup key of f for dimension d.
func dimKeyOf(d store.Dimension, f *store.Flow, local, remote netip.Addr) string {
	switch d {
	case store.DimLocalHost:
		return addrKey(local)
	case store.DimRemoteHost:
		return addrKey(remote)
	case store.DimRemoteAS:
		as := f.DstAS
		if f.Direction.Inbound() {
			as = f.SrcAS
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], as)
		return string(b[:])
	case store.DimApplication:
		if f.Application != "" {
			return "A" + f.Application
		}
		port := f.ServicePort()
		return string([]byte{'P', f.Proto, byte(port >> 8), byte(port)})
	case store.DimCountry:
		if f.Direction.Inbound() {
			return strKey(f.SrcCountry)
		}
		return strKey(f.DstCountry)
	case store.DimConversation:
		l, r := addrKey(local), addrKey(remote)
		return string([]byte{byte(len(l))}) + l + r
	case store.DimSubscriber:
		return strKey(f.Subscriber)
	case store.DimDomain:
		return strKey(f.RemoteDomain)
	case store.DimProtocol:
		return string([]byte{0, 0, 0, f.Proto})
	}
	return "\x00"
}

// counters are scaled bytes and packets and a flow count.
type counters struct {
	bytes, packets, flows uint64
}

func (c *counters) add(o counters) {
	c.bytes += o.bytes
	c.packets += o.packets
	c.flows += o.flows
}

// flushRollups writes the accumulated minute rollups additively (so minutes
// flushed twice, e.g. for late flows, add up) and marks their hours for
// rebuilding. In the same transaction it records each raw partition's
// watermark (raw_partitions.rolled): every row written so far is in the
// rollups, so that a restart after a crash counts again exactly the rows
// written after this flush (replay.go). On error the rollups stay in memory
// for the next attempt.
func (s *FlowDB) flushRollups(ctx context.Context) error {
	w := s.wr
	// The watermarks say every row is counted: count the rows still being
	// replayed first.
	s.finishReplay(ctx)
	a := w.agg
	marks := w.marks[:0]
	for _, p := range w.parts {
		if p.rolled != p.nextID-1 {
			marks = append(marks, p)
		}
	}
	w.marks = marks
	if a.empty() && len(marks) == 0 {
		return nil
	}
	start := time.Now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot begin rollup flush: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	if err := a.write(ctx, tx); err != nil {
		return fmt.Errorf("cannot flush rollups: %w", store.DescribeWriteError(err))
	}
	for _, p := range marks {
		if _, err := tx.ExecContext(ctx, "UPDATE raw_partitions SET rolled = ? WHERE name = ?", p.nextID-1, p.name); err != nil {
			return fmt.Errorf("cannot record the rollup watermark of %s: %w", p.name, store.DescribeWriteError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot commit rollups: %w", store.DescribeWriteError(err))
	}
	for _, p := range marks {
		p.rolled = p.nextID - 1
	}
	clear(marks)
	a.reset()
	s.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	return nil
}

func (a *aggregator) write(ctx context.Context, tx *sql.Tx) error {
	const upsert = " ON CONFLICT DO UPDATE SET bytes = bytes + excluded.bytes, packets = packets + excluded.packets, flows = flows + excluded.flows"
	tot, err := tx.PrepareContext(ctx, "INSERT INTO tot_m (t, src, dir, bytes, packets, flows) VALUES (?,?,?,?,?,?)"+upsert)
	if err != nil {
		return err
	}
	defer tot.Close()
	hours := map[int64]struct{}{}
	for id, k := range a.buckets {
		c := a.tot[id]
		hours[k.t/3600*3600] = struct{}{}
		if _, err := tot.ExecContext(ctx, k.t, k.src, k.dir, clampInt(c.bytes), clampInt(c.packets), clampInt(c.flows)); err != nil {
			return err
		}
	}
	ifs, err := tx.PrepareContext(ctx, "INSERT INTO if_m (t, src, ifx, side, bytes, packets, flows) VALUES (?,?,?,?,?,?,?)"+upsert)
	if err != nil {
		return err
	}
	defer ifs.Close()
	for e := range a.ifs.all() {
		k, c := e.key, &e.c
		ts := a.ts[k.ts]
		if _, err := ifs.ExecContext(ctx, ts.t, ts.src, int64(k.ifx), k.side, clampInt(c.bytes), clampInt(c.packets), clampInt(c.flows)); err != nil {
			return err
		}
	}
	top, err := tx.PrepareContext(ctx, "INSERT INTO top_m (dim, t, src, dir, k, bytes, packets, flows) VALUES (?,?,?,?,?,?,?,?)"+upsert)
	if err != nil {
		return err
	}
	defer top.Close()
	for d := store.DimLocalHost; d < store.DimLocalHost+store.NumRollupDims; d++ {
		rows := a.topRows(d)
		for _, r := range rows {
			b := a.buckets[r.bucket]
			if _, err := top.ExecContext(ctx, d, b.t, b.src, b.dir, r.key,
				clampInt(r.c.bytes), clampInt(r.c.packets), clampInt(r.c.flows)); err != nil {
				return err
			}
		}
	}
	if err := a.writeUsage(ctx, tx); err != nil {
		return err
	}
	if err := a.writeSubDomains(ctx, tx); err != nil {
		return err
	}
	if err := a.writeSubApps(ctx, tx); err != nil {
		return err
	}
	if err := a.writeRates(ctx, tx); err != nil {
		return err
	}
	for h := range hours {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO rollup_pending (hour) VALUES (?)", h); err != nil {
			return err
		}
	}
	return nil
}

// hourGrace is how long after its end an hour is rebuilt from its minutes.
const hourGrace = 2 * time.Minute

// rebuildHours (re)builds the hour rollups of every pending hour that is
// over, from its minute rollups, keeping the top-K per dimension.
func (s *FlowDB) rebuildHours(ctx context.Context, now time.Time) error {
	rows, err := s.w.QueryContext(ctx, "SELECT hour FROM rollup_pending WHERE hour + 3600 <= ? ORDER BY hour",
		now.Add(-hourGrace).Unix())
	if err != nil {
		return fmt.Errorf("cannot list pending hours: %w", err)
	}
	var hours []int64
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return fmt.Errorf("cannot list pending hours: %w", err)
		}
		hours = append(hours, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot list pending hours: %w", err)
	}
	for _, h := range hours {
		if err := s.rebuildHour(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

func (s *FlowDB) rebuildHour(ctx context.Context, h int64) error {
	stmts := []stmt{
		{"DELETE FROM tot_h WHERE t = ?", []any{h}},
		{"DELETE FROM if_h WHERE t = ?", []any{h}},
		{`INSERT INTO tot_h (t, src, dir, bytes, packets, flows)
			SELECT ?1, src, dir, sum(bytes), sum(packets), sum(flows) FROM tot_m WHERE t >= ?1 AND t < ?1 + 3600 GROUP BY src, dir`, []any{h}},
		{`INSERT INTO if_h (t, src, ifx, side, bytes, packets, flows)
			SELECT ?1, src, ifx, side, sum(bytes), sum(packets), sum(flows) FROM if_m WHERE t >= ?1 AND t < ?1 + 3600 GROUP BY src, ifx, side`, []any{h}},
	}
	stmts = append(stmts, s.topRebuild("top_h", "top_m", h, 3600)...)
	stmts = append(stmts,
		stmt{"DELETE FROM rollup_pending WHERE hour = ?", []any{h}},
		stmt{"INSERT OR IGNORE INTO rollup_pending_day (day) VALUES (?)", []any{h / 86400 * 86400}})
	if err := s.execTx(ctx, stmts); err != nil {
		return fmt.Errorf("cannot rebuild hour rollups: %w", err)
	}
	return nil
}

// topRebuild returns the statements that rebuild the top-K rows of bucket
// t (of span seconds) of table dst from the finer table src: the top K
// keys per source and direction, and an "other" row with the rest.
func (s *FlowDB) topRebuild(dst, src string, t, span int64) []stmt {
	var out []stmt
	for d := store.DimLocalHost; d < store.DimLocalHost+store.NumRollupDims; d++ {
		out = append(out,
			stmt{"DELETE FROM " + dst + " WHERE dim = ? AND t = ?", []any{d, t}},
			stmt{`INSERT INTO ` + dst + ` (dim, t, src, dir, k, bytes, packets, flows)
				SELECT ?1, ?2, src, dir, CASE WHEN rn <= ?3 AND k != x'' THEN k ELSE x'' END AS kk, sum(b), sum(p), sum(f)
				FROM (SELECT src, dir, k, b, p, f, row_number() OVER (PARTITION BY src, dir ORDER BY k = x'', b DESC) AS rn
					FROM (SELECT src, dir, k, sum(bytes) AS b, sum(packets) AS p, sum(flows) AS f FROM ` + src + `
						WHERE dim = ?1 AND t >= ?2 AND t < ?2 + ?4 GROUP BY src, dir, k))
				GROUP BY src, dir, kk`, []any{d, t, s.cfg.TopK, span}})
	}
	return out
}

// execTx runs statements in one write transaction.
func (s *FlowDB) execTx(ctx context.Context, stmts []stmt) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.DescribeWriteError(err)
	}
	defer tx.Rollback()
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			return store.DescribeWriteError(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return store.DescribeWriteError(err)
	}
	return nil
}

// rebuildDays (re)builds the day top-K rollups of every pending day that
// is over and whose hours are all rebuilt, from its hour rollups.
func (s *FlowDB) rebuildDays(ctx context.Context, now time.Time) error {
	rows, err := s.w.QueryContext(ctx, `SELECT day FROM rollup_pending_day d WHERE day + 86400 <= ?
		AND NOT EXISTS (SELECT 1 FROM rollup_pending WHERE hour >= d.day AND hour < d.day + 86400) ORDER BY day`,
		now.Add(-hourGrace).Unix())
	if err != nil {
		return fmt.Errorf("cannot list pending days: %w", err)
	}
	var days []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return fmt.Errorf("cannot list pending days: %w", err)
		}
		days = append(days, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot list pending days: %w", err)
	}
	for _, d := range days {
		stmts := append(s.topRebuild("top_d", "top_h", d, 86400), subDomainsPrune(d)...)
		stmts = append(stmts, stmt{"DELETE FROM rollup_pending_day WHERE day = ?", []any{d}})
		if err := s.execTx(ctx, stmts); err != nil {
			return fmt.Errorf("cannot rebuild day rollups: %w", err)
		}
		if err := s.packSubApps(ctx, d); err != nil {
			return fmt.Errorf("cannot pack subscriber applications: %w", store.DescribeWriteError(err))
		}
	}
	return nil
}
