package web

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowbox/flowbox/store"
)

// dataStart returns when the traffic of the sources (one router, or the
// whole fleet when sources is empty) starts within [from, to): from when
// it has traffic from the range's first bucket, else the start of its
// first minute with traffic (the first hour beyond the minute rollups'
// retention). ok is false when the range has no traffic at all.
//
// It reads the totals rollups only (two small series), so that the pages
// can divide volumes by the time that has data, not by the whole range,
// and draw a router newer than the range from its first minute.
func (s *Server) dataStart(ctx context.Context, sources []int64, from, to time.Time) (start time.Time, ok bool, err error) {
	step := spanStep(to.Sub(from))
	sq := store.SeriesQuery{From: from, To: to, Step: step, Filter: store.Filter{Sources: sources}}
	res, err := s.deps.Store.TimeSeries(ctx, sq)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("cannot find the first traffic: %w", err)
	}
	i := firstTraffic(res)
	if i < 0 {
		return time.Time{}, false, nil
	}
	b := res.Times[i]
	if !b.After(from) {
		return from, true, nil
	}
	if step == time.Minute {
		return b, true, nil
	}
	// Refine to the minute within the first bucket with traffic.
	fine, err := s.deps.Store.TimeSeries(ctx, store.SeriesQuery{From: b, To: b.Add(step), Step: time.Minute, Filter: sq.Filter})
	var qe *store.QueryError
	switch {
	case errors.As(err, &qe):
		return b, true, nil // older than the minute rollups: the bucket's start
	case err != nil:
		return time.Time{}, false, fmt.Errorf("cannot find the first traffic: %w", err)
	}
	if j := firstTraffic(fine); j >= 0 && fine.Times[j].After(b) {
		return fine.Times[j], true, nil
	}
	return b, true, nil
}

// firstTraffic is the index of the first bucket with bytes on any line of
// the series, -1 if none.
func firstTraffic(res *store.Series) int {
	first := -1
	for _, l := range res.Lines {
		for i, v := range l.Bytes {
			if v > 0 {
				if first < 0 || i < first {
					first = i
				}
				break
			}
		}
	}
	return first
}

// spanStep is the step chooseStep picks for a span without a step
// parameter: the smallest that gives at most 360 points.
func spanStep(span time.Duration) time.Duration {
	for _, st := range steps {
		if span/st <= 360 {
			return st
		}
	}
	return steps[len(steps)-1]
}

// coveredSeconds is the time within [from, to) that has data for the
// sources: when they are newer than the range (see newerThan), from their
// first minute with traffic (see dataStart) to the end of the range (the
// rollups hold the minute under way too), at least one minute; else the
// whole range.
func (s *Server) coveredSeconds(ctx context.Context, sources []int64, from, to time.Time) (float64, error) {
	whole := to.Sub(from).Seconds()
	start, ok, err := s.dataStart(ctx, sources, from, to)
	if err != nil || !ok || !start.After(from) {
		return whole, err
	}
	newer, err := s.newerThan(ctx, sources, from, to)
	if err != nil || !newer {
		return whole, err
	}
	return max(to.Sub(start).Seconds(), 60), nil
}

// newerThan reports whether the sources (one router, or the whole fleet
// when sources is empty) are newer than t: every router among them was
// added after t, and they have no traffic in the span of the same length
// before t (a router removed and added again, or whose flows arrived
// before it was added, keeps its whole range). The pages may then start
// their charts at the first traffic instead of showing an empty
// beginning.
func (s *Server) newerThan(ctx context.Context, sources []int64, t, to time.Time) (bool, error) {
	if len(sources) == 1 {
		rt, err := s.deps.Routers.GetRouterByID(ctx, sources[0])
		if err != nil {
			return false, err
		}
		if !rt.CreatedAt.After(t) {
			return false, nil
		}
	} else {
		routers, err := s.deps.Routers.ListRouters(ctx)
		if err != nil {
			return false, fmt.Errorf("cannot list routers: %w", err)
		}
		if len(routers) == 0 {
			return false, nil
		}
		for _, rt := range routers {
			if !rt.CreatedAt.After(t) {
				return false, nil
			}
		}
	}
	span := to.Sub(t)
	res, err := s.deps.Store.TimeSeries(ctx, store.SeriesQuery{From: t.Add(-span), To: t, Step: spanStep(span), Filter: store.Filter{Sources: sources}})
	var qe *store.QueryError
	switch {
	case errors.As(err, &qe):
		return true, nil // before what the rollups keep
	case err != nil:
		return false, fmt.Errorf("cannot look for earlier traffic: %w", err)
	}
	return firstTraffic(res) < 0, nil
}
