package flowdb

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flowbox/flowbox/store"
)

// rawWindowError is the error of a query that needs raw flows over a range
// that starts before the raw window. why names what needs them.
func (s *FlowDB) rawWindowError(why string) error {
	return &store.QueryError{Field: "filter", Msg: fmt.Sprintf(
		"%s needs raw flows, which are kept for %s only (since %s): the rollups keep the top %d entries of each dimension separately, "+
			"so they cannot answer it exactly; choose a range within the last %s",
		why, s.cfg.RawRetention, s.rawWindowStart().UTC().Format(time.RFC3339), s.cfg.TopK, s.cfg.RawRetention)}
}

// rawReason says why a query needs raw flows, for rawWindowError.
func rawReason(f *store.Filter, what string) string {
	if fs := f.RawFields(); len(fs) > 0 {
		return "a filter on " + strings.Join(fs, ", ")
	}
	return what
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

func (s *FlowDB) checkRange(from, to time.Time) error { return store.CheckRange(from, to, s.now()) }

// segment is a time range [from, to) (unix seconds) answered from one
// rollup table: 'm' (minutes), 'h' (hours) or 'd' (days, top-K only).
type segment struct {
	table    byte
	from, to int64
}

// Resolution of the coarsest table a query used.
func segResolution(segs []segment) store.Resolution {
	res := store.ResMinute
	for _, sg := range segs {
		switch {
		case sg.table == 'd':
			return store.ResDay
		case sg.table == 'h':
			res = store.ResHour
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
func (s *FlowDB) segments(ctx context.Context, from, to int64, preferHour, preferDay bool) ([]segment, error) {
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
// addresses for raw reads. Raw scans look up every row's ids: they are
// dense (assigned from 1, bounded by maxNames, maxExporters and
// maxAddrs), so slices hold them, under a read lock.
type nameCache struct {
	mu        sync.RWMutex
	init      bool
	names     idTable[string]
	exporters idTable[netip.Addr]
	addrs     idTable[netip.Addr]
}

// idTable maps ids to values: a slice for ids up to its bound, a map
// beyond (never used while ids stay within their tables' bounds).
type idTable[V any] struct {
	dense  []V
	ok     []bool
	sparse map[uint64]V
	n      int
	max    uint64
}

// idTableDense bounds the ids an idTable keeps in its slice.
const idTableDense = maxNames + 1

func (t *idTable[V]) get(id uint64) (V, bool) {
	if id < uint64(len(t.dense)) {
		return t.dense[id], t.ok[id]
	}
	v, ok := t.sparse[id]
	return v, ok
}

func (t *idTable[V]) set(id uint64, v V) {
	t.max = max(t.max, id)
	if id < idTableDense {
		if id >= uint64(len(t.dense)) {
			n := max(2*len(t.dense), int(id)+1, 64)
			n = min(n, idTableDense)
			t.dense = append(t.dense, make([]V, n-len(t.dense))...)
			t.ok = append(t.ok, make([]bool, n-len(t.ok))...)
		}
		if !t.ok[id] {
			t.n++
		}
		t.dense[id], t.ok[id] = v, true
		return
	}
	if t.sparse == nil {
		t.sparse = map[uint64]V{}
	}
	if _, ok := t.sparse[id]; !ok {
		t.n++
	}
	t.sparse[id] = v
}

// resolve fills the names, exporter and interned addresses of r; it
// reports false when an id is not in the cache (the caller loads the
// tables and tries again). lenient, an unknown name or exporter (a
// damaged row) reads as "" or the zero address, and only an unknown
// address id fails.
func (c *nameCache) resolve(r *decodedRow, lenient bool) bool {
	ids := [5]uint64{r.names.sub, r.names.app, r.names.scc, r.names.dcc, r.names.dom}
	var names [5]string
	for i, id := range ids {
		n, ok := c.names.get(id)
		if !ok && !lenient {
			return false
		}
		names[i] = n
	}
	exp, ok := c.exporters.get(uint64(r.expID))
	if !ok && r.expID != 0 && !lenient {
		return false
	}
	if r.dictMask != 0 {
		for i, id := range r.dictIDs {
			if r.dictMask&(1<<i) != 0 {
				if _, ok := c.addrs.get(id); !ok {
					return false
				}
			}
		}
		r.fillAddrs(func(id uint64) netip.Addr { a, _ := c.addrs.get(id); return a })
	}
	r.Subscriber, r.Application, r.SrcCountry, r.DstCountry, r.RemoteDomain = names[0], names[1], names[2], names[3], names[4]
	r.Exporter = netip.AddrPortFrom(exp, 0)
	return true
}

func (s *FlowDB) lookupNames(ctx context.Context, r *decodedRow) error {
	c := &s.cache
	c.mu.RLock()
	ok := c.init && c.resolve(r, false)
	c.mu.RUnlock()
	if ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.init {
		c.names.set(0, "")
		c.init = true
	}
	if c.resolve(r, false) {
		return nil
	}
	// Something new: read what the tables added since.
	if err := s.loadNames(ctx); err != nil {
		return err
	}
	if err := s.loadExporters(ctx); err != nil {
		return err
	}
	if err := s.loadAddrs(ctx); err != nil {
		return err
	}
	if !c.resolve(r, true) {
		return fmt.Errorf("damaged raw flow row %d: unknown address id", r.id)
	}
	return nil
}

func (s *FlowDB) loadNames(ctx context.Context) error {
	rows, err := s.meta.QueryContext(ctx, "SELECT id, name FROM names WHERE id > ?", int64(s.cache.names.max))
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
		if s.cache.names.n <= maxNames {
			s.cache.names.set(uint64(id), n)
		}
	}
	return rows.Err()
}

func (s *FlowDB) loadExporters(ctx context.Context) error {
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
		s.cache.exporters.set(uint64(id), a)
	}
	return rows.Err()
}

func (s *FlowDB) loadAddrs(ctx context.Context) error {
	rows, err := s.meta.QueryContext(ctx, "SELECT id, addr FROM addrs WHERE id > ?", int64(s.cache.addrs.max))
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
		if a, ok := netip.AddrFromSlice(raw); ok && s.cache.addrs.n < maxAddrs {
			s.cache.addrs.set(uint64(id), a)
		}
	}
	return rows.Err()
}

// ExporterSources returns, per exporter address the store has seen, the
// source id that queries filter on: the router id when the exporter is
// attributed to a router, else minus the exporter id.
func (s *FlowDB) ExporterSources(ctx context.Context) (map[netip.Addr]int64, error) {
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
func (s *FlowDB) rawWindowStart() time.Time { return s.now().Add(-s.cfg.RawRetention) }
