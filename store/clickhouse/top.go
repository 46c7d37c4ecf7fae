package clickhouse

import (
	"context"
	"fmt"
	"strings"

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

// Top answers a top-N query from the raw flows: any dimension, any
// filter, ranked and labelled as the SQLite flow database ranks them
// (store.RankTop, store.TopLabel; Resolution raw, never partial).
func (r *Reader) Top(ctx context.Context, q store.TopQuery) (*store.TopResult, error) {
	if err := store.CheckRange(q.From, q.To, r.now()); err != nil {
		return nil, err
	}
	if err := q.Filter.Validate(); err != nil {
		return nil, err
	}
	if err := q.Check(); err != nil {
		return nil, err
	}
	where := fmt.Sprintf(" FROM %s.flows WHERE site = %s AND t >= fromUnixTimestamp64Milli(%d) AND t < fromUnixTimestamp64Milli(%d)%s",
		r.c.cfg.Database, quote(r.site), q.From.UnixMilli(), q.To.UnixMilli(), filterSQL(&q.Filter))
	sums := scaled("bytes") + " AS b, " + scaled("packets") + " AS p, count() AS f"
	res := &store.TopResult{From: q.From.UTC(), To: q.To.UTC(), Resolution: store.ResRaw, Dimension: q.Dimension, Metric: q.Metric}
	out, err := r.c.Query(ctx, "SELECT "+sums+where+" FORMAT RowBinary")
	if err != nil {
		return nil, fmt.Errorf("cannot read the top %s list from clickhouse: %w", q.Dimension, err)
	}
	rr := &rowReader{b: out}
	res.Total = store.TopEntry{Label: "total", Bytes: rr.u64(), Packets: rr.u64(), Flows: rr.u64()}
	if rr.err != nil || len(rr.b) != 0 {
		return nil, fmt.Errorf("cannot read the top %s list from clickhouse: %d bytes of totals", q.Dimension, len(out))
	}
	// The n first by the metric, and all that tie with the n-th: ties are
	// broken by label, which only Go knows.
	keys := topKeys(q.Dimension)
	metric := map[store.Metric]string{store.MetricBytes: "b", store.MetricPackets: "p", store.MetricFlows: "f"}[q.Metric]
	stmt := fmt.Sprintf("SELECT %s, %s%s GROUP BY %s ORDER BY %s DESC LIMIT %d WITH TIES FORMAT RowBinary",
		strings.Join(keys, ", "), sums, where, strings.Join(keys, ", "), metric, q.N)
	if out, err = r.c.Query(ctx, stmt); err != nil {
		return nil, fmt.Errorf("cannot read the top %s list from clickhouse: %w", q.Dimension, err)
	}
	rr = &rowReader{b: out}
	names := map[string]string{}
	list := []store.TopEntry{} // [] in JSON, as flowdb answers
	for len(rr.b) > 0 && rr.err == nil {
		var e store.TopEntry
		readTopKey(q.Dimension, rr, names, &e)
		e.Bytes, e.Packets, e.Flows = rr.u64(), rr.u64(), rr.u64()
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
