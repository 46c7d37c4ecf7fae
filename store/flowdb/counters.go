package flowdb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Interface counters (coverage, issue 17): the routers' own rx/tx counters
// as deltas per minute (ifctr_m) and hour (ifctr_h), and the counter
// poller's state per router (coverage_state). Retention follows the flow
// rollups of the same resolution.

// fullMinuteMs and fullHourMs are the spans a bucket's counters must cover
// to be compared with its flows: a bucket the polls covered only in part
// (the first and last minute of polling) would compare part of the
// counters with all of the flows.
const (
	fullMinuteMs = 59_000
	fullHourMs   = 59 * 60_000
)

// SaveCounterDeltas adds the deltas to the minute buckets they span, each
// in proportion to its overlap with the minute.
func (s *FlowDB) SaveCounterDeltas(ctx context.Context, ds []store.CounterDelta) error {
	if len(ds) == 0 {
		return nil
	}
	if err := s.writable(); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("cannot save interface counters: %w", store.DescribeWriteError(err))
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO ifctr_m (t, src, ifx, rx_bytes, tx_bytes, rx_packets, tx_packets, span_ms)
		VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET rx_bytes = rx_bytes + excluded.rx_bytes,
		tx_bytes = tx_bytes + excluded.tx_bytes, rx_packets = rx_packets + excluded.rx_packets,
		tx_packets = tx_packets + excluded.tx_packets, span_ms = span_ms + excluded.span_ms`)
	if err != nil {
		return fmt.Errorf("cannot save interface counters: %w", store.DescribeWriteError(err))
	}
	defer stmt.Close()
	for _, d := range ds {
		for _, b := range SpreadDelta(d) {
			if _, err := stmt.ExecContext(ctx, b.T, d.RouterID, int64(d.Index), clampInt(b.RxBytes), clampInt(b.TxBytes),
				clampInt(b.RxPackets), clampInt(b.TxPackets), b.SpanMs); err != nil {
				return fmt.Errorf("cannot save interface counters: %w", store.DescribeWriteError(err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("cannot save interface counters: %w", store.DescribeWriteError(err))
	}
	return nil
}

// MinuteShare is the part of a CounterDelta that falls in one minute.
type MinuteShare struct {
	T                    int64 // minute start, unix seconds
	SpanMs               int64
	RxBytes, TxBytes     uint64
	RxPackets, TxPackets uint64
}

// maxSpreadMinutes bounds the minutes one delta is spread over: a router
// not polled for longer (flowbox stopped) gives one delta whose traffic
// cannot be placed in time; it is put in its last minute without span, so
// that it is stored but never compared.
const maxSpreadMinutes = 24 * 60

// SpreadDelta splits d over the minutes it spans, in proportion to time,
// so that the shares add up to d exactly.
func SpreadDelta(d store.CounterDelta) []MinuteShare {
	from, to := d.From.UnixMilli(), d.To.UnixMilli()
	if to <= from || (to-from)/60_000 > maxSpreadMinutes {
		t := d.To.Unix() / 60 * 60
		return []MinuteShare{{T: t, RxBytes: d.RxBytes, TxBytes: d.TxBytes, RxPackets: d.RxPackets, TxPackets: d.TxPackets}}
	}
	total := to - from
	var out []MinuteShare
	var done [4]uint64
	want := [4]uint64{d.RxBytes, d.TxBytes, d.RxPackets, d.TxPackets}
	for m := from / 60_000 * 60_000; m < to; m += 60_000 {
		a, b := max(m, from), min(m+60_000, to)
		// cum(x) is the share of x up to b: the last minute takes what is
		// left, so rounding never loses a byte.
		var got [4]uint64
		for i, w := range want {
			cum := w
			if b < to {
				cum = mulDiv(w, uint64(b-from), uint64(total))
			}
			got[i] = cum - done[i]
			done[i] = cum
		}
		out = append(out, MinuteShare{T: m / 1000, SpanMs: b - a, RxBytes: got[0], TxBytes: got[1], RxPackets: got[2], TxPackets: got[3]})
	}
	return out
}

// mulDiv returns x*n/d without overflow for n <= d.
func mulDiv(x, n, d uint64) uint64 {
	if d == 0 {
		return 0
	}
	q, r := x/d, x%d
	return q*n + r*n/d
}

// RollupCounterHours (re)builds the hour buckets of the interface counters
// from their minutes: every finished hour since the last one built, and
// the last finished hour again (deltas of its last minute arrive after its
// end).
func (s *FlowDB) RollupCounterHours(ctx context.Context, now time.Time) error {
	if err := s.writable(); err != nil {
		return err
	}
	last := now.Add(-hourGrace).Unix()/3600*3600 - 3600 // the last finished hour
	var built, first *int64
	if err := s.w.QueryRowContext(ctx, "SELECT max(t) FROM ifctr_h").Scan(&built); err != nil {
		return fmt.Errorf("cannot read the counter hours: %w", err)
	}
	if err := s.w.QueryRowContext(ctx, "SELECT min(t) FROM ifctr_m").Scan(&first); err != nil {
		return fmt.Errorf("cannot read the counter minutes: %w", err)
	}
	if first == nil {
		return nil
	}
	start := *first / 3600 * 3600
	if built != nil {
		start = max(start, min(*built+3600, last))
	}
	for h := start; h <= last; h += 3600 {
		if err := s.execTx(ctx, []stmt{
			{"DELETE FROM ifctr_h WHERE t = ?", []any{h}},
			{`INSERT INTO ifctr_h (t, src, ifx, rx_bytes, tx_bytes, rx_packets, tx_packets, span_ms)
				SELECT ?1, src, ifx, sum(rx_bytes), sum(tx_bytes), sum(rx_packets), sum(tx_packets), sum(min(span_ms, 60000))
				FROM ifctr_m WHERE t >= ?1 AND t < ?1 + 3600 GROUP BY src, ifx`, []any{h}},
		}); err != nil {
			return fmt.Errorf("cannot build the counter hour %s: %w", time.Unix(h, 0).UTC().Format(time.RFC3339), err)
		}
	}
	return nil
}

// PruneCounters deletes the counter buckets older than the rollups'
// retention (minute-retention, hour-retention) and returns how many.
func (s *FlowDB) PruneCounters(ctx context.Context, now time.Time) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	var n int64
	for _, q := range []struct {
		sql string
		cut time.Time
	}{
		{"DELETE FROM ifctr_m WHERE t < ?", now.Add(-s.cfg.MinuteRetention)},
		{"DELETE FROM ifctr_h WHERE t < ?", now.Add(-s.cfg.HourRetention)},
	} {
		res, err := s.w.ExecContext(ctx, q.sql, q.cut.Unix())
		if err != nil {
			return n, fmt.Errorf("cannot prune interface counters: %w", store.DescribeWriteError(err))
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, nil
}

// CounterTotals returns, per router and interface, the counters and the
// flow rollups summed over the buckets of [from, to) whose counters are
// complete: minute buckets, or hour buckets when hourly. routerID 0 means
// every router.
func (s *FlowDB) CounterTotals(ctx context.Context, routerID int64, from, to time.Time, hourly bool) ([]store.CounterTotals, error) {
	ctr, flows, full := "ifctr_m", "if_m", fullMinuteMs
	if hourly {
		ctr, flows, full = "ifctr_h", "if_h", fullHourMs
	}
	q := `SELECT c.src, c.ifx, count(*), sum(c.rx_bytes), sum(c.tx_bytes), sum(c.rx_packets), sum(c.tx_packets),
		coalesce(sum(fi.bytes), 0), coalesce(sum(fi.packets), 0), coalesce(sum(fo.bytes), 0), coalesce(sum(fo.packets), 0)
		FROM ` + ctr + ` c
		LEFT JOIN ` + flows + ` fi ON fi.t = c.t AND fi.src = c.src AND fi.ifx = c.ifx AND fi.side = 0
		LEFT JOIN ` + flows + ` fo ON fo.t = c.t AND fo.src = c.src AND fo.ifx = c.ifx AND fo.side = 1
		WHERE c.t >= ? AND c.t < ? AND c.span_ms >= ?`
	args := []any{from.Unix(), to.Unix(), full}
	if routerID != 0 {
		q += " AND c.src = ?"
		args = append(args, routerID)
	}
	q += " GROUP BY c.src, c.ifx ORDER BY c.src, c.ifx"
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read interface counters: %w", err)
	}
	defer rows.Close()
	var out []store.CounterTotals
	for rows.Next() {
		var t store.CounterTotals
		var ifx int64
		var v [8]int64
		if err := rows.Scan(&t.RouterID, &ifx, &t.Buckets, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]); err != nil {
			return nil, fmt.Errorf("cannot read interface counters: %w", err)
		}
		t.Index = uint32(ifx)
		t.CounterBytesIn, t.CounterBytesOut, t.CounterPacketsIn, t.CounterPacketsOut = uint64(v[0]), uint64(v[1]), uint64(v[2]), uint64(v[3])
		t.FlowBytesIn, t.FlowPacketsIn, t.FlowBytesOut, t.FlowPacketsOut = uint64(v[4]), uint64(v[5]), uint64(v[6]), uint64(v[7])
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read interface counters: %w", err)
	}
	return out, nil
}

// CounterBuckets returns the counters of every interface in each bucket
// its counters covered fully over [from, to) (minutes, or hours when
// hourly), of one router (0: all), ordered by router, interface and
// time: CounterTotals without this store's flows, for a flow store kept
// elsewhere.
func (s *FlowDB) CounterBuckets(ctx context.Context, routerID int64, from, to time.Time, hourly bool) ([]store.CounterBucket, error) {
	ctr, full := "ifctr_m", fullMinuteMs
	if hourly {
		ctr, full = "ifctr_h", fullHourMs
	}
	q := "SELECT src, ifx, t, rx_bytes, tx_bytes, rx_packets, tx_packets FROM " + ctr + " WHERE t >= ? AND t < ? AND span_ms >= ?"
	args := []any{from.Unix(), to.Unix(), full}
	if routerID != 0 {
		q += " AND src = ?"
		args = append(args, routerID)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY src, ifx, t", args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read interface counters: %w", err)
	}
	defer rows.Close()
	var out []store.CounterBucket
	for rows.Next() {
		var b store.CounterBucket
		var ifx int64
		var v [4]int64
		if err := rows.Scan(&b.RouterID, &ifx, &b.T, &v[0], &v[1], &v[2], &v[3]); err != nil {
			return nil, fmt.Errorf("cannot read interface counters: %w", err)
		}
		b.Index = uint32(ifx)
		b.CounterBytesIn, b.CounterBytesOut, b.CounterPacketsIn, b.CounterPacketsOut = uint64(v[0]), uint64(v[1]), uint64(v[2]), uint64(v[3])
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read interface counters: %w", err)
	}
	return out, nil
}

// CounterSeries returns a router's counter bytes per bucket of step
// seconds over [from, to), rx and tx summed over the interfaces (ifx 0:
// all), for the traffic chart's counter line. Buckets are minutes, or
// hours when hourly.
func (s *FlowDB) CounterSeries(ctx context.Context, routerID int64, ifx uint32, from, to time.Time, hourly bool) (map[int64][2]uint64, error) {
	table := "ifctr_m"
	if hourly {
		table = "ifctr_h"
	}
	q := "SELECT t, sum(rx_bytes), sum(tx_bytes) FROM " + table + " WHERE src = ? AND t >= ? AND t < ?"
	args := []any{routerID, from.Unix(), to.Unix()}
	if ifx != 0 {
		q += " AND ifx = ?"
		args = append(args, int64(ifx))
	}
	rows, err := s.r.QueryContext(ctx, q+" GROUP BY t", args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read interface counters: %w", err)
	}
	defer rows.Close()
	out := map[int64][2]uint64{}
	for rows.Next() {
		var t, rx, tx int64
		if err := rows.Scan(&t, &rx, &tx); err != nil {
			return nil, fmt.Errorf("cannot read interface counters: %w", err)
		}
		out[t] = [2]uint64{uint64(rx), uint64(tx)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read interface counters: %w", err)
	}
	return out, nil
}

// SaveCoverageState records what the counter poller learned of a router.
func (s *FlowDB) SaveCoverageState(ctx context.Context, st store.CoverageState) error {
	if err := s.writable(); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("cannot encode the coverage state of %s: %w", st.Router, err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO coverage_state (router_id, updated, state) VALUES (?,?,?)
		ON CONFLICT (router_id) DO UPDATE SET updated = excluded.updated, state = excluded.state`,
		st.RouterID, s.now().UnixMilli(), string(b)); err != nil {
		return fmt.Errorf("cannot save the coverage state of %s: %w", st.Router, store.DescribeWriteError(err))
	}
	return nil
}

// CoverageStates returns the counter poller's state of every router it
// polled.
func (s *FlowDB) CoverageStates(ctx context.Context) ([]store.CoverageState, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT state FROM coverage_state ORDER BY router_id")
	if err != nil {
		return nil, fmt.Errorf("cannot read the coverage states: %w", err)
	}
	defer rows.Close()
	var out []store.CoverageState
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("cannot read the coverage states: %w", err)
		}
		var st store.CoverageState
		if err := json.Unmarshal([]byte(b), &st); err != nil {
			return nil, fmt.Errorf("cannot decode a coverage state: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the coverage states: %w", err)
	}
	return out, nil
}
