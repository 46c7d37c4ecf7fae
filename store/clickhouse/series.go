package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Reader answers the flow queries of one site from ClickHouse. It is safe
// for concurrent use.
type Reader struct {
	c    *Client
	site string
	now  func() time.Time
	done doneCache // the top-N rollup steps done, for the lists
	// backlog, when set, is the writer's oldest flow not written yet
	// (Ingest.Backlog): RollupTop leaves the steps after it.
	backlog func() (time.Time, bool)
}

// NewReader returns the reader of site's flows; now is the clock of range
// checks (nil: time.Now).
func NewReader(c *Client, site string, now func() time.Time) *Reader {
	if now == nil {
		now = time.Now
	}
	return &Reader{c: c, site: site, now: now}
}

// scaled is a column's sum scaled by each flow's sampling rate.
func scaled(col string) string { return "sum(" + col + " * if(sampling > 1, sampling, 1))" }

// TimeSeries answers a series query with the buckets, lines and labels of
// store.SeriesBuilder: from the minute (or hour) totals when its filter is
// one they answer (sources, directions; interfaces for a series by
// interface), as flowdb decides, else from the raw flows, any filter.
// It is never partial.
func (r *Reader) TimeSeries(ctx context.Context, q store.SeriesQuery) (*store.Series, error) {
	if err := store.CheckRange(q.From, q.To, r.now()); err != nil {
		return nil, err
	}
	if err := q.Filter.Validate(); err != nil {
		return nil, err
	}
	if q.Resolution != store.ResAuto && q.Resolution != store.ResRaw {
		return nil, &store.QueryError{Field: "resolution", Msg: fmt.Sprintf("unknown resolution %q (want raw or empty)", q.Resolution)}
	}
	b, err := store.NewSeriesBuilder(&q, store.AutoSeriesStep(q.To.Sub(q.From)))
	if err != nil {
		return nil, err
	}
	gs, gd, gi := "0", "0", "0" // the line's source, direction, interface
	switch q.GroupBy {
	case store.DimRouter:
		gs = "src"
	case store.DimDirection:
		gd = "dir"
	case store.DimInInterface, store.DimOutInterface:
		gs, gi = "src", "in_if"
		if q.GroupBy == store.DimOutInterface {
			gi = "out_if"
		}
	}
	ifGroup := q.GroupBy == store.DimInInterface || q.GroupBy == store.DimOutInterface
	raw := q.Resolution == store.ResRaw || q.Filter.NeedsRaw() || (len(q.Filter.Interfaces) > 0 && !ifGroup) ||
		(ifGroup && len(q.Filter.Directions) > 0)
	// Each branch picks the rows (FROM and WHERE) and their sums.
	var rows, sums string
	res := store.ResRaw
	if raw {
		// The bucket of a flow is its end's second (as flowdb files it).
		rows = fmt.Sprintf("%s.flows WHERE site = %s AND t >= fromUnixTimestamp64Milli(%d) AND t < fromUnixTimestamp64Milli(%d)%s",
			r.c.cfg.Database, quote(r.site), q.From.UnixMilli(), q.To.UnixMilli(), filterSQL(&q.Filter))
		sums = scaled("bytes") + ", " + scaled("packets") + ", count()"
	} else {
		// The totals of the minutes (or hours) of the buckets: the rows
		// of each key are summed, merged or not.
		table := "tot_m"
		res = store.ResMinute
		if b.Step()%3600 == 0 || b.From() < r.now().Add(-r.c.cfg.MinuteTTL).Unix() {
			table, res = "tot_h", store.ResHour
		}
		if res == store.ResHour && b.Step() < 3600 {
			return nil, &store.QueryError{Field: "step", Msg: fmt.Sprintf("1-minute rollups are kept for %s: use a step of 1h or more for older ranges", r.c.cfg.MinuteTTL)}
		}
		where := inList("src", numbers(q.Filter.Sources))
		if ifGroup {
			table = "if" + table[3:]
			side := 0
			if q.GroupBy == store.DimOutInterface {
				side = 1
			}
			gi = "ifx"
			where += fmt.Sprintf(" AND side = %d", side) + inList("ifx", numbers(q.Filter.Interfaces))
		} else {
			where += inList("dir", numbers(q.Filter.Directions))
		}
		rows = fmt.Sprintf("%s.%s WHERE site = %s AND t >= toDateTime(%d) AND t < toDateTime(%d)%s",
			r.c.cfg.Database, table, quote(r.site), b.From(), b.To(), where)
		sums = "sum(bytes), sum(packets), sum(flows)"
	}
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT toInt64(intDiv(toInt64(toUnixTimestamp(t)) - %d, %d)) AS i, toInt64(%s) AS gs, toUInt8(%s) AS gd, toUInt32(%s) AS gi, %s"+
		" FROM %s GROUP BY i, gs, gd, gi FORMAT RowBinary", b.From(), b.Step(), gs, gd, gi, sums, rows))
	if err != nil {
		return nil, fmt.Errorf("cannot read the series from clickhouse: %w", err)
	}
	rr := &rowReader{b: out}
	for len(rr.b) > 0 && rr.err == nil {
		i, src, dir, ifx := int64(rr.u64()), int64(rr.u64()), store.Direction(rr.u8()), rr.u32()
		by, pk, fl := rr.u64(), rr.u64(), rr.u64()
		if rr.err == nil {
			b.Add(b.From()+i*b.Step(), src, dir, ifx, by, pk, fl)
		}
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read the series from clickhouse: %w", rr.err)
	}
	s := b.Series()
	s.Resolution = res
	return s, nil
}

// inList returns " AND col IN (vals)", or "" without values.
func inList(col string, vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return " AND " + col + " IN (" + strings.Join(vals, ", ") + ")"
}
