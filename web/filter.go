package web

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// Ranges are the preset time ranges of the range picker.
var ranges = map[string]time.Duration{
	"1h":  time.Hour,
	"6h":  6 * time.Hour,
	"24h": 24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour,
}

// maxRange bounds a custom range (the hour rollups' default retention).
const maxRange = 400 * 24 * time.Hour

// parseFilter reads the common query parameters of every flow query:
// range (1h, 6h, 24h, 7d, 30d) or from/to (RFC 3339 or unix seconds),
// router, host (addresses or CIDRs on either side, repeated or
// comma-separated, ORed), local and remote (the same, on the subscriber or
// the remote side), port, proto (number or name), as, iface, app
// (application label), subscriber (name, exactly), country (of the
// remote side; "unknown" for none) and domain (of the remote side,
// "unknown" for none). Unknown parameters are ignored;
// invalid values are a badRequest naming the parameter.
func parseFilter(q url.Values, now time.Time) (Filter, error) {
	var f Filter
	f.To = now
	if v := q.Get("to"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			return f, badf("to: %v", err)
		}
		f.To = t
	}
	rng := q.Get("range")
	if v := q.Get("from"); v != "" {
		if rng != "" {
			return f, badf("range: cannot be combined with from")
		}
		t, err := parseTime(v)
		if err != nil {
			return f, badf("from: %v", err)
		}
		f.From = t
	} else {
		if rng == "" {
			rng = "24h"
		}
		d, ok := ranges[rng]
		if !ok {
			return f, badf("range: %q is not one of 1h, 6h, 24h, 7d, 30d", rng)
		}
		f.From = f.To.Add(-d)
	}
	if !f.From.Before(f.To) {
		return f, badf("from: must be before to")
	}
	if f.To.Sub(f.From) > maxRange {
		return f, badf("from: the range is longer than %d days", int(maxRange.Hours()/24))
	}
	if v := q.Get("router"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id < 1 {
			return f, badf("router: %q is not a router id", v)
		}
		f.RouterID = id
	}
	for name, dst := range map[string]*[]netip.Prefix{"host": &f.Hosts, "local": &f.Locals, "remote": &f.Remotes} {
		for _, v := range q[name] {
			for _, h := range strings.Split(v, ",") {
				if h = strings.TrimSpace(h); h == "" {
					continue
				}
				p, err := parsePrefix(h)
				if err != nil {
					return f, badf("%s: %q is neither an address nor a CIDR", name, h)
				}
				if len(*dst) == 16 {
					return f, badf("%s: at most 16 hosts", name)
				}
				*dst = append(*dst, p)
			}
		}
	}
	if v := q.Get("app"); v != "" {
		if len(v) > 64 {
			return f, badf("app: longer than 64 characters")
		}
		f.App = v
	}
	if v := q.Get("subscriber"); v != "" {
		if len(v) > 200 {
			return f, badf("subscriber: longer than 200 characters")
		}
		f.Subscriber = v
	}
	if q.Has("domain") {
		v := strings.ToLower(strings.TrimSuffix(q.Get("domain"), "."))
		if len(v) > 253 {
			return f, badf("domain: longer than 253 characters")
		}
		if v == "unknown" {
			v = "" // the domain the top list calls "unknown"
		}
		f.Domain, f.HasDomain = v, true
	}
	if q.Has("country") {
		v := q.Get("country")
		if len(v) > 32 {
			return f, badf("country: longer than 32 characters")
		}
		if v == "" || v == "unknown" {
			v = "" // the country the top list calls "unknown"
		}
		f.Country, f.HasCountry = v, true
	}
	if v := q.Get("port"); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return f, badf("port: %q is not a port number (0-65535)", v)
		}
		f.Port, f.HasPort = uint16(n), true
	}
	if v := q.Get("proto"); v != "" {
		p, ok := store.ParseProto(v)
		if !ok {
			return f, badf("proto: %q is not a protocol name or number (0-255)", v)
		}
		f.Proto, f.HasProto = p, true
	}
	if v := q.Get("as"); v != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(v), "AS"), 10, 32)
		if err != nil {
			return f, badf("as: %q is not an AS number", v)
		}
		f.AS, f.HasAS = uint32(n), true
	}
	if v := q.Get("iface"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return f, badf("iface: %q is not an interface index", v)
		}
		f.Interface, f.HasInterface = uint32(n), true
	}
	return f, nil
}

// queryValues parses the query string strictly: a malformed one (such as
// one with a semicolon) is a badRequest rather than silently dropped
// parameters.
func queryValues(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badf("query: %v", err)
	}
	return q, nil
}

// parseTime accepts RFC 3339 or unix seconds.
func parseTime(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 1<<40 {
			return time.Time{}, badf("%d is out of range", n)
		}
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badf("%q is neither RFC 3339 nor unix seconds", v)
	}
	return t, nil
}

// parsePrefix accepts an address (as a /32 or /128) or a CIDR.
func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// steps are the bucket sizes a series may use.
var steps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 24 * time.Hour}

// maxPoints bounds a series.
const maxPoints = 2000

// chooseStep picks the smallest step giving at most about 360 points, or
// parses the step parameter.
func chooseStep(q url.Values, f Filter) (time.Duration, error) {
	span := f.To.Sub(f.From)
	if v := q.Get("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			return 0, badf("step: %q is not a duration of at least 1m", v)
		}
		if span/d > maxPoints {
			return 0, badf("step: %s gives more than %d points for this range", v, maxPoints)
		}
		return d, nil
	}
	for _, st := range steps {
		if span/st <= 360 {
			return st, nil
		}
	}
	return steps[len(steps)-1], nil
}

// intParam reads an optional integer parameter within [lo, hi].
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badf("%s: %q is not an integer within %d..%d", name, v, lo, hi)
	}
	return n, nil
}

// pathID reads a positive integer path variable.
func pathID(r *http.Request, v string) (int64, error) {
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, badf("id: %q is not a positive integer", v)
	}
	return id, nil
}

// rawFilters names the set filters that need raw flows, for messages.
func (f *Filter) rawFilters(ifaceGrouped bool) []string {
	var out []string
	for _, c := range []struct {
		name string
		set  bool
	}{
		{"hosts", len(f.Hosts)+len(f.Locals)+len(f.Remotes) > 0}, {"ports", f.HasPort}, {"protocols", f.HasProto},
		{"AS", f.HasAS}, {"interfaces", f.HasInterface && !ifaceGrouped}, {"applications", f.App != ""},
		{"countries", f.HasCountry}, {"subscribers", f.Subscriber != ""}, {"domains", f.HasDomain},
	} {
		if c.set {
			out = append(out, c.name)
		}
	}
	return out
}

// rawRetention is how long the store keeps raw flows; 0 when the
// configuration did not say (the store then reports the limit itself).
func (s *Server) rawRetention() time.Duration { return time.Duration(s.deps.Settings.RawRetention) }

// rawWindowStart is the oldest time raw flows are kept for; the zero time
// when the retention is unknown.
func (s *Server) rawWindowStart() time.Time {
	if s.rawRetention() <= 0 {
		return time.Time{}
	}
	return s.now().Add(-s.rawRetention())
}

// allRawFilters names every filter that needs raw flows.
var allRawFilters = []string{"hosts", "ports", "protocols", "AS", "interfaces", "applications", "countries", "subscribers", "domains"}

// rawWindowMsg is what the console says when filters (names from
// rawFilters) need raw flows over a range they are no longer kept for:
// "filters on hosts and ports work on the last 48 h; pick a shorter range".
func (s *Server) rawWindowMsg(filters []string) string {
	window := "raw window"
	if d := s.rawRetention(); d > 0 {
		window = humanDuration(d)
	}
	list := filters[0]
	if n := len(filters); n > 1 {
		list = strings.Join(filters[:n-1], ", ") + " and " + filters[n-1]
	}
	return "filters on " + list + " work on the last " + window + "; pick a shorter range"
}

// checkRawWindow refuses, with a message a person can act on, a query
// whose filters need raw flows (rawFilters) over a range starting before
// the raw window.
func (s *Server) checkRawWindow(f *Filter, ifaceGrouped bool) error {
	if fs := f.rawFilters(ifaceGrouped); len(fs) > 0 && f.From.Before(s.rawWindowStart()) {
		return badRequest{s.rawWindowMsg(fs)}
	}
	return nil
}

// humanDuration writes a retention the way the pages do: "48 h", "90 min",
// "7 d".
func humanDuration(d time.Duration) string {
	switch {
	case d >= 72*time.Hour && d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + " d"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	}
	return d.String()
}

// checkFlowWindow refuses a flow search that ends before the raw window:
// only raw flows can be listed.
func (s *Server) checkFlowWindow(f *Filter) error {
	if f.To.Before(s.rawWindowStart()) {
		return badf("raw flows are kept for the last %s; pick a range within it", humanDuration(s.rawRetention()))
	}
	return nil
}
