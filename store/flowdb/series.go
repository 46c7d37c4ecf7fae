package flowdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// TimeSeries answers a series query from the rollups or raw flows.
func (s *FlowDB) TimeSeries(ctx context.Context, q store.SeriesQuery) (*store.Series, error) {
	if err := s.checkRange(q.From, q.To); err != nil {
		return nil, err
	}
	if err := q.Filter.Validate(); err != nil {
		return nil, err
	}
	step := q.Step
	if step == 0 {
		step = store.AutoSeriesStep(q.To.Sub(q.From))
		if step < time.Hour && q.From.Before(s.now().Add(-s.cfg.MinuteRetention)) && q.Resolution != store.ResRaw {
			step = time.Hour
		}
	}
	b, err := store.NewSeriesBuilder(&q, step)
	if err != nil {
		return nil, err
	}
	stepS, from, to := b.Step(), b.From(), b.To()
	ifGroup := q.GroupBy == store.DimInInterface || q.GroupBy == store.DimOutInterface
	raw := q.Resolution == store.ResRaw || q.Filter.NeedsRaw() || (len(q.Filter.Interfaces) > 0 && !ifGroup) ||
		(ifGroup && len(q.Filter.Directions) > 0)
	// A filter on one dimension the rollups rank (protocols, countries,
	// named applications, subscribers, domains) is answered from that
	// dimension's rollup rows when they are exact for it.
	var keyed *keyedFilter
	var segs []segment // the rollup tables of the range, once read
	if raw && q.Resolution != store.ResRaw && !ifGroup {
		if keyed = keyedFilterOf(&q.Filter); keyed != nil {
			var err error
			if segs, err = s.segments(ctx, from, to, stepS >= 3600, false); err != nil {
				return nil, err
			}
			exact, err := s.keyedExact(ctx, keyed, segs, &q.Filter)
			if err != nil {
				return nil, err
			}
			if exact {
				raw = false
			} else {
				keyed = nil
			}
		}
	}
	if q.Resolution != store.ResAuto && q.Resolution != store.ResRaw {
		return nil, &store.QueryError{Field: "resolution", Msg: fmt.Sprintf("unknown resolution %q (want raw or empty)", q.Resolution)}
	}
	var out store.Series // its resolution and partial scan; b has the lines
	addAt := func(t, src int64, dir store.Direction, ifx uint32, c counters) {
		b.Add(t, src, dir, ifx, c.bytes, c.packets, c.flows)
	}
	if raw {
		if q.From.Before(s.rawWindowStart()) {
			return nil, s.rawWindowError(rawReason(&q.Filter, seriesRawReason(&q)))
		}
		out.Resolution = store.ResRaw
		need := needCounters
		switch q.GroupBy {
		case store.DimRouter:
			need |= needRouter
		case store.DimInInterface, store.DimOutInterface:
			need |= needRouter | needIfs
		}
		scanned, partial, err := s.visitRawWithin(ctx, q.From.UnixMilli(), q.To.UnixMilli(), &q.Filter, q.Budget, need, func(r *decodedRow) bool {
			c := counters{r.Scale(r.Bytes), r.Scale(r.Packets), 1}
			src := r.RouterID
			if src == 0 {
				src = -r.expID
			}
			t := r.End / 1000
			switch q.GroupBy {
			case store.DimInInterface:
				addAt(t, src, r.Direction, r.InIf, c)
			case store.DimOutInterface:
				addAt(t, src, r.Direction, r.OutIf, c)
			default:
				addAt(t, src, r.Direction, 0, c)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		if partial {
			out.Partial, out.ScannedFrom = true, time.UnixMilli(scanned).UTC()
		}
	} else {
		if segs == nil {
			var err error
			if segs, err = s.segments(ctx, from, to, stepS >= 3600, false); err != nil {
				return nil, err
			}
		}
		out.Resolution = segResolution(segs)
		if out.Resolution == store.ResHour && stepS < 3600 {
			return nil, &store.QueryError{Field: "step", Msg: fmt.Sprintf("1-minute rollups are kept for %s: use a step of 1h or more for older ranges", s.cfg.MinuteRetention)}
		}
		srcSQL, srcArgs := sqlIn("src", q.Filter.Sources)
		for _, sg := range segs {
			table, cols, extra, extraArgs := "tot_", "src, dir, 0", "", []any(nil)
			if keyed != nil {
				table = "top_"
				dirSQL, dirArgs := sqlIn("dir", q.Filter.Directions)
				keySQL, keyArgs := sqlIn("k", keyed.keys)
				extra = " AND dim = ?" + dirSQL + keySQL
				extraArgs = append(append([]any{keyed.dim}, dirArgs...), keyArgs...)
			} else if ifGroup {
				side := 0
				if q.GroupBy == store.DimOutInterface {
					side = 1
				}
				table, cols = "if_", "src, 0, ifx"
				extra = fmt.Sprintf(" AND side = %d", side)
				ifSQL, ifArgs := sqlIn("ifx", q.Filter.Interfaces)
				extra += ifSQL
				extraArgs = ifArgs
			} else {
				dirSQL, dirArgs := sqlIn("dir", q.Filter.Directions)
				extra, extraArgs = dirSQL, dirArgs
			}
			table += string(sg.table)
			args := append([]any{sg.from, sg.to}, srcArgs...)
			args = append(args, extraArgs...)
			rows, err := s.r.QueryContext(ctx, "SELECT t, "+cols+", bytes, packets, flows FROM "+table+
				" WHERE t >= ? AND t < ?"+srcSQL+extra, args...)
			if err != nil {
				return nil, fmt.Errorf("cannot read rollups: %w", err)
			}
			for rows.Next() {
				var t, src, by, pk, fl int64
				var dir store.Direction
				var ifx uint32
				if err := rows.Scan(&t, &src, &dir, &ifx, &by, &pk, &fl); err != nil {
					rows.Close()
					return nil, fmt.Errorf("cannot read rollups: %w", err)
				}
				addAt(t, src, dir, ifx, counters{uint64(by), uint64(pk), uint64(fl)})
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("cannot read rollups: %w", err)
			}
		}
	}
	res := b.Series()
	res.Resolution, res.Partial, res.ScannedFrom = out.Resolution, out.Partial, out.ScannedFrom
	return res, nil
}

// seriesRawReason names what makes a series without raw-only filters need
// raw flows.
func seriesRawReason(q *store.SeriesQuery) string {
	switch {
	case q.Resolution == store.ResRaw:
		return "resolution raw"
	case len(q.Filter.Interfaces) > 0 && q.GroupBy != store.DimInInterface && q.GroupBy != store.DimOutInterface:
		return "an interface filter on a series not grouped by interface"
	}
	return "a direction filter on an interface series"
}

// keyedFilter is a filter on values of one rollup dimension: the rows of
// those keys in top_m and top_h answer a series exactly when nothing of
// that dimension was folded into "other" over the range. (A key present
// in a bucket is not enough: each flush cuts its own top-K, so a minute
// flushed twice may hold part of a key in "other".)
type keyedFilter struct {
	dim  store.Dimension
	keys []any // the rollup keys ([]byte)
}

// keyedFilterOf returns the keyed form of a filter whose only raw field
// is one of protocols, countries, named applications, subscribers or
// domains (the rollups key them as the raw filter matches them), or nil.
func keyedFilterOf(f *store.Filter) *keyedFilter {
	if !f.RollupKeyed() {
		return nil
	}
	str := func(v string) []byte {
		if v == "" {
			return []byte{0} // an unknown name
		}
		return []byte(v)
	}
	var k keyedFilter
	switch {
	case len(f.Protocols) > 0:
		k.dim = store.DimProtocol
		for _, p := range f.Protocols {
			k.keys = append(k.keys, binary.BigEndian.AppendUint32(nil, uint32(p)))
		}
	case len(f.Countries) > 0:
		k.dim = store.DimCountry
		for _, c := range f.Countries {
			k.keys = append(k.keys, str(c))
		}
	case len(f.Applications) > 0:
		k.dim = store.DimApplication
		for _, a := range f.Applications {
			k.keys = append(k.keys, []byte("A"+a))
		}
	case len(f.Subscribers) > 0:
		k.dim = store.DimSubscriber
		for _, v := range f.Subscribers {
			k.keys = append(k.keys, str(v))
		}
	case len(f.Domains) > 0:
		k.dim = store.DimDomain
		for _, v := range f.Domains {
			k.keys = append(k.keys, str(v))
		}
	default:
		return nil
	}
	return &k
}

// keyedExact reports whether the rollups of k's dimension are exact over
// the segments: no bucket within the filter's sources and directions has
// an "other" row (which exists only when keys were folded into it).
func (s *FlowDB) keyedExact(ctx context.Context, k *keyedFilter, segs []segment, f *store.Filter) (bool, error) {
	for _, sg := range segs {
		srcSQL, srcArgs := sqlIn("src", f.Sources)
		dirSQL, dirArgs := sqlIn("dir", f.Directions)
		q := "SELECT EXISTS (SELECT 1 FROM top_" + string(sg.table) + " WHERE dim = ? AND t >= ? AND t < ? AND k = x''" + srcSQL + dirSQL + ")"
		args := append(append([]any{k.dim, sg.from, sg.to}, srcArgs...), dirArgs...)
		var folded bool
		if err := s.r.QueryRowContext(ctx, q, args...).Scan(&folded); err != nil {
			return false, fmt.Errorf("cannot read rollups: %w", err)
		}
		if folded {
			return false, nil
		}
	}
	return true, nil
}
