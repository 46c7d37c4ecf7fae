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
	raw := q.Resolution == ResRaw || q.Filter.needsRaw() || q.Dimension >= DimProtocol ||
		(len(q.Filter.Interfaces) > 0 && !isIf) || (isIf && len(q.Filter.Directions) > 0)
	res := &TopResult{Dimension: q.Dimension, Metric: q.Metric}
	entries := map[string]*TopEntry{}
	var total TopEntry
	if raw {
		if q.From.Before(s.rawWindowStart()) {
			return nil, &QueryError{Field: "filter", Msg: fmt.Sprintf("this query needs raw flows, which are kept for %s only", s.cfg.RawRetention)}
		}
		res.Resolution, res.From, res.To = ResRaw, q.From.UTC(), q.To.UTC()
		err := s.scanRaw(ctx, q.From.UnixMilli(), q.To.UnixMilli(), &q.Filter, false, nil, func(r *decodedRow, _ cursor) bool {
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
		segs, usedHour, err := s.segments(ctx, from, to, true)
		if err != nil {
			return nil, err
		}
		res.Resolution = ResMinute
		if usedHour {
			res.Resolution = ResHour
		}
		res.From, res.To = time.Unix(segs[0].from, 0).UTC(), time.Unix(segs[len(segs)-1].to, 0).UTC()
		if err := s.topFromRollups(ctx, q, segs, entries, &total); err != nil {
			return nil, err
		}
	}
	list := make([]TopEntry, 0, len(entries))
	for k, e := range entries {
		if k == otherKey {
			continue
		}
		describeKey(q.Dimension, k, e)
		list = append(list, *e)
	}
	slices.SortFunc(list, func(a, b TopEntry) int {
		if c := cmp.Compare(b.value(q.Metric), a.value(q.Metric)); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
	if len(list) > q.N {
		list = list[:q.N]
	}
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

// topFromRollups sums, per key, the rollup rows of the segments.
func (s *Store) topFromRollups(ctx context.Context, q TopQuery, segs []segment, entries map[string]*TopEntry, total *TopEntry) error {
	srcSQL, srcArgs := sqlIn("src", q.Filter.Sources)
	dirSQL, dirArgs := sqlIn("dir", q.Filter.Directions)
	var parts []string
	var args []any
	for _, sg := range segs {
		suffix := "m"
		if sg.hour {
			suffix = "h"
		}
		switch q.Dimension {
		case DimRouter, DimDirection:
			col := "src"
			if q.Dimension == DimDirection {
				col = "dir"
			}
			parts = append(parts, "SELECT "+col+" AS k, bytes, packets, flows FROM tot_"+suffix+" WHERE t >= ? AND t < ?"+srcSQL+dirSQL)
			args = append(append(append(args, sg.from, sg.to), srcArgs...), dirArgs...)
		case DimInInterface, DimOutInterface:
			side := 0
			if q.Dimension == DimOutInterface {
				side = 1
			}
			ifSQL, ifArgs := sqlIn("ifx", q.Filter.Interfaces)
			parts = append(parts, fmt.Sprintf("SELECT src * 4294967296 + ifx AS k, bytes, packets, flows FROM if_%s WHERE side = %d AND t >= ? AND t < ?", suffix, side)+srcSQL+ifSQL)
			args = append(append(append(args, sg.from, sg.to), srcArgs...), ifArgs...)
		default:
			parts = append(parts, "SELECT k, bytes, packets, flows FROM top_"+suffix+" WHERE dim = ? AND t >= ? AND t < ?"+srcSQL+dirSQL)
			args = append(append(append(args, q.Dimension, sg.from, sg.to), srcArgs...), dirArgs...)
		}
	}
	query := "SELECT k, sum(bytes), sum(packets), sum(flows) FROM (" + strings.Join(parts, " UNION ALL ") + ") GROUP BY k"
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("cannot read rollups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k any
		var by, pk, fl int64
		if err := rows.Scan(&k, &by, &pk, &fl); err != nil {
			return fmt.Errorf("cannot read rollups: %w", err)
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
		c := counters{uint64(by), uint64(pk), uint64(fl)}
		total.add(c)
		e := entries[key]
		if e == nil {
			e = &TopEntry{}
			entries[key] = e
		}
		e.add(c)
	}
	return rows.Err()
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
	case DimProtocol:
		v = int64(f.Proto)
	case DimSrcPort:
		v = int64(f.Proto)<<16 | int64(f.SrcPort)
	case DimDstPort:
		v = int64(f.Proto)<<16 | int64(f.DstPort)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return string(b[:])
}

// protoName names the common IP protocols.
func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 47:
		return "gre"
	case 50:
		return "esp"
	case 58:
		return "icmpv6"
	}
	return fmt.Sprintf("proto-%d", p)
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
			e.Label = fmt.Sprintf("%s/%d", protoName(e.Proto), e.Port)
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
		e.Proto = uint8(v)
		e.Label = protoName(e.Proto)
	case DimSrcPort, DimDstPort:
		e.Proto, e.Port = uint8(v>>16), uint16(v)
		e.Label = fmt.Sprintf("%s/%d", protoName(e.Proto), e.Port)
	}
}
