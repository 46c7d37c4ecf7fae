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
)

// Filter restricts a query. Empty fields match everything; values within a
// field are ORed, fields are ANDed. Rollups answer Sources and Directions
// (and Interfaces for interface series and tops); the other fields need raw
// flows, so they are only accepted for ranges within the raw window.
type Filter struct {
	// Sources are router ids; a negative value -N selects the flows of the
	// unknown exporter with id N (see Store.ExporterSources).
	Sources    []int64
	Directions []Direction
	// Interfaces match the input or the output ifIndex.
	Interfaces []uint32
	// Hosts match the local or the remote address (Flow.LocalRemote).
	Hosts []netip.Prefix
	// AS match the source or destination AS.
	AS []uint32
	// Ports match the source or destination port.
	Ports     []uint16
	Protocols []uint8
}

func (f *Filter) needsRaw() bool {
	return len(f.Hosts)+len(f.AS)+len(f.Ports)+len(f.Protocols) > 0
}

func (f *Filter) validate() error {
	for _, p := range f.Hosts {
		if !p.IsValid() {
			return &QueryError{Field: "filter.hosts", Msg: "invalid prefix"}
		}
	}
	for _, d := range f.Directions {
		if d > DirTransit {
			return &QueryError{Field: "filter.directions", Msg: fmt.Sprintf("unknown direction %d", d)}
		}
	}
	return nil
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

// match reports whether a decoded flow passes the filter.
func (f *Filter) match(fl *Flow, src int64) bool {
	if len(f.Sources) > 0 && !slices.Contains(f.Sources, src) {
		return false
	}
	if len(f.Directions) > 0 && !slices.Contains(f.Directions, fl.Direction) {
		return false
	}
	if len(f.Interfaces) > 0 && !slices.Contains(f.Interfaces, fl.InIf) && !slices.Contains(f.Interfaces, fl.OutIf) {
		return false
	}
	if len(f.Hosts) > 0 {
		l, r := fl.LocalRemote()
		l, r = l.Unmap(), r.Unmap()
		ok := false
		for _, p := range f.Hosts {
			if (l.IsValid() && p.Contains(l)) || (r.IsValid() && p.Contains(r)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
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

// segment is a time range [from, to) (unix seconds) answered from the
// hour (hour=true) or minute rollup tables.
type segment struct {
	hour     bool
	from, to int64
}

// segments splits [from, to) into hour-table and minute-table ranges: the
// hour table serves whole hours already rebuilt, the minute table the rest.
// Partial hours older than the minute retention are widened to whole
// hours. It reports whether the hour table is used.
//
// With preferHour false (series with a step under an hour) the minute table
// serves everything it still holds.
func (s *Store) segments(ctx context.Context, from, to int64, preferHour bool) ([]segment, bool, error) {
	pending := map[int64]bool{}
	rows, err := s.r.QueryContext(ctx, "SELECT hour FROM rollup_pending")
	if err != nil {
		return nil, false, fmt.Errorf("cannot read pending hours: %w", err)
	}
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("cannot read pending hours: %w", err)
		}
		pending[h] = true
	}
	rows.Close()
	now := s.now()
	doneBefore := now.Add(-hourGrace).Unix()
	minAvail := now.Add(-s.cfg.MinuteRetention).Unix()
	var out []segment
	usedHour := false
	add := func(sg segment) {
		if sg.hour {
			usedHour = true
		}
		if n := len(out); n > 0 && out[n-1].hour == sg.hour && out[n-1].to == sg.from {
			out[n-1].to = sg.to
			return
		}
		out = append(out, sg)
	}
	for h := from / 3600 * 3600; h < to; h += 3600 {
		lo, hi := max(from, h), min(to, h+3600)
		full := lo == h && hi == h+3600
		switch {
		case preferHour && full && h+3600 <= doneBefore && !pending[h]:
			add(segment{true, h, h + 3600})
		case lo >= minAvail:
			add(segment{false, lo, hi})
		default:
			add(segment{true, h, h + 3600})
		}
	}
	return out, usedHour, nil
}

// nameCache resolves interned name ids and exporter ids for raw reads.
type nameCache struct {
	mu        sync.Mutex
	names     map[int64]string
	exporters map[int64]netip.Addr
}

func (s *Store) lookupNames(ctx context.Context, r *decodedRow) error {
	c := &s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[int64]string{0: ""}
		c.exporters = map[int64]netip.Addr{}
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
	rows, err := s.r.QueryContext(ctx, "SELECT id, name FROM names WHERE id > ?", maxID)
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
	rows, err := s.r.QueryContext(ctx, "SELECT id, addr FROM exporters")
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

// rawPartition is a partition as seen by readers.
type rawPartition struct {
	start   int64 // unix ms
	name    string
	indexed bool
}

// rawPartitions lists the partitions overlapping [from, to) (unix ms),
// oldest first.
func (s *Store) rawPartitions(ctx context.Context, from, to int64) ([]rawPartition, error) {
	span := partitionSpan.Milliseconds()
	rows, err := s.r.QueryContext(ctx, "SELECT start, name, indexed FROM partitions WHERE start * 1000 < ? AND start * 1000 + ? > ? ORDER BY start",
		to, span, from)
	if err != nil {
		return nil, fmt.Errorf("cannot list raw partitions: %w", err)
	}
	defer rows.Close()
	var out []rawPartition
	for rows.Next() {
		var p rawPartition
		if err := rows.Scan(&p.start, &p.name, &p.indexed); err != nil {
			return nil, fmt.Errorf("cannot list raw partitions: %w", err)
		}
		p.start *= 1000
		out = append(out, p)
	}
	return out, rows.Err()
}

// hostCond returns the SQL condition on the a/b columns for the host
// filter (nil filter: none). Rows it admits are re-checked exactly in Go.
func hostCond(hosts []netip.Prefix) (string, []any) {
	if len(hosts) == 0 {
		return "", nil
	}
	var parts []string
	var args []any
	for _, p := range hosts {
		lo := p.Masked().Addr()
		hi := lastAddr(p)
		if lo == hi {
			parts = append(parts, "a = ? OR b = ?")
			args = append(args, addrBytes(lo), addrBytes(lo))
			continue
		}
		parts = append(parts, "a BETWEEN ? AND ? OR b BETWEEN ? AND ?")
		args = append(args, addrBytes(lo), addrBytes(hi), addrBytes(lo), addrBytes(hi))
	}
	return " AND (" + strings.Join(parts, " OR ") + ")", args
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// scanRaw calls fn for every raw flow in [from, to) (unix ms) that passes
// the filter, partition by partition in the given order (desc = newest
// first); within a partition rows come in (t, id) order. fn returns false to
// stop. The cursor (when non-nil) skips rows up to and including it.
func (s *Store) scanRaw(ctx context.Context, from, to int64, flt *Filter, desc bool, cur *cursor, fn func(*decodedRow, cursor) bool) error {
	parts, err := s.rawPartitions(ctx, from, to)
	if err != nil {
		return err
	}
	if desc {
		slices.Reverse(parts)
	}
	hc, hargs := hostCond(flt.Hosts)
	order, cmpOp := "ASC", ">"
	if desc {
		order, cmpOp = "DESC", "<"
	}
	const page = 4096
	var row decodedRow
	for _, p := range parts {
		if cur != nil && ((desc && p.start > cur.part) || (!desc && p.start < cur.part)) {
			continue
		}
		var lastT, lastID int64
		have := false
		if cur != nil && cur.part == p.start {
			lastT, lastID, have = cur.t, cur.id, true
		}
		for {
			q := "SELECT id, t, a, b, x FROM " + p.name + " WHERE t >= ? AND t < ?" + hc
			args := append([]any{from - p.start, to - p.start}, hargs...)
			if have {
				q += fmt.Sprintf(" AND (t %s ? OR (t = ? AND id %s ?))", cmpOp, cmpOp)
				args = append(args, lastT, lastT, lastID)
			}
			q += fmt.Sprintf(" ORDER BY t %s, id %s LIMIT %d", order, order, page)
			rows, err := s.r.QueryContext(ctx, q, args...)
			if err != nil {
				if strings.Contains(err.Error(), "no such table") {
					break // dropped by retention meanwhile
				}
				return fmt.Errorf("cannot read raw flows: %w", err)
			}
			n := 0
			stop := false
			for rows.Next() {
				var id, t int64
				var a, b, x []byte
				if err := rows.Scan(&id, &t, &a, &b, &x); err != nil {
					rows.Close()
					return fmt.Errorf("cannot read raw flows: %w", err)
				}
				n++
				lastT, lastID, have = t, id, true
				if err := decodeRaw(&row, p.start+t, a, b, x); err != nil {
					rows.Close()
					return fmt.Errorf("cannot read raw flow %d of %s: %w", id, p.name, err)
				}
				src := row.RouterID
				if src == 0 {
					src = -row.expID
				}
				if !flt.match(&row.Flow, src) {
					continue
				}
				if err := s.lookupNames(ctx, &row); err != nil {
					rows.Close()
					return err
				}
				if !fn(&row, cursor{part: p.start, t: t, id: id}) {
					stop = true
					break
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("cannot read raw flows: %w", err)
			}
			if stop {
				return nil
			}
			if n < page {
				break
			}
		}
	}
	return ctx.Err()
}

// rawWindowStart is the oldest time raw flows are kept for.
func (s *Store) rawWindowStart() time.Time { return s.now().Add(-s.cfg.RawRetention) }
