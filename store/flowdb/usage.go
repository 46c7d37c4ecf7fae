package flowdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Subscriber usage: the traffic of every subscriber (not only the top-K of
// the rollups), per router, by hour (usage_h, UsageHourRetention) and by
// UTC day (usage_d, HourRetention). It is what a WISP bills or polices
// with: "how much did Maria download this month". The rows come from the
// aggregator's subscriber table at each rollup flush, before the top-K
// cut, so they cost nothing on the ingest path. Only download and upload
// flows of a known subscriber count.

// usageKey is one hour, source and subscriber name id of a flush.
type usageKey struct {
	t, src int64
	name   uint32
}

// usageCounters are a subscriber's counters of one hour.
type usageCounters struct {
	downBytes, upBytes, downPackets, upPackets, flows uint64
}

// writeUsage adds the flush's subscriber traffic to usage_h and usage_d.
func (a *aggregator) writeUsage(ctx context.Context, tx *sql.Tx) error {
	sums := map[usageKey]*usageCounters{}
	for e := range a.sub.all() {
		if e.key.kind != valName {
			continue // no subscriber, or folded into "other" (counted by rollupPruned)
		}
		b := a.buckets[e.key.b]
		if b.dir != store.DirDownload && b.dir != store.DirUpload {
			continue
		}
		k := usageKey{t: b.t / 3600 * 3600, src: b.src, name: e.key.v}
		c := sums[k]
		if c == nil {
			c = &usageCounters{}
			sums[k] = c
		}
		if b.dir == store.DirDownload {
			c.downBytes += e.c.bytes
			c.downPackets += e.c.packets
		} else {
			c.upBytes += e.c.bytes
			c.upPackets += e.c.packets
		}
		c.flows += e.c.flows
	}
	if len(sums) == 0 {
		return nil
	}
	const cols = " (t, src, sub, down_bytes, up_bytes, down_packets, up_packets, flows) VALUES (?,?,?,?,?,?,?,?)" +
		" ON CONFLICT DO UPDATE SET down_bytes = down_bytes + excluded.down_bytes, up_bytes = up_bytes + excluded.up_bytes," +
		" down_packets = down_packets + excluded.down_packets, up_packets = up_packets + excluded.up_packets, flows = flows + excluded.flows"
	for _, table := range []string{"usage_h", "usage_d"} {
		st, err := tx.PrepareContext(ctx, "INSERT INTO "+table+cols)
		if err != nil {
			return err
		}
		for k, c := range sums {
			t := k.t
			if table == "usage_d" {
				t = t / 86400 * 86400
			}
			if _, err := st.ExecContext(ctx, t, k.src, a.names.names[k.name], clampInt(c.downBytes), clampInt(c.upBytes),
				clampInt(c.downPackets), clampInt(c.upPackets), clampInt(c.flows)); err != nil {
				st.Close()
				return err
			}
		}
		st.Close()
	}
	return nil
}

// usageSource returns the rows of [from, to) as one SQL source with the
// columns of the usage tables plus e (the end of each row's hour or day),
// and the range actually read. Within UsageHourRetention the range is
// read on hour boundaries: whole UTC days from usage_d and the hours at
// both ends from usage_h (a 30-day report reads about 30 rows per
// subscriber, not 720). Older ranges are read by UTC day.
func (s *FlowDB) usageSource(from, to time.Time, sources []int64, search, sub string) (src string, args []any, res store.Resolution, f, t int64) {
	const cols = "src, sub, down_bytes, up_bytes, down_packets, up_packets, flows"
	sp := store.NewUsageSpan(from, to, s.now().Add(-s.cfg.UsageHourRetention))
	res, f, t = sp.Resolution, sp.From, sp.To
	where, wargs := usageWhere(sources, search, sub)
	if res == store.ResDay {
		return "SELECT " + cols + ", t + 86400 AS e FROM usage_d WHERE t >= ? AND t < ?" + where, append([]any{f, t}, wargs...), res, f, t
	}
	d1, d0 := sp.D1, sp.D0
	if d1 >= d0 {
		return "SELECT " + cols + ", t + 3600 AS e FROM usage_h WHERE t >= ? AND t < ?" + where, append([]any{f, t}, wargs...), res, f, t
	}
	src = "SELECT " + cols + ", t + 3600 AS e FROM usage_h WHERE ((t >= ? AND t < ?) OR (t >= ? AND t < ?))" + where +
		" UNION ALL SELECT " + cols + ", t + 86400 AS e FROM usage_d WHERE t >= ? AND t < ?" + where
	args = append(append(append([]any{f, d1, d0, t}, wargs...), d1, d0), wargs...)
	return src, args, res, f, t
}

// usageWhere returns the filters of a usage query as SQL conditions
// (each starting with AND) and their arguments.
func usageWhere(sources []int64, search, sub string) (string, []any) {
	var b strings.Builder
	var args []any
	if len(sources) > 0 {
		b.WriteString(" AND src IN (?" + strings.Repeat(",?", len(sources)-1) + ")")
		for _, src := range sources {
			args = append(args, src)
		}
	}
	if search != "" {
		b.WriteString(" AND instr(lower(sub), lower(?)) > 0")
		args = append(args, search)
	}
	if sub != "" {
		b.WriteString(" AND sub = ?")
		args = append(args, sub)
	}
	return b.String(), args
}

// SubscriberUsage returns the traffic of each subscriber over the period,
// per router, sorted and paged, with the count and totals of every match.
func (s *FlowDB) SubscriberUsage(ctx context.Context, q store.UsageQuery) (*store.UsageResult, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	order := ""
	switch q.Sort {
	case "", store.UsageByTotal:
		order = "d + u DESC, sub, src"
	case store.UsageByDownload:
		order = "d DESC, sub, src"
	case store.UsageByUpload:
		order = "u DESC, sub, src"
	case store.UsageByName:
		order = "sub COLLATE NOCASE, sub, src"
	}
	src, args, res, f, t := s.usageSource(q.From, q.To, q.Sources, q.Search, "")
	// One pass: the page, and the count and totals of every match as
	// window functions over the grouped rows (computed before LIMIT).
	grouped := "SELECT src, sub, sum(down_bytes) AS d, sum(up_bytes) AS u, sum(down_packets) AS dp, sum(up_packets) AS up, sum(flows) AS fl, max(e) AS last FROM (" +
		src + ") GROUP BY src, sub"
	query := "SELECT src, sub, d, u, dp, up, fl, last, count(*) OVER (), sum(d) OVER (), sum(u) OVER (), sum(dp) OVER (), sum(up) OVER (), sum(fl) OVER () FROM (" +
		grouped + ") ORDER BY " + order + " LIMIT ? OFFSET ?"
	out := &store.UsageResult{From: time.Unix(f, 0).UTC(), To: time.Unix(t, 0).UTC(), Resolution: res, Rows: []store.SubscriberUsage{}}
	rows, err := s.r.QueryContext(ctx, query, append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("cannot read subscriber usage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u store.SubscriberUsage
		var d, up, dp, upp, fl, last int64
		var tot [5]int64
		if err := rows.Scan(&u.Source, &u.Subscriber, &d, &up, &dp, &upp, &fl, &last, &out.Count, &tot[0], &tot[1], &tot[2], &tot[3], &tot[4]); err != nil {
			return nil, fmt.Errorf("cannot read subscriber usage: %w", err)
		}
		u.DownloadBytes, u.UploadBytes, u.DownloadPackets, u.UploadPackets, u.Flows = uint64(d), uint64(up), uint64(dp), uint64(upp), uint64(fl)
		u.LastSeen = time.Unix(last, 0).UTC()
		if len(out.Rows) == 0 { // the window columns are the same on every row
			out.Total = store.SubscriberUsage{DownloadBytes: uint64(tot[0]), UploadBytes: uint64(tot[1]),
				DownloadPackets: uint64(tot[2]), UploadPackets: uint64(tot[3]), Flows: uint64(tot[4])}
		}
		out.Rows = append(out.Rows, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read subscriber usage: %w", err)
	}
	if len(out.Rows) == 0 && q.Offset > 0 {
		// A page past the end: the count and totals still answer.
		var tot [5]sql.NullInt64
		if err := s.r.QueryRowContext(ctx, "SELECT count(*), sum(d), sum(u), sum(dp), sum(up), sum(fl) FROM ("+grouped+")", args...).
			Scan(&out.Count, &tot[0], &tot[1], &tot[2], &tot[3], &tot[4]); err != nil {
			return nil, fmt.Errorf("cannot sum subscriber usage: %w", err)
		}
		out.Total = store.SubscriberUsage{DownloadBytes: uint64(tot[0].Int64), UploadBytes: uint64(tot[1].Int64),
			DownloadPackets: uint64(tot[2].Int64), UploadPackets: uint64(tot[3].Int64), Flows: uint64(tot[4].Int64)}
	}
	return out, nil
}

// SubscriberUsageSeries returns a subscriber's download and upload bytes
// per hour or per day over the period (steps without traffic are zero).
func (s *FlowDB) SubscriberUsageSeries(ctx context.Context, q store.UsageSeriesQuery) (*store.UsageSeries, error) {
	out, f, t, err := q.Check(s.now().Add(-s.cfg.UsageHourRetention), s.cfg.UsageHourRetention)
	if err != nil {
		return nil, err
	}
	table, span := "usage_d", int64(out.Step/time.Second)
	if out.Resolution == store.ResHour {
		table = "usage_h"
	}
	where, args := usageWhere(q.Sources, "", q.Subscriber)
	rows, err := s.r.QueryContext(ctx, "SELECT t, sum(down_bytes), sum(up_bytes) FROM "+table+" WHERE t >= ? AND t < ?"+where+" GROUP BY t",
		append([]any{f, t}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot read the usage of %q: %w", q.Subscriber, err)
	}
	defer rows.Close()
	for rows.Next() {
		var at, d, u int64
		if err := rows.Scan(&at, &d, &u); err != nil {
			return nil, fmt.Errorf("cannot read the usage of %q: %w", q.Subscriber, err)
		}
		i := (at - f) / span
		out.DownloadBytes[i], out.UploadBytes[i] = uint64(d), uint64(u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the usage of %q: %w", q.Subscriber, err)
	}
	return out, nil
}
