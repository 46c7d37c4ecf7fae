package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowbox/flowbox/store"
)

// topKeys returns the columns a top-N list of d groups flows by, as
// flowdb keys them (an application, else the protocol and service port).
func topKeys(d store.Dimension) []string {
	switch d {
	case store.DimLocalHost:
		return []string{"local"}
	case store.DimRemoteHost:
		return []string{"remote"}
	case store.DimConversation:
		return []string{"local", "remote"}
	case store.DimRemoteAS:
		return []string{"remote_as"}
	case store.DimApplication:
		return []string{"application", "if(application = '', proto, 0)", "if(application = '', service_port, 0)"}
	case store.DimCountry:
		return []string{"remote_country"}
	case store.DimSubscriber:
		return []string{"subscriber"}
	case store.DimDomain:
		return []string{"domain"}
	case store.DimProtocol:
		return []string{"proto"}
	case store.DimRouter:
		return []string{"src"}
	case store.DimDirection:
		return []string{"dir"}
	case store.DimInInterface:
		return []string{"src", "in_if"}
	case store.DimOutInterface:
		return []string{"src", "out_if"}
	case store.DimSrcPort:
		return []string{"proto", "src_port"}
	case store.DimDstPort:
		return []string{"proto", "dst_port"}
	}
	return nil
}

// rollupKeys returns the columns of top_h that hold the keys of d, in the
// order and types of topKeys.
func rollupKeys(d store.Dimension) []string {
	switch d {
	case store.DimLocalHost, store.DimRemoteHost:
		return []string{"addr"}
	case store.DimConversation:
		return []string{"addr", "peer"}
	case store.DimRemoteAS:
		return []string{"toUInt32(n)"}
	case store.DimApplication:
		return []string{"s", "toUInt8(intDiv(n, 65536))", "toUInt16(n % 65536)"}
	case store.DimCountry, store.DimSubscriber, store.DimDomain:
		return []string{"s"}
	case store.DimProtocol:
		return []string{"toUInt8(n)"}
	case store.DimRouter:
		return []string{"src"}
	case store.DimDirection:
		return []string{"dir"}
	case store.DimInInterface, store.DimOutInterface:
		return []string{"src", "toUInt32(n)"}
	}
	return nil
}

// rollupDim is the dim of top_h that answers d (the router's rows answer
// the direction too).
func rollupDim(d store.Dimension) store.Dimension {
	if d == store.DimDirection {
		return store.DimRouter
	}
	return d
}

// readTopKey reads the key columns of d (topKeys, in RowBinary) into e.
func readTopKey(d store.Dimension, r *rowReader, names map[string]string, e *store.TopEntry) {
	switch d {
	case store.DimLocalHost, store.DimRemoteHost:
		e.Addr = r.addr()
	case store.DimConversation:
		e.Addr, e.Peer = r.addr(), r.addr()
	case store.DimRemoteAS:
		e.AS = r.u32()
	case store.DimApplication:
		e.Name, e.Proto, e.Port = r.str(names), r.u8(), r.u16()
	case store.DimCountry, store.DimSubscriber, store.DimDomain:
		e.Name = r.str(names)
	case store.DimProtocol:
		e.Proto = r.u8()
	case store.DimRouter:
		e.Source = int64(r.u64())
	case store.DimDirection:
		e.Direction = store.Direction(r.u8())
	case store.DimInInterface, store.DimOutInterface:
		e.Source, e.Interface = int64(r.u64()), r.u32()
	case store.DimSrcPort, store.DimDstPort:
		e.Proto, e.Port = r.u8(), r.u16()
	}
}

// Top answers a top-N query, ranked and labelled as the SQLite flow
// database ranks them (store.RankTop, store.TopLabel), never partial:
// from the raw flows (Resolution raw) when the filter or the dimension
// needs them, else from the hours and the minutes the writer rolled up
// (top_h, top_m: the top-k keys of each step, source and direction, and
// the rest as "other", as SQLite keeps them) and the raw flows of the rest
// of the range (Resolution hour or minute, raw when nothing was rolled up). Raw flows are kept clickhouse.raw-ttl: a
// range that starts before answers from whole hours only, and a filter
// that needs raw flows is refused there.
func (r *Reader) Top(ctx context.Context, q store.TopQuery) (*store.TopResult, error) {
	now := r.now()
	if err := store.CheckRange(q.From, q.To, now); err != nil {
		return nil, err
	}
	if err := q.Filter.Validate(); err != nil {
		return nil, err
	}
	if err := q.Check(); err != nil {
		return nil, err
	}
	isIf := q.Dimension == store.DimInInterface || q.Dimension == store.DimOutInterface
	needRaw := q.NeedsRaw()
	rawStart := now.Add(-r.c.cfg.RawTTL)
	if needRaw && q.From.Before(rawStart) {
		return nil, &store.QueryError{Field: "from", Msg: fmt.Sprintf("this filter or dimension needs raw flows, which ClickHouse keeps %s (clickhouse.raw-ttl): pick a later start", r.c.cfg.RawTTL)}
	}
	res := &store.TopResult{From: q.From.UTC(), To: q.To.UTC(), Resolution: store.ResRaw, Dimension: q.Dimension, Metric: q.Metric}
	keys := topKeys(q.Dimension)
	sums := scaled("bytes") + " AS b, " + scaled("packets") + " AS p, count() AS f"
	filter := filterSQL(&q.Filter)
	if isIf && !needRaw && len(q.Filter.Interfaces) > 0 {
		// An interface ranking filtered on interfaces ranks those
		// interfaces (as the rollups keep them, and flowdb answers), not
		// the interfaces of the flows in or out of one.
		f := q.Filter
		f.Interfaces = nil
		filter = filterSQL(&f) + inList(keys[1], numbers(q.Filter.Interfaces))
	}
	rawRows := func(from, to int64) string {
		return fmt.Sprintf("%s.flows WHERE site = %s AND t >= fromUnixTimestamp64Milli(%d) AND t < fromUnixTimestamp64Milli(%d)%s",
			r.c.cfg.Database, quote(r.site), from, to, filter)
	}
	// source is what the totals and the ranking read: FROM source, with
	// the columns k1.. (the key), b, p and f (per row, summed after).
	var source string
	var cols []string
	for i := range keys {
		cols = append(cols, fmt.Sprintf("k%d", i+1))
	}
	kcols := strings.Join(cols, ", ")
	rawPart := func(from, to int64) string {
		var ks []string
		for i, k := range keys {
			ks = append(ks, fmt.Sprintf("%s AS k%d", k, i+1))
		}
		return fmt.Sprintf("SELECT %s, toUInt8(0) AS o, %s FROM %s GROUP BY %s", strings.Join(ks, ", "), sums, rawRows(from, to), kcols)
	}
	var parts []string
	raw := func(lo, hi time.Time) {
		if lo.Before(hi) {
			parts = append(parts, rawPart(lo.UnixMilli(), hi.UnixMilli()))
		}
	}
	rollup := func(g topGrain, lo, hi time.Time) {
		var rk []string
		for i, k := range rollupKeys(q.Dimension) {
			rk = append(rk, fmt.Sprintf("%s AS k%d", k, i+1))
		}
		where := inList("src", numbers(q.Filter.Sources)) + inList("dir", numbers(q.Filter.Directions))
		if isIf {
			where += inList("n", numbers(q.Filter.Interfaces))
		}
		parts = append(parts, fmt.Sprintf("SELECT %s, other AS o, sum(bytes) AS b, sum(packets) AS p, sum(flows) AS f FROM %s.%s"+
			" WHERE site = %s AND dim = %d AND t >= toDateTime(%d) AND t < toDateTime(%d)%s GROUP BY %s, o",
			strings.Join(rk, ", "), r.c.cfg.Database, g.table, quote(r.site), rollupDim(q.Dimension), lo.Unix(), hi.Unix(), where, kcols))
	}
	// aligned returns the whole steps of g in [from, to) that are done
	// ([df, dt)); empty when lo is not before hi.
	aligned := func(from, to time.Time, g topGrain, df, dt time.Time) (lo, hi time.Time) {
		lo, hi = from.Truncate(g.step), to.Truncate(g.step)
		if lo.Before(from) {
			lo = lo.Add(g.step)
		}
		if lo.Before(df) {
			lo = df
		}
		if hi.After(dt) {
			hi = dt
		}
		return lo, hi
	}
	if needRaw {
		raw(q.From, q.To)
	} else {
		// The whole days rolled up, then the whole hours of the rest,
		// then its whole minutes, then raw flows for what is left (while
		// they are kept, else the range grows to whole hours). The
		// resolution is the coarsest used, as flowdb says it.
		done, err := r.topDoneAll(ctx)
		if err != nil {
			return nil, err
		}
		from := q.From
		if from.Before(rawStart) {
			from = from.Truncate(time.Hour)
			res.From = from.UTC()
		}
		// cover reads [a, b) from the steps of grains[0] done, and the
		// rest from the finer grains, then raw flows.
		var cover func(a, b time.Time, grains []topGrain)
		cover = func(a, b time.Time, grains []topGrain) {
			if !a.Before(b) {
				return
			}
			if len(grains) == 0 {
				raw(a, b)
				return
			}
			g, d := grains[0], done[grains[0].cached]
			if lo, hi := aligned(a, b, g, d.from, d.to); d.ok && lo.Before(hi) {
				rollup(g, lo, hi)
				if res.Resolution == store.ResRaw {
					res.Resolution = g.res // the coarsest: the first read
				}
				cover(a, lo, grains[1:])
				cover(hi, b, grains[1:])
				return
			}
			cover(a, b, grains[1:])
		}
		cover(from, q.To, topGrains)
	}
	source = "(" + strings.Join(parts, " UNION ALL ") + ")"
	// One query: the n first by the metric and all that tie with the
	// n-th (ties are broken by label, which only Go knows), each row with
	// the totals of the whole range. The rollups' "other" rows (o = 1)
	// count in the totals, not as a key: they sort after the keys.
	metric := map[store.Metric]string{store.MetricBytes: "sb", store.MetricPackets: "sp", store.MetricFlows: "sf"}[q.Metric]
	stmt := fmt.Sprintf("SELECT %s, o, toUInt64(sum(b)) AS sb, toUInt64(sum(p)) AS sp, toUInt64(sum(f)) AS sf,"+
		" toUInt64(sum(sum(b)) OVER ()), toUInt64(sum(sum(p)) OVER ()), toUInt64(sum(sum(f)) OVER ())"+
		" FROM %s GROUP BY %s, o ORDER BY o, %s DESC LIMIT %d WITH TIES FORMAT RowBinary",
		kcols, source, kcols, metric, q.N)
	out, err := r.c.Query(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("cannot read the top %s list from clickhouse: %w", q.Dimension, err)
	}
	rr := &rowReader{b: out}
	res.Total = store.TopEntry{Label: "total"}
	names := map[string]string{}
	list := []store.TopEntry{} // [] in JSON, as flowdb answers
	for len(rr.b) > 0 && rr.err == nil {
		var e store.TopEntry
		readTopKey(q.Dimension, rr, names, &e)
		other := rr.u8() == 1
		e.Bytes, e.Packets, e.Flows = rr.u64(), rr.u64(), rr.u64()
		res.Total.Bytes, res.Total.Packets, res.Total.Flows = rr.u64(), rr.u64(), rr.u64()
		if other {
			continue
		}
		e.Label = store.TopLabel(q.Dimension, &e)
		list = append(list, e)
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read the top %s list from clickhouse: %w", q.Dimension, rr.err)
	}
	res.Entries = store.RankTop(list, q.Metric, q.N)
	res.Other = store.TopEntry{Label: "other", Bytes: res.Total.Bytes, Packets: res.Total.Packets, Flows: res.Total.Flows}
	for _, e := range res.Entries {
		res.Other.Bytes -= e.Bytes
		res.Other.Packets -= e.Packets
		res.Other.Flows -= e.Flows
	}
	return res, nil
}
