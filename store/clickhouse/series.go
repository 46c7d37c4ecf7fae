package clickhouse

import (
	"context"
	"fmt"
	"strconv"
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

// TimeSeries answers a series query from the raw flows: any filter, any
// grouping of store.SeriesQuery, with the buckets, lines and labels of
// store.SeriesBuilder (Resolution raw; never partial).
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
	case store.DimInInterface:
		gs, gi = "src", "in_if"
	case store.DimOutInterface:
		gs, gi = "src", "out_if"
	}
	group := fmt.Sprintf("toInt64(%s) AS gs, toUInt8(%s) AS gd, toUInt32(%s) AS gi", gs, gd, gi)
	// The bucket of a flow is its end's second (as flowdb files it).
	stmt := fmt.Sprintf("SELECT intDiv(toUnixTimestamp(t) - %d, %d) AS i, %s, %s, %s, count() FROM %s.flows"+
		" WHERE site = %s AND t >= fromUnixTimestamp64Milli(%d) AND t < fromUnixTimestamp64Milli(%d)%s"+
		" GROUP BY i, gs, gd, gi FORMAT TabSeparated",
		b.From(), b.Step(), group, scaled("bytes"), scaled("packets"), r.c.cfg.Database,
		quote(r.site), q.From.UnixMilli(), q.To.UnixMilli(), filterSQL(&q.Filter))
	out, err := r.c.Query(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("cannot read the series from clickhouse: %w", err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("cannot read the series from clickhouse: %q", line)
		}
		var v [7]uint64
		for i, s := range f {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				u, uerr := strconv.ParseUint(s, 10, 64)
				if uerr != nil {
					return nil, fmt.Errorf("cannot read the series from clickhouse: %q: %w", line, err)
				}
				n = int64(u)
			}
			v[i] = uint64(n)
		}
		b.Add(b.From()+int64(v[0])*b.Step(), int64(v[1]), store.Direction(v[2]), uint32(v[3]), v[4], v[5], v[6])
	}
	s := b.Series()
	s.Resolution = store.ResRaw
	return s, nil
}
