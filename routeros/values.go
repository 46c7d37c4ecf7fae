package routeros

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The value formats of RouterOS that both flowbox's provisioning and
// enrichment read (and the fake router in routerostest writes): one home
// for each rule.

// durationUnits are RouterOS's time units, largest first.
var durationUnits = []struct {
	d time.Duration
	s string
}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}}

// ParseDuration reads a RouterOS time: "1m", "1h30m", "2d20h12m20s", "1w",
// "500ms", "00:01:00" (h:m:s) or plain seconds ("90").
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if strings.Count(s, ":") == 2 {
		var total time.Duration
		for i, part := range strings.Split(s, ":") {
			n, err := strconv.ParseUint(part, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			total += time.Duration(n) * []time.Duration{time.Hour, time.Minute, time.Second}[i]
		}
		return total, nil
	}
	var total time.Duration
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		unit := time.Duration(0)
		for _, u := range durationUnits {
			if u.s == rest[i:j] {
				unit = u.d
			}
		}
		if unit == 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	return total, nil
}

// FormatDuration prints d as RouterOS does: 1m, 1m30s, 3d4h, 500ms, 0s.
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range durationUnits {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.s)
			d -= n * u.d
		}
	}
	return b.String()
}

// IfIndex returns the SNMP ifIndex of an /interface row: the last arc of
// `name.oid` (.1.3.6.1.2.1.2.2.1.2.<ifIndex>) where the router answers it,
// otherwise the numeric part of `.id` (*7 -> 7), which matches ifIndex on
// the routers observed but is not documented by MikroTik. 0 is never an
// interface: RouterOS uses it in flow records for the router itself.
func IfIndex(row map[string]string) (uint32, bool) {
	if oid := row["name.oid"]; oid != "" {
		if i := strings.LastIndexByte(oid, '.'); i >= 0 {
			if n, err := strconv.ParseUint(oid[i+1:], 10, 32); err == nil && n > 0 {
				return uint32(n), true
			}
		}
	}
	if id, ok := strings.CutPrefix(row[".id"], "*"); ok {
		if n, err := strconv.ParseUint(id, 16, 32); err == nil && n > 0 {
			return uint32(n), true
		}
	}
	return 0, false
}
