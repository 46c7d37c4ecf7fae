package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Metric is what a top-N list is ranked by.
type Metric string

// Metrics.
const (
	MetricBytes   Metric = "bytes"
	MetricPackets Metric = "packets"
	MetricFlows   Metric = "flows"
)

// TopQuery asks for the N largest entries of a dimension over a range.
type TopQuery struct {
	From, To   time.Time
	Dimension  Dimension
	N          int    // 1..1000; 0 means 10
	Metric     Metric // "" means bytes
	Filter     Filter
	Resolution Resolution // ResAuto or ResRaw
}

// TopResult is a top-N answer: Entries plus Other add up to Total.
type TopResult struct {
	From, To   time.Time
	Resolution Resolution
	Dimension  Dimension
	Metric     Metric
	Entries    []TopEntry
	// Other sums everything not in Entries (including what the rollups
	// already folded into their "other" rows).
	Other TopEntry
	Total TopEntry
}

// TopEntry is one ranked value. Only the fields of the dimension are set.
type TopEntry struct {
	// Label is a display form: "192.0.2.1", "AS64500", "tcp/443", "youtube",
	// "FR", "192.0.2.1 ↔ 198.51.100.7", "router 3", "download", "if 12".
	Label     string
	Addr      netip.Addr // hosts; the local side of a conversation
	Peer      netip.Addr // the remote side of a conversation
	AS        uint32
	Name      string // application, country or subscriber ("" = unknown)
	Proto     uint8
	Port      uint16
	Source    int64
	Direction Direction
	Interface uint32
	Bytes     uint64
	Packets   uint64
	Flows     uint64
}

func (e *TopEntry) add(c counters) {
	e.Bytes += c.bytes
	e.Packets += c.packets
	e.Flows += c.flows
}

func (e *TopEntry) value(m Metric) uint64 {
	switch m {
	case MetricPackets:
		return e.Packets
	case MetricFlows:
		return e.Flows
	}
	return e.Bytes
}

// Top answers a top-N query.
func (s *Store) Top(ctx context.Context, q TopQuery) (*TopResult, error) {
	if err := s.checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	if err := q.Filter.validate(); err != nil {
		return nil, err
	}
	if _, ok := dimNames[q.Dimension]; !ok {
		return nil, &QueryError{Field: "dimension", Msg: fmt.Sprintf("unknown dimension %d", q.Dimension)}
	}
	if q.N == 0 {
		q.N = 10
	}
	if q.N < 0 || q.N > 1000 {
		return nil, &QueryError{Field: "n", Msg: fmt.Sprintf("n=%d is outside 1..1000", q.N)}
	}
	switch q.Metric {
	case "":
		q.Metric = MetricBytes
	case MetricBytes, MetricPackets, MetricFlows:
	default:
		return nil, &QueryError{Field: "metric", Msg: fmt.Sprintf("unknown metric %q (want bytes, packets or flows)", q.Metric)}
	}
	if q.Resolution != ResAuto && q.Resolution != ResRaw {
		return nil, &QueryError{Field: "resolution", Msg: fmt.Sprintf("unknown resolution %q (want raw or empty)", q.Resolution)}
	}
	isIf := q.Dimension == DimInInterface || q.Dimension == DimOutInterface
	raw := q.Resolution == ResRaw || q.Filter.needsRaw() || q.Dimension >= DimSrcPort ||
		(len(q.Filter.Interfaces) > 0 && !isIf) || (isIf && len(q.Filter.Directions) > 0)
	res := &TopResult{Dimension: q.Dimension, Metric: q.Metric}
	var entries map[string]*TopEntry
	var total TopEntry
	if raw {
		if q.From.Before(s.rawWindowStart()) {
			return nil, s.rawWindowError(rawReason(&q.Filter, topRawReason(&q)))
		}
		res.Resolution, res.From, res.To = ResRaw, q.From.UTC(), q.To.UTC()
		entries = map[string]*TopEntry{}
		err := s.visitRaw(ctx, q.From.UnixMilli(), q.To.UnixMilli(), &q.Filter, func(r *decodedRow) bool {
			c := counters{r.Scale(r.Bytes), r.Scale(r.Packets), 1}
			total.add(c)
			k := rawTopKey(q.Dimension, r)
			e := entries[k]
			if e == nil {
				e = &TopEntry{}
				entries[k] = e
			}
			e.add(c)
			return true
		})
		if err != nil {
			return nil, err
		}
	} else {
		from := q.From.Unix() / 60 * 60
		to := (q.To.Unix() + 59) / 60 * 60
		segs, err := s.segments(ctx, from, to, true, q.Dimension.inRollups())
		if err != nil {
			return nil, err
		}
		res.Resolution = segResolution(segs)
		res.From, res.To = time.Unix(segs[0].from, 0).UTC(), time.Unix(segs[len(segs)-1].to, 0).UTC()
		if entries, total, err = s.topFromRollups(ctx, q, segs); err != nil {
			return nil, err
		}
	}
	list := rankTop(entries, q.Dimension, q.Metric, q.N)
	res.Entries = list
	res.Total = total
	res.Total.Label = "total"
	res.Other = TopEntry{Label: "other", Bytes: total.Bytes, Packets: total.Packets, Flows: total.Flows}
	for _, e := range list {
		res.Other.Bytes -= e.Bytes
		res.Other.Packets -= e.Packets
		res.Other.Flows -= e.Flows
	}
	return res, nil
}

// rankTop returns the n largest entries by metric (ties broken by label),
// described. Only the candidates are described: entries below the n-th
// value are dropped first.
func rankTop(entries map[string]*TopEntry, d Dimension, m Metric, n int) []TopEntry {
	delete(entries, otherKey)
	var threshold uint64
	if len(entries) > n {
		vals := make([]uint64, 0, len(entries))
		for _, e := range entries {
			vals = append(vals, e.value(m))
		}
		threshold = selectKth(vals, len(vals)-n)
	}
	list := make([]TopEntry, 0, min(len(entries), 2*n))
	for k, e := range entries {
		if e.value(m) < threshold {
			continue
		}
		describeKey(d, k, e)
		list = append(list, *e)
	}
	slices.SortFunc(list, func(a, b TopEntry) int {
		if c := cmp.Compare(b.value(m), a.value(m)); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
	if len(list) > n {
		list = list[:n]
	}
	return list
}

// rollupUnion returns the UNION ALL of the rollup rows of the segments for
// the query's dimension and filter, as (k, bytes, packets, flows), and its
// arguments. With total set it selects the rows that sum to the total
// traffic instead: the tot tables for the top-K dimensions (whose rows,
// "other" included, add up to the same total in every table).
func rollupUnion(q *TopQuery, segs []segment, total bool) (string, []any) {
	srcSQL, srcArgs := sqlIn("src", q.Filter.Sources)
	dirSQL, dirArgs := sqlIn("dir", q.Filter.Directions)
	var parts []string
	var args []any
	for _, sg := range segs {
		suffix := string(sg.table)
		dim := q.Dimension
		if total && dim.inRollups() {
			dim = DimDirection
			if suffix == "d" {
				suffix = "h" // no day totals: the hours of the day
			}
		}
		switch dim {
		case DimRouter, DimDirection:
			col := "src"
			if dim == DimDirection {
				col = "dir"
			}
			parts = append(parts, "SELECT "+col+" AS k, bytes, packets, flows FROM tot_"+suffix+" WHERE t >= ? AND t < ?"+srcSQL+dirSQL)
			args = append(append(append(args, sg.from, sg.to), srcArgs...), dirArgs...)
		case DimInInterface, DimOutInterface:
			side := 0
			if dim == DimOutInterface {
				side = 1
			}
			ifSQL, ifArgs := sqlIn("ifx", q.Filter.Interfaces)
			parts = append(parts, fmt.Sprintf("SELECT src * 4294967296 + ifx AS k, bytes, packets, flows FROM if_%s WHERE side = %d AND t >= ? AND t < ?", suffix, side)+srcSQL+ifSQL)
			args = append(append(append(args, sg.from, sg.to), srcArgs...), ifArgs...)
		default:
			parts = append(parts, "SELECT k, bytes, packets, flows FROM top_"+suffix+" WHERE dim = ? AND t >= ? AND t < ?"+srcSQL+dirSQL)
			args = append(append(append(args, dim, sg.from, sg.to), srcArgs...), dirArgs...)
		}
	}
	return strings.Join(parts, " UNION ALL "), args
}

// topFromRollups returns the largest keys of the rollup rows of the
// segments (SQLite sums and ranks them: only the first rows come back) and
// the total.
func (s *Store) topFromRollups(ctx context.Context, q TopQuery, segs []segment) (map[string]*TopEntry, TopEntry, error) {
	var total TopEntry
	union, args := rollupUnion(&q, segs, true)
	var by, pk, fl int64
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(sum(bytes), 0), coalesce(sum(packets), 0), coalesce(sum(flows), 0) FROM ("+union+")",
		args...).Scan(&by, &pk, &fl); err != nil {
		return nil, total, fmt.Errorf("cannot read rollups: %w", err)
	}
	total.add(counters{uint64(by), uint64(pk), uint64(fl)})
	col := map[Metric]string{MetricBytes: "b", MetricPackets: "p", MetricFlows: "f"}[q.Metric]
	union, args = rollupUnion(&q, segs, false)
	query := "SELECT k, sum(bytes) AS b, sum(packets) AS p, sum(flows) AS f FROM (" + union + ") WHERE k != x'' GROUP BY k ORDER BY " + col + " DESC, k"
	// A limit lets SQLite keep only the first rows; when the last one ties
	// with the n-th, the ties beyond may matter (ties are broken by label):
	// then read them all.
	entries, vals, err := s.readTopRows(ctx, query+fmt.Sprintf(" LIMIT %d", 2*q.N+16), args, q.Metric, -1)
	if err != nil {
		return nil, total, err
	}
	if len(vals) == 2*q.N+16 && vals[len(vals)-1] == vals[q.N-1] {
		if entries, _, err = s.readTopRows(ctx, query, args, q.Metric, q.N); err != nil {
			return nil, total, err
		}
	}
	return entries, total, nil
}

// readTopRows reads (k, bytes, packets, flows) rows sorted by metric,
// descending; with n > 0 it stops at the first row below the n-th.
func (s *Store) readTopRows(ctx context.Context, query string, args []any, m Metric, n int) (map[string]*TopEntry, []uint64, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read rollups: %w", err)
	}
	defer rows.Close()
	entries := map[string]*TopEntry{}
	var vals []uint64
	for rows.Next() {
		var k any
		var by, pk, fl int64
		if err := rows.Scan(&k, &by, &pk, &fl); err != nil {
			return nil, nil, fmt.Errorf("cannot read rollups: %w", err)
		}
		var key string
		switch v := k.(type) {
		case []byte:
			key = string(v)
		case int64:
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(v))
			key = string(b[:])
		}
		e := &TopEntry{}
		e.add(counters{uint64(by), uint64(pk), uint64(fl)})
		entries[key] = e
		vals = append(vals, e.value(m))
		if n > 0 && len(vals) > n && vals[len(vals)-1] < vals[n-1] {
			break // sorted: nothing after can rank
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("cannot read rollups: %w", err)
	}
	return entries, vals, nil
}

// rawTopKey is the map key of a raw flow for dimension d: the rollup key for
// rollup dimensions, an 8-byte integer for the others.
func rawTopKey(d Dimension, r *decodedRow) string {
	f := &r.Flow
	if d.inRollups() {
		l, rm := f.LocalRemote()
		return dimKeyOf(d, f, l, rm)
	}
	src := f.RouterID
	if src == 0 {
		src = -r.expID
	}
	var v int64
	switch d {
	case DimRouter:
		v = src
	case DimDirection:
		v = int64(f.Direction)
	case DimInInterface:
		v = src*4294967296 + int64(f.InIf)
	case DimOutInterface:
		v = src*4294967296 + int64(f.OutIf)
	case DimSrcPort:
		v = int64(f.Proto)<<16 | int64(f.SrcPort)
	case DimDstPort:
		v = int64(f.Proto)<<16 | int64(f.DstPort)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return string(b[:])
}

func unknownIfEmpty(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// describeKey fills the typed fields and the label of e from key k.
func describeKey(d Dimension, k string, e *TopEntry) {
	unstr := func(k string) string {
		if k == "\x00" {
			return ""
		}
		return k
	}
	addr := func(k string) netip.Addr {
		a, _ := netip.AddrFromSlice([]byte(k))
		return a
	}
	showAddr := func(a netip.Addr) string {
		if !a.IsValid() {
			return "unknown"
		}
		return a.String()
	}
	var v int64
	if len(k) == 8 && !d.inRollups() {
		v = int64(binary.BigEndian.Uint64([]byte(k)))
	}
	switch d {
	case DimLocalHost, DimRemoteHost:
		e.Addr = addr(k)
		e.Label = showAddr(e.Addr)
	case DimRemoteAS:
		if len(k) == 4 {
			e.AS = binary.BigEndian.Uint32([]byte(k))
		}
		e.Label = fmt.Sprintf("AS%d", e.AS)
	case DimApplication:
		if strings.HasPrefix(k, "A") {
			e.Name, e.Label = k[1:], k[1:]
		} else if len(k) == 4 {
			e.Proto, e.Port = k[1], binary.BigEndian.Uint16([]byte(k[2:]))
			e.Label = fmt.Sprintf("%s/%d", ProtoName(e.Proto), e.Port)
		}
	case DimCountry, DimSubscriber:
		e.Name = unstr(k)
		e.Label = unknownIfEmpty(e.Name)
	case DimConversation:
		if len(k) > 0 && int(k[0]) < len(k) {
			n := int(k[0])
			e.Addr, e.Peer = addr(k[1:1+n]), addr(k[1+n:])
		}
		e.Label = showAddr(e.Addr) + " ↔ " + showAddr(e.Peer)
	case DimRouter:
		e.Source = v
		e.Label = sourceLabel(v)
	case DimDirection:
		e.Direction = Direction(v)
		e.Label = e.Direction.String()
	case DimInInterface, DimOutInterface:
		e.Source = v >> 32 // floor division: ifx is in [0, 2^32)
		e.Interface = uint32(v)
		e.Label = fmt.Sprintf("%s if %d", sourceLabel(e.Source), e.Interface)
	case DimProtocol:
		if len(k) == 4 {
			e.Proto = k[3]
		}
		e.Label = ProtoName(e.Proto)
	case DimSrcPort, DimDstPort:
		e.Proto, e.Port = uint8(v>>16), uint16(v)
		e.Label = fmt.Sprintf("%s/%d", ProtoName(e.Proto), e.Port)
	}
}

// topRawReason names what makes a top without raw-only filters need raw
// flows.
func topRawReason(q *TopQuery) string {
	switch {
	case q.Resolution == ResRaw:
		return "resolution raw"
	case q.Dimension >= DimSrcPort:
		return "a top " + q.Dimension.String() + " list"
	case len(q.Filter.Interfaces) > 0 && q.Dimension != DimInInterface && q.Dimension != DimOutInterface:
		return "an interface filter on a top list not by interface"
	}
	return "a direction filter on a top list by interface"
}
