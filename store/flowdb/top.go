package flowdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// addCounters adds c to e.
func addCounters(e *store.TopEntry, c counters) {
	e.Bytes += c.bytes
	e.Packets += c.packets
	e.Flows += c.flows
}

// Top answers a top-N query.
func (s *FlowDB) Top(ctx context.Context, q store.TopQuery) (*store.TopResult, error) {
	if err := s.checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	if err := q.Filter.Validate(); err != nil {
		return nil, err
	}
	if err := q.Check(); err != nil {
		return nil, err
	}
	raw := q.NeedsRaw()
	res := &store.TopResult{Dimension: q.Dimension, Metric: q.Metric}
	var entries map[string]*store.TopEntry
	var total store.TopEntry
	if raw {
		if q.From.Before(s.rawWindowStart()) {
			return nil, s.rawWindowError(rawReason(&q.Filter, topRawReason(&q)))
		}
		res.Resolution, res.From, res.To = store.ResRaw, q.From.UTC(), q.To.UTC()
		entries = map[string]*store.TopEntry{}
		// Dimensions of numbers and name ids are counted by number, and
		// their keys made once at the end (rawNumKey).
		nums := map[uint64]*store.TopEntry{}
		byNum := numKeyed(q.Dimension)
		scanned, partial, err := s.visitRawWithin(ctx, q.From.UnixMilli(), q.To.UnixMilli(), &q.Filter, q.Budget, topNeed(q.Dimension), func(r *decodedRow) bool {
			c := counters{r.Scale(r.Bytes), r.Scale(r.Packets), 1}
			addCounters(&total, c)
			var e *store.TopEntry
			if byNum {
				k := rawNumKey(q.Dimension, r)
				if e = nums[k]; e == nil {
					e = &store.TopEntry{}
					nums[k] = e
				}
			} else {
				k := rawTopKey(q.Dimension, r)
				if e = entries[k]; e == nil {
					e = &store.TopEntry{}
					entries[k] = e
				}
			}
			addCounters(e, c)
			return true
		})
		if err != nil {
			return nil, err
		}
		for n, e := range nums {
			k, err := s.numTopKey(ctx, q.Dimension, n)
			if err != nil {
				return nil, err
			}
			if o := entries[k]; o != nil {
				e.Bytes, e.Packets, e.Flows = e.Bytes+o.Bytes, e.Packets+o.Packets, e.Flows+o.Flows
			}
			entries[k] = e
		}
		if partial {
			res.Partial, res.From = true, time.UnixMilli(scanned).UTC()
		}
	} else {
		from := q.From.Unix() / 60 * 60
		to := (q.To.Unix() + 59) / 60 * 60
		segs, err := s.segments(ctx, from, to, true, q.Dimension.InRollups())
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
	res.Other = store.TopEntry{Label: "other", Bytes: total.Bytes, Packets: total.Packets, Flows: total.Flows}
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
func rankTop(entries map[string]*store.TopEntry, d store.Dimension, m store.Metric, n int) []store.TopEntry {
	delete(entries, otherKey)
	var threshold uint64
	if len(entries) > n {
		vals := make([]uint64, 0, len(entries))
		for _, e := range entries {
			vals = append(vals, e.Value(m))
		}
		threshold = selectKth(vals, len(vals)-n)
	}
	list := make([]store.TopEntry, 0, min(len(entries), 2*n))
	for k, e := range entries {
		if e.Value(m) < threshold {
			continue
		}
		describeKey(d, k, e)
		list = append(list, *e)
	}
	return store.RankTop(list, m, n)
}

// rollupUnion returns the UNION ALL of the rollup rows of the segments for
// the query's dimension and filter, as (k, bytes, packets, flows), and its
// arguments. With total set it selects the rows that sum to the total
// traffic instead: the tot tables for the top-K dimensions (whose rows,
// "other" included, add up to the same total in every table).
func rollupUnion(q *store.TopQuery, segs []segment, total bool) (string, []any) {
	srcSQL, srcArgs := sqlIn("src", q.Filter.Sources)
	dirSQL, dirArgs := sqlIn("dir", q.Filter.Directions)
	var parts []string
	var args []any
	for _, sg := range segs {
		suffix := string(sg.table)
		dim := q.Dimension
		if total && dim.InRollups() {
			dim = store.DimDirection
			if suffix == "d" {
				suffix = "h" // no day totals: the hours of the day
			}
		}
		switch dim {
		case store.DimRouter, store.DimDirection:
			col := "src"
			if dim == store.DimDirection {
				col = "dir"
			}
			parts = append(parts, "SELECT "+col+" AS k, bytes, packets, flows FROM tot_"+suffix+" WHERE t >= ? AND t < ?"+srcSQL+dirSQL)
			args = append(append(append(args, sg.from, sg.to), srcArgs...), dirArgs...)
		case store.DimInInterface, store.DimOutInterface:
			side := 0
			if dim == store.DimOutInterface {
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
func (s *FlowDB) topFromRollups(ctx context.Context, q store.TopQuery, segs []segment) (map[string]*store.TopEntry, store.TopEntry, error) {
	var total store.TopEntry
	union, args := rollupUnion(&q, segs, true)
	var by, pk, fl int64
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(sum(bytes), 0), coalesce(sum(packets), 0), coalesce(sum(flows), 0) FROM ("+union+")",
		args...).Scan(&by, &pk, &fl); err != nil {
		return nil, total, fmt.Errorf("cannot read rollups: %w", err)
	}
	addCounters(&total, counters{uint64(by), uint64(pk), uint64(fl)})
	col := map[store.Metric]string{store.MetricBytes: "b", store.MetricPackets: "p", store.MetricFlows: "f"}[q.Metric]
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
func (s *FlowDB) readTopRows(ctx context.Context, query string, args []any, m store.Metric, n int) (map[string]*store.TopEntry, []uint64, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read rollups: %w", err)
	}
	defer rows.Close()
	entries := map[string]*store.TopEntry{}
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
		e := &store.TopEntry{}
		addCounters(e, counters{uint64(by), uint64(pk), uint64(fl)})
		entries[key] = e
		vals = append(vals, e.Value(m))
		if n > 0 && len(vals) > n && vals[len(vals)-1] < vals[n-1] {
			break // sorted: nothing after can rank
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("cannot read rollups: %w", err)
	}
	return entries, vals, nil
}

// topNeed is what a raw top-N list reads of a row for dimension d, with
// its counters: name ids, not names (rawNumKey).
func topNeed(d store.Dimension) rowNeed {
	switch d {
	case store.DimDirection, store.DimProtocol, store.DimSrcPort, store.DimDstPort:
		return needCounters
	case store.DimRemoteAS:
		return needCounters | needAS
	case store.DimRouter:
		return needCounters | needRouter
	case store.DimInInterface, store.DimOutInterface:
		return needCounters | needRouter | needIfs
	case store.DimApplication:
		return needCounters | needAppID
	case store.DimCountry:
		return needCounters | needCCIDs
	case store.DimSubscriber:
		return needCounters | needSubID
	case store.DimDomain:
		return needCounters | needDomID
	case store.DimLocalHost, store.DimRemoteHost, store.DimConversation:
		return needCounters | needAddrs
	}
	return needWhole
}

// numKeyed reports whether a raw top-N list of d counts rows by
// rawNumKey rather than rawTopKey.
func numKeyed(d store.Dimension) bool {
	switch d {
	case store.DimLocalHost, store.DimRemoteHost, store.DimConversation:
		return false
	}
	return d.Valid()
}

// rawNumKey is the number a raw flow is counted under for a dimension of
// numKeyed: the dimension's number, or its name id (the application's
// with bit 63 set, else its protocol and service port).
func rawNumKey(d store.Dimension, r *decodedRow) uint64 {
	f := &r.Flow
	switch d {
	case store.DimRemoteAS:
		if f.Direction.Inbound() {
			return uint64(f.SrcAS)
		}
		return uint64(f.DstAS)
	case store.DimApplication:
		// Flows of an application, else of a protocol and service port
		// (numTopKey sees which once it has the name).
		return r.names.app<<24 | uint64(f.Proto)<<16 | uint64(f.ServicePort())
	case store.DimCountry:
		if f.Direction.Inbound() {
			return r.names.scc
		}
		return r.names.dcc
	case store.DimSubscriber:
		return r.names.sub
	case store.DimDomain:
		return r.names.dom
	case store.DimProtocol:
		return uint64(f.Proto)
	}
	return uint64(rawDimValue(d, r))
}

// numTopKey returns the key (rawTopKey's) of rawNumKey n of dimension d,
// looking its name up.
func (s *FlowDB) numTopKey(ctx context.Context, d store.Dimension, n uint64) (string, error) {
	name := func(id uint64) (string, error) {
		r := decodedRow{names: rawNames{sub: id}}
		if err := s.lookupNames(ctx, &r); err != nil {
			return "", err
		}
		return r.Subscriber, nil
	}
	var f store.Flow
	switch d {
	case store.DimRemoteAS:
		f.Direction, f.SrcAS = store.DirDownload, uint32(n)
	case store.DimApplication:
		app, err := name(n >> 24)
		if err != nil {
			return "", err
		}
		f.Application, f.Direction, f.Proto, f.SrcPort = app, store.DirDownload, uint8(n>>16), uint16(n)
	case store.DimCountry, store.DimSubscriber, store.DimDomain:
		v, err := name(n)
		if err != nil {
			return "", err
		}
		f.Direction, f.SrcCountry, f.Subscriber, f.RemoteDomain = store.DirDownload, v, v, v
	case store.DimProtocol:
		f.Proto = uint8(n)
	default:
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], n)
		return string(b[:]), nil
	}
	return dimKeyOf(d, &f, netip.Addr{}, netip.Addr{}), nil
}

// rawTopKey is the map key of a raw flow for dimension d: the rollup key for
// rollup dimensions, an 8-byte integer for the others.
func rawTopKey(d store.Dimension, r *decodedRow) string {
	f := &r.Flow
	if d.InRollups() {
		// local and remote are f.LocalRemote() as the row was stored.
		return dimKeyOf(d, f, r.local, r.remote)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(rawDimValue(d, r)))
	return string(b[:])
}

// rawDimValue is the number of a raw flow for a dimension not in the
// rollups.
func rawDimValue(d store.Dimension, r *decodedRow) int64 {
	f := &r.Flow
	src := f.RouterID
	if src == 0 {
		src = -r.expID
	}
	var v int64
	switch d {
	case store.DimRouter:
		v = src
	case store.DimDirection:
		v = int64(f.Direction)
	case store.DimInInterface:
		v = src*4294967296 + int64(f.InIf)
	case store.DimOutInterface:
		v = src*4294967296 + int64(f.OutIf)
	case store.DimSrcPort:
		v = int64(f.Proto)<<16 | int64(f.SrcPort)
	case store.DimDstPort:
		v = int64(f.Proto)<<16 | int64(f.DstPort)
	}
	return v
}

// describeKey fills the typed fields and the label of e from key k.
func describeKey(d store.Dimension, k string, e *store.TopEntry) {
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
	var v int64
	if len(k) == 8 && !d.InRollups() {
		v = int64(binary.BigEndian.Uint64([]byte(k)))
	}
	switch d {
	case store.DimLocalHost, store.DimRemoteHost:
		e.Addr = addr(k)
	case store.DimRemoteAS:
		if len(k) == 4 {
			e.AS = binary.BigEndian.Uint32([]byte(k))
		}
	case store.DimApplication:
		e.Name, e.Proto, e.Port = appKey(k)
	case store.DimCountry, store.DimSubscriber, store.DimDomain:
		e.Name = unstr(k)
	case store.DimConversation:
		if len(k) > 0 && int(k[0]) < len(k) {
			n := int(k[0])
			e.Addr, e.Peer = addr(k[1:1+n]), addr(k[1+n:])
		}
	case store.DimRouter:
		e.Source = v
	case store.DimDirection:
		e.Direction = store.Direction(v)
	case store.DimInInterface, store.DimOutInterface:
		e.Source = v >> 32 // floor division: ifx is in [0, 2^32)
		e.Interface = uint32(v)
	case store.DimProtocol:
		if len(k) == 4 {
			e.Proto = k[3]
		}
	case store.DimSrcPort, store.DimDstPort:
		e.Proto, e.Port = uint8(v>>16), uint16(v)
	}
	e.Label = store.TopLabel(d, e)
}

// topRawReason names what makes a top without raw-only filters need raw
// flows.
func topRawReason(q *store.TopQuery) string {
	switch {
	case q.Resolution == store.ResRaw:
		return "resolution raw"
	case q.Dimension >= store.DimSrcPort:
		return "a top " + q.Dimension.String() + " list"
	case len(q.Filter.Interfaces) > 0 && q.Dimension != store.DimInInterface && q.Dimension != store.DimOutInterface:
		return "an interface filter on a top list not by interface"
	}
	return "a direction filter on a top list by interface"
}

// appKey reads a key of the application rollups: a name ("A" and the
// name), or a protocol and service port ('P', protocol, 2-byte port).
func appKey(k string) (name string, proto uint8, port uint16) {
	switch {
	case strings.HasPrefix(k, "A"):
		return k[1:], 0, 0
	case len(k) == 4:
		return "", k[1], binary.BigEndian.Uint16([]byte(k[2:]))
	}
	return "", 0, 0
}

// appLabel is the label of a key of the application rollups ("" for a
// key of neither form).
func appLabel(k string) string {
	switch {
	case strings.HasPrefix(k, "A"):
		return k[1:]
	case len(k) == 4:
		name, proto, port := appKey(k)
		return store.TopLabel(store.DimApplication, &store.TopEntry{Name: name, Proto: proto, Port: port})
	}
	return ""
}
