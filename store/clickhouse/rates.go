package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/flowbox/flowbox/store"
)

// Entity kinds of the rate5 table.
const (
	rateRouter     = 1
	rateInterface  = 2
	rateSubscriber = 3
)

// rateEntity is one router, interface or subscriber of a rate query.
type rateEntity struct {
	src  int64
	k    string
	a, b []uint64
}

// RateSummaries returns the totals, peaks and percentiles of the 5-minute
// rates of every router, interface or subscriber (or of the fleet) over a
// period, as flowdb computes them (store.SummarizeRates): samples count
// from each source's first router sample to the last finished 5 minutes.
// ClickHouse sums the period's samples at each query: no summary is kept
// (q.Keep is not needed).
func (r *Reader) RateSummaries(ctx context.Context, q store.RateQuery) ([]store.RateSummary, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	kind := rateSubscriber
	switch q.Kind {
	case store.ReportByRouter, store.ReportByFleet:
		kind = rateRouter
	case store.ReportByInterface:
		kind = rateInterface
	}
	f, t := q.From.Unix(), q.To.Unix()
	n := int((t - f) / store.RateSlot)
	end := store.FloorDiv(r.now().Unix(), store.RateSlot) * store.RateSlot
	db, site := r.c.cfg.Database, quote(r.site)
	srcs := inList("src", numbers(q.Sources))
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT src, k, toInt64(intDiv(toInt64(toUnixTimestamp(t)) - %d, %d)) AS i, sum(a), sum(b) FROM %s.rate5"+
		" WHERE site = %s AND kind = %d AND t >= toDateTime(%d) AND t < toDateTime(%d)%s GROUP BY src, k, i ORDER BY src, k, i FORMAT RowBinary",
		f, store.RateSlot, db, site, kind, f, t, srcs))
	if err != nil {
		return nil, fmt.Errorf("cannot read 5-minute samples from clickhouse: %w", err)
	}
	var ents []rateEntity
	names := map[string]string{}
	rr := &rowReader{b: out}
	for len(rr.b) > 0 && rr.err == nil {
		src, k, i, a, b := int64(rr.u64()), rr.str(names), int64(rr.u64()), rr.u64(), rr.u64()
		if rr.err != nil || i < 0 || i >= int64(n) {
			continue
		}
		if m := len(ents); m == 0 || ents[m-1].src != src || ents[m-1].k != k {
			ents = append(ents, rateEntity{src: src, k: k, a: make([]uint64, n), b: make([]uint64, n)})
		}
		e := &ents[len(ents)-1]
		e.a[i] += a
		e.b[i] += b
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read 5-minute samples from clickhouse: %w", rr.err)
	}
	if kind == rateRouter {
		// A router asked for is a row, samples or not.
		have := map[int64]bool{}
		for _, e := range ents {
			have[e.src] = true
		}
		for _, src := range q.Sources {
			if !have[src] {
				have[src] = true
				ents = append(ents, rateEntity{src: src, a: make([]uint64, n), b: make([]uint64, n)})
			}
		}
		sortEntities(ents)
	}
	starts, err := r.rateStarts(ctx, ents)
	if err != nil {
		return nil, err
	}
	var tmp []uint64
	sums := make([]store.RateSummary, 0, len(ents))
	if q.Kind == store.ReportByFleet {
		a, b := make([]uint64, n), make([]uint64, n)
		start := int64(math.MaxInt64)
		for _, e := range ents {
			for i := range n {
				a[i] += e.a[i]
				b[i] += e.b[i]
			}
			if s, ok := starts[e.src]; ok {
				start = min(start, s)
			}
		}
		s, _ := store.SummarizeRates(0, "", f, end, start, a, b, q.Percentile, tmp)
		return []store.RateSummary{s}, nil
	}
	for _, e := range ents {
		start, ok := starts[e.src]
		if !ok {
			start = math.MaxInt64
		}
		var s store.RateSummary
		s, tmp = store.SummarizeRates(e.src, e.k, f, end, start, e.a, e.b, q.Percentile, tmp)
		if s.A|s.B == 0 && (kind != rateRouter || len(q.Sources) == 0) {
			continue // no traffic in the period
		}
		sums = append(sums, s)
	}
	if kind == rateSubscriber && q.Apps > 0 && len(sums) > 0 {
		if err := r.rateApps(ctx, &q, sums); err != nil {
			return nil, err
		}
	}
	return sums, nil
}

// sortEntities orders entities by source, then key.
func sortEntities(ents []rateEntity) {
	slices.SortFunc(ents, func(x, y rateEntity) int { return cmp.Or(cmp.Compare(x.src, y.src), strings.Compare(x.k, y.k)) })
}

// rateStarts returns the unix time of the first router sample of each
// source of ents (none: absent).
func (r *Reader) rateStarts(ctx context.Context, ents []rateEntity) (map[int64]int64, error) {
	starts := map[int64]int64{}
	if len(ents) == 0 {
		return starts, nil
	}
	var srcs []int64
	for _, e := range ents {
		if len(srcs) == 0 || srcs[len(srcs)-1] != e.src {
			srcs = append(srcs, e.src)
		}
	}
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT src, toInt64(toUnixTimestamp(min(t))) FROM %s.rate5 WHERE site = %s AND kind = %d AND k = ''%s GROUP BY src FORMAT RowBinary",
		r.c.cfg.Database, quote(r.site), rateRouter, inList("src", numbers(srcs))))
	if err != nil {
		return nil, fmt.Errorf("cannot read the first samples from clickhouse: %w", err)
	}
	rr := &rowReader{b: out}
	for len(rr.b) > 0 && rr.err == nil {
		src, t := int64(rr.u64()), int64(rr.u64())
		if rr.err == nil {
			starts[src] = t
		}
	}
	if rr.err != nil {
		return nil, fmt.Errorf("cannot read the first samples from clickhouse: %w", rr.err)
	}
	return starts, nil
}

// rateApps sets the q.Apps largest applications of each subscriber of
// sums, over the whole UTC days of the period. The rest of a day copied
// from SQLite (CopySubApps) is no application: it is left out, as
// SQLite leaves its own out.
func (r *Reader) rateApps(ctx context.Context, q *store.RateQuery, sums []store.RateSummary) error {
	f := store.FloorDiv(q.From.Unix(), 86400) * 86400
	t := -store.FloorDiv(-q.To.Unix(), 86400) * 86400
	out, err := r.c.Query(ctx, fmt.Sprintf("SELECT src, sub, app, proto, port, sum(bytes) AS n FROM %s.subapp_d"+
		" WHERE site = %s AND t >= toDateTime(%d) AND t < toDateTime(%d) AND NOT (app = %s AND port = %d)%s GROUP BY src, sub, app, proto, port"+
		" ORDER BY src, sub, n DESC, app, proto, port LIMIT %d BY src, sub FORMAT RowBinary",
		r.c.cfg.Database, quote(r.site), f, t, quote(store.DomainRest), restPort, inList("src", numbers(q.Sources)), q.Apps))
	if err != nil {
		return fmt.Errorf("cannot read subscriber applications from clickhouse: %w", err)
	}
	type subKey struct {
		src int64
		sub string
	}
	apps := map[subKey][]store.AppShare{}
	names := map[string]string{}
	rr := &rowReader{b: out}
	for len(rr.b) > 0 && rr.err == nil {
		k := subKey{int64(rr.u64()), rr.str(names)}
		e := store.TopEntry{Name: rr.str(names), Proto: rr.u8(), Port: rr.u16()}
		n := rr.u64()
		if rr.err == nil {
			apps[k] = append(apps[k], store.AppShare{App: store.TopLabel(store.DimApplication, &e), Bytes: n})
		}
	}
	if rr.err != nil {
		return fmt.Errorf("cannot read subscriber applications from clickhouse: %w", rr.err)
	}
	for i := range sums {
		sums[i].Apps = apps[subKey{sums[i].Source, sums[i].Key}]
	}
	return nil
}
