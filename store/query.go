package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrBadQuery is wrapped by every *QueryError, so callers can answer 400
// with errors.Is(err, store.ErrBadQuery).
var ErrBadQuery = errors.New("bad query")

// QueryError is a query the store refuses: a bad range, an unknown
// dimension, a filter that the data kept for that range cannot answer.
type QueryError struct {
	Field string // the query field at fault ("from", "filter.hosts"...)
	Msg   string
}

func (e *QueryError) Error() string { return fmt.Sprintf("bad query: %s: %s", e.Field, e.Msg) }

// Is makes errors.Is(err, ErrBadQuery) true.
func (e *QueryError) Is(target error) bool { return target == ErrBadQuery }

// Resolution is the data a query was answered from.
type Resolution string

// Resolutions.
const (
	ResAuto   Resolution = ""    // let the store choose (queries only)
	ResRaw    Resolution = "raw" // raw flows (last RawRetention)
	ResMinute Resolution = "1m"  // 1-minute rollups (last MinuteRetention)
	ResHour   Resolution = "1h"  // 1-hour rollups, completed with 1-minute rollups for the last hours
	ResDay    Resolution = "1d"  // 1-day top-K rollups, completed with hours and minutes at the ends (tops only)
)

// Filter restricts a query. Empty fields match everything; values within a
// field are ORed, fields are ANDed. Rollups answer Sources and Directions
// (and Interfaces for interface series and tops); the other fields need raw
// flows, so they are only accepted for ranges within the raw window: the
// rollups keep the top entries of each dimension separately, which cannot
// answer "the remote ASes of local host X" exactly.
type Filter struct {
	// Sources are router ids; a negative value -N selects the flows of the
	// unknown exporter with id N (see Store.ExporterSources).
	Sources    []int64
	Directions []Direction
	// Interfaces match the input or the output ifIndex.
	Interfaces []uint32
	// Hosts match the local or the remote address (Flow.LocalRemote).
	Hosts []netip.Prefix
	// LocalHosts match the local address and RemoteHosts the remote
	// address (Flow.LocalRemote): both together select a conversation, as
	// DimConversation ranks them.
	LocalHosts  []netip.Prefix
	RemoteHosts []netip.Prefix
	// AS match the source or destination AS.
	AS []uint32
	// Ports match the source or destination port.
	Ports     []uint16
	Protocols []uint8
	// Applications match Flow.Application ("" matches flows without one),
	// as DimApplication labels them.
	Applications []string
	// Countries match the country of the remote side (the source country of
	// downloads, else the destination country), as DimCountry ranks them;
	// "" matches an unknown country.
	Countries []string
	// Subscribers match Flow.Subscriber exactly ("" matches flows without
	// one), as DimSubscriber labels them.
	Subscribers []string
}

// rawFields returns the names of the set fields that only raw flows
// answer.
func (f *Filter) rawFields() []string {
	var out []string
	for _, c := range []struct {
		name string
		n    int
	}{
		{"hosts", len(f.Hosts)}, {"local-hosts", len(f.LocalHosts)}, {"remote-hosts", len(f.RemoteHosts)},
		{"as", len(f.AS)}, {"ports", len(f.Ports)}, {"protocols", len(f.Protocols)},
		{"applications", len(f.Applications)}, {"countries", len(f.Countries)},
		{"subscribers", len(f.Subscribers)},
	} {
		if c.n > 0 {
			out = append(out, c.name)
		}
	}
	return out
}

func (f *Filter) needsRaw() bool { return len(f.rawFields()) > 0 }

func (f *Filter) validate() error {
	for _, l := range []struct {
		field string
		ps    []netip.Prefix
	}{{"filter.hosts", f.Hosts}, {"filter.local-hosts", f.LocalHosts}, {"filter.remote-hosts", f.RemoteHosts}} {
		for _, p := range l.ps {
			if !p.IsValid() {
				return &QueryError{Field: l.field, Msg: "invalid prefix"}
			}
		}
	}
	for _, d := range f.Directions {
		if d >= NumDirections {
			return &QueryError{Field: "filter.directions", Msg: fmt.Sprintf("unknown direction %d", d)}
		}
	}
	return nil
}

// rawWindowError is the error of a query that needs raw flows over a range
// that starts before the raw window. why names what needs them.
func (s *Store) rawWindowError(why string) error {
	return &QueryError{Field: "filter", Msg: fmt.Sprintf(
		"%s needs raw flows, which are kept for %s only (since %s): the rollups keep the top %d entries of each dimension separately, "+
			"so they cannot answer it exactly; choose a range within the last %s",
		why, s.cfg.RawRetention, s.rawWindowStart().UTC().Format(time.RFC3339), s.cfg.TopK, s.cfg.RawRetention)}
}

// rawReason says why a query needs raw flows, for rawWindowError.
func rawReason(f *Filter, what string) string {
	if fs := f.rawFields(); len(fs) > 0 {
		return "a filter on " + strings.Join(fs, ", ")
	}
	return what
}

// ParsePrefix parses a host or CIDR filter ("192.0.2.1", "2001:db8::/32");
// errors are *QueryError.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, &QueryError{Field: "filter.hosts", Msg: fmt.Sprintf("bad CIDR %q", s)}
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, &QueryError{Field: "filter.hosts", Msg: fmt.Sprintf("bad address %q", s)}
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func anyContains(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// remoteCountry is the country DimCountry ranks a flow under.
func remoteCountry(f *Flow) string {
	if f.Direction.Inbound() {
		return f.SrcCountry
	}
	return f.DstCountry
}

// match reports whether a decoded flow passes the filter. local and remote
// are its unmapped Flow.LocalRemote addresses.
func (f *Filter) match(fl *Flow, src int64, local, remote netip.Addr) bool {
	if len(f.Sources) > 0 && !slices.Contains(f.Sources, src) {
		return false
	}
	if len(f.Directions) > 0 && !slices.Contains(f.Directions, fl.Direction) {
		return false
	}
	if len(f.Interfaces) > 0 && !slices.Contains(f.Interfaces, fl.InIf) && !slices.Contains(f.Interfaces, fl.OutIf) {
		return false
	}
	if len(f.Hosts) > 0 && !anyContains(f.Hosts, local) && !anyContains(f.Hosts, remote) {
		return false
	}
	if len(f.LocalHosts) > 0 && !anyContains(f.LocalHosts, local) {
		return false
	}
	if len(f.RemoteHosts) > 0 && !anyContains(f.RemoteHosts, remote) {
		return false
	}
	if len(f.AS) > 0 && !slices.Contains(f.AS, fl.SrcAS) && !slices.Contains(f.AS, fl.DstAS) {
		return false
	}
	if len(f.Ports) > 0 && !slices.Contains(f.Ports, fl.SrcPort) && !slices.Contains(f.Ports, fl.DstPort) {
		return false
	}
	if len(f.Protocols) > 0 && !slices.Contains(f.Protocols, fl.Proto) {
		return false
	}
	if len(f.Applications) > 0 && !slices.Contains(f.Applications, fl.Application) {
		return false
	}
	if len(f.Countries) > 0 && !slices.Contains(f.Countries, remoteCountry(fl)) {
		return false
	}
	if len(f.Subscribers) > 0 && !slices.Contains(f.Subscribers, fl.Subscriber) {
		return false
	}
	return true
}

// sqlIn returns " AND col IN (?,...)" and its arguments.
func sqlIn[T any](col string, vals []T) (string, []any) {
	if len(vals) == 0 {
		return "", nil
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return " AND " + col + " IN (" + strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",") + ")", args
}

// maxRange bounds any query range (longer than any retention).
const maxRange = 800 * 24 * time.Hour

func (s *Store) checkRange(from, to time.Time) error {
	switch {
	case from.IsZero() || to.IsZero():
		return &QueryError{Field: "from", Msg: "from and to are required"}
	case !from.Before(to):
		return &QueryError{Field: "to", Msg: fmt.Sprintf("range is empty or inverted (%s >= %s)", from.Format(time.RFC3339), to.Format(time.RFC3339))}
	case to.Sub(from) > maxRange:
		return &QueryError{Field: "from", Msg: fmt.Sprintf("range of %s is longer than the %s limit", to.Sub(from), maxRange)}
	case to.After(s.now().Add(24 * time.Hour)):
		return &QueryError{Field: "to", Msg: "range ends more than a day in the future"}
	case from.Before(s.now().Add(-maxRange)):
		return &QueryError{Field: "from", Msg: "range starts before any data kept"}
	}
	return nil
}

// segment is a time range [from, to) (unix seconds) answered from one
// rollup table: 'm' (minutes), 'h' (hours) or 'd' (days, top-K only).
type segment struct {
	table    byte
	from, to int64
}

// Resolution of the coarsest table a query used.
func segResolution(segs []segment) Resolution {
	res := ResMinute
	for _, sg := range segs {
		switch {
		case sg.table == 'd':
			return ResDay
		case sg.table == 'h':
			res = ResHour
		}
	}
	return res
}

// segments splits [from, to) into day-, hour- and minute-table ranges: the
// day table (with preferDay) serves whole days already rebuilt, the hour
// table whole hours already rebuilt, the minute table the rest. Partial
// hours older than the minute retention are widened to whole hours.
//
// With preferHour false (series with a step under an hour) the minute table
// serves everything it still holds.
func (s *Store) segments(ctx context.Context, from, to int64, preferHour, preferDay bool) ([]segment, error) {
	pending := map[int64]bool{}
	pendingDay := map[int64]bool{}
	for _, q := range []struct {
		sql string
		m   map[int64]bool
		day bool
	}{{"SELECT hour FROM rollup_pending", pending, false}, {"SELECT day FROM rollup_pending_day", pendingDay, true}} {
		if q.day && !preferDay {
			continue
		}
		rows, err := s.r.QueryContext(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("cannot read pending rollups: %w", err)
		}
		for rows.Next() {
			var h int64
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("cannot read pending rollups: %w", err)
			}
			q.m[h] = true
			if !q.day {
				pendingDay[h/86400*86400] = true // its day is not rebuilt yet
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("cannot read pending rollups: %w", err)
		}
	}
	now := s.now()
	doneBefore := now.Add(-hourGrace).Unix()
	minAvail := now.Add(-s.cfg.MinuteRetention).Unix()
	var out []segment
	add := func(sg segment) {
		if n := len(out); n > 0 && out[n-1].table == sg.table && out[n-1].to == sg.from {
			out[n-1].to = sg.to
			return
		}
		out = append(out, sg)
	}
	for h := from / 3600 * 3600; h < to; h += 3600 {
		if d := h / 86400 * 86400; preferDay && h == d && d >= from && d+86400 <= to && d+86400 <= doneBefore && !pendingDay[d] {
			add(segment{'d', d, d + 86400})
			h += 86400 - 3600
			continue
		}
		lo, hi := max(from, h), min(to, h+3600)
		full := lo == h && hi == h+3600
		switch {
		case preferHour && full && h+3600 <= doneBefore && !pending[h]:
			add(segment{'h', h, h + 3600})
		case lo >= minAvail:
			add(segment{'m', lo, hi})
		default:
			add(segment{'h', h, h + 3600})
		}
	}
	return out, nil
}

// nameCache resolves interned name ids, exporter ids and interned
// addresses for raw reads.
type nameCache struct {
	mu        sync.Mutex
	names     map[int64]string
	exporters map[int64]netip.Addr
	addrs     map[uint64]netip.Addr
}

func (s *Store) lookupNames(ctx context.Context, r *decodedRow) error {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[int64]string{0: ""}
		c.exporters = map[int64]netip.Addr{}
		c.addrs = map[uint64]netip.Addr{}
	}
	ids := [4]uint64{r.names.sub, r.names.app, r.names.scc, r.names.dcc}
	for _, id := range ids {
		if _, ok := c.names[int64(id)]; !ok {
			if err := s.loadNames(ctx); err != nil {
				return err
			}
			break
		}
	}
	if _, ok := c.exporters[r.expID]; !ok && r.expID != 0 {
		if err := s.loadExporters(ctx); err != nil {
			return err
		}
	}
	if r.dictMask != 0 {
		for i, id := range r.dictIDs {
			if r.dictMask&(1<<i) == 0 {
				continue
			}
			if _, ok := c.addrs[id]; !ok {
				if err := s.loadAddrs(ctx); err != nil {
					return err
				}
				if _, ok := c.addrs[id]; !ok {
					return fmt.Errorf("damaged raw flow row %d: unknown address id %d", r.id, id)
				}
			}
		}
		r.fillAddrs(func(id uint64) netip.Addr { return c.addrs[id] })
	}
	r.Subscriber, r.Application = c.names[int64(ids[0])], c.names[int64(ids[1])]
	r.SrcCountry, r.DstCountry = c.names[int64(ids[2])], c.names[int64(ids[3])]
	r.Exporter = netip.AddrPortFrom(c.exporters[r.expID], 0)
	return nil
}

func (s *Store) loadNames(ctx context.Context) error {
	var maxID int64
	for id := range s.cache.names {
		maxID = max(maxID, id)
	}
	rows, err := s.meta.QueryContext(ctx, "SELECT id, name FROM names WHERE id > ?", maxID)
	if err != nil {
		return fmt.Errorf("cannot read names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var n string
		if err := rows.Scan(&id, &n); err != nil {
			return fmt.Errorf("cannot read names: %w", err)
		}
		if len(s.cache.names) < maxNames {
			s.cache.names[id] = n
		}
	}
	return rows.Err()
}

func (s *Store) loadExporters(ctx context.Context) error {
	rows, err := s.meta.QueryContext(ctx, "SELECT id, addr FROM exporters")
	if err != nil {
		return fmt.Errorf("cannot read exporters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return fmt.Errorf("cannot read exporters: %w", err)
		}
		a, _ := netip.AddrFromSlice(raw)
		s.cache.exporters[id] = a
	}
	return rows.Err()
}

func (s *Store) loadAddrs(ctx context.Context) error {
	var maxID uint64
	for id := range s.cache.addrs {
		maxID = max(maxID, id)
	}
	rows, err := s.meta.QueryContext(ctx, "SELECT id, addr FROM addrs WHERE id > ?", int64(maxID))
	if err != nil {
		return fmt.Errorf("cannot read addresses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return fmt.Errorf("cannot read addresses: %w", err)
		}
		if a, ok := netip.AddrFromSlice(raw); ok && len(s.cache.addrs) < maxAddrs {
			s.cache.addrs[uint64(id)] = a
		}
	}
	return rows.Err()
}

// ExporterSources returns, per exporter address the store has seen, the
// source id that queries filter on: the router id when the exporter is
// attributed to a router, else minus the exporter id.
func (s *Store) ExporterSources(ctx context.Context) (map[netip.Addr]int64, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, addr, router_id FROM exporters")
	if err != nil {
		return nil, fmt.Errorf("cannot read exporters: %w", err)
	}
	defer rows.Close()
	out := map[netip.Addr]int64{}
	for rows.Next() {
		var id, rid int64
		var raw []byte
		if err := rows.Scan(&id, &raw, &rid); err != nil {
			return nil, fmt.Errorf("cannot read exporters: %w", err)
		}
		a, ok := netip.AddrFromSlice(raw)
		if !ok {
			continue
		}
		if rid != 0 {
			out[a] = rid
		} else {
			out[a] = -id
		}
	}
	return out, rows.Err()
}

// rawWindowStart is the oldest time raw flows are kept for.
func (s *Store) rawWindowStart() time.Time { return s.now().Add(-s.cfg.RawRetention) }
