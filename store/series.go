package store

import (
	"fmt"
	"sort"
	"time"
)

// MaxQueryRange bounds any query range (longer than any retention).
const MaxQueryRange = 800 * 24 * time.Hour

// CheckRange checks a query's range [from, to) at now: both set, not
// empty, at most MaxQueryRange, ending at most a day after now.
func CheckRange(from, to, now time.Time) error {
	switch {
	case from.IsZero() || to.IsZero():
		return &QueryError{Field: "from", Msg: "from and to are required"}
	case !from.Before(to):
		return &QueryError{Field: "to", Msg: fmt.Sprintf("range is empty or inverted (%s >= %s)", from.Format(time.RFC3339), to.Format(time.RFC3339))}
	case to.Sub(from) > MaxQueryRange:
		return &QueryError{Field: "from", Msg: fmt.Sprintf("range of %s is longer than the %s limit", to.Sub(from), MaxQueryRange)}
	case to.After(now.Add(24 * time.Hour)):
		return &QueryError{Field: "to", Msg: "range ends more than a day in the future"}
	case from.Before(now.Add(-MaxQueryRange)):
		return &QueryError{Field: "from", Msg: "range starts before any data kept"}
	}
	return nil
}

// MaxSeriesPoints bounds the buckets of a series.
const MaxSeriesPoints = 20000

// AutoSeriesStep is the step of a series over d when the query sets none:
// 1m up to 6h, 5m up to 24h, 1h up to 31 days, 1d beyond.
func AutoSeriesStep(d time.Duration) time.Duration {
	switch {
	case d <= 6*time.Hour:
		return time.Minute
	case d <= 24*time.Hour:
		return 5 * time.Minute
	case d <= 31*24*time.Hour:
		return time.Hour
	}
	return 24 * time.Hour
}

// SourceLabel names a source in answers: "router 3", or "exporter 7" for
// the flows of an exporter that matches no router (source -7).
func SourceLabel(src int64) string {
	if src < 0 {
		return fmt.Sprintf("exporter %d", -src)
	}
	return fmt.Sprintf("router %d", src)
}

// SeriesBuilder sums counters into the lines of a series answer, the same
// for every flow database: buckets of Step from From (aligned on it),
// lines by the query's GroupBy, labelled and sorted.
type SeriesBuilder struct {
	groupBy  Dimension
	from     int64 // unix seconds
	step     int64
	n        int
	out      *Series
	lines    map[seriesLineKey]*SeriesLine
	byDir    [8]*SeriesLine // the lines of keys with a direction only
	finished bool
}

type seriesLineKey struct {
	src int64
	dir Direction
	ifx uint32
}

// NewSeriesBuilder checks q's grouping and step (q.Step, or step when it
// is 0) and returns the builder of its answer: the range widened to whole
// steps.
func NewSeriesBuilder(q *SeriesQuery, step time.Duration) (*SeriesBuilder, error) {
	switch q.GroupBy {
	case 0, DimRouter, DimDirection, DimInInterface, DimOutInterface:
	default:
		return nil, &QueryError{Field: "group-by", Msg: fmt.Sprintf("cannot group a series by %s", q.GroupBy)}
	}
	if q.Step != 0 {
		step = q.Step
	}
	if step < time.Minute || step%time.Minute != 0 {
		return nil, &QueryError{Field: "step", Msg: fmt.Sprintf("step %s is not a positive multiple of 1m", step)}
	}
	stepS := int64(step / time.Second)
	from := q.From.Unix() / stepS * stepS
	to := (q.To.Unix() + stepS - 1) / stepS * stepS
	n := int((to - from) / stepS)
	if n > MaxSeriesPoints {
		return nil, &QueryError{Field: "step", Msg: fmt.Sprintf("%d points is more than %d: use a larger step", n, MaxSeriesPoints)}
	}
	b := &SeriesBuilder{groupBy: q.GroupBy, from: from, step: stepS, n: n, lines: map[seriesLineKey]*SeriesLine{},
		out: &Series{From: time.Unix(from, 0).UTC(), To: time.Unix(to, 0).UTC(), Step: step}}
	for i := range n {
		b.out.Times = append(b.out.Times, time.Unix(from+int64(i)*stepS, 0).UTC())
	}
	return b, nil
}

// Step returns the series' step in seconds.
func (b *SeriesBuilder) Step() int64 { return b.step }

// From returns the start of the first bucket (unix seconds).
func (b *SeriesBuilder) From() int64 { return b.from }

// To returns the end of the last bucket (unix seconds).
func (b *SeriesBuilder) To() int64 { return b.from + int64(b.n)*b.step }

// Add counts bytes, packets and flows at t (unix seconds; outside the
// buckets it is ignored) into the line of source src, direction dir and
// interface ifx, as the grouping keeps them.
func (b *SeriesBuilder) Add(t, src int64, dir Direction, ifx uint32, bytes, packets, flows uint64) {
	i := (t - b.from) / b.step
	if i < 0 || int(i) >= b.n {
		return
	}
	var k seriesLineKey
	switch b.groupBy {
	case DimRouter:
		k = seriesLineKey{src: src}
	case DimDirection:
		k = seriesLineKey{dir: dir}
	case DimInInterface, DimOutInterface:
		k = seriesLineKey{src: src, ifx: ifx}
	}
	var l *SeriesLine
	if k.src == 0 && k.ifx == 0 && k.dir < 8 {
		if l = b.byDir[k.dir]; l == nil {
			l = b.line(k)
			b.byDir[k.dir] = l
		}
	} else {
		l = b.line(k)
	}
	l.Bytes[i] += bytes
	l.Packets[i] += packets
	l.Flows[i] += flows
}

func (b *SeriesBuilder) line(k seriesLineKey) *SeriesLine {
	l := b.lines[k]
	if l != nil {
		return l
	}
	l = &SeriesLine{Bytes: make([]uint64, b.n), Packets: make([]uint64, b.n), Flows: make([]uint64, b.n)}
	switch b.groupBy {
	case 0:
		l.Label = "total"
	case DimRouter:
		l.Source, l.Label = k.src, SourceLabel(k.src)
	case DimDirection:
		l.Direction, l.Label = k.dir, k.dir.String()
	default:
		l.Source, l.Interface = k.src, k.ifx
		l.Label = fmt.Sprintf("%s if %d", SourceLabel(k.src), k.ifx)
	}
	b.lines[k] = l
	return l
}

// Series returns the answer: its lines sorted by label (a total line
// even without traffic). The caller sets Resolution and Partial.
func (b *SeriesBuilder) Series() *Series {
	if !b.finished {
		b.finished = true
		if b.groupBy == 0 && len(b.lines) == 0 {
			b.line(seriesLineKey{})
		}
		for _, l := range b.lines {
			b.out.Lines = append(b.out.Lines, *l)
		}
		sort.Slice(b.out.Lines, func(i, j int) bool { return b.out.Lines[i].Label < b.out.Lines[j].Label })
	}
	return b.out
}
