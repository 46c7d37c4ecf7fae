package routerostest

import (
	"fmt"
	"github.com/flowbox/flowbox/routeros"
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
	// kListAddr4 and kListAddr6 are address-list addresses: an address or
	// a prefix of the family (IPv4 /32 prints as the bare address, IPv6 is
	// always a prefix).
	kListAddr4
	kListAddr6
	// kPrefix4 and kPrefix6 are route destinations (a bare address gets
	// the full length).
	kPrefix4
	kPrefix6
	// kRouteType4 and kRouteType6 are RouterOS 6's route types.
	kRouteType4
	kRouteType6
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
	oid func(r *row, prop string) (string, bool)
	// timed rows may carry a timeout after which they disappear (address
	// lists).
	timed  bool
	rows   []*row
	nextID int
}

type row struct {
	id    string
	props map[string]string
	// expires is when a timed row disappears (zero: never).
	expires time.Time
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
		d, err := routeros.ParseDuration(v)
		if err != nil {
			return "", bad
		}
		return routeros.FormatDuration(d), nil
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
	case kListAddr4, kListAddr6, kPrefix4, kPrefix6:
		v6 := k == kListAddr6 || k == kPrefix6
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return "", bad
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Zone() != "" || p.Addr().Is4In6() || p.Addr().Is6() != v6 {
			return "", bad
		}
		p = p.Masked()
		if k == kListAddr4 && p.IsSingleIP() {
			return p.Addr().String(), nil
		}
		return p.String(), nil
	case kRouteType4, kRouteType6:
		types := []string{"unicast", "blackhole", "prohibit", "unreachable"}
		if k == kRouteType6 {
			types = []string{"unicast", "unreachable"}
		}
		if slices.Contains(types, v) {
			return v, nil
		}
		return "", bad
	case kVersion:
		switch strings.ToLower(v) {
		case "1", "5", "9", "ipfix":
			return strings.ToLower(v), nil
		}
		return "", bad
	}
	return v, nil
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
