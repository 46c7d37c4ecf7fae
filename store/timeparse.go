package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// complaintOffsetLayouts are the time formats with an offset or zone that
// ParseComplaintTime accepts, besides RFC 3339: what abuse desks paste
// (mail dates, web server logs, RFC 3339 with a space).
var complaintOffsetLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04Z07:00",
	"2006-01-02 15:04Z07:00",
	"2006-01-02T15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02T15:04:05.999999999 Z07:00",
	"2006-01-02 15:04:05.999999999 Z07:00",
	time.RFC1123Z,
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"02/Jan/2006:15:04:05 -0700",
}

// complaintLocalLayouts are the formats of a time without an offset, read
// in the given zone (or UTC when the time ends with UTC or GMT).
var complaintLocalLayouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"02/Jan/2006:15:04:05",
	"Mon, 2 Jan 2006 15:04:05",
}

// utcSuffixes name UTC at the end of a pasted time ("... 14:02:11 UTC").
// Other abbreviations (EST, BRT, CET) are ambiguous and refused.
var utcSuffixes = []string{" UTC", " GMT"}

// ParseComplaintTime reads the time of an abuse complaint, the same way in
// the console and on the command line: RFC 3339 with any offset
// (2026-03-03T14:02:11Z, 2026-03-03T11:02:11-03:00), one of a few other
// formats with an offset or UTC, unix seconds, or a local time
// (2026-03-03T11:02:11) read in loc. A time with its own offset ignores
// loc. A local time that the zone skipped or saw twice (daylight saving
// changes) is refused: only its offset tells which instant it was. zoneArg
// names the caller's time-zone argument in the errors ("tz", "--tz").
func ParseComplaintTime(v string, loc *time.Location, zoneArg string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, fmt.Errorf("required (RFC 3339 such as 2026-03-03T14:02:11Z, or a local time with %s)", zoneArg)
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 1<<40 {
			return time.Time{}, fmt.Errorf("%d is out of range", n)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	utc := false
	for _, suf := range utcSuffixes {
		if n := len(v) - len(suf); n > 0 && strings.EqualFold(v[n:], suf) {
			v, utc, loc = strings.TrimSpace(v[:n]), true, time.UTC
			break
		}
	}
	if !utc {
		for _, l := range complaintOffsetLayouts {
			if t, err := time.Parse(l, v); err == nil {
				return t, nil
			}
		}
	}
	for _, l := range complaintLocalLayouts {
		wall, err := time.Parse(l, v)
		if err != nil {
			continue
		}
		if loc == nil {
			return time.Time{}, fmt.Errorf("%q has no time zone: add its offset (Z, -03:00) or give %s (an IANA zone such as America/Sao_Paulo, or UTC)", v, zoneArg)
		}
		return inZone(v, wall, loc)
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-03-03T14:02:11Z, 2026-03-03T11:02:11-03:00) or a local time (2026-03-03T11:02:11) with %s", v, zoneArg)
}

// inZone returns the instant whose wall clock in loc is wall's (parsed as
// UTC), refusing a wall clock the zone skipped or saw twice.
func inZone(v string, wall time.Time, loc *time.Location) (time.Time, error) {
	t := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), wall.Nanosecond(), loc)
	if !sameWall(t.In(loc), wall) {
		return time.Time{}, fmt.Errorf("%s did not exist in %s (the clocks went forward): give the time's offset", v, loc)
	}
	// Around a change the zone has two offsets: the wall clock read with
	// the other one may be another instant with the same wall clock.
	for _, d := range []time.Duration{-26 * time.Hour, 26 * time.Hour} {
		_, off := t.Add(d).Zone()
		c := wall.Add(-time.Duration(off) * time.Second)
		if !c.Equal(t) && sameWall(c.In(loc), wall) {
			return time.Time{}, fmt.Errorf("%s happened twice in %s (the clocks went back): give the time's offset", v, loc)
		}
	}
	return t, nil
}

// sameWall reports whether a and b show the same date and time of day.
func sameWall(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd && a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Second() == b.Second() &&
		a.Nanosecond() == b.Nanosecond()
}
