package web

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/flowbox/flowbox/store"
)

// FleetSeries is the fleet's traffic over time, one line per router (for
// a stacked chart), aligned with Times.
type FleetSeries struct {
	Step       int64  `json:"step"`
	Resolution string `json:"resolution"`
	// Now is the server's time of the answer (unix seconds), as in Series.
	Now int64 `json:"now"`
	// Since is set (unix seconds) when every router is newer than the
	// range: the series then starts at the fleet's first minute with
	// traffic instead of the range's start.
	Since   int64         `json:"since,omitempty"`
	Times   []int64       `json:"times"`
	Routers []RouterLine  `json:"routers"`
	Totals  FleetVolumes  `json:"totals"`
	Seconds float64       `json:"seconds"`
	byID    map[int64]int // index in Routers
}

// RouterLine is one router's traffic in a FleetSeries: bits per second in
// (downloads and traffic to the router) and out, and its volumes over the
// range.
type RouterLine struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	BitsIn  []float64 `json:"bits_in"`
	BitsOut []float64 `json:"bits_out"`
	FleetVolumes
}

// FleetVolumes are bytes in and out over the range, and their average
// rate over the time with data (Seconds of the answer).
type FleetVolumes struct {
	BytesIn    uint64  `json:"bytes_in"`
	BytesOut   uint64  `json:"bytes_out"`
	AvgBitsIn  float64 `json:"avg_bits_in"`
	AvgBitsOut float64 `json:"avg_bits_out"`
}

// handleFleetTraffic returns the fleet's traffic by router over a range
// (range or from/to; step optional), for the dashboard's stacked chart
// and its routers sorted by traffic.
func (s *Server) handleFleetTraffic(w http.ResponseWriter, r *http.Request) {
	q, f, err := s.requestFilter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if f.RouterID != 0 {
		s.writeErr(w, r, badf("router: the fleet's traffic covers every router (use /api/v1/traffic for one)"))
		return
	}
	ctx, cancel := contextWithTimeout(r, queryTimeout)
	defer cancel()
	out := FleetSeries{Now: s.now().Unix(), Times: []int64{}, Routers: []RouterLine{}, byID: map[int64]int{}}
	start, ok, err := s.dataStart(ctx, nil, f.From, f.To)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if ok && start.After(f.From) && q.Get("step") == "" {
		newer, err := s.newerThan(ctx, nil, f.From, f.To)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if newer {
			f.From = start
			out.Since = start.Unix()
		}
	}
	step, err := chooseStep(q, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	routers, err := s.deps.Routers.ListRouters(ctx)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	names := map[int64]string{}
	for _, rt := range routers {
		names[rt.ID] = rt.Name
	}
	for i, dirs := range [][]store.Direction{{store.DirDownload, store.DirRouterIn}, {store.DirUpload, store.DirRouterOut}} {
		res, err := s.deps.Store.TimeSeries(ctx, store.SeriesQuery{From: f.From, To: f.To, Step: step, GroupBy: store.DimRouter,
			Filter: store.Filter{Directions: dirs}})
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if i == 0 {
			head := seriesHead(res)
			out.Step, out.Resolution, out.Times = head.Step, head.Resolution, head.Times
		}
		for _, l := range res.Lines {
			line := out.line(l.Source, names, len(out.Times))
			var sum uint64
			for _, b := range l.Bytes {
				sum += b
			}
			if i == 0 {
				addRates(line.BitsIn, l.Bytes, res.Step)
				line.BytesIn += sum
			} else {
				addRates(line.BitsOut, l.Bytes, res.Step)
				line.BytesOut += sum
			}
		}
	}
	if out.Seconds, err = s.coveredSeconds(ctx, nil, f.From, f.To); err != nil {
		s.writeErr(w, r, err)
		return
	}
	for i := range out.Routers {
		l := &out.Routers[i]
		l.AvgBitsIn, l.AvgBitsOut = float64(l.BytesIn)*8/out.Seconds, float64(l.BytesOut)*8/out.Seconds
		out.Totals.BytesIn += l.BytesIn
		out.Totals.BytesOut += l.BytesOut
	}
	out.Totals.AvgBitsIn, out.Totals.AvgBitsOut = float64(out.Totals.BytesIn)*8/out.Seconds, float64(out.Totals.BytesOut)*8/out.Seconds
	// The largest router first: the bottom of the stack.
	slices.SortStableFunc(out.Routers, func(a, b RouterLine) int {
		ta, tb := a.BytesIn+a.BytesOut, b.BytesIn+b.BytesOut
		switch {
		case ta > tb:
			return -1
		case ta < tb:
			return 1
		}
		return int(a.ID - b.ID)
	})
	writeJSON(w, http.StatusOK, out)
}

// line returns the line of a source, adding it first; unknown exporters
// (negative sources) are named by their id.
func (fs *FleetSeries) line(src int64, names map[int64]string, n int) *RouterLine {
	if i, ok := fs.byID[src]; ok {
		return &fs.Routers[i]
	}
	name, ok := names[src]
	if !ok {
		name = "exporter " + strconv.FormatInt(-src, 10)
		if src > 0 {
			name = "router " + strconv.FormatInt(src, 10)
		}
	}
	fs.Routers = append(fs.Routers, RouterLine{ID: src, Name: name, BitsIn: make([]float64, n), BitsOut: make([]float64, n)})
	fs.byID[src] = len(fs.Routers) - 1
	return &fs.Routers[len(fs.Routers)-1]
}
