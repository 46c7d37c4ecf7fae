package scheduler

import "time"

// period is one calendar period of a schedule, [from, to) in its zone.
type period struct {
	from, to time.Time
	// label names it: 2026-11 for a month, 2026-11-02..2026-11-08 for a
	// week (both days included, the form store.ParseReportPeriod reads).
	label string
}

// periodAt returns the period of kind every (EveryMonth, EveryWeek) that
// holds t in loc.
func periodAt(every string, loc *time.Location, t time.Time) period {
	t = t.In(loc)
	y, m, d := t.Date()
	if every == EveryWeek {
		d -= (int(t.Weekday()) + 6) % 7 // back to Monday
		from := time.Date(y, m, d, 0, 0, 0, 0, loc)
		to := time.Date(y, m, d+7, 0, 0, 0, 0, loc)
		last := time.Date(y, m, d+6, 0, 0, 0, 0, loc)
		return period{from: from, to: to, label: from.Format(time.DateOnly) + ".." + last.Format(time.DateOnly)}
	}
	from := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	return period{from: from, to: time.Date(y, m+1, 1, 0, 0, 0, 0, loc), label: from.Format("2006-01")}
}

// prev returns the period before p.
func (p period) prev(every string, loc *time.Location) period {
	return periodAt(every, loc, p.from.Add(-time.Nanosecond))
}

// next returns the period after p.
func (p period) next(every string, loc *time.Location) period {
	return periodAt(every, loc, p.to)
}

// lastClosed returns the latest period of a schedule that is due at now:
// closed for at least settle.
func lastClosed(every string, loc *time.Location, settle time.Duration, now time.Time) period {
	return periodAt(every, loc, now.Add(-settle)).prev(every, loc)
}
