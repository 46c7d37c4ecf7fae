package store

import (
	"fmt"
	"time"
)

// CheckPeriod checks the period [from, to) of a report (usage, domains,
// rates): both set, to after from.
func CheckPeriod(from, to time.Time) error {
	if from.IsZero() || to.IsZero() {
		return &QueryError{Field: "from", Msg: "from and to are required"}
	}
	if !from.Before(to) {
		return &QueryError{Field: "to", Msg: fmt.Sprintf("to (%s) is not after from (%s)", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))}
	}
	return nil
}

// Check checks a usage query and sets the default limit (100).
func (q *UsageQuery) Check() error {
	if err := CheckPeriod(q.From, q.To); err != nil {
		return err
	}
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 1 || q.Limit > 10000 {
		return &QueryError{Field: "limit", Msg: fmt.Sprintf("limit=%d is outside 1..10000", q.Limit)}
	}
	if q.Offset < 0 {
		return &QueryError{Field: "offset", Msg: fmt.Sprintf("offset=%d is negative", q.Offset)}
	}
	if len(q.Search) > 200 {
		return &QueryError{Field: "search", Msg: "longer than 200 characters"}
	}
	switch q.Sort {
	case "", UsageByTotal, UsageByDownload, UsageByUpload, UsageByName:
	default:
		return &QueryError{Field: "sort", Msg: fmt.Sprintf("unknown sort %q (want total, download, upload or name)", q.Sort)}
	}
	return nil
}

// UsageSpan is how a usage report over [From, To) reads the hourly and
// daily usage: Resolution hour (the range on hour boundaries) while hours
// are kept, else day (UTC days). With hours, the whole UTC days [D1, D0)
// inside the range are read by day, the hours at both ends by hour (none
// when D1 >= D0). From and To are unix seconds.
type UsageSpan struct {
	Resolution      Resolution
	From, To        int64
	D1, D0          int64
	HourEnd, DayEnd int64 // what a row's end adds to its start: 3600, 86400
}

// NewUsageSpan returns the span of [from, to); hoursFrom is the start of
// the hours kept.
func NewUsageSpan(from, to, hoursFrom time.Time) UsageSpan {
	span, res := int64(3600), ResHour
	if from.Before(hoursFrom) {
		span, res = 86400, ResDay
	}
	u := UsageSpan{Resolution: res, HourEnd: 3600, DayEnd: 86400}
	u.From = FloorDiv(from.Unix(), span) * span
	u.To = -FloorDiv(-to.Unix(), span) * span
	u.D1 = -FloorDiv(-u.From, 86400) * 86400 // first whole day
	u.D0 = FloorDiv(u.To, 86400) * 86400     // end of the last whole day
	return u
}

// Check checks a usage series query and returns its answer with every
// step at zero, for the caller to fill: steps of 1h while hours are kept
// from hoursFrom (and the range is at most 7 days when the query sets
// none), else 24h; and the range [f, t) of the steps (unix seconds).
func (q *UsageSeriesQuery) Check(hoursFrom time.Time, hourRetention time.Duration) (out *UsageSeries, f, t int64, err error) {
	if err := CheckPeriod(q.From, q.To); err != nil {
		return nil, 0, 0, err
	}
	if q.Subscriber == "" {
		return nil, 0, 0, &QueryError{Field: "subscriber", Msg: "a subscriber name is required"}
	}
	hourly := !q.From.Before(hoursFrom)
	switch q.Step {
	case 0:
		hourly = hourly && q.To.Sub(q.From) <= 7*24*time.Hour
	case time.Hour:
		if !hourly {
			return nil, 0, 0, &QueryError{Field: "step", Msg: fmt.Sprintf("hourly usage is kept for %s; pick a later from or a daily step", hourRetention)}
		}
	case 24 * time.Hour:
		hourly = false
	default:
		return nil, 0, 0, &QueryError{Field: "step", Msg: fmt.Sprintf("step %s is not 1h or 24h", q.Step)}
	}
	span, res := int64(86400), ResDay
	if hourly {
		span, res = 3600, ResHour
	}
	f = FloorDiv(q.From.Unix(), span) * span
	t = -FloorDiv(-q.To.Unix(), span) * span
	if n := (t - f) / span; n > 20000 {
		return nil, 0, 0, &QueryError{Field: "to", Msg: fmt.Sprintf("%d steps; pick a shorter range or a daily step", n)}
	}
	out = &UsageSeries{Resolution: res, Step: time.Duration(span) * time.Second}
	for x := f; x < t; x += span {
		out.Times = append(out.Times, x)
	}
	out.DownloadBytes = make([]uint64, len(out.Times))
	out.UploadBytes = make([]uint64, len(out.Times))
	return out, f, t, nil
}

// FloorDiv is a/b rounded toward minus infinity (b > 0: the start of a's
// bucket of width b is FloorDiv(a, b)*b, negative a too).
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
