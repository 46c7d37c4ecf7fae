package routerostest

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kind is how a property's value is checked and normalised on write.
type kind int

const (
	kStr kind = iota
	kBool
	kDur
	kInt
	kAddr
	kVersion
	kAddrPort
)

// trap is a RouterOS `!trap` reply.
type trap struct {
	category string
	message  string
}

func (t *trap) Error() string { return t.message }

var errNoPermission = &trap{message: "not enough permissions (9)"}

// menu is one API menu: a list (rows with .id) or a single-value menu.
type menu struct {
	single   bool
	fields   []string        // print order
	kinds    map[string]kind // settable properties and their kinds
	defaults map[string]string
	required []string
	canAdd   bool
	canSet   bool
	canDel   bool
	policy   string // extra policy needed to write (e.g. "policy" for users)
	hidden   map[string]bool
	// unique returns an error when a new or changed row collides.
	unique func(m *menu, r *row) *trap
	// oids computes `<prop>.oid` values.
	oid    func(r *row, prop string) (string, bool)
	rows   []*row
	nextID int
}

type row struct {
	id    string
	props map[string]string
}

func (r *row) get(k string) (string, bool) {
	if k == ".id" {
		return r.id, r.id != ""
	}
	v, ok := r.props[k]
	return v, ok
}

func (m *menu) addRow(props map[string]string) *row {
	m.nextID++
	r := &row{id: "*" + strings.ToUpper(strconv.FormatInt(int64(m.nextID), 16)), props: props}
	m.rows = append(m.rows, r)
	return r
}

func (m *menu) find(id string) *row {
	for _, r := range m.rows {
		if r.id == id || (r.props["name"] != "" && r.props["name"] == id) {
			return r
		}
	}
	return nil
}

// normalize checks a value and returns it as RouterOS would print it.
func normalize(k kind, name, v string) (string, *trap) {
	bad := &trap{category: "1", message: fmt.Sprintf("value of %s is invalid: %q", name, v)}
	switch k {
	case kBool:
		switch strings.ToLower(v) {
		case "yes", "true":
			return "true", nil
		case "no", "false":
			return "false", nil
		}
		return "", bad
	case kDur:
		d, err := parseDuration(v)
		if err != nil {
			return "", bad
		}
		return formatDuration(d), nil
	case kInt:
		if _, err := strconv.ParseUint(v, 10, 32); err != nil {
			return "", bad
		}
		return v, nil
	case kAddr:
		a, err := netip.ParseAddr(v)
		if err != nil {
			return "", bad
		}
		return a.String(), nil
	case kAddrPort:
		ap, err := netip.ParseAddrPort(v)
		if err != nil {
			return "", bad
		}
		return ap.String(), nil
	case kVersion:
		switch strings.ToLower(v) {
		case "1", "5", "9", "ipfix":
			return strings.ToLower(v), nil
		}
		return "", bad
	}
	return v, nil
}

// parseDuration reads RouterOS times: "1m", "1h30m", "2d20h12m20s", "1w",
// "00:01:00", or plain seconds.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if strings.Count(s, ":") == 2 {
		parts := strings.Split(s, ":")
		var total time.Duration
		for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
			n, err := strconv.ParseUint(parts[i], 10, 32)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			total += time.Duration(n) * unit
		}
		return total, nil
	}
	var total time.Duration
	num := ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			num += string(c)
			continue
		}
		if num == "" {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		n, _ := strconv.ParseUint(num, 10, 32)
		num = ""
		var unit time.Duration
		switch c {
		case 'w':
			unit = 7 * 24 * time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			if i+1 < len(s) && s[i+1] == 's' {
				unit = time.Millisecond
				i++
			} else {
				unit = time.Minute
			}
		case 's':
			unit = time.Second
		default:
			return 0, fmt.Errorf("bad duration %q", s)
		}
		total += time.Duration(n) * unit
	}
	if num != "" {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return total, nil
}

// formatDuration prints like RouterOS: 1m, 1m30s, 3d4h, 0s.
func formatDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		d time.Duration
		s string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.s)
			d -= n * u.d
		}
	}
	return b.String()
}

// request is a parsed command sentence.
type request struct {
	path    string // menu path, e.g. /ip/traffic-flow/target
	verb    string // print, add, set, remove...
	attrs   map[string]string
	order   []string // attribute names in order
	queries []string
	tag     string
}

// selectRows returns the rows that pass the query words.
func selectRows(rows []*row, queries []string) []*row {
	if len(queries) == 0 {
		return rows
	}
	var out []*row
	for _, r := range rows {
		if evalQuery(r, queries) {
			out = append(out, r)
		}
	}
	return out
}

// evalQuery runs the API query stack machine (docs §1.7): the stack
// starts as an infinite run of true; the row passes if no false remains.
func evalQuery(r *row, queries []string) bool {
	var st []bool
	pop := func() bool {
		if len(st) == 0 {
			return true
		}
		v := st[len(st)-1]
		st = st[:len(st)-1]
		return v
	}
	for _, q := range queries {
		q = strings.TrimPrefix(q, "?")
		switch {
		case strings.HasPrefix(q, "#"):
			for _, op := range q[1:] {
				switch {
				case op == '!':
					st = append(st, !pop())
				case op == '&':
					a, b := pop(), pop()
					st = append(st, a && b)
				case op == '|':
					a, b := pop(), pop()
					st = append(st, a || b)
				case op == '.':
					v := pop()
					st = append(st, v, v)
				case op >= '0' && op <= '9':
					i := len(st) - 1 - int(op-'0')
					v := true
					if i >= 0 {
						v = st[i]
					}
					st = append(st, v)
				}
			}
		case strings.HasPrefix(q, "-"):
			_, ok := r.get(q[1:])
			st = append(st, !ok)
		case strings.HasPrefix(q, "<"), strings.HasPrefix(q, ">"):
			name, val, _ := strings.Cut(q[1:], "=")
			have, ok := r.get(name)
			c := compare(have, val)
			if q[0] == '<' {
				st = append(st, ok && c < 0)
			} else {
				st = append(st, ok && c > 0)
			}
		default:
			name, val, hasVal := strings.Cut(q, "=")
			have, ok := r.get(name)
			if !hasVal {
				st = append(st, ok)
			} else {
				st = append(st, ok && have == val)
			}
		}
	}
	return !slices.Contains(st, false)
}

func compare(a, b string) int {
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 == nil && err2 == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}
